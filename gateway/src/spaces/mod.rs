//! Protected data spaces (場): records with labels, held by their owner's gateway, one space
//! per tier per field.
//!
//! A record is signed by its writer over the SHA-256 of its canonical JSON, and stored
//! encrypted (XChaCha20-Poly1305, a fresh nonce per write, the record's key as associated
//! data) under a data key kept in a 0600 file beside the org key. A record whose ciphertext,
//! hash or signature does not check out is reported as `record_tampered` and never served.
//! Every write is durable before it is acknowledged.

mod attachments;

pub use attachments::{ATTACHMENT_CHUNK_BYTES, MAX_ATTACHMENT_BYTES, Upload};

use std::collections::BTreeSet;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::identity::{KeyPair, PublicKey};
use crate::policy::{Category, RecordLabels, ValueLevel};
use crate::store::{Store, StoreError, StoreTree, Stored, Tree};

/// The data key file, relative to the data directory.
pub const DATA_KEY_FILE: &str = "data-key";
/// Largest record body, in bytes of JSON.
pub const MAX_BODY_BYTES: usize = 512 * 1024;
/// What every record signature covers, before the record hash.
const SIGNATURE_CONTEXT: &str = "tfc/record/v1:";

/// Stable codes for refused data operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataCode {
    /// No such record.
    NotFound,
    /// The stored record does not decrypt, or its hash or signature does not check.
    Tampered,
    /// The request is malformed (labels, body, size).
    Malformed,
    /// The policy denied it.
    Denied,
    /// The bulk-change guard stopped a mass deletion or overwrite.
    BulkGuard,
    /// An attachment of the record matches a quarantine countermeasure.
    Quarantined,
    /// The store or the key file failed.
    Store,
    /// The disk is full: the write did not happen.
    StorageFull,
}

impl DataCode {
    /// The code's text.
    pub fn as_str(self) -> &'static str {
        match self {
            DataCode::NotFound => "record_not_found",
            DataCode::Tampered => "record_tampered",
            DataCode::Malformed => "data_malformed",
            DataCode::Denied => "access_denied",
            DataCode::BulkGuard => "bulk_change_blocked",
            DataCode::Quarantined => "record_quarantined",
            DataCode::Store => "store",
            DataCode::StorageFull => "storage_full",
        }
    }
}

/// A refused data operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct DataError {
    /// The code.
    pub code: DataCode,
    /// Why.
    pub message: String,
}

impl DataError {
    fn new(code: DataCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<StoreError> for DataError {
    fn from(error: StoreError) -> Self {
        let code = if error.is_full() {
            DataCode::StorageFull
        } else {
            DataCode::Store
        };
        Self::new(code, error.to_string())
    }
}

/// The labels a writer gives a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Labels {
    /// `personal`, `personal-related`, `non-personal` or `trade-secret`.
    #[schema(value_type = String)]
    pub category: Category,
    /// `low`, `medium`, `high` or `very-high`.
    #[schema(value_type = String)]
    pub value_level: ValueLevel,
    /// Rights holders (DIDs).
    #[serde(default)]
    pub rights_holders: BTreeSet<String>,
    /// Purposes the record may be used for.
    #[serde(default)]
    pub allowed_purposes: BTreeSet<String>,
    /// Organisations it may be disclosed to (DIDs).
    #[serde(default)]
    pub disclosure: BTreeSet<String>,
}

/// Which records a listing wants, by label; an empty filter takes every record.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    utoipa::IntoParams,
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelFilter {
    /// Only this category.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    #[param(value_type = Option<String>)]
    pub category: Option<Category>,
    /// Only records of at least this value level.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    #[param(value_type = Option<String>)]
    pub min_value_level: Option<ValueLevel>,
    /// Only records that allow this purpose.
    #[serde(default)]
    pub purpose: Option<String>,
}

impl LabelFilter {
    /// Whether a record's labels match.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.category
            .is_none_or(|category| labels.category == category)
            && self
                .min_value_level
                .is_none_or(|level| labels.value_level >= level)
            && self
                .purpose
                .as_ref()
                .is_none_or(|purpose| labels.allowed_purposes.contains(purpose))
    }
}

