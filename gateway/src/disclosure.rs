//! The disclosure log: every presentation this gateway sent or received, on both sides of
//! every handshake. It answers "who has seen our credit rating?": to or from whom (DID and
//! organisation name), the field, the purpose, the credential types requested and those
//! presented, how it ended and why, and when. It never holds a claim value; the signed ask
//! that each presentation answered is kept as evidence.
//!
//! Entries are keyed by time (milliseconds, big-endian) and a sequence number, so that a
//! query from a time is a range scan. The handshake flushes each step's entries (with the
//! nonces it used) before the step goes on.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::negotiation::{Direction, Disclosure, Outcome};
use crate::store::{Store, StoreError, StoreTree, Stored, Tree};

/// The purpose of the presentations a handshake exchanges.
pub const HANDSHAKE_PURPOSE: &str = "tier-evaluation";
/// Entries one query returns at most.
pub const MAX_QUERY_ENTRIES: usize = 10_000;

/// One presentation sent or received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DisclosureEntry {
    /// When, in Unix milliseconds.
    pub at_ms: i64,
    /// `sent` (we presented) or `received` (the peer presented to us).
    #[schema(value_type = String)]
    pub direction: Direction,
    /// The peer's DID.
    pub peer: String,
    /// The peer's verified legal name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_name: Option<String>,
    /// The field id.
    pub field: String,
    /// Why the presentation was made.
    pub purpose: String,
    /// The credential types the ask requested.
    pub requested: BTreeSet<String>,
    /// The credential types the presentation held.
    pub presented: BTreeSet<String>,
    /// `completed`, `refused` or `failed`.
    #[schema(value_type = String)]
    pub outcome: Outcome,
    /// The refusal or failure code, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The signed ask the presentation answered (a compact JWS: DIDs, field, types, nonce).
    pub evidence: String,
}

impl Stored for DisclosureEntry {
    const VERSION: u8 = 1;
}

/// Which entries a query wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DisclosureFilter {
    /// Only entries with this peer (to or from).
    pub peer: Option<String>,
    /// Only entries that requested or presented this credential type.
    pub type_name: Option<String>,
    /// Only entries at or after this time (Unix milliseconds).
    pub since_ms: Option<i64>,
    /// Only entries in this field.
    pub field: Option<String>,
    /// Only entries that went this way.
    pub direction: Option<Direction>,
}

impl DisclosureFilter {
    fn matches(&self, entry: &DisclosureEntry) -> bool {
        self.peer.as_ref().is_none_or(|peer| *peer == entry.peer)
            && self
                .field
                .as_ref()
                .is_none_or(|field| *field == entry.field)
            && self
                .direction
                .is_none_or(|direction| direction == entry.direction)
            && self.type_name.as_ref().is_none_or(|type_name| {
                entry.requested.contains(type_name) || entry.presented.contains(type_name)
            })
    }
}

/// The log, over its store tree.
pub struct DisclosureLog {
    tree: StoreTree,
    sequence: AtomicU64,
}

