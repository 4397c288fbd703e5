//! Questions to the audit log: which entries match a filter, and the same entries as a SIEM
//! reads them (JSON lines with an RFC 3339 time beside the epoch, or ArcSight CEF).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::AuditEntry;
use super::format_time_ms;

/// What to look for. Every given criterion must match; text matches ignore case.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(default)]
pub struct AuditFilter {
    /// Entries at or after this instant (RFC 3339).
    pub since: Option<String>,
    /// Entries before this instant (RFC 3339).
    pub until: Option<String>,
    /// The actor's DID, operator or name contains this.
    pub actor: Option<String>,
    /// The subject's DID or name, or the object, contains this.
    pub subject: Option<String>,
    /// The action starts with this (`governance.`, `data.get`, `api.`).
    pub action: Option<String>,
    /// The decision is exactly this (`allow`, `deny`, `commit`, …).
    pub decision: Option<String>,
    /// The field id starts with this.
    pub field: Option<String>,
    /// At most this many entries, the latest (default and most: 10,000).
    pub limit: Option<usize>,
}

/// The most entries one answer carries.
pub const MAX_ENTRIES: usize = 10_000;

/// A filter whose instants are read.
#[derive(Debug, Clone)]
pub struct CheckedFilter {
    filter: AuditFilter,
    since_ms: i64,
    until_ms: i64,
}

impl AuditFilter {
    /// Reads the instants; the unreadable one is named in the error.
    pub fn checked(self) -> Result<CheckedFilter, String> {
        let instant = |text: &Option<String>, default: i64| match text {
            None => Ok(default),
            Some(text) => crate::credential::parse_rfc3339(text)
                .map(|secs| secs.saturating_mul(1000))
                .ok_or_else(|| {
                    format!("{text:?} is not an RFC 3339 instant such as 2026-11-22T00:00:00Z")
                }),
        };
        Ok(CheckedFilter {
            since_ms: instant(&self.since, i64::MIN)?,
            until_ms: instant(&self.until, i64::MAX)?,
            filter: self,
        })
    }
}

fn contains(haystack: Option<&str>, needle: &str) -> bool {
    haystack.is_some_and(|text| text.to_lowercase().contains(&needle.to_lowercase()))
}

impl CheckedFilter {
    /// The earliest instant asked for (ms).
    pub fn since_ms(&self) -> i64 {
        self.since_ms
    }

    /// How many entries to answer at most.
    pub fn limit(&self) -> usize {
        self.filter
            .limit
            .unwrap_or(MAX_ENTRIES)
            .clamp(1, MAX_ENTRIES)
    }

    /// Whether `entry` matches.
    pub fn matches(&self, entry: &AuditEntry) -> bool {
        let filter = &self.filter;
        (self.since_ms..self.until_ms).contains(&entry.time_ms)
            && filter.actor.as_deref().is_none_or(|actor| {
                contains(Some(&entry.actor), actor) || contains(entry.actor_name.as_deref(), actor)
            })
            && filter.subject.as_deref().is_none_or(|subject| {
                contains(entry.subject.as_deref(), subject)
                    || contains(entry.subject_name.as_deref(), subject)
                    || contains(Some(&entry.object), subject)
            })
            && filter
                .action
                .as_deref()
                .is_none_or(|action| entry.action.starts_with(action))
            && filter
                .decision
                .as_deref()
                .is_none_or(|decision| entry.decision == decision)
            && filter.field.as_deref().is_none_or(|field| {
                entry
                    .field
                    .as_deref()
                    .is_some_and(|held| held.starts_with(field))
            })
    }
}

/// An entry as JSON, with `time` (RFC 3339 UTC) beside `timeMs`.
pub fn entry_json(entry: &AuditEntry) -> Value {
    let mut value = serde_json::to_value(entry).unwrap_or(Value::Null);
    if let Some(object) = value.as_object_mut() {
        object.insert("time".into(), Value::String(format_time_ms(entry.time_ms)));
    }
    value
}

