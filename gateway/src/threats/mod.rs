//! Threat indicators and the countermeasures they propose.
//!
//! A report is a STIX 2.1 bundle in a signed envelope (`tfc-msg+jwt`, `iss` = the reporter).
//! Its indicators carry `x_tfc_severity` (the 危険度) and `x_tfc_countermeasure`, one action
//! whose target follows from the pattern. This module validates bundles ([`parse_bundle`]);
//! `engine` decides which actions apply under local policy, `book` keeps indicators and
//! actions on disk and applies them, and `effects` is what the rest of the gateway reads.

pub mod blocks;
pub mod effects;
pub mod engine;
pub mod pattern;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use effects::Effects;
pub use pattern::Pattern;

/// The largest bundle accepted, serialised, in bytes.
pub const MAX_BUNDLE_BYTES: usize = 64 * 1024;
/// The most objects one bundle may hold.
pub const MAX_BUNDLE_OBJECTS: usize = 100;
/// How long an indicator without `valid_until` lasts.
pub const DEFAULT_LIFETIME_SECS: i64 = 7 * 86_400;
/// The longest an indicator's countermeasure may last, whatever its `valid_until` says.
pub const MAX_LIFETIME_SECS: i64 = 90 * 86_400;

/// The danger level (危険度) of an indicator.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// The field threat level Cedar policies see (`context.threatLevel`), 1 to 4.
    pub fn level(self) -> u8 {
        self as u8 + 1
    }
}

impl std::str::FromStr for Severity {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        serde_json::from_value(Value::String(text.to_owned()))
            .map_err(|_| format!("{text:?} is not low, medium, high or critical"))
    }
}

/// A Traffic Light Protocol 2.0 marking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tlp {
    /// TLP:CLEAR (or 1.0 WHITE).
    Clear,
    /// TLP:GREEN.
    Green,
    /// TLP:AMBER.
    Amber,
    /// TLP:AMBER+STRICT.
    #[serde(rename = "amber+strict")]
    AmberStrict,
    /// TLP:RED.
    Red,
}

/// TLP 2.0 marking-definition ids (and the 1.0 ones, read as their 2.0 equivalents).
const TLP_MARKINGS: [(&str, Tlp); 9] = [
    ("94868c89-83c2-464b-929b-a1a8aa3c8487", Tlp::Clear),
    ("bab4a63c-aed9-4cf5-a766-dfca5abac2bb", Tlp::Green),
    ("55d920b0-5e8b-4f79-9ee9-91f868d9b421", Tlp::Amber),
    ("939a9414-2ddd-4d32-a0cd-375ea402b003", Tlp::AmberStrict),
    ("e828b379-4e03-4974-9ac4-e53a884c97c1", Tlp::Red),
    ("613f2e26-407d-48c7-9eca-b8e91df99dc9", Tlp::Clear),
    ("34098fce-860f-48ae-8e50-ebd3cc5e41da", Tlp::Green),
    ("f88d31f6-486f-44da-b317-01333bde0b82", Tlp::Amber),
    ("5e57c739-391a-4eb3-b6be-7d15ca92d5ed", Tlp::Red),
];

impl Tlp {
    /// The TLP 2.0 marking-definition id.
    pub fn marking_id(self) -> String {
        let uuid = TLP_MARKINGS
            .iter()
            .find(|(_, tlp)| *tlp == self)
            .map_or("", |(uuid, _)| uuid);
        format!("marking-definition--{uuid}")
    }

    fn from_marking(reference: &str) -> Option<Self> {
        let uuid = reference.strip_prefix("marking-definition--")?;
        TLP_MARKINGS
            .iter()
            .find(|(known, _)| *known == uuid)
            .map(|(_, tlp)| *tlp)
    }

    /// Whether a receiver may pass it on to another field (CLEAR and GREEN only).
    pub fn may_leave_field(self) -> bool {
        self <= Tlp::Green
    }
}

/// What a countermeasure does.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    /// Give a member no tier in the field: its connections there close.
    BlockPeer,
    /// Refuse connections to and from an address, network or domain.
    BlockAddress,
    /// Stop counting one of a member's credentials.
    SuspendCredential,
    /// Hold a member's tier in the field at or below a ceiling.
    CapTier,
    /// Stop serving records whose attachment has this hash.
    Quarantine,
    /// Mark members whose software inventory lists the component as vulnerable.
    MarkVulnerable,
}