impl DisclosureLog {
    /// Opens the log in `store`.
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        let tree = store.tree(Tree::Disclosures)?;
        let sequence = tree
            .keys()?
            .last()
            .and_then(|key| key.get(8..16))
            .and_then(|bytes| bytes.try_into().ok())
            .map_or(0, |bytes| u64::from_be_bytes(bytes) + 1);
        Ok(Self {
            tree,
            sequence: AtomicU64::new(sequence),
        })
    }

    /// Appends what a handshake step sent or received with `peer_name` (if known). Durable
    /// once the store is flushed: the handshake flushes before a presentation leaves, and
    /// leaves received entries to sled's periodic flush.
    pub fn record(
        &self,
        disclosures: Vec<Disclosure>,
        peer_name: Option<&str>,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        if disclosures.is_empty() {
            return Ok(());
        }
        for disclosure in disclosures {
            let entry = DisclosureEntry {
                at_ms,
                direction: disclosure.direction,
                peer: disclosure.peer,
                peer_name: peer_name.map(str::to_owned),
                field: disclosure.field,
                purpose: HANDSHAKE_PURPOSE.into(),
                requested: disclosure.requested,
                presented: disclosure.presented,
                outcome: disclosure.outcome,
                reason: disclosure.reason,
                evidence: disclosure.evidence,
            };
            let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
            self.tree.put(&key(at_ms, sequence), &entry)?;
        }
        Ok(())
    }

    /// Up to `limit` entries matching `filter`, oldest first.
    pub fn query(
        &self,
        filter: &DisclosureFilter,
        limit: usize,
    ) -> Result<Vec<DisclosureEntry>, StoreError> {
        let limit = limit.min(MAX_QUERY_ENTRIES);
        let mut found = Vec::new();
        let mut after: Option<Vec<u8>> = filter
            .since_ms
            .map(|since| key(since, 0))
            .and_then(|start| start_after(&start));
        loop {
            let page = self
                .tree
                .scan::<DisclosureEntry>(&[], after.as_deref(), 512)?;
            let Some((last, _)) = page.last() else {
                break;
            };
            after = Some(last.clone());
            for (_, entry) in page {
                if filter.matches(&entry) {
                    found.push(entry);
                    if found.len() >= limit {
                        return Ok(found);
                    }
                }
            }
        }
        Ok(found)
    }

    /// How many entries the log holds.
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }
}

fn key(at_ms: i64, sequence: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&(at_ms.max(0) as u64).to_be_bytes());
    key[8..].copy_from_slice(&sequence.to_be_bytes());
    key
}

/// The key just before `start`, so that a scan "after" it begins at `start`.
fn start_after(start: &[u8; 16]) -> Option<Vec<u8>> {
    let value = u128::from_be_bytes(*start);
    value
        .checked_sub(1)
        .map(|before| before.to_be_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disclosure(peer: &str, direction: Direction, types: &[&str]) -> Disclosure {
        let types: BTreeSet<String> = types.iter().map(|kind| (*kind).to_owned()).collect();
        Disclosure {
            direction,
            peer: peer.into(),
            field: "f".into(),
            requested: types.clone(),
            presented: types,
            outcome: Outcome::Completed,
            reason: None,
            evidence: "ask.jws.token".into(),
        }
    }

    #[test]
    fn entries_are_found_by_peer_type_and_time_and_survive_a_reopen() {
        let store = Store::temporary().unwrap();
        let log = DisclosureLog::open(&store).unwrap();
        log.record(
            vec![disclosure(
                "did:a",
                Direction::Sent,
                &["CreditRatingCredential"],
            )],
            Some("A 株式会社"),
            1_000,
        )
        .unwrap();
        log.record(
            vec![
                disclosure(
                    "did:b",
                    Direction::Received,
                    &["OrganizationIdentityCredential"],
                ),
                disclosure(
                    "did:a",
                    Direction::Sent,
                    &["OrganizationIdentityCredential"],
                ),
            ],
            None,
            2_000,
        )
        .unwrap();
        let credit = DisclosureFilter {
            type_name: Some("CreditRatingCredential".into()),
            ..DisclosureFilter::default()
        };
        let seen = log.query(&credit, 100).unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].peer, "did:a");
        assert_eq!(seen[0].peer_name.as_deref(), Some("A 株式会社"));
        assert_eq!(seen[0].purpose, HANDSHAKE_PURPOSE);
        let to_a = DisclosureFilter {
            peer: Some("did:a".into()),
            ..DisclosureFilter::default()
        };
        assert_eq!(log.query(&to_a, 100).unwrap().len(), 2);
        let since = DisclosureFilter {
            since_ms: Some(1_500),
            ..DisclosureFilter::default()
        };
        let later = log.query(&since, 100).unwrap();
        assert_eq!(later.len(), 2);
        assert!(later.iter().all(|entry| entry.at_ms == 2_000));
        assert_eq!(log.query(&DisclosureFilter::default(), 1).unwrap().len(), 1);
        drop(log);
        let reopened = DisclosureLog::open(&store).unwrap();
        reopened
            .record(vec![disclosure("did:c", Direction::Sent, &[])], None, 2_000)
            .unwrap();
        assert_eq!(reopened.len(), 4, "no entry was overwritten");
    }
}
