//! W3C Bitstring Status List v1.0: status list credentials, entries and status checks.
//!
//! A list is a bitstring, GZIP-compressed and multibase base64url-encoded (`u…`) in the
//! `encodedList` of a `BitstringStatusListCredential`. Bit 0 is the most significant bit of
//! the first byte. A list has one purpose: `revocation` or `suspension`.

use std::collections::HashMap;
use std::io::{Read, Write};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::{ErrorCode, VerificationError, fail};
use super::jws::{self, SignError, truncate};
use super::{VC_TYP, VCDM_V2_CONTEXT, format_rfc3339};
use crate::identity::KeyPair;

/// The VC type of a status list credential.
pub const STATUS_LIST_CREDENTIAL_TYPE: &str = "BitstringStatusListCredential";
/// The smallest list the specification allows, in entries (16 KiB), for herd privacy.
pub const MIN_STATUS_LIST_ENTRIES: usize = 131_072;
/// The largest list accepted, in entries (2 MiB decompressed): bounds GZIP bombs.
pub const MAX_STATUS_LIST_ENTRIES: usize = 16 * 1024 * 1024;

/// What a set bit means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusPurpose {
    /// A set bit means the credential is revoked, for good.
    Revocation,
    /// A set bit means the credential is suspended, until cleared.
    Suspension,
}

impl StatusPurpose {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusPurpose::Revocation => "revocation",
            StatusPurpose::Suspension => "suspension",
        }
    }

    fn set_code(self) -> ErrorCode {
        match self {
            StatusPurpose::Revocation => ErrorCode::Revoked,
            StatusPurpose::Suspension => ErrorCode::Suspended,
        }
    }
}

/// A `credentialStatus` entry of type `BitstringStatusListEntry`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusEntry {
    /// The entry id, `<list id>#<index>`.
    pub id: String,
    /// Always `BitstringStatusListEntry`.
    #[serde(rename = "type")]
    pub entry_type: String,
    /// What a set bit means.
    pub status_purpose: StatusPurpose,
    /// The bit index, as a decimal string.
    pub status_list_index: String,
    /// The id (URL) of the status list credential.
    pub status_list_credential: String,
}

impl StatusEntry {
    /// An entry pointing at bit `index` of list `list_id`.
    pub fn new(list_id: &str, purpose: StatusPurpose, index: usize) -> Self {
        Self {
            id: format!("{list_id}#{index}"),
            entry_type: "BitstringStatusListEntry".into(),
            status_purpose: purpose,
            status_list_index: index.to_string(),
            status_list_credential: list_id.into(),
        }
    }
}

/// A decoded status list, as issued or as verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusList {
    /// The list credential's id (URL), which entries point at.
    pub id: String,
    /// The issuer DID; a list speaks only for credentials of the same issuer.
    pub issuer: String,
    /// What a set bit means.
    pub purpose: StatusPurpose,
    /// When the list was issued (`validFrom`), Unix seconds.
    pub issued_at: i64,
    /// When the list stops being valid, if ever.
    pub valid_until: Option<i64>,
    pub(super) bits: Vec<u8>,
}

/// A status list operation was given an index outside the list.
#[derive(Debug, thiserror::Error)]
#[error("index {index} is outside the list (it has {len} entries)")]
pub struct IndexOutOfRange {
    /// The index asked for.
    pub index: usize,
    /// The list length in entries.
    pub len: usize,
}

impl StatusList {
    /// A new list with every bit clear. `entries` is rounded up to a whole byte and to the
    /// specification's minimum.
    pub fn new(
        id: &str,
        issuer: &str,
        purpose: StatusPurpose,
        entries: usize,
        issued_at: i64,
    ) -> Self {
        let entries = entries.clamp(MIN_STATUS_LIST_ENTRIES, MAX_STATUS_LIST_ENTRIES);
        Self {
            id: id.into(),
            issuer: issuer.into(),
            purpose,
            issued_at,
            valid_until: None,
            bits: vec![0; entries.div_ceil(8)],
        }
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.bits.len() * 8
    }

    /// Whether the list has no entries (never true for a list built here).
    pub fn is_empty(&self) -> bool {
        self.bits.is_empty()
    }

    /// The bit at `index`, or `None` outside the list.
    pub fn get(&self, index: usize) -> Option<bool> {
        let byte = self.bits.get(index / 8)?;
        Some(byte & (0x80 >> (index % 8)) != 0)
    }

    /// Sets or clears the bit at `index`.
    pub fn set(&mut self, index: usize, value: bool) -> Result<(), IndexOutOfRange> {
        let len = self.len();
        let byte = self
            .bits
            .get_mut(index / 8)
            .ok_or(IndexOutOfRange { index, len })?;
        let mask = 0x80 >> (index % 8);
        if value {
            *byte |= mask;
        } else {
            *byte &= !mask;
        }
        Ok(())
    }

    /// The indices whose bit is set.
    pub fn set_indices(&self) -> Vec<usize> {
        (0..self.len())
            .filter(|&index| self.get(index) == Some(true))
            .collect()
    }