/// An entry as one ArcSight CEF line.
pub fn entry_cef(entry: &AuditEntry) -> String {
    let severity = match entry.decision.as_str() {
        "deny" | "refuse" | "refused" => 6,
        "commit-emergency" => 8,
        _ if entry.action.starts_with("threat.apply") => 7,
        _ => 3,
    };
    let mut extension = vec![
        ("rt", entry.time_ms.to_string()),
        ("suser", entry.actor.clone()),
        ("act", entry.decision.clone()),
        ("reason", entry.reason.clone()),
        ("cs1Label", "object".into()),
        ("cs1", entry.object.clone()),
        ("cn1Label", "seq".into()),
        ("cn1", entry.seq.to_string()),
    ];
    let optional = [
        ("suid", &entry.actor_name),
        ("duser", &entry.subject),
        ("duid", &entry.subject_name),
        ("cs2", &entry.field),
        ("cs3", &entry.purpose),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            extension.push((key, value.clone()));
        }
    }
    if entry.field.is_some() {
        extension.push(("cs2Label", "field".into()));
    }
    if entry.purpose.is_some() {
        extension.push(("cs3Label", "purpose".into()));
    }
    let extension: Vec<String> = extension
        .into_iter()
        .map(|(key, value)| format!("{key}={}", cef_value(&value)))
        .collect();
    format!(
        "CEF:0|TFC|tfc-gateway|{}|{}|{}|{severity}|{}",
        cef_header(env!("CARGO_PKG_VERSION")),
        cef_header(&entry.action),
        cef_header(&entry.action),
        extension.join(" ")
    )
}

/// Escapes a CEF header field: `\` and `|`; line breaks become spaces.
fn cef_header(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

/// Escapes a CEF extension value: `\`, `=` and line breaks.
fn cef_value(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('=', "\\=")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(actor: &str, action: &str, decision: &str, field: Option<&str>) -> AuditEntry {
        AuditEntry {
            seq: 7,
            time_ms: 1_700_000_000_000,
            actor: actor.into(),
            action: action.into(),
            object: "obj|ect=1".into(),
            decision: decision.into(),
            reason: "line\nbreak".into(),
            purpose: None,
            session_start_ms: None,
            duration_ms: None,
            actor_name: Some("株式会社テスト".into()),
            subject: Some("did:key:zSubject".into()),
            subject_name: Some("Kita Construction".into()),
            field: field.map(str::to_owned),
            prev: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn filters_match_every_criterion_given() {
        let held = entry(
            "did:key:zActor",
            "governance.revoke",
            "commit",
            Some("abcdef"),
        );
        let filter = |filter: AuditFilter| filter.checked().unwrap().matches(&held);
        assert!(filter(AuditFilter::default()));
        assert!(filter(AuditFilter {
            actor: Some("テスト".into()),
            ..Default::default()
        }));
        assert!(filter(AuditFilter {
            subject: Some("kita".into()),
            ..Default::default()
        }));
        assert!(filter(AuditFilter {
            action: Some("governance.".into()),
            field: Some("abc".into()),
            ..Default::default()
        }));
        assert!(!filter(AuditFilter {
            decision: Some("deny".into()),
            ..Default::default()
        }));
        assert!(!filter(AuditFilter {
            field: Some("zz".into()),
            ..Default::default()
        }));
        assert!(!filter(AuditFilter {
            since: Some("2030-01-01T00:00:00Z".into()),
            ..Default::default()
        }));
        assert!(filter(AuditFilter {
            until: Some("2030-01-01T00:00:00Z".into()),
            ..Default::default()
        }));
        assert!(
            AuditFilter {
                since: Some("yesterday".into()),
                ..Default::default()
            }
            .checked()
            .is_err()
        );
    }

    #[test]
    fn json_carries_both_times_and_cef_escapes_its_separators() {
        let held = entry("did:key:zActor", "data.get", "deny", None);
        let json = entry_json(&held);
        assert_eq!(json["timeMs"], 1_700_000_000_000_i64);
        assert_eq!(json["time"], "2023-11-14T22:13:20.000Z");
        let line = entry_cef(&held);
        assert!(line.starts_with("CEF:0|TFC|tfc-gateway|"), "{line}");
        assert!(line.contains("|data.get|data.get|6|"), "{line}");
        assert!(line.contains(r"cs1=obj|ect\=1"), "{line}");
        assert!(line.contains(r"reason=line\nbreak"), "{line}");
        assert!(!line.contains('\n'));
    }
}
