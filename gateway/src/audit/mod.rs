//! The tamper-evident audit log: every decision, governance op, countermeasure,
//! admin login and admin action is appended to a SHA-256 hash chain in the `audit` tree.
//!
//! Entry `n` carries the hash of entry `n − 1`; its own hash is the SHA-256 of its canonical
//! JSON (RFC 8785) without the hash. Deleting, editing or inserting an entry breaks the chain
//! at that position, which [`verify_entries`] names. Whoever holds the store could rewrite the
//! whole chain, so the gateway also signs checkpoints (sequence number and head hash) and
//! gossips them to the field's members, who keep them: a rewritten history no longer matches
//! the checkpoints its peers hold.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{LossyEntry, Store, StoreError, StoreTree, Stored, Tree};

/// The `prev` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditEntry {
    /// Position in the chain, from 0.
    pub seq: u64,
    /// When (UTC, milliseconds since the epoch).
    pub time_ms: i64,
    /// Who: a DID, or `admin:<certificate fingerprint>` for the local API.
    pub actor: String,
    /// What, e.g. `handshake`, `governance.revoke`, `api.login`, `data.get`.
    pub action: String,
    /// On what: a DID, an op id, a record id.
    pub object: String,
    /// `allow`, `deny`, `commit`, `pending`, `refuse`, `start`, `end`, …
    pub decision: String,
    /// A stable reason code.
    pub reason: String,
    /// The declared purpose, for data access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// For sessions: when the session started (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_start_ms: Option<i64>,
    /// For sessions: how long it lasted (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// The actor's verified legal name (from its identity credential), or the operator's
    /// name, when known at the time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_name: Option<String>,
    /// The organisation the action is about (a DID), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The subject's verified legal name, when known at the time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_name: Option<String>,
    /// The field the action belongs to, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The previous entry's hash ([`GENESIS`] for the first).
    pub prev: String,
    /// This entry's hash.
    pub hash: String,
}

impl Stored for AuditEntry {
    const VERSION: u8 = 1;
}

impl AuditEntry {
    /// The hash this entry should carry: SHA-256 of its canonical JSON (RFC 8785) without
    /// `hash`.
    ///
    /// The canonical form is written straight into the hash from [`CanonicalView`], whose
    /// fields are in RFC 8785's key order: for these fields that is exactly what `serde_jcs`
    /// writes (the same string escapes; integers as their digits), without building a JSON
    /// value and sorting it on every entry. Past 2^53, RFC 8785 writes an integer as the
    /// nearest double: such an entry takes `serde_jcs` itself.
    pub fn compute_hash(&self) -> String {
        let exact = |value: i128| value.unsigned_abs() <= 1 << 53;
        let integers = [
            Some(i128::from(self.seq)),
            Some(i128::from(self.time_ms)),
            self.session_start_ms.map(i128::from),
            self.duration_ms.map(i128::from),
        ];
        if !integers.into_iter().flatten().all(exact) {
            return self.compute_hash_jcs();
        }
        let mut hasher = HashWriter(Sha256::new());
        if serde_json::to_writer(&mut hasher, &CanonicalView::of(self)).is_err() {
            return self.compute_hash_jcs();
        }
        hex(&hasher.0.finalize())
    }

    /// [`AuditEntry::compute_hash`] through `serde_jcs`: the reference.
    fn compute_hash_jcs(&self) -> String {
        let mut value = match serde_json::to_value(self) {
            Ok(value) => value,
            Err(_) => return String::new(),
        };
        if let Some(object) = value.as_object_mut() {
            object.remove("hash");
        }
        let canonical = serde_jcs::to_string(&value).unwrap_or_default();
        hex(&Sha256::digest(canonical.as_bytes()))
    }
}

/// An entry's hashed fields in RFC 8785's key order (by UTF-16 code units; all ASCII here).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CanonicalView<'a> {
    action: &'a str,
    actor: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    actor_name: Option<&'a str>,
    decision: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    object: &'a str,
    prev: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    purpose: Option<&'a str>,
    reason: &'a str,
    seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_start_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject_name: Option<&'a str>,
    time_ms: i64,
}

impl<'a> CanonicalView<'a> {
    fn of(entry: &'a AuditEntry) -> Self {
        Self {
            action: &entry.action,
            actor: &entry.actor,
            actor_name: entry.actor_name.as_deref(),
            decision: &entry.decision,
            duration_ms: entry.duration_ms,
            field: entry.field.as_deref(),
            object: &entry.object,
            prev: &entry.prev,
            purpose: entry.purpose.as_deref(),
            reason: &entry.reason,
            seq: entry.seq,
            session_start_ms: entry.session_start_ms,
            subject: entry.subject.as_deref(),
            subject_name: entry.subject_name.as_deref(),
            time_ms: entry.time_ms,
        }
    }
}

