//! The `/tfc/handshake/1` messages (JSON, size-limited by the codec).
//!
//! The opener (the side whose PeerId sorts first, see [`opens_handshake`]) sends `Hello` (its
//! DID, a fresh nonce, the fields it belongs to). The responder answers with its own `Hello`,
//! carrying a presentation for the opener's nonce. The opener checks it and sends `Present`
//! with its presentation for the responder's nonce; the responder checks that and answers
//! `Verdict` with the tiers it computed.
//!
//! A responder answers a `Hello` from either side, so a peer that opens out of turn is still
//! served; our gateways simply never do.

use std::collections::BTreeMap;

use libp2p::PeerId;
use serde::{Deserialize, Serialize};

/// Whether the side `local` opens the handshake with `remote`: the one whose PeerId sorts
/// first. The dialer used to open, but when two members dial each other at once (both ends
/// of a healed partition do) each sees one of the two connections first: both opened, doing
/// the work twice, or neither did, and the pair waited out the grace window.
pub fn opens_handshake(local: &PeerId, remote: &PeerId) -> bool {
    local < remote
}

/// A handshake request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum HandshakeRequest {
    /// The opener introduces itself and challenges the responder.
    Hello {
        /// The opener's DID; it must name the connection's PeerId.
        did: String,
        /// The challenge the responder's presentation must answer.
        nonce: String,
        /// The field ids the opener belongs to.
        fields: Vec<String>,
    },
    /// The opener answers the responder's challenge.
    Present {
        /// A vp+jwt for the responder's DID and nonce.
        presentation: String,
    },
}

/// A handshake response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum HandshakeResponse {
    /// The responder introduces itself, answers the challenge and challenges back.
    Hello {
        /// The responder's DID.
        did: String,
        /// The challenge the opener's presentation must answer.
        nonce: String,
        /// The field ids the responder belongs to.
        fields: Vec<String>,
        /// A vp+jwt for the opener's DID and nonce.
        presentation: String,
    },
    /// The tiers the responder computed for the opener, per shared field.
    Verdict {
        /// Field id → tier.
        tiers: BTreeMap<String, u8>,
    },
    /// The request was refused.
    Refused {
        /// A stable code (a verification code, or `protocol`).
        code: String,
        /// Why.
        message: String,
    },
}

/// An anti-entropy request on `/tfc/sync/1`: the asker says what it holds for a field, the
/// answer carries what it lacks. Served only to peers verified in that field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SyncRequest {
    /// The status lists the asker holds: list id → `validFrom` (Unix seconds).
    StatusLists {
        /// The field id.
        field: String,
        /// What the asker holds.
        have: BTreeMap<String, i64>,
    },
    /// The audit checkpoints of `of` (the asker's DID) that the answerer keeps.
    Checkpoints {
        /// The field id.
        field: String,
        /// Whose checkpoints.
        of: String,
    },
    /// The governance ops the asker holds: op id → number of signatures.
    Ops {
        /// The field id.
        field: String,
        /// What the asker holds.
        have: BTreeMap<String, usize>,
    },
    /// A threat report for the answerer by name (TLP:RED is never gossiped): the
    /// reporter's signed envelope.
    Report {
        /// The field id.
        field: String,
        /// The envelope (compact JWS), signed by the asker.
        token: String,
    },
}

/// An anti-entropy answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SyncResponse {
    /// Status list credentials (vc+jwt) newer than, or missing from, what the asker holds.
    StatusLists {
        /// The tokens.
        tokens: Vec<String>,
    },
    /// Checkpoints kept: the signed envelopes as received.
    Checkpoints {
        /// The envelopes (compact JWS).
        tokens: Vec<String>,
    },
    /// Governance ops the asker lacks or holds with fewer signatures.
    Ops {
        /// The ops, each with every signature held here.
        ops: Vec<crate::governance::SignedOp>,
    },
    /// The report was taken.
    Report {
        /// Indicators taken.
        taken: usize,
        /// Indicators already held.
        unchanged: usize,
    },
    /// The request was refused.
    Refused {
        /// A stable code.
        code: String,
        /// Why.
        message: String,
    },
}

/// A request on `/tfc/data/1` to the gateway that holds a space. Every request names the
/// field, the space (its tier) and the purpose; the holder decides with its policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataRequest {
    /// Read one record.
    Get {
        /// The field id.
        field: String,
        /// The space's tier.
        tier: u8,
        /// The record id.
        id: String,
        /// The declared purpose.
        purpose: String,
    },
    /// List the records of a space the asker may read.
    List {
        /// The field id.
        field: String,
        /// The space's tier.
        tier: u8,
        /// The declared purpose.
        purpose: String,
        /// Only records whose labels match.
        #[serde(default)]
        filter: crate::spaces::LabelFilter,
    },
    /// Read one chunk of an attachment of a record; decided like `get` for every chunk, so a
    /// revocation stops a transfer between two chunks.
    Chunk {
        /// The field id.
        field: String,
        /// The space's tier.
        tier: u8,
        /// The record id.
        id: String,
        /// The attachment's hash (one of the record's).
        sha256: String,
        /// The chunk, from 0.
        index: u32,
        /// The declared purpose.
        purpose: String,
    },
    /// Hand a signed record to the holder, which keeps it as custodian.
    Submit {
        /// The record, signed by its writer (the asker).
        record: Box<crate::spaces::Record>,
        /// The declared purpose.
        purpose: String,
    },
}

/// The answer on `/tfc/data/1`, always with the decision's reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataResponse {
    /// Allowed: the records (one for `get`, those readable for `list`, none for `submit`).
    Allowed {
        /// The records.
        records: Vec<crate::spaces::Record>,
        /// The policies that decided, and why.
        reason: String,
    },
    /// Allowed: one chunk of an attachment.
    Chunk {
        /// The bytes, base64.
        data: String,
        /// Whether it is the last.
        last: bool,
        /// The decision's reason.
        reason: String,
    },
    /// Refused.
    Refused {
        /// A stable code (`access_denied`, `record_not_found`, `not_member`, …).
        code: String,
        /// Why.
        reason: String,
    },
}
