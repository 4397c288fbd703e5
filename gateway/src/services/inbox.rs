//! What waits for this organisation's operators, from the services' own state: governance
//! ops waiting for our signature, applicants to screen, our credentials about to expire, and
//! members whose status lists went stale. (The API adds the countermeasures and the four-eyes
//! approvals it holds.)

use serde::{Deserialize, Serialize};

use super::Services;
use crate::credential::{format_rfc3339, unverified_payload};
use crate::governance::OpKind;

/// How far ahead an expiring credential of ours is shown.
pub const EXPIRY_NOTICE_SECS: i64 = 30 * 86_400;

/// One thing that needs an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InboxItem {
    /// `governance_op`, `countermeasure`, `application`, `credential_expiring`,
    /// `status_list_stale` or `approval`.
    pub kind: String,
    /// Since when it waits (RFC 3339 UTC).
    pub since: String,
    /// The same, in Unix seconds.
    pub since_secs: i64,
    /// The field, if it belongs to one.
    pub field: Option<String>,
    /// The organisation it is about (a DID), if any.
    pub subject: Option<String>,
    /// That organisation's verified legal name, if known.
    pub subject_name: Option<String>,
    /// What it is, in one line.
    pub summary: String,
    /// The command that acts on it.
    pub act: String,
    /// The least role that may act on it.
    pub role: String,
}

impl InboxItem {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        kind: &str,
        since_secs: i64,
        field: Option<&str>,
        subject: Option<(&str, Option<String>)>,
        summary: String,
        act: String,
        role: &str,
    ) -> Self {
        let (subject, subject_name) = match subject {
            Some((did, name)) => (Some(did.to_owned()), name),
            None => (None, None),
        };
        Self {
            kind: kind.to_owned(),
            since: format_rfc3339(since_secs),
            since_secs,
            field: field.map(str::to_owned),
            subject,
            subject_name,
            summary,
            act,
            role: role.to_owned(),
        }
    }
}

impl Services {
    /// What waits for an operator here, as of `now` (Unix seconds), in no order.
    pub fn inbox(&self, now: i64) -> Vec<InboxItem> {
        let mut items = self.ops_to_sign();
        items.extend(self.applications());
        items.extend(self.expiring_credentials(now));
        items.extend(self.stale_status_lists(now));
        items
    }

    /// Pending ops of fields where we may sign and have not, with their k-of-n progress and
    /// whether the quorum can still be reached by the members yet to sign.
    fn ops_to_sign(&self) -> Vec<InboxItem> {
        let me = self.key.did();
        let mut items = Vec::new();
        for field in self.fields.all() {
            let id = field.charter.field_id();
            let Some(state) = self.governance.state(&id) else {
                continue;
            };
            if !state
                .members
                .get(&me)
                .is_some_and(|standing| standing.kind.in_good_standing())
            {
                continue;
            }
            let eligible: Vec<&String> = state.in_good_standing().collect();
            for (op_id, signed, progress) in self.governance.ops(&id) {
                if progress.committed.is_some() || signed.signatures.contains_key(&me) {
                    continue;
                }
                let unsigned = eligible
                    .iter()
                    .filter(|did| !signed.signatures.contains_key(**did))
                    .count();
                let reachable = progress.signatures + unsigned >= progress.required;
                let summary = format!(
                    "{} {}: {} of {} signatures needed so far{}",
                    signed.op.kind,
                    signed.op.target,
                    progress.signatures,
                    progress.required,
                    if reachable {
                        String::new()
                    } else {
                        format!("; cannot reach its quorum ({unsigned} members have yet to sign)")
                    }
                );
                let role = if signed.op.kind == OpKind::Admit {
                    "clerk"
                } else {
                    "admin"
                };
                let subject = signed
                    .op
                    .kind
                    .is_membership()
                    .then(|| (signed.op.target.as_str(), self.name_of(&signed.op.target)));
                items.push(InboxItem::new(
                    "governance_op",
                    signed.op.created,
                    Some(&id),
                    subject,
                    summary,
                    format!(
                        "tfcctl member endorse {} --field {id}",
                        op_id.get(..16).unwrap_or(&op_id)
                    ),
                    role,
                ));
            }
        }
        items
    }

