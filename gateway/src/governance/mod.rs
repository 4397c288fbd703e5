//! Distributed governance (docs/CHARTER.md, "Governance"): signed ops, endorsements,
//! quorum, and the replicated op log whose state is a CRDT.
//!
//! An op is canonical JSON (RFC 8785). Its id is the SHA-256 of that JSON; its proposer and
//! endorsers sign `tfc/gov/v1:<id>`. An op and its signatures travel together as a
//! [`SignedOp`]; two copies of one op merge by the union of their valid signatures, so the
//! log is a grow-only set and every gateway holding the same set derives the same state
//! ([`state::FieldState`]), whatever the order things arrived in.

mod log;
pub mod state;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::charter::Quorum;
use crate::identity::{KeyPair, PublicKey};

pub use log::{GovIntake, Governance};
pub use state::{FieldState, Standing, StandingKind};

/// What every signature covers, before the op id.
const SIGNATURE_CONTEXT: &str = "tfc/gov/v1:";
/// Largest op accepted, in bytes of canonical JSON (an amended policy travels inside).
pub const MAX_OP_BYTES: usize = 256 * 1024;
/// Most signatures an op may carry.
pub const MAX_SIGNATURES: usize = 1024;
/// Ops created longer ago than this are stale.
pub const MAX_OP_AGE_SECS: i64 = 7 * 86_400;

/// The kinds of governance op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpKind {
    /// Admit a member (target: its DID).
    Admit,
    /// Revoke a member for good (target: its DID); an admin alone may commit it.
    Revoke,
    /// Suspend a member (target: its DID); an admin alone may commit it.
    Suspend,
    /// Lift a revocation or suspension (target: its DID); needs a quorum and a higher epoch.
    Reinstate,
    /// Trust an issuer for credential types (target: its DID; `types`).
    TrustIssuer,
    /// Stop trusting an issuer (target: its DID).
    DistrustIssuer,
    /// Change the quorum (target: `"3"` or `"2/3"`).
    SetQuorum,
    /// Replace the field's Cedar policy (target: SHA-256 of `policy`).
    AmendPolicy,
}

impl OpKind {
    /// Whether the op is about a member's standing.
    pub fn is_membership(self) -> bool {
        matches!(
            self,
            OpKind::Admit | OpKind::Revoke | OpKind::Suspend | OpKind::Reinstate
        )
    }

    /// Whether one admin's signature commits it (the emergency path).
    pub fn is_emergency(self) -> bool {
        matches!(self, OpKind::Revoke | OpKind::Suspend)
    }

    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Admit => "admit",
            OpKind::Revoke => "revoke",
            OpKind::Suspend => "suspend",
            OpKind::Reinstate => "reinstate",
            OpKind::TrustIssuer => "trust-issuer",
            OpKind::DistrustIssuer => "distrust-issuer",
            OpKind::SetQuorum => "set-quorum",
            OpKind::AmendPolicy => "amend-policy",
        }
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OpKind {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        serde_json::from_value(serde_json::Value::String(text.to_owned()))
            .map_err(|_| format!("unknown op kind {text:?}"))
    }
}

/// A governance op, as signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Op {
    /// What it does.
    pub kind: OpKind,
    /// The field id.
    pub field: String,
    /// Whom or what it is about (see [`OpKind`]).
    pub target: String,
    /// Why, for people.
    pub reason: String,
    /// The proposer's field epoch plus one: orders ops, and a later epoch supersedes.
    pub epoch: u64,
    /// The proposer's DID; its signature must be among the op's.
    pub proposer: String,
    /// When it was proposed (Unix seconds).
    pub created: i64,
    /// Credential types, for `trust-issuer`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    /// The Cedar policy text, for `amend-policy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

impl Op {
    /// The canonical JSON (RFC 8785).
    pub fn canonical(&self) -> Result<String, GovError> {
        serde_jcs::to_string(self)
            .map_err(|error| GovError::new(GovCode::Malformed, error.to_string()))
    }

    /// The op id: SHA-256 of the canonical JSON, as 64 lowercase hex digits.
    pub fn id(&self) -> Result<String, GovError> {
        Ok(hex(&Sha256::digest(self.canonical()?.as_bytes())))
    }

    /// The quorum a `set-quorum` op sets.
    pub fn quorum(&self) -> Option<Quorum> {
        self.target.parse().ok()
    }
}

/// An op with the signatures gathered so far: signer DID → base64url signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedOp {
    /// The op.
    pub op: Op,
    /// Signatures over `tfc/gov/v1:<op id>`.
    pub signatures: BTreeMap<String, String>,
}

impl SignedOp {
    /// A new op signed by its proposer.
    pub fn propose(op: Op, proposer: &KeyPair) -> Result<Self, GovError> {
        let mut signed = Self {
            op,
            signatures: BTreeMap::new(),
        };
        signed.sign(proposer)?;
        Ok(signed)
    }

    /// Adds `signer`'s signature (an endorsement).
    pub fn sign(&mut self, signer: &KeyPair) -> Result<(), GovError> {
        let message = signing_message(&self.op.id()?);
        let signature = URL_SAFE_NO_PAD.encode(signer.sign(message.as_bytes()));
        self.signatures.insert(signer.did(), signature);
        Ok(())
    }

