//! The one layer that touches sled: one tree per module, versioned values, a schema version
//! with migrations, durable writes, and backup/restore.
//!
//! Every stored value starts with a version byte; [`Stored::upgrade`] turns older encodings
//! into the current one when read. The database as a whole carries a schema version in the
//! `meta` tree; opening a store written by a newer gateway fails rather than guessing.
//!
//! Durability: writes go into sled's memory at once; [`Store::commit`] (and
//! [`StoreTree::put_durable`]) return only once the store writer ([`writer`]) has flushed
//! them, which on Linux issues `sync_file_range`: an acknowledged write survives the process
//! being killed. The writer answers every commit asked for during one flush with the next
//! (group commit), on its own thread. Surviving power loss additionally needs the device to
//! honour the flush; sled also calls `sync_all` every 500 ms in the background.

mod writer;

use writer::Writer;
pub use writer::WriterCounts;

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The layout version this build writes.
pub const SCHEMA_VERSION: u32 = 1;
const SCHEMA_KEY: &[u8] = b"schema_version";
const BACKUP_MAGIC: &str = "tfc-gateway backup v1";
/// How long `open` waits for a lock held by a store that is still closing.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The trees, one per owning module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tree {
    /// Store bookkeeping: the schema version.
    Meta,
    /// `credential`: used presentation nonces and their expiry.
    Replay,
    /// `handshake`/`tier`: verified facts about peers.
    Peers,
    /// `charter`: the fields joined and their charters.
    Fields,
    /// The organisation's own credentials.
    Wallet,
    /// `status`: status list credentials, by list id.
    StatusLists,
    /// `governance`: signed ops, by `<field id>/<op id>`.
    Governance,
    /// `audit`: the hash-chained audit log, by sequence number (big-endian).
    Audit,
    /// `audit`: checkpoints peers published, by `<DID>/<sequence number>`.
    Checkpoints,
    /// `spaces`: sealed records, by `<field id>/<tier>/<record id>`.
    Records,
    /// `spaces`: sealed attachment chunks and their index, by content hash.
    Attachments,
    /// `threats`: indicators held, by `<field id>/<reporter>/<indicator id>`.
    Indicators,
    /// `threats`: each countermeasure's state and the operator's word, by action id.
    ThreatActions,
    /// `threats`: indicator keys in the order they were added, for TAXII, by
    /// `<field id>/<added ms, 16 hex>/<indicator key>`.
    ThreatLog,
    /// `disclosure`: every presentation sent or received, by time (ms, big-endian) and a
    /// sequence number.
    Disclosures,
    /// `api`: actions waiting for a second operator's approval (four eyes), by id.
    Approvals,
}

impl Tree {
    /// Every tree.
    pub const ALL: [Tree; 16] = [
        Tree::Meta,
        Tree::Replay,
        Tree::Peers,
        Tree::Fields,
        Tree::Wallet,
        Tree::StatusLists,
        Tree::Governance,
        Tree::Audit,
        Tree::Checkpoints,
        Tree::Records,
        Tree::Attachments,
        Tree::Indicators,
        Tree::ThreatActions,
        Tree::ThreatLog,
        Tree::Disclosures,
        Tree::Approvals,
    ];

    fn name(self) -> &'static str {
        match self {
            Tree::Meta => "meta",
            Tree::Replay => "replay",
            Tree::Peers => "peers",
            Tree::Fields => "fields",
            Tree::Wallet => "wallet",
            Tree::StatusLists => "status_lists",
            Tree::Governance => "governance",
            Tree::Audit => "audit",
            Tree::Checkpoints => "checkpoints",
            Tree::Records => "records",
            Tree::Attachments => "attachments",
            Tree::Indicators => "indicators",
            Tree::ThreatActions => "threat_actions",
            Tree::ThreatLog => "threat_log",
            Tree::Disclosures => "disclosures",
            Tree::Approvals => "approvals",
        }
    }
}