/// Feeds what is written into a SHA-256.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What is being recorded; the log fills in sequence, time and hashes.
#[derive(Debug, Clone, Default)]
pub struct Event {
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub object: String,
    /// The decision.
    pub decision: String,
    /// The reason code.
    pub reason: String,
    /// The purpose, for data access.
    pub purpose: Option<String>,
    /// Session start and duration, for sessions.
    pub session: Option<(i64, u64)>,
    /// The actor's name, when the caller knows it (an operator); else the log looks a DID
    /// up (see [`AuditLog::name_with`]).
    pub actor_name: Option<String>,
    /// The organisation the action is about (a DID).
    pub subject: Option<String>,
    /// The field the action belongs to.
    pub field: Option<String>,
}

/// Looks up the verified legal name of a DID.
pub type Namer = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// An audit operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The store failed: the action that wanted auditing must not go ahead.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where and how the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChainBreak {
    /// The position (sequence number) where the chain stops verifying.
    pub position: u64,
    /// `edited`, `deleted`, `inserted` or `unreadable`.
    pub kind: String,
    /// What was found.
    pub message: String,
}

/// The result of verifying a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChainReport {
    /// Entries read.
    pub entries: u64,
    /// The last entry's hash, if the chain verified.
    pub head: Option<String>,
    /// The first break, if any.
    pub broken: Option<ChainBreak>,
}

/// The head of a chain: the next sequence number and the last hash.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Head {
    next: u64,
    hash: String,
}

/// The audit log of this gateway.
pub struct AuditLog {
    tree: StoreTree,
    head: Mutex<Head>,
    namer: std::sync::OnceLock<Namer>,
    appended: tokio::sync::broadcast::Sender<AuditEntry>,
}

/// How many appended entries a slow subscriber may fall behind before it misses some (it
/// is told how many).
const SUBSCRIBER_BACKLOG: usize = 4_096;

impl AuditLog {
    /// Opens the log in `store`, resuming after its last entry.
    pub fn open(store: &Store) -> Result<Self, AuditError> {
        let tree = store.tree(Tree::Audit)?;
        let head = match tree.last::<AuditEntry>()? {
            Some(last) => Head {
                next: last.seq + 1,
                hash: last.hash,
            },
            None => Head {
                next: 0,
                hash: GENESIS.into(),
            },
        };
        Ok(Self {
            tree,
            head: Mutex::new(head),
            namer: std::sync::OnceLock::new(),
            appended: tokio::sync::broadcast::channel(SUBSCRIBER_BACKLOG).0,
        })
    }

    /// Every entry appended from now on (for webhooks).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<AuditEntry> {
        self.appended.subscribe()
    }

    /// Names the DIDs of entries from now on with `namer` (set once, when the services
    /// that know the names exist).
    pub fn name_with(&self, namer: Namer) {
        let _ = self.namer.set(namer);
    }

    fn name_of(&self, did: Option<&str>) -> Option<String> {
        let did = did.filter(|did| did.starts_with("did:"))?;
        (self.namer.get()?)(did)
    }

    /// Appends an event and returns its entry. A caller that cannot audit must not act: the
    /// error is returned, not swallowed. Like every write, the entry is on disk once the
    /// store commits ([`crate::store::Store::commit`]): whoever acknowledges the action (the
    /// API before it answers, the data service before it answers a peer) awaits that; what
    /// follows from unacknowledged input (gossip) reaches the disk with sled's next flush,
    /// within 500 ms. A crash loses at most a suffix, with the input that caused it; the
    /// chain still verifies.
    pub fn append(&self, event: Event) -> Result<AuditEntry, AuditError> {
        let mut entries = self.append_all(vec![event])?;
        entries.pop().ok_or_else(|| {
            AuditError::Store(StoreError::Corrupt {
                key: "audit".into(),
                reason: "an append wrote nothing".into(),
            })
        })
    }

    /// Appends events in order (see [`AuditLog::append`]). Fails closed: after a panic
    /// under the head's lock, nothing more is appended.
    pub fn append_all(&self, events: Vec<Event>) -> Result<Vec<AuditEntry>, AuditError> {
        // Names are looked up before the head's lock is taken: the lookup reads the store.
        let named: Vec<(Event, Option<String>, Option<String>)> = events
            .into_iter()
            .map(|event| {
                let actor_name = event
                    .actor_name
                    .clone()
                    .or_else(|| self.name_of(Some(&event.actor)));
                let subject_name = self.name_of(event.subject.as_deref());
                (event, actor_name, subject_name)
            })
            .collect();
        let mut head = self.head.lock().map_err(|_| {
            AuditError::Store(StoreError::Corrupt {
                key: "audit".into(),
                reason: "the audit head's lock is poisoned".into(),
            })
        })?;
        let (mut next, mut hash) = (head.next, head.hash.clone());
        let mut entries = Vec::with_capacity(named.len());
        for (event, actor_name, subject_name) in named {
            let mut entry = AuditEntry {
                seq: next,
                time_ms: now_ms(),
                actor: event.actor,
                action: event.action,
                object: event.object,
                decision: event.decision,
                reason: event.reason,
                purpose: event.purpose,
                session_start_ms: event.session.map(|(start, _)| start),
                duration_ms: event.session.map(|(_, duration)| duration),
                actor_name,
                subject: event.subject,
                subject_name,
                field: event.field,
                prev: std::mem::take(&mut hash),
                hash: String::new(),
            };
            entry.hash = entry.compute_hash();
            self.tree.put(&entry.seq.to_be_bytes(), &entry)?;
            next += 1;
            hash.clone_from(&entry.hash);
            entries.push(entry);
        }
        head.next = next;
        head.hash = hash;
        drop(head);
        if self.appended.receiver_count() > 0 {
            for entry in &entries {
                let _ = self.appended.send(entry.clone());
            }
        }
        Ok(entries)
    }

    /// Appends several events, logging instead of failing (see [`AuditLog::record`]).
    pub fn record_all(&self, events: Vec<Event>) {
        if let Err(error) = self.append_all(events) {
            tracing::error!(%error, "audit entries not written");
        }
    }

    /// Appends, logging instead of failing: for events whose action has already happened
    /// (a peer already refused), where refusing to go on would help nobody.
    pub fn record(&self, event: Event) {
        if let Err(error) = self.append(event) {
            tracing::error!(%error, "audit entry not written");
        }
    }

    /// The sequence number of the last entry and its hash, if any.
    pub fn head(&self) -> Option<(u64, String)> {
        let head = self
            .head
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        head.next.checked_sub(1).map(|seq| (seq, head.hash.clone()))
    }

    /// Verifies the whole chain.
    pub fn verify(&self) -> Result<ChainReport, AuditError> {
        Ok(verify_entries(self.tree.entries_lossy::<AuditEntry>()?))
    }

    /// Entries from `since_ms` on (inclusive), in order.
    pub fn since(&self, since_ms: i64) -> Result<Vec<AuditEntry>, AuditError> {
        Ok(self
            .tree
            .entries::<AuditEntry>()?
            .into_iter()
            .map(|(_, entry)| entry)
            .filter(|entry| entry.time_ms >= since_ms)
            .collect())
    }

    /// Up to `limit` entries after entry `seq`, in order: for a reader that follows the log
    /// without reading it all again.
    pub fn after(&self, seq: u64, limit: usize) -> Result<Vec<AuditEntry>, AuditError> {
        Ok(self
            .tree
            .scan::<AuditEntry>(&[], Some(&seq.to_be_bytes()), limit)?
            .into_iter()
            .map(|(_, entry)| entry)
            .collect())
    }

    /// The hash of entry `seq`, if held.
    pub fn hash_at(&self, seq: u64) -> Result<Option<String>, AuditError> {
        Ok(self
            .tree
            .get::<AuditEntry>(&seq.to_be_bytes())?
            .map(|entry| entry.hash))
    }
}