impl ActionKind {
    /// Every kind, for configuration and listings.
    pub const ALL: [ActionKind; 6] = [
        ActionKind::BlockPeer,
        ActionKind::BlockAddress,
        ActionKind::SuspendCredential,
        ActionKind::CapTier,
        ActionKind::Quarantine,
        ActionKind::MarkVulnerable,
    ];

    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::BlockPeer => "block-peer",
            ActionKind::BlockAddress => "block-address",
            ActionKind::SuspendCredential => "suspend-credential",
            ActionKind::CapTier => "cap-tier",
            ActionKind::Quarantine => "quarantine",
            ActionKind::MarkVulnerable => "mark-vulnerable",
        }
    }

    /// Whether the action falls on members, so that one ordinary member's report must not
    /// be enough: it waits for a charter admin's report or a second, independent reporter.
    pub fn against_members(self) -> bool {
        matches!(
            self,
            ActionKind::BlockPeer
                | ActionKind::SuspendCredential
                | ActionKind::CapTier
                | ActionKind::MarkVulnerable
        )
    }

    fn fits(self, pattern: &Pattern) -> bool {
        match self {
            ActionKind::BlockPeer | ActionKind::SuspendCredential | ActionKind::CapTier => {
                matches!(pattern, Pattern::Member { .. })
            }
            ActionKind::BlockAddress => {
                matches!(pattern, Pattern::Address { .. } | Pattern::Domain { .. })
            }
            ActionKind::Quarantine => matches!(pattern, Pattern::FileSha256 { .. }),
            ActionKind::MarkVulnerable => matches!(pattern, Pattern::Software(_)),
        }
    }
}

/// `x_tfc_countermeasure`: the proposed action and its parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Countermeasure {
    /// The action.
    pub action: ActionKind,
    /// For `cap-tier`: the highest tier left (0 to 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<u8>,
    /// For `suspend-credential`: the credential's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// A checked indicator.
#[derive(Debug, Clone, PartialEq)]
pub struct Indicator {
    /// `indicator--<uuid>`.
    pub id: String,
    /// `modified`, in Unix milliseconds: a later one replaces an earlier one.
    pub modified_ms: i64,
    /// What it matches.
    pub pattern: Pattern,
    /// The danger level.
    pub severity: Severity,
    /// The proposed action.
    pub countermeasure: Countermeasure,
    /// Its TLP marking (unmarked reads as AMBER).
    pub tlp: Tlp,
    /// When it starts to apply (Unix seconds).
    pub valid_from: i64,
    /// When it and its action end (Unix seconds), bounded by [`MAX_LIFETIME_SECS`].
    pub expires: i64,
    /// The STIX object as received.
    pub object: Map<String, Value>,
}

/// A checked bundle.
#[derive(Debug, Clone, PartialEq)]
pub struct Bundle {
    /// Its indicators.
    pub indicators: Vec<Indicator>,
    /// Its other objects (course-of-action, relationship, identity, marking-definition).
    pub others: Vec<Map<String, Value>>,
}

impl Bundle {
    /// The most restrictive marking in the bundle.
    pub fn tlp(&self) -> Tlp {
        self.indicators
            .iter()
            .map(|indicator| indicator.tlp)
            .max()
            .unwrap_or(Tlp::Amber)
    }
}

/// Why an indicator or report was refused (stable codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ThreatCode {
    /// Larger than the limits.
    TooLarge,
    /// Not a STIX 2.1 bundle of the expected shape.
    Malformed,
    /// A pattern outside the supported subset.
    UnsupportedPattern,
    /// The countermeasure does not fit the pattern, or lacks its parameter.
    BadCountermeasure,
    /// Already past `valid_until`.
    Expired,
    /// The reporter is not a member in good standing of the field.
    NotMember,
    /// The report breaks its TLP marking (RED by gossip, a non-recipient, re-sharing).
    TlpViolation,
    /// The reporter sent more than its rate or holds more than its quota.
    RateLimited,
    /// Nothing new (same id and `modified`, or older).
    Replayed,
    /// This gateway has not joined the field.
    WrongField,
    /// No such pending action.
    UnknownAction,
    /// The store failed.
    Store,
    /// The disk is full: nothing was taken.
    StorageFull,
}