/// sled's page cache. With sled's default (1 GiB) a gateway's RSS followed its store's size:
/// 945 MB holding 100,000 records and as many indicators. sled's count of the cache falls
/// short of the memory it takes (about twice as much here), so the bound is well under the
/// 300 MB a loaded gateway may use (docs/PERFORMANCE.md).
const CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The disk (or the file-size limit) has no room for the write. Nothing already
    /// stored is affected; the write did not happen.
    #[error(
        "store: the disk is full ({0}); free space, then restart the gateway (nothing stored was lost)"
    )]
    Full(sled::Error),
    /// sled failed (I/O, corruption).
    #[error("store: {0}")]
    Sled(sled::Error),
    /// A value could not be encoded or decoded.
    #[error("store: value under {key} is unreadable: {reason}")]
    Corrupt {
        /// The key, for the log.
        key: String,
        /// What went wrong.
        reason: String,
    },
    /// The store was written by a newer gateway.
    #[error(
        "store schema version {found} is newer than this gateway's ({SCHEMA_VERSION}); upgrade the gateway"
    )]
    TooNew {
        /// The version found.
        found: u32,
    },
    /// Another process (or a store still closing) holds the directory's lock.
    #[error("store {dir} is in use (is the gateway running? stop it first)")]
    InUse {
        /// The store directory.
        dir: PathBuf,
    },
    /// The store writer has stopped (the gateway is shutting down): nothing more is
    /// acknowledged as durable.
    #[error("store: the writer has stopped; the write was not acknowledged")]
    Stopped,
    /// A backup file could not be read or written.
    #[error("backup {path}: {reason}")]
    Backup {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

impl From<sled::Error> for StoreError {
    fn from(error: sled::Error) -> Self {
        use std::io::ErrorKind;
        match &error {
            sled::Error::Io(io)
                if matches!(
                    io.kind(),
                    ErrorKind::StorageFull | ErrorKind::FileTooLarge | ErrorKind::QuotaExceeded
                ) =>
            {
                StoreError::Full(error)
            }
            _ => StoreError::Sled(error),
        }
    }
}

impl StoreError {
    /// Whether the write failed for want of disk space: the caller says so with its own
    /// `storage_full` code rather than as a generic store failure.
    pub fn is_full(&self) -> bool {
        matches!(self, StoreError::Full(_))
    }

    /// A stable machine code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Full(_) => "storage_full",
            StoreError::Sled(_) => "store_io",
            StoreError::Corrupt { .. } => "store_corrupt",
            StoreError::TooNew { .. } => "store_too_new",
            StoreError::InUse { .. } => "store_in_use",
            StoreError::Backup { .. } => "backup_failed",
            StoreError::Stopped => "store_stopped",
        }
    }

    /// The same failure, for each of the commits a failed flush answers.
    fn clone_for_waiter(&self) -> Self {
        match self {
            StoreError::Full(error) => StoreError::Full(error.clone()),
            StoreError::Sled(error) => StoreError::Sled(error.clone()),
            StoreError::Stopped => StoreError::Stopped,
            other => StoreError::Sled(sled::Error::Unsupported(other.to_string())),
        }
    }
}

/// A value kept in the store, with its encoding version.
pub trait Stored: Serialize + DeserializeOwned {
    /// The version written now.
    const VERSION: u8;

    /// Decodes a value written under an older `version`. The default knows no older
    /// versions.
    fn upgrade(version: u8, body: &[u8]) -> Result<Self, String> {
        Err(format!(
            "unknown encoding version {version} (this build writes {}; body of {} bytes)",
            Self::VERSION,
            body.len()
        ))
    }
}