/// A record as stored and served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Record {
    /// Its id.
    pub id: String,
    /// The field id.
    pub field: String,
    /// The space's tier.
    pub tier: u8,
    /// Incremented by every write.
    pub version: u64,
    /// The owner (the organisation whose gateway holds it).
    pub owner: String,
    /// Who wrote this version.
    pub writer: String,
    /// When (ms).
    pub written_ms: i64,
    /// Its labels.
    pub labels: Labels,
    /// The document.
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
    /// Binary attachments (drawings, scans), by content hash: covered by the signature.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentRef>,
    /// The writer's signature over `tfc/record/v1:<SHA-256 of the record without it>`.
    pub signature: String,
}

impl Record {
    /// The SHA-256 (hex) of the canonical JSON without the signature.
    pub fn digest(&self) -> Result<String, DataError> {
        let mut value = serde_json::to_value(self)
            .map_err(|error| DataError::new(DataCode::Malformed, error.to_string()))?;
        if let Some(object) = value.as_object_mut() {
            object.remove("signature");
        }
        let canonical = serde_jcs::to_string(&value)
            .map_err(|error| DataError::new(DataCode::Malformed, error.to_string()))?;
        Ok(hex(&Sha256::digest(canonical.as_bytes())))
    }

    fn sign(&mut self, writer: &KeyPair) -> Result<(), DataError> {
        let message = format!("{SIGNATURE_CONTEXT}{}", self.digest()?);
        self.signature = STANDARD.encode(writer.sign(message.as_bytes()));
        Ok(())
    }

    /// Whether the writer's signature covers this record as it is.
    pub fn signature_holds(&self) -> bool {
        let (Ok(digest), Ok(key), Ok(signature)) = (
            self.digest(),
            PublicKey::from_did(&self.writer),
            STANDARD.decode(&self.signature),
        ) else {
            return false;
        };
        key.verify(
            format!("{SIGNATURE_CONTEXT}{digest}").as_bytes(),
            &signature,
        )
    }

    /// The labels as Cedar sees them.
    pub fn policy_labels(&self) -> RecordLabels {
        RecordLabels {
            id: self.id.clone(),
            owner: self.owner.clone(),
            category: self.labels.category,
            value_level: self.labels.value_level,
            rights_holders: self.labels.rights_holders.clone(),
            allowed_purposes: self.labels.allowed_purposes.clone(),
            disclosure: self.labels.disclosure.clone(),
        }
    }
}

/// An attachment a record refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttachmentRef {
    /// A file name, for people.
    pub name: String,
    /// SHA-256 of the content (hex).
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// A record at rest: nonce and ciphertext.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sealed {
    nonce: String,
    ciphertext: String,
}

impl Stored for Sealed {
    const VERSION: u8 = 1;
}

/// The records this gateway holds.
pub struct Spaces {
    tree: StoreTree,
    chunks: StoreTree,
    cipher: XChaCha20Poly1305,
    guard: BulkGuard,
}

/// A defence against mass encryption or wiping through legitimate access: an actor that
/// deletes or overwrites more than `limit` records of one space within a minute loses the
/// right to change that space, and an alert is raised.
struct BulkGuard {
    limit: usize,
    recent: std::sync::Mutex<
        std::collections::HashMap<(String, String), std::collections::VecDeque<std::time::Instant>>,
    >,
    barred: std::sync::Mutex<BTreeSet<(String, String)>>,
}

/// The guard's window.
const BULK_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

impl BulkGuard {
    /// Counts one destructive change by `actor` in `space`; refuses it, and bars the actor
    /// from the space, when it is one too many.
    fn admit(&self, actor: &str, space: &str) -> Result<(), DataError> {
        let key = (actor.to_owned(), space.to_owned());
        let unavailable = || {
            DataError::new(
                DataCode::BulkGuard,
                "the bulk-change guard is unavailable: no change is admitted",
            )
        };
        let mut barred = self.barred.lock().map_err(|_| unavailable())?;
        if barred.contains(&key) {
            return Err(DataError::new(
                DataCode::Denied,
                format!(
                    "{actor} is barred from changing space {space} after too many changes in a minute"
                ),
            ));
        }
        let mut recent = self.recent.lock().map_err(|_| unavailable())?;
        let now = std::time::Instant::now();
        let times = recent.entry(key.clone()).or_default();
        while times
            .front()
            .is_some_and(|at| now.duration_since(*at) > BULK_WINDOW)
        {
            times.pop_front();
        }
        if times.len() >= self.limit {
            tracing::error!(%actor, %space, limit = self.limit, "bulk-change guard: too many deletions or overwrites in a minute; writing barred");
            barred.insert(key);
            return Err(DataError::new(
                DataCode::BulkGuard,
                format!(
                    "more than {} deletions or overwrites in a minute: {actor} may no longer change space {space}",
                    self.limit
                ),
            ));
        }
        times.push_back(now);
        Ok(())
    }
}