    /// Checks shape, size, age and every signature; returns the op id. Any bad signature
    /// refuses the whole message: a forged endorsement is not quietly dropped.
    pub fn verify(&self, now: i64) -> Result<String, GovError> {
        let canonical = self.op.canonical()?;
        if canonical.len() > MAX_OP_BYTES {
            return Err(GovError::new(
                GovCode::TooLarge,
                format!(
                    "op is {} bytes; the limit is {MAX_OP_BYTES}",
                    canonical.len()
                ),
            ));
        }
        if self.signatures.len() > MAX_SIGNATURES {
            return Err(GovError::new(GovCode::TooLarge, "too many signatures"));
        }
        self.check_shape()?;
        if now - self.op.created > MAX_OP_AGE_SECS {
            return Err(GovError::new(GovCode::Stale, "op is older than seven days"));
        }
        if self.op.created - now > crate::credential::CLOCK_SKEW_SECS {
            return Err(GovError::new(GovCode::Stale, "op is dated in the future"));
        }
        let id = hex(&Sha256::digest(canonical.as_bytes()));
        if !self.signatures.contains_key(&self.op.proposer) {
            return Err(GovError::new(
                GovCode::Forged,
                "the proposer has not signed",
            ));
        }
        let message = signing_message(&id);
        for (signer, signature) in &self.signatures {
            let valid = PublicKey::from_did(signer).ok().is_some_and(|key| {
                URL_SAFE_NO_PAD
                    .decode(signature)
                    .is_ok_and(|bytes| key.verify(message.as_bytes(), &bytes))
            });
            if !valid {
                return Err(GovError::new(
                    GovCode::Forged,
                    format!("the signature of {signer} does not verify"),
                ));
            }
        }
        Ok(id)
    }

    fn check_shape(&self) -> Result<(), GovError> {
        let op = &self.op;
        let malformed = |message: String| Err(GovError::new(GovCode::Malformed, message));
        if op.epoch == 0 {
            return malformed("epoch starts at 1".into());
        }
        if op.reason.len() > 4096 {
            return malformed("reason is longer than 4096 bytes".into());
        }
        let target_is_did = op.kind.is_membership()
            || matches!(op.kind, OpKind::TrustIssuer | OpKind::DistrustIssuer);
        if target_is_did && PublicKey::from_did(&op.target).is_err() {
            return malformed(format!("target {:?} is not a DID", truncate(&op.target)));
        }
        match op.kind {
            OpKind::TrustIssuer if op.types.is_empty() => {
                malformed("trust-issuer needs types".into())
            }
            OpKind::SetQuorum => match op.quorum().map(|quorum| quorum.check(None)) {
                Some(Ok(())) => Ok(()),
                Some(Err(message)) => malformed(message),
                None => malformed(format!("{:?} is not a quorum", truncate(&op.target))),
            },
            OpKind::AmendPolicy => match &op.policy {
                Some(policy) if hex(&Sha256::digest(policy.as_bytes())) == op.target => {
                    // A policy that does not compile against the schema would deny everything
                    // once committed: refuse it at the door.
                    crate::policy::PolicyEngine::new(policy)
                        .map(drop)
                        .or_else(|error| malformed(format!("the amended policy: {error}")))
                }
                _ => malformed("amend-policy needs a policy whose SHA-256 is the target".into()),
            },
            _ => Ok(()),
        }
    }

    /// Merges another copy's signatures into this one; returns whether any was new.
    pub fn merge(&mut self, other: SignedOp) -> bool {
        let before = self.signatures.len();
        self.signatures.extend(other.signatures);
        self.signatures.len() > before
    }
}

fn signing_message(id: &str) -> String {
    format!("{SIGNATURE_CONTEXT}{id}")
}

/// The SHA-256 of `bytes` as 64 lowercase hex digits (the target of `amend-policy`).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

use crate::hex::encode as hex;

fn truncate(text: &str) -> String {
    text.chars().take(80).collect()
}

/// Stable codes for refused ops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GovCode {
    /// Not a valid op (shape, JSON, target).
    Malformed,
    /// Larger than the limits.
    TooLarge,
    /// A signature does not verify, or the proposer did not sign.
    Forged,
    /// For a field this gateway has not joined, or another field than the channel's.
    WrongField,
    /// Older than [`MAX_OP_AGE_SECS`], or dated in the future.
    Stale,
    /// Already held with every signature it carries.
    Replayed,
    /// The signer may not take part (not a member in good standing).
    NotMember,
    /// A revocation, suspension or reinstatement proposed here names no member of the
    /// field in a standing it can change (an unknown or mistyped DID, a stranger).
    NotAMember,
    /// No such op.
    UnknownOp,
    /// The store failed.
    Store,
    /// The disk is full: the op was not taken.
    StorageFull,
}

impl GovCode {
    /// The code's text.
    pub fn as_str(self) -> &'static str {
        match self {
            GovCode::Malformed => "gov_malformed",
            GovCode::TooLarge => "too_large",
            GovCode::Forged => "gov_forged",
            GovCode::WrongField => "wrong_field",
            GovCode::Stale => "gov_stale",
            GovCode::Replayed => "gov_replayed",
            GovCode::NotMember => "not_member",
            GovCode::NotAMember => "not_a_member",
            GovCode::UnknownOp => "unknown_op",
            GovCode::Store => "store",
            GovCode::StorageFull => "storage_full",
        }
    }
}

/// A refused governance op or action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct GovError {
    /// The stable code.
    pub code: GovCode,
    /// Why.
    pub message: String,
}

impl GovError {
    /// An error with `code`.
    pub fn new(code: GovCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests;