impl ThreatCode {
    /// The code as text.
    pub fn as_str(self) -> &'static str {
        match self {
            ThreatCode::TooLarge => "too_large",
            ThreatCode::Malformed => "malformed",
            ThreatCode::UnsupportedPattern => "unsupported_pattern",
            ThreatCode::BadCountermeasure => "bad_countermeasure",
            ThreatCode::Expired => "expired",
            ThreatCode::NotMember => "not_member",
            ThreatCode::TlpViolation => "tlp_violation",
            ThreatCode::RateLimited => "rate_limited",
            ThreatCode::Replayed => "replayed",
            ThreatCode::WrongField => "wrong_field",
            ThreatCode::UnknownAction => "unknown_action",
            ThreatCode::Store => "store_io",
            ThreatCode::StorageFull => "storage_full",
        }
    }
}

/// A refused indicator, report or operator request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct ThreatError {
    /// The stable code.
    pub code: ThreatCode,
    /// What is wrong, for people.
    pub message: String,
}

impl ThreatError {
    /// An error with this code.
    pub fn new(code: ThreatCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<crate::audit::AuditError> for ThreatError {
    fn from(error: crate::audit::AuditError) -> Self {
        let crate::audit::AuditError::Store(error) = error;
        error.into()
    }
}

impl From<crate::store::StoreError> for ThreatError {
    fn from(error: crate::store::StoreError) -> Self {
        let code = if error.is_full() {
            ThreatCode::StorageFull
        } else {
            ThreatCode::Store
        };
        Self::new(code, error.to_string())
    }
}

fn malformed(message: impl Into<String>) -> ThreatError {
    ThreatError::new(ThreatCode::Malformed, message)
}

/// Checks a STIX 2.1 bundle: its shape, sizes, every indicator's pattern, countermeasure,
/// marking and validity. An indicator already expired at `now` refuses the bundle.
pub fn parse_bundle(bundle: &Value, now: i64) -> Result<Bundle, ThreatError> {
    let size = serialised_len(bundle);
    if size > MAX_BUNDLE_BYTES {
        return Err(ThreatError::new(
            ThreatCode::TooLarge,
            format!("bundle of {size} bytes; the limit is {MAX_BUNDLE_BYTES}"),
        ));
    }
    let object = bundle
        .as_object()
        .ok_or_else(|| malformed("a bundle is a JSON object"))?;
    if object.get("type").and_then(Value::as_str) != Some("bundle") {
        return Err(malformed("type must be \"bundle\""));
    }
    check_id(object, "bundle")?;
    let objects = object
        .get("objects")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("a bundle has an objects array"))?;
    if objects.len() > MAX_BUNDLE_OBJECTS {
        return Err(ThreatError::new(
            ThreatCode::TooLarge,
            format!(
                "{} objects; the limit is {MAX_BUNDLE_OBJECTS}",
                objects.len()
            ),
        ));
    }
    let mut parsed = Bundle {
        indicators: Vec::new(),
        others: Vec::new(),
    };
    for object in objects {
        let object = object
            .as_object()
            .ok_or_else(|| malformed("every bundle object is a JSON object"))?;
        match object.get("type").and_then(Value::as_str) {
            Some("indicator") => parsed.indicators.push(parse_indicator(object, now)?),
            Some(
                kind @ ("course-of-action" | "relationship" | "identity" | "marking-definition"
                | "note"),
            ) => {
                check_id(object, kind)?;
                parsed.others.push(object.clone());
            }
            other => {
                return Err(malformed(format!(
                    "object type {other:?} is not accepted in a threat report"
                )));
            }
        }
    }
    if parsed.indicators.is_empty() {
        return Err(malformed("the bundle holds no indicator"));
    }
    Ok(parsed)
}

/// The length of a value's JSON, counted without building it.
fn serialised_len(value: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        Err(_) => usize::MAX,
    }
}

fn check_id(object: &Map<String, Value>, kind: &str) -> Result<String, ThreatError> {
    let id = object
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed(format!("a {kind} has an id")))?;
    let valid = id
        .strip_prefix(kind)
        .and_then(|rest| rest.strip_prefix("--"))
        .is_some_and(|uuid| uuid::Uuid::parse_str(uuid).is_ok() && uuid.len() == 36);
    if !valid {
        return Err(malformed(format!("{id:?} is not a {kind}--<uuid> id")));
    }
    Ok(id.to_owned())
}

