//! The countermeasures in force, as the rest of the gateway reads them: the handshake (blocked
//! members, tier caps, suspended credentials), data access (quarantined attachments,
//! vulnerable members, the field's threat level) and the connection gate (addresses).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;

use super::blocks::AddressBlocks;
use super::engine::ActionId;
use super::pattern::{Component, Pattern};
use super::{ActionKind, Countermeasure, Severity};
use crate::credential::VerifiedCredential;

/// The credential type whose components `mark-vulnerable` matches.
pub const INVENTORY_TYPE: &str = "SoftwareInventoryCredential";

/// One applied action.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The field id.
    pub field: Arc<str>,
    /// Its target.
    pub pattern: Pattern,
    /// What it does.
    pub countermeasure: Countermeasure,
    /// Its danger level.
    pub severity: Severity,
}

/// Every action in force, by kind and action id.
#[derive(Debug, Default)]
pub struct Effects {
    applied: BTreeMap<ActionKind, HashMap<ActionId, Applied>>,
    quarantined: HashSet<(String, String)>,
    /// Applied actions per field and severity, for the threat level.
    severities: HashMap<Arc<str>, [usize; 4]>,
}

impl Effects {
    /// Puts an action in force.
    pub fn insert(&mut self, id: ActionId, applied: Applied) {
        if let Pattern::FileSha256 { sha256 } = &applied.pattern {
            self.quarantined
                .insert((applied.field.to_string(), sha256.clone()));
        }
        self.severities.entry(applied.field.clone()).or_default()
            [usize::from(applied.severity.level() - 1)] += 1;
        if let Some(previous) = self
            .applied
            .entry(applied.countermeasure.action)
            .or_default()
            .insert(id, applied)
        {
            self.forget_severity(&previous);
        }
    }

    /// Lifts an action; returns it if it was in force.
    pub fn remove(&mut self, id: &ActionId, kind: ActionKind) -> Option<Applied> {
        let applied = self.applied.get_mut(&kind)?.remove(id)?;
        if let Pattern::FileSha256 { sha256 } = &applied.pattern {
            self.quarantined
                .remove(&(applied.field.to_string(), sha256.clone()));
        }
        self.forget_severity(&applied);
        Some(applied)
    }

    fn forget_severity(&mut self, applied: &Applied) {
        if let Some(counts) = self.severities.get_mut(&applied.field) {
            let slot = &mut counts[usize::from(applied.severity.level() - 1)];
            *slot = slot.saturating_sub(1);
        }
    }

    fn of_kind(&self, kind: ActionKind, field: &str) -> impl Iterator<Item = &Applied> {
        self.applied
            .get(&kind)
            .into_iter()
            .flat_map(HashMap::values)
            .filter(move |applied| &*applied.field == field)
    }

    fn names_member(applied: &Applied, did: &str) -> bool {
        matches!(&applied.pattern, Pattern::Member { did: target } if target == did)
    }

    /// Whether `did` is blocked in `field`.
    pub fn member_blocked(&self, field: &str, did: &str) -> bool {
        self.of_kind(ActionKind::BlockPeer, field)
            .any(|applied| Self::names_member(applied, did))
    }

    /// The lowest tier ceiling on `did` in `field`.
    pub fn tier_cap(&self, field: &str, did: &str) -> Option<u8> {
        self.of_kind(ActionKind::CapTier, field)
            .filter(|applied| Self::names_member(applied, did))
            .filter_map(|applied| applied.countermeasure.tier)
            .min()
    }

    /// Whether `did`'s credential `id` is suspended in `field`.
    pub fn credential_suspended(&self, field: &str, did: &str, id: &str) -> bool {
        self.of_kind(ActionKind::SuspendCredential, field)
            .any(|applied| {
                Self::names_member(applied, did)
                    && applied.countermeasure.credential.as_deref() == Some(id)
            })
    }

    /// Whether records with an attachment of this hash are quarantined in `field`.
    pub fn quarantined(&self, field: &str, sha256: &str) -> bool {
        self.quarantined
            .contains(&(field.to_owned(), sha256.to_owned()))
    }

    /// Whether any `suspend-credential` is in force in `field` (lets callers skip decoding).
    pub fn suspends_credentials_in(&self, field: &str) -> bool {
        self.of_kind(ActionKind::SuspendCredential, field)
            .next()
            .is_some()
    }

    /// Whether any `mark-vulnerable` is in force in `field`.
    pub fn marks_vulnerable_in(&self, field: &str) -> bool {
        self.of_kind(ActionKind::MarkVulnerable, field)
            .next()
            .is_some()
    }

    /// Whether a member with these verified credentials runs software an applied
    /// `mark-vulnerable` names. Only an inventory about the member itself counts.
    pub fn vulnerable(&self, field: &str, did: &str, credentials: &[VerifiedCredential]) -> bool {
        let mut rules = self
            .of_kind(ActionKind::MarkVulnerable, field)
            .filter_map(|applied| match &applied.pattern {
                Pattern::Software(software) => Some(software),
                _ => None,
            })
            .peekable();
        if rules.peek().is_none() {
            return false;
        }
        let rules: Vec<_> = rules.collect();
        credentials
            .iter()
            .filter(|credential| {
                credential.type_name == INVENTORY_TYPE && credential.subject == did
            })
            .flat_map(|credential| components(&credential.claims))
            .any(|component| rules.iter().any(|rule| rule.matches(&component)))
    }

    /// The field's threat level for Cedar: the highest severity in force, 0 if none.
    pub fn threat_level(&self, field: &str) -> u8 {
        self.severities.get(field).map_or(0, |counts| {
            counts
                .iter()
                .rposition(|count| *count > 0)
                .map_or(0, |index| index as u8 + 1)
        })
    }

    /// Addresses, networks and domains the connection gate refuses.
    pub fn address_blocks(&self) -> AddressBlocks {
        let mut blocks = AddressBlocks::default();
        for applied in self
            .applied
            .get(&ActionKind::BlockAddress)
            .into_iter()
            .flat_map(HashMap::values)
        {
            match &applied.pattern {
                Pattern::Address { net } => blocks.networks.push(*net),
                Pattern::Domain { name } => blocks.domains.push(name.clone()),
                _ => {}
            }
        }
        blocks.networks.sort();
        blocks.networks.dedup();
        blocks.domains.sort();
        blocks.domains.dedup();
        blocks
    }

    /// How many actions are in force.
    pub fn len(&self) -> usize {
        self.applied.values().map(HashMap::len).sum()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The components an inventory credential lists.
fn components(claims: &serde_json::Map<String, Value>) -> impl Iterator<Item = Component<'_>> {
    claims
        .get("components")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|component| {
            Some(Component {
                name: component.get("name")?.as_str()?,
                version: component.get("version")?.as_str()?,
                cpe: component.get("cpe").and_then(Value::as_str),
            })
        })
}

/// The id of a credential token, read without verifying it: used only to drop a credential
/// from what counts, never to trust one.
pub fn credential_id(token: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: serde_json::Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    claims.get("id").and_then(Value::as_str).map(str::to_owned)
}