fn key(field: &str, tier: u8, id: &str) -> Vec<u8> {
    format!("{field}/{tier}/{id}").into_bytes()
}

impl Spaces {
    /// Opens the spaces in `store` with the data key at `key_file`, creating the key (0600)
    /// on first use. A key file others can read is refused.
    pub fn open(
        store: &Store,
        key_file: &Path,
        bulk_change_limit: usize,
    ) -> Result<Self, DataError> {
        let io = |error: &dyn std::fmt::Display| {
            DataError::new(
                DataCode::Store,
                format!("data key {}: {error}", key_file.display()),
            )
        };
        if !key_file.exists() {
            let mut fresh = Zeroizing::new([0u8; 32]);
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, fresh.as_mut());
            crate::secret_file::create_private(key_file, fresh.as_ref())
                .map_err(|error| io(&error))?;
        }
        crate::secret_file::check_private(key_file).map_err(|error| io(&error))?;
        let bytes = Zeroizing::new(std::fs::read(key_file).map_err(|error| io(&error))?);
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes)
            .map_err(|_| io(&"must hold exactly 32 bytes"))?;
        Ok(Self {
            tree: store.tree(Tree::Records)?,
            chunks: store.tree(Tree::Attachments)?,
            cipher,
            guard: BulkGuard {
                limit: bulk_change_limit,
                recent: std::sync::Mutex::new(std::collections::HashMap::new()),
                barred: std::sync::Mutex::new(BTreeSet::new()),
            },
        })
    }

    /// Writes a record (a new one, or the next version of `id`) signed by `writer` for
    /// `owner`; returns it once it is durable. An overwrite counts against `actor`'s
    /// bulk-change allowance.
    #[allow(clippy::too_many_arguments)]
    pub fn put(
        &self,
        actor: &str,
        writer: &KeyPair,
        owner: &str,
        field: &str,
        tier: u8,
        id: Option<&str>,
        labels: Labels,
        body: serde_json::Value,
        attachments: Vec<AttachmentRef>,
    ) -> Result<Record, DataError> {
        if !(1..=3).contains(&tier) {
            return Err(DataError::new(
                DataCode::Malformed,
                "a space's tier is 1, 2 or 3",
            ));
        }
        let size = serde_json::to_vec(&body).map_or(usize::MAX, |bytes| bytes.len());
        if size > MAX_BODY_BYTES {
            return Err(DataError::new(
                DataCode::Malformed,
                format!("the body is {size} bytes; the limit is {MAX_BODY_BYTES}"),
            ));
        }
        let id = id.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        let version = match self.get(field, tier, &id) {
            Ok(previous) => {
                self.guard.admit(actor, &format!("{field}/{tier}"))?;
                previous.version + 1
            }
            Err(error) if error.code == DataCode::NotFound => 1,
            Err(error) => return Err(error),
        };
        let mut record = Record {
            id,
            field: field.to_owned(),
            tier,
            version,
            owner: owner.to_owned(),
            writer: writer.did(),
            written_ms: crate::audit::now_ms(),
            labels,
            body,
            attachments: self.check_attachments(attachments)?,
            signature: String::new(),
        };
        record.sign(writer)?;
        self.store(&record)?;
        Ok(record)
    }

    /// Keeps a record another organisation signed (a submission): it is checked first, and
    /// replacing an earlier copy counts against the sender's bulk-change allowance.
    pub fn keep(&self, record: &Record) -> Result<(), DataError> {
        if !record.signature_holds() {
            return Err(DataError::new(
                DataCode::Tampered,
                "the record's signature does not verify",
            ));
        }
        if self.get(&record.field, record.tier, &record.id).is_ok() {
            self.guard
                .admit(&record.writer, &format!("{}/{}", record.field, record.tier))?;
        }
        self.store(record)
    }

    fn store(&self, record: &Record) -> Result<(), DataError> {
        let storage_key = key(&record.field, record.tier, &record.id);
        let plaintext = Zeroizing::new(
            serde_json::to_vec(record)
                .map_err(|error| DataError::new(DataCode::Malformed, error.to_string()))?,
        );
        let sealed = self.seal(&storage_key, &plaintext)?;
        self.tree.put(&storage_key, &sealed)?;
        Ok(())
    }

    /// Encrypts `plaintext` under a fresh nonce, bound to `storage_key`.
    fn seal(&self, storage_key: &[u8], plaintext: &[u8]) -> Result<Sealed, DataError> {
        let mut nonce = [0u8; 24];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: storage_key,
                },
            )
            .map_err(|_| DataError::new(DataCode::Store, "encryption failed"))?;
        Ok(Sealed {
            nonce: STANDARD.encode(nonce),
            ciphertext: STANDARD.encode(ciphertext),
        })
    }

    /// Reads a record, checking that it decrypts, belongs where it is stored, and carries
    /// its writer's valid signature.
    pub fn get(&self, field: &str, tier: u8, id: &str) -> Result<Record, DataError> {
        let storage_key = key(field, tier, id);
        let sealed: Sealed = match self.tree.get(&storage_key) {
            Ok(Some(sealed)) => sealed,
            Ok(None) => {
                return Err(DataError::new(
                    DataCode::NotFound,
                    format!("no record {id} in this space"),
                ));
            }
            // An undecodable value was altered on disk; a failing disk is not tampering.
            Err(error @ StoreError::Corrupt { .. }) => {
                return Err(DataError::new(
                    DataCode::Tampered,
                    format!("record {id} cannot be read: {error}"),
                ));
            }
            Err(error) => return Err(error.into()),
        };
        open_sealed(&self.cipher, &storage_key, &sealed)
            .and_then(|plaintext| serde_json::from_slice::<Record>(&plaintext).ok())
            .filter(|record| record.field == field && record.tier == tier && record.id == id)
            .filter(Record::signature_holds)
            .ok_or_else(|| {
                DataError::new(
                    DataCode::Tampered,
                    format!("record {id} was altered at rest: it is not served"),
                )
            })
    }

    /// The ids of the records in a space.
    pub fn ids(&self, field: &str, tier: u8) -> Result<Vec<String>, DataError> {
        let prefix = format!("{field}/{tier}/");
        Ok(self
            .tree
            .keys()?
            .into_iter()
            .filter_map(|key| String::from_utf8(key).ok())
            .filter_map(|key| key.strip_prefix(&prefix).map(str::to_owned))
            .collect())
    }

    /// Deletes a record durably; `record_not_found` if there is none. Counts against
    /// `actor`'s bulk-change allowance.
    pub fn delete(&self, actor: &str, field: &str, tier: u8, id: &str) -> Result<(), DataError> {
        let storage_key = key(field, tier, id);
        if self
            .tree
            .get::<Sealed>(&storage_key)
            .ok()
            .flatten()
            .is_none()
        {
            return Err(DataError::new(
                DataCode::NotFound,
                format!("no record {id} in this space"),
            ));
        }
        self.guard.admit(actor, &format!("{field}/{tier}"))?;
        self.tree.remove(&storage_key)?;
        Ok(())
    }
}

fn open_sealed(
    cipher: &XChaCha20Poly1305,
    storage_key: &[u8],
    sealed: &Sealed,
) -> Option<Zeroizing<Vec<u8>>> {
    let nonce: [u8; 24] = STANDARD.decode(&sealed.nonce).ok()?.try_into().ok()?;
    let ciphertext = STANDARD.decode(&sealed.ciphertext).ok()?;
    let plaintext = Zeroizing::new(
        cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &ciphertext,
                    aad: storage_key,
                },
            )
            .ok()?,
    );
    Some(plaintext)
}

use crate::hex::encode as hex;

#[cfg(test)]
mod tests;