fn timestamp(object: &Map<String, Value>, key: &str) -> Result<Option<i64>, ThreatError> {
    let Some(value) = object.get(key) else {
        return Ok(None);
    };
    let text = value
        .as_str()
        .filter(|text| text.ends_with('Z'))
        .ok_or_else(|| malformed(format!("{key} is an RFC 3339 UTC timestamp")))?;
    let parsed = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| malformed(format!("{key} {text:?} is not an RFC 3339 timestamp")))?;
    Ok(Some(
        i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX),
    ))
}

fn parse_indicator(object: &Map<String, Value>, now: i64) -> Result<Indicator, ThreatError> {
    let id = check_id(object, "indicator")?;
    let field = |key: &str| object.get(key).and_then(Value::as_str);
    if field("spec_version") != Some("2.1") {
        return Err(malformed(format!("{id}: spec_version must be \"2.1\"")));
    }
    if field("pattern_type") != Some("stix") {
        return Err(ThreatError::new(
            ThreatCode::UnsupportedPattern,
            format!("{id}: only pattern_type \"stix\" is supported"),
        ));
    }
    let required = |key: &str| {
        timestamp(object, key)?.ok_or_else(|| malformed(format!("{id}: {key} is required")))
    };
    let created = required("created")?;
    let modified_ms = required("modified")?;
    if modified_ms < created {
        return Err(malformed(format!("{id}: modified is before created")));
    }
    let valid_from = required("valid_from")? / 1000;
    let valid_until = timestamp(object, "valid_until")?.map(|ms| ms / 1000);
    if valid_until.is_some_and(|until| until <= valid_from) {
        return Err(malformed(format!(
            "{id}: valid_until is not after valid_from"
        )));
    }
    let expires = valid_until
        .unwrap_or(valid_from.saturating_add(DEFAULT_LIFETIME_SECS))
        .min(valid_from.max(now).saturating_add(MAX_LIFETIME_SECS));
    if expires <= now {
        return Err(ThreatError::new(
            ThreatCode::Expired,
            format!("{id} expired before it arrived"),
        ));
    }
    let pattern = Pattern::parse(field("pattern").unwrap_or_default()).map_err(|reason| {
        ThreatError::new(ThreatCode::UnsupportedPattern, format!("{id}: {reason}"))
    })?;
    let severity: Severity = object
        .get("x_tfc_severity")
        .cloned()
        .and_then(|value| serde_json::from_value(value).ok())
        .ok_or_else(|| {
            malformed(format!(
                "{id}: x_tfc_severity is low, medium, high or critical"
            ))
        })?;
    let countermeasure = parse_countermeasure(&id, object.get("x_tfc_countermeasure"), &pattern)?;
    if let Some(confidence) = object.get("confidence")
        && confidence.as_u64().is_none_or(|value| value > 100)
    {
        return Err(malformed(format!("{id}: confidence is 0 to 100")));
    }
    Ok(Indicator {
        tlp: marking(&id, object)?,
        id,
        modified_ms,
        pattern,
        severity,
        countermeasure,
        valid_from,
        expires,
        object: object.clone(),
    })
}

fn parse_countermeasure(
    id: &str,
    value: Option<&Value>,
    pattern: &Pattern,
) -> Result<Countermeasure, ThreatError> {
    let bad = |message: String| ThreatError::new(ThreatCode::BadCountermeasure, message);
    let countermeasure: Countermeasure = value
        .cloned()
        .and_then(|value| serde_json::from_value(value).ok())
        .ok_or_else(|| {
            bad(format!(
                "{id}: x_tfc_countermeasure is {{\"action\": …}} with a known action"
            ))
        })?;
    let action = countermeasure.action;
    if !action.fits(pattern) {
        return Err(bad(format!(
            "{id}: {} does not fit a {} pattern",
            action.as_str(),
            pattern_kind(pattern)
        )));
    }
    match (action, countermeasure.tier, &countermeasure.credential) {
        (ActionKind::CapTier, Some(tier), None) if tier <= 3 => {}
        (ActionKind::CapTier, ..) => return Err(bad(format!("{id}: cap-tier needs tier 0 to 3"))),
        (ActionKind::SuspendCredential, None, Some(credential))
            if !credential.is_empty() && credential.len() <= 256 => {}
        (ActionKind::SuspendCredential, ..) => {
            return Err(bad(format!(
                "{id}: suspend-credential needs the credential id"
            )));
        }
        (_, None, None) => {}
        _ => return Err(bad(format!("{id}: {} takes no parameter", action.as_str()))),
    }
    Ok(countermeasure)
}