    /// Peers judged in a field where we screen applicants, not in its registry and not yet
    /// up for admission.
    fn applications(&self) -> Vec<InboxItem> {
        let Ok(peers) = self.peers.all() else {
            return Vec::new();
        };
        let mut items = Vec::new();
        for field in self.fields.all() {
            if !self.screens_applicants(&field) {
                continue;
            }
            let id = field.charter.field_id();
            for (_, record) in &peers {
                let Some(tier) = record.tiers.get(&id) else {
                    continue;
                };
                if self.governance.standing(&id, &record.did).is_some()
                    || self.governance.admission_pending(&id, &record.did)
                {
                    continue;
                }
                let lacking = record
                    .presented
                    .get(&id)
                    .and_then(|presented| presented.unmet.first().cloned())
                    .map(|first| format!("; next: {first}"))
                    .unwrap_or_default();
                items.push(InboxItem::new(
                    "application",
                    record.evaluated_at,
                    Some(&id),
                    Some((&record.did, record.name.clone())),
                    format!("applies at tier {tier}{lacking}"),
                    format!(
                        "tfcctl tier explain {} --field {id}, then tfcctl member propose-admit",
                        record.did
                    ),
                    "clerk",
                ));
            }
        }
        items
    }

    /// Credentials in our wallet whose validity ends within [`EXPIRY_NOTICE_SECS`].
    fn expiring_credentials(&self, now: i64) -> Vec<InboxItem> {
        self.wallet
            .all()
            .iter()
            .filter_map(|token| {
                let payload = unverified_payload(token)?;
                let until = crate::credential::parse_rfc3339(payload.get("validUntil")?.as_str()?)?;
                (until - now < EXPIRY_NOTICE_SECS).then(|| {
                    let type_name = payload
                        .get("type")
                        .and_then(|types| types.get(1))
                        .and_then(|name| name.as_str())
                        .unwrap_or("credential");
                    let verb = if until <= now { "expired" } else { "expires" };
                    InboxItem::new(
                        "credential_expiring",
                        until - EXPIRY_NOTICE_SECS,
                        None,
                        None,
                        format!("our {type_name} {verb} at {}", format_rfc3339(until)),
                        "ask the issuer for a renewal, then tfcctl wallet import".into(),
                        "operator",
                    )
                })
            })
            .collect()
    }

    /// Members in good standing whose credentials point at a status list we do not hold, or
    /// hold older than the field's `status_max_age`: their tiers may fall at the next check.
    fn stale_status_lists(&self, now: i64) -> Vec<InboxItem> {
        let Ok(peers) = self.peers.all() else {
            return Vec::new();
        };
        let mut items = Vec::new();
        for field in self.fields.all() {
            let id = field.charter.field_id();
            let max_age = self.effective_charter(&field).status_max_age_secs;
            for (_, record) in &peers {
                if !self.in_good_standing(&id, &record.did) {
                    continue;
                }
                let lists: std::collections::BTreeSet<String> = record
                    .credentials_in(&id)
                    .iter()
                    .filter_map(|token| {
                        let payload = unverified_payload(token)?;
                        let status = payload.get("credentialStatus")?;
                        let list = status
                            .get("statusListCredential")
                            .or_else(|| status.get(0)?.get("statusListCredential"))?;
                        list.as_str().map(str::to_owned)
                    })
                    .collect();
                for list in lists {
                    let issued =
                        self.with_status_lists(|held| held.get(&list).map(|list| list.issued_at));
                    let (since, summary) = match issued {
                        None => (
                            record.evaluated_at,
                            format!("status list {list} is not held"),
                        ),
                        Some(issued) if now - issued > max_age => (
                            issued + max_age,
                            format!(
                                "status list {list} went stale at {}",
                                format_rfc3339(issued + max_age)
                            ),
                        ),
                        Some(_) => continue,
                    };
                    items.push(InboxItem::new(
                        "status_list_stale",
                        since,
                        Some(&id),
                        Some((&record.did, record.name.clone())),
                        summary,
                        "get a fresh list from its issuer, then tfcctl status-list import".into(),
                        "operator",
                    ));
                }
            }
        }
        items
    }
}