/// Opens the sled database in `dir` as it is, without the store's writer or migration: for
/// [`Store::open`], and for offline tools and tests that read or tamper with the trees.
///
/// sled locks its directory. A store just closed in this process may hold the lock a little
/// longer (its I/O threads finish in the background), so a busy lock is retried briefly
/// before it is reported as in use.
pub fn open_database(dir: &Path) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES)
            .open()
        {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(error))
                if error.kind() == std::io::ErrorKind::WouldBlock
                    || error.to_string().contains("could not acquire lock") =>
            {
                if std::time::Instant::now() >= deadline {
                    return Err(StoreError::InUse {
                        dir: dir.to_owned(),
                    });
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// The gateway's database.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    writer: Writer,
}

impl Store {
    /// Opens (or creates) the store in `dir`, migrating it to [`SCHEMA_VERSION`].
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::from_db(open_database(dir)?)
    }

    /// A store in memory that vanishes when dropped, for tests.
    pub fn temporary() -> Result<Self, StoreError> {
        Self::from_db(sled::Config::new().temporary(true).open()?)
    }

    fn from_db(db: sled::Db) -> Result<Self, StoreError> {
        let writer = Writer::start(&db)?;
        let store = Self { db, writer };
        store.migrate()?;
        Ok(store)
    }

    /// Brings an older layout up to date. Version 0 is an empty, new store.
    fn migrate(&self) -> Result<(), StoreError> {
        let meta = self.db.open_tree(Tree::Meta.name())?;
        let found = match meta.get(SCHEMA_KEY)? {
            Some(bytes) => {
                u32::from_be_bytes(bytes.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                    key: "meta/schema_version".into(),
                    reason: "not a 4-byte version".into(),
                })?)
            }
            None => 0,
        };
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew { found });
        }
        // Later layouts add their steps here: `if found < 2 { … }`.
        if found < SCHEMA_VERSION {
            meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
            self.db.flush()?;
        }
        Ok(())
    }

    /// The schema version on disk.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        let meta = self.db.open_tree(Tree::Meta.name())?;
        Ok(meta
            .get(SCHEMA_KEY)?
            .and_then(|bytes| bytes.as_ref().try_into().ok().map(u32::from_be_bytes))
            .unwrap_or(0))
    }

    /// One module's tree.
    pub fn tree(&self, tree: Tree) -> Result<StoreTree, StoreError> {
        Ok(StoreTree {
            tree: self.db.open_tree(tree.name())?,
            writer: self.writer.clone(),
        })
    }

    /// Waits, without blocking the runtime, until every write made before the call is on
    /// disk: acknowledge only after this. Concurrent commits share one flush.
    pub async fn commit(&self) -> Result<(), StoreError> {
        self.writer.commit().await
    }

    /// [`Store::commit`] for code outside the async runtime (the CLI, a blocking task).
    pub fn commit_blocking(&self) -> Result<(), StoreError> {
        self.writer.commit_blocking()
    }

    /// How many flushes the writer made and how many commits they answered.
    pub fn writer_counts(&self) -> &WriterCounts {
        self.writer.counts()
    }

    /// Writes every tree to `path` (a new file), as a line-oriented, base64 text dump.
    pub fn backup(&self, path: &Path) -> Result<usize, StoreError> {
        let failed = |reason: String| StoreError::Backup {
            path: path.to_owned(),
            reason,
        };
        // The store's records (sealed or not, with peers' facts and the audit log) are for
        // the operator alone: 0600 whatever the umask.
        let file = File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|error| failed(error.to_string()))?;
        let mut out = BufWriter::new(file);
        let mut records = 0;
        writeln!(out, "{BACKUP_MAGIC}").map_err(|error| failed(error.to_string()))?;
        for tree in Tree::ALL {
            for entry in self.db.open_tree(tree.name())?.iter() {
                let (key, value) = entry?;
                writeln!(
                    out,
                    "{} {} {}",
                    tree.name(),
                    STANDARD.encode(key),
                    STANDARD.encode(value)
                )
                .map_err(|error| failed(error.to_string()))?;
                records += 1;
            }
        }
        out.flush()
            .and_then(|()| out.get_ref().sync_all())
            .map_err(|error| failed(error.to_string()))?;
        Ok(records)
    }

    /// Loads a backup into this store, which must be empty. Nothing is written unless the
    /// whole file reads back correctly.
    pub fn restore(&self, path: &Path) -> Result<usize, StoreError> {
        let failed = |reason: String| StoreError::Backup {
            path: path.to_owned(),
            reason,
        };
        let holds_data = Tree::ALL
            .iter()
            .filter(|tree| **tree != Tree::Meta)
            .try_fold(false, |any, tree| {
                Ok::<_, StoreError>(any || !self.db.open_tree(tree.name())?.is_empty())
            })?;
        if holds_data {
            return Err(failed(
                "the target store is not empty; restore into a new data directory".into(),
            ));
        }
        let reader = BufReader::new(File::open(path).map_err(|error| failed(error.to_string()))?);
        let mut lines = reader.lines();
        match lines.next() {
            Some(Ok(magic)) if magic == BACKUP_MAGIC => {}
            _ => return Err(failed("not a tfc-gateway backup".into())),
        }
        let mut entries = Vec::new();
        for (number, line) in lines.enumerate() {
            let line = line.map_err(|error| failed(error.to_string()))?;
            entries.push(
                parse_backup_line(&line)
                    .ok_or_else(|| failed(format!("line {} is damaged", number + 2)))?,
            );
        }
        for (tree, key, value) in &entries {
            self.db
                .open_tree(tree.name())?
                .insert(key.as_slice(), value.as_slice())?;
        }
        self.migrate()?;
        self.db.flush()?;
        Ok(entries.len())
    }
}