/// The pattern's kind, for messages and listings.
pub fn pattern_kind(pattern: &Pattern) -> &'static str {
    match pattern {
        Pattern::Address { .. } => "address",
        Pattern::Domain { .. } => "domain",
        Pattern::FileSha256 { .. } => "file",
        Pattern::Software(_) => "software",
        Pattern::Member { .. } => "member",
    }
}

fn marking(id: &str, object: &Map<String, Value>) -> Result<Tlp, ThreatError> {
    let Some(references) = object.get("object_marking_refs") else {
        return Ok(Tlp::Amber);
    };
    let references = references
        .as_array()
        .ok_or_else(|| malformed(format!("{id}: object_marking_refs is an array")))?;
    let levels: Vec<Tlp> = references
        .iter()
        .filter_map(Value::as_str)
        .filter_map(Tlp::from_marking)
        .collect();
    match levels.as_slice() {
        [] => Ok(Tlp::Amber),
        [level] => Ok(*level),
        _ => Err(malformed(format!("{id}: more than one TLP marking"))),
    }
}

/// What an operator writes to compose an indicator ([`compose`]).
#[derive(Debug, Clone, PartialEq)]
pub struct IndicatorDraft {
    /// A short name.
    pub name: String,
    /// What was seen.
    pub description: String,
    /// A STIX pattern in the supported subset.
    pub pattern: String,
    /// The danger level.
    pub severity: Severity,
    /// The proposed action.
    pub countermeasure: Countermeasure,
    /// The marking.
    pub tlp: Tlp,
    /// 0 to 100, if known.
    pub confidence: Option<u8>,
    /// Start (Unix seconds).
    pub valid_from: i64,
    /// End (Unix seconds).
    pub valid_until: i64,
}

/// A STIX 2.1 bundle holding the drafted indicator, a course-of-action describing its
/// countermeasure, and the `mitigates` relationship between them; checked like any report.
pub fn compose(draft: &IndicatorDraft, now: i64) -> Result<Value, ThreatError> {
    let stamp = |secs: i64| format_timestamp_ms(secs.saturating_mul(1000));
    let created = stamp(now);
    let new_id = |kind: &str| format!("{kind}--{}", uuid::Uuid::new_v4());
    let (indicator_id, action_id) = (new_id("indicator"), new_id("course-of-action"));
    let mut indicator = serde_json::json!({
        "type": "indicator",
        "spec_version": "2.1",
        "id": indicator_id,
        "created": created,
        "modified": created,
        "name": draft.name,
        "description": draft.description,
        "indicator_types": ["malicious-activity"],
        "pattern": draft.pattern,
        "pattern_type": "stix",
        "pattern_version": "2.1",
        "valid_from": stamp(draft.valid_from),
        "valid_until": stamp(draft.valid_until),
        "object_marking_refs": [draft.tlp.marking_id()],
        "x_tfc_severity": draft.severity,
        "x_tfc_countermeasure": draft.countermeasure,
    });
    if let Some(confidence) = draft.confidence {
        indicator["confidence"] = confidence.into();
    }
    let marking = [draft.tlp.marking_id()];
    let bundle = serde_json::json!({
        "type": "bundle",
        "id": new_id("bundle"),
        "objects": [
            indicator,
            {
                "type": "course-of-action",
                "spec_version": "2.1",
                "id": action_id,
                "created": created,
                "modified": created,
                "name": format!("{} ({})", draft.countermeasure.action.as_str(), draft.name),
                "description": "Applied by each gateway within the limits its organisation sets.",
                "object_marking_refs": marking,
            },
            {
                "type": "relationship",
                "spec_version": "2.1",
                "id": new_id("relationship"),
                "created": created,
                "modified": created,
                "relationship_type": "mitigates",
                "source_ref": action_id,
                "target_ref": indicator_id,
                "object_marking_refs": marking,
            },
        ],
    });
    parse_bundle(&bundle, now)?;
    Ok(bundle)
}

/// Formats Unix milliseconds as a STIX/TAXII timestamp (RFC 3339 UTC, milliseconds).
pub fn format_timestamp_ms(ms: i64) -> String {
    crate::audit::format_time_ms(ms)
}
