//! The peer book: what a gateway keeps about each peer after a handshake, and the nonces
//! it has seen. It owns the `peers` and `replay` trees; nothing else reads them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use crate::credential::ReplayCache;
use crate::identity::PublicKey;
use crate::store::{Store, StoreError, StoreTree, Stored, Tree};

/// The peer records and the replay window, with a generation that moves on every write.
pub struct PeerBook {
    records: StoreTree,
    nonces: StoreTree,
    replay: ReplayCache,
    generation: AtomicU64,
    /// Verified legal names by DID, kept beside the records: the audit names every entry's
    /// actor, and a record is far larger than its name.
    names: RwLock<HashMap<String, String>>,
}

impl PeerBook {
    /// The book kept in `store`.
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        let records = store.tree(Tree::Peers)?;
        let names = records
            .entries::<PeerRecord>()?
            .into_iter()
            .filter_map(|(_, record)| Some((record.did, record.name?)))
            .collect();
        Ok(Self {
            records,
            nonces: store.tree(Tree::Replay)?,
            replay: ReplayCache::default(),
            generation: AtomicU64::new(0),
            names: RwLock::new(names),
        })
    }

    /// The verified legal name of the peer `did`, if a record of it carries one.
    pub fn name_of(&self, did: &str) -> Option<String> {
        self.names.read().ok()?.get(did).cloned()
    }

    /// Our record of `peer`, if it ever completed a handshake with us.
    pub fn get(&self, peer: PeerId) -> Option<PeerRecord> {
        self.records.get(peer.to_bytes().as_slice()).ok()?
    }

    /// Our record of the peer whose key is `did`, if the record is about that DID.
    pub fn of_did(&self, did: &str) -> Option<PeerRecord> {
        let peer = PublicKey::peer_id_named(did)?;
        self.get(peer).filter(|record| record.did == did)
    }

    /// The tier our own last judgement gave `did` in `field`, if any.
    pub fn judged_tier(&self, did: &str, field: &str) -> Option<u8> {
        self.of_did(did)?.tiers.get(field).copied()
    }

    /// Stores what we verified about a peer. Not committed here: a record lost to a crash
    /// is made again by the next handshake, and sled writes it out within half a second.
    pub fn put(&self, peer: PeerId, record: &PeerRecord) -> Result<(), StoreError> {
        self.records.put(peer.to_bytes().as_slice(), record)?;
        if let (Some(name), Ok(mut names)) = (&record.name, self.names.write()) {
            names.insert(record.did.clone(), name.clone());
        }
        self.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Every record, with its peer; a key that is no PeerId is skipped.
    pub fn all(&self) -> Result<Vec<(PeerId, PeerRecord)>, StoreError> {
        Ok(self
            .records
            .entries::<PeerRecord>()?
            .into_iter()
            .filter_map(|(key, record)| Some((PeerId::from_bytes(&key).ok()?, record)))
            .collect())
    }

    /// How many peers the book holds.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the book holds no peer.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Moves on whenever a record is written: what was read from one is stale.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The nonces seen in presentations, until they expire.
    pub fn replay(&self) -> &ReplayCache {
        &self.replay
    }

    /// Keeps used nonces across a restart (not committed here: see [`PeerBook::put`]).
    pub fn keep_nonces(&self, nonces: &[(String, i64)]) -> Result<(), StoreError> {
        for (nonce, forget_after) in nonces {
            let used = UsedNonce {
                forget_after: *forget_after,
            };
            self.nonces.put(nonce.as_bytes(), &used)?;
        }
        Ok(())
    }

    /// How many used nonces are kept on disk.
    pub fn nonces_kept(&self) -> usize {
        self.nonces.len()
    }

    /// Reloads the nonces kept before a restart into the replay window, so that a
    /// presentation cannot be replayed across one, and forgets those past their time.
    pub fn restore_nonces(&self, now: i64) -> Result<(), StoreError> {
        for (nonce, used) in self.nonces.entries::<UsedNonce>()? {
            if used.forget_after < now {
                self.nonces.remove(&nonce)?;
            } else if let Ok(nonce) = std::str::from_utf8(&nonce) {
                // The window is empty at start, so recording cannot be refused.
                let _ = self.replay.record(nonce, used.forget_after, now);
            }
        }
        Ok(())
    }
}

/// What a peer presented in one field, kept to judge it again without a new handshake.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presented {
    /// The credentials (compact vc+jwt), only of types we asked for.
    pub credentials: Vec<String>,
    /// The types that verified and counted at the last judgement.
    #[serde(default)]
    pub counted: BTreeSet<String>,
    /// What was missing or failed for the next tier at the last judgement.
    #[serde(default)]
    pub unmet: Vec<String>,
}

/// What this gateway knows about a peer after a handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRecord {
    /// The peer's DID.
    pub did: String,
    /// Field id → tier, for every field both sides engaged in.
    pub tiers: BTreeMap<String, u8>,
    /// Field id → what the peer presented there.
    #[serde(default)]
    pub presented: BTreeMap<String, Presented>,
    /// When the tiers were computed (Unix seconds).
    pub evaluated_at: i64,
    /// When they are next due to change, if ever.
    pub next_change: Option<i64>,
    /// 法人番号 from an identity credential a shared field trusts, if any.
    #[serde(default)]
    pub corporate_number: Option<String>,
    /// The legal name from that identity credential.
    #[serde(default)]
    pub name: Option<String>,
}

/// A peer record as version 1 stored it: one list of credentials for every field.
#[derive(Deserialize)]
pub(super) struct PeerRecordV1 {
    did: String,
    tiers: BTreeMap<String, u8>,
    credentials: Vec<String>,
    evaluated_at: i64,
    next_change: Option<i64>,
    #[serde(default)]
    corporate_number: Option<String>,
}

impl Stored for PeerRecord {
    const VERSION: u8 = 2;

    /// Version 1 kept one list of credentials for all fields: each field keeps them all.
    fn upgrade(version: u8, body: &[u8]) -> Result<Self, String> {
        if version != 1 {
            return Err(format!("unknown peer record version {version}"));
        }
        let old: PeerRecordV1 = serde_json::from_slice(body).map_err(|error| error.to_string())?;
        let presented = old
            .tiers
            .keys()
            .map(|field| {
                let presented = Presented {
                    credentials: old.credentials.clone(),
                    counted: BTreeSet::new(),
                    unmet: Vec::new(),
                };
                (field.clone(), presented)
            })
            .collect();
        Ok(Self {
            did: old.did,
            tiers: old.tiers,
            presented,
            evaluated_at: old.evaluated_at,
            next_change: old.next_change,
            corporate_number: old.corporate_number,
            name: None,
        })
    }
}

impl PeerRecord {
    /// The credentials the peer presented in `field`.
    pub fn credentials_in(&self, field: &str) -> &[String] {
        self.presented
            .get(field)
            .map_or(&[], |presented| presented.credentials.as_slice())
    }
}

/// A used presentation nonce in the `replay` tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsedNonce {
    /// When the nonce may be forgotten (Unix seconds).
    pub forget_after: i64,
}

impl Stored for UsedNonce {
    const VERSION: u8 = 1;
}