/// Verifies entries read in key order (key, decoded entry or why it is unreadable), naming
/// the first position where the chain breaks.
pub fn verify_entries(entries: Vec<LossyEntry<AuditEntry>>) -> ChainReport {
    let mut expected_seq = 0u64;
    let mut prev = GENESIS.to_owned();
    let broken = |position: u64, kind: &str, message: String, entries: u64| ChainReport {
        entries,
        head: None,
        broken: Some(ChainBreak {
            position,
            kind: kind.into(),
            message,
        }),
    };
    for (count, (key, entry)) in entries.into_iter().enumerate() {
        let count = count as u64;
        let key_seq = <[u8; 8]>::try_from(key.as_slice())
            .map(u64::from_be_bytes)
            .ok();
        let entry = match entry {
            Ok(entry) => entry,
            Err(reason) => {
                let position = key_seq.unwrap_or(expected_seq);
                return broken(
                    position,
                    "unreadable",
                    format!("entry {position} cannot be read: {reason}"),
                    count,
                );
            }
        };
        if key_seq != Some(entry.seq) {
            return broken(
                expected_seq,
                "edited",
                format!(
                    "an entry stored at position {} claims to be entry {}",
                    key_seq.map_or("?".into(), |seq| seq.to_string()),
                    entry.seq
                ),
                count,
            );
        }
        if entry.seq > expected_seq {
            return broken(
                expected_seq,
                "deleted",
                format!("entries {expected_seq} to {} are missing", entry.seq - 1),
                count,
            );
        }
        if entry.hash != entry.compute_hash() {
            return broken(
                entry.seq,
                "edited",
                format!("entry {} does not match its hash", entry.seq),
                count,
            );
        }
        if entry.prev != prev {
            return broken(
                entry.seq,
                "inserted",
                format!(
                    "entry {} does not follow entry {} (an entry was inserted or replaced before it)",
                    entry.seq,
                    entry.seq.saturating_sub(1)
                ),
                count,
            );
        }
        prev = entry.hash;
        expected_seq = entry.seq + 1;
    }
    ChainReport {
        entries: expected_seq,
        head: (expected_seq > 0).then_some(prev),
        broken: None,
    }
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds, e.g. `2026-12-06T22:11:18.000Z`.
pub fn format_time_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|at| {
            at.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// Milliseconds since the Unix epoch (UTC).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

use crate::hex::encode as hex;

pub mod query;

#[cfg(test)]
mod tests;