fn parse_backup_line(line: &str) -> Option<(Tree, Vec<u8>, Vec<u8>)> {
    let mut parts = line.split(' ');
    let name = parts.next()?;
    let tree = Tree::ALL.into_iter().find(|tree| tree.name() == name)?;
    let key = STANDARD.decode(parts.next()?).ok()?;
    let value = STANDARD.decode(parts.next()?).ok()?;
    parts.next().is_none().then_some((tree, key, value))
}

/// A key and its value decoded, or why it could not be.
pub type LossyEntry<T> = (Vec<u8>, Result<T, String>);

/// One module's tree, holding versioned values.
pub struct StoreTree {
    tree: sled::Tree,
    writer: Writer,
}

impl StoreTree {
    /// Reads a value, upgrading an older encoding.
    pub fn get<T: Stored>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        let Some(bytes) = self.tree.get(key)? else {
            return Ok(None);
        };
        decode(key, &bytes).map(Some)
    }

    /// Writes a value; it reaches disk within sled's flush interval.
    pub fn put<T: Stored>(&self, key: &[u8], value: &T) -> Result<(), StoreError> {
        self.tree.insert(key, encode(key, value)?)?;
        Ok(())
    }

    /// Writes a value and returns only once it is on disk: use before acknowledging.
    pub async fn put_durable<T: Stored>(&self, key: &[u8], value: &T) -> Result<(), StoreError> {
        self.put(key, value)?;
        self.writer.commit().await
    }

    /// Removes a value.
    pub fn remove(&self, key: &[u8]) -> Result<(), StoreError> {
        self.tree.remove(key)?;
        Ok(())
    }

    /// Removes a value; true if this call removed it (of two racing calls, one wins).
    pub fn take(&self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.tree.remove(key)?.is_some())
    }

    /// Up to `limit` entries whose keys start with `prefix` and sort after `after`, in key
    /// order.
    pub fn scan<T: Stored>(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, T)>, StoreError> {
        let range = match after {
            Some(after) => self
                .tree
                .range::<&[u8], _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded)),
            None => self.tree.range::<&[u8], _>(prefix..),
        };
        range
            .take_while(|entry| {
                entry
                    .as_ref()
                    .map_or(true, |(key, _)| key.starts_with(prefix))
            })
            .take(limit)
            .map(|entry| {
                let (key, bytes) = entry?;
                Ok((key.to_vec(), decode(&key, &bytes)?))
            })
            .collect()
    }

    /// Every key, in order.
    pub fn keys(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        self.tree
            .iter()
            .keys()
            .map(|key| Ok(key?.to_vec()))
            .collect()
    }

    /// Every entry, in key order.
    pub fn entries<T: Stored>(&self) -> Result<Vec<(Vec<u8>, T)>, StoreError> {
        self.tree
            .iter()
            .map(|entry| {
                let (key, bytes) = entry?;
                Ok((key.to_vec(), decode(&key, &bytes)?))
            })
            .collect()
    }

    /// Every entry in key order, each decoded or with the reason it cannot be: for
    /// verifiers, which must name a bad entry rather than stop at it.
    pub fn entries_lossy<T: Stored>(&self) -> Result<Vec<LossyEntry<T>>, StoreError> {
        self.tree
            .iter()
            .map(|entry| {
                let (key, bytes) = entry?;
                let decoded = decode(&key, &bytes).map_err(|error| error.to_string());
                Ok((key.to_vec(), decoded))
            })
            .collect()
    }

    /// The entry with the greatest key.
    pub fn last<T: Stored>(&self) -> Result<Option<T>, StoreError> {
        match self.tree.last()? {
            Some((key, bytes)) => decode(&key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Writes bytes as they are, bypassing encoding: for tests that corrupt the store.
    #[cfg(test)]
    pub(crate) fn put_raw(&self, key: &[u8], bytes: &[u8]) -> Result<(), StoreError> {
        self.tree.insert(key, bytes)?;
        Ok(())
    }

    /// How many entries the tree holds.
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// Whether the tree is empty.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }
}

fn encode<T: Stored>(key: &[u8], value: &T) -> Result<Vec<u8>, StoreError> {
    let mut bytes = vec![T::VERSION];
    serde_json::to_writer(&mut bytes, value).map_err(|error| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: error.to_string(),
    })?;
    Ok(bytes)
}

fn decode<T: Stored>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason,
    };
    let Some((&version, body)) = bytes.split_first() else {
        return Err(corrupt("empty value".into()));
    };
    if version == T::VERSION {
        serde_json::from_slice(body).map_err(|error| corrupt(error.to_string()))
    } else {
        T::upgrade(version, body).map_err(corrupt)
    }
}

#[cfg(test)]
mod tests;
