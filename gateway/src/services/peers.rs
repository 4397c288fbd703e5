//! What a gateway keeps about each peer after a handshake, and the nonces it has seen.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::store::Stored;

/// What a peer presented in one field, kept to judge it again without a new handshake.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presented {
    /// The credentials (compact vc+jwt), only of types we asked for.
    pub credentials: Vec<String>,
    /// The types that verified and counted at the last judgement.
    #[serde(default)]
    pub counted: BTreeSet<String>,
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