    /// The `encodedList`: multibase base64url (`u`) of the GZIP-compressed bitstring.
    pub fn encode(&self) -> String {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        // Writing to a Vec cannot fail.
        let compressed = encoder
            .write_all(&self.bits)
            .and_then(|()| encoder.finish())
            .unwrap_or_default();
        format!("u{}", URL_SAFE_NO_PAD.encode(compressed))
    }

    /// Decodes an `encodedList`, bounding the decompressed size.
    pub fn decode_bits(encoded: &str) -> Result<Vec<u8>, String> {
        let base64 = encoded
            .strip_prefix('u')
            .ok_or("encodedList is not multibase base64url (it must start with 'u')")?;
        let compressed = URL_SAFE_NO_PAD
            .decode(base64)
            .map_err(|_| "encodedList is not base64url")?;
        let limit = MAX_STATUS_LIST_ENTRIES / 8;
        let mut bits = Vec::new();
        GzDecoder::new(compressed.as_slice())
            .take(limit as u64 + 1)
            .read_to_end(&mut bits)
            .map_err(|_| "encodedList is not GZIP data")?;
        if bits.len() > limit {
            return Err(format!(
                "list is longer than {MAX_STATUS_LIST_ENTRIES} entries"
            ));
        }
        if bits.len() * 8 < MIN_STATUS_LIST_ENTRIES {
            return Err(format!(
                "list is shorter than {MIN_STATUS_LIST_ENTRIES} entries"
            ));
        }
        Ok(bits)
    }

    /// Signs this list as a `BitstringStatusListCredential`.
    pub fn issue(&self, issuer: &KeyPair) -> Result<String, SignError> {
        let valid_from = format_rfc3339(self.issued_at);
        let mut payload = json!({
            "@context": [VCDM_V2_CONTEXT],
            "id": self.id,
            "type": ["VerifiableCredential", STATUS_LIST_CREDENTIAL_TYPE],
            "issuer": issuer.did(),
            "validFrom": valid_from,
            "credentialSubject": {
                "id": format!("{}#list", self.id),
                "type": "BitstringStatusList",
                "statusPurpose": self.purpose.as_str(),
                "encodedList": self.encode(),
            },
            "iss": issuer.did(),
            "nbf": self.issued_at,
            "iat": self.issued_at,
            "jti": self.id,
        });
        if let Some(until) = self.valid_until {
            payload["validUntil"] = format_rfc3339(until).into();
            payload["exp"] = until.into();
        }
        jws::sign(issuer, VC_TYP, &payload)
    }
}

/// The status lists a verifier knows, by list id. A newer issue of a list replaces an older.
#[derive(Debug, Default, Clone)]
pub struct StatusLists {
    by_id: HashMap<String, StatusList>,
}

impl StatusLists {
    /// No lists: any credential with a `credentialStatus` is `status_unavailable`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a verified list unless a newer issue of it is already known. Returns whether it
    /// was taken.
    pub fn insert(&mut self, list: StatusList) -> bool {
        match self.by_id.get(&list.id) {
            Some(known) if known.issued_at >= list.issued_at => false,
            _ => {
                self.by_id.insert(list.id.clone(), list);
                true
            }
        }
    }

    /// The list with this id.
    pub fn get(&self, id: &str) -> Option<&StatusList> {
        self.by_id.get(id)
    }

    /// Every list held.
    pub fn iter(&self) -> impl Iterator<Item = &StatusList> {
        self.by_id.values()
    }

    /// Judges one entry of a credential by `issuer`, failing closed.
    pub fn check_entry(
        &self,
        entry: &StatusEntry,
        issuer: &str,
        now: i64,
        max_age_secs: i64,
    ) -> Result<(), VerificationError> {
        let unavailable = |why: String| fail(ErrorCode::StatusUnavailable, why);
        let list_id = truncate(&entry.status_list_credential);
        let Some(list) = self.by_id.get(&entry.status_list_credential) else {
            return unavailable(format!("status list {list_id} is not known"));
        };
        if list.issuer != issuer {
            return unavailable(format!(
                "status list {list_id} is not from the credential's issuer"
            ));
        }
        if list.purpose != entry.status_purpose {
            return unavailable(format!(
                "status list {list_id} is for {}, the entry for {}",
                list.purpose.as_str(),
                entry.status_purpose.as_str()
            ));
        }
        let age = now.saturating_sub(list.issued_at);
        if age > max_age_secs {
            return unavailable(format!(
                "status list {list_id} is {age} s old; the limit is {max_age_secs} s (fetch a fresh one)"
            ));
        }
        if list.valid_until.is_some_and(|until| now >= until) {
            return unavailable(format!("status list {list_id} has expired"));
        }
        let bit = entry
            .status_list_index
            .parse::<usize>()
            .ok()
            .and_then(|index| list.get(index));
        match bit {
            Some(false) => Ok(()),
            Some(true) => fail(
                entry.status_purpose.set_code(),
                format!(
                    "the issuer set bit {} of status list {list_id} ({})",
                    entry.status_list_index,
                    entry.status_purpose.as_str()
                ),
            ),
            None => unavailable(format!(
                "index {} is outside status list {list_id}",
                truncate(&entry.status_list_index)
            )),
        }
    }
}

#[cfg(test)]
mod tests;
