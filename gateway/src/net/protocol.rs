//! The messages of `/tfc/handshake/2`, `/tfc/sync/2` and `/tfc/data/1` (JSON, size-limited by
//! the codec).
//!
//! A handshake: the opener (the side whose PeerId sorts first, see [`opens_handshake`]) sends
//! `Hello` with its DID, a nonce and its first signed asks, one per field it names (only
//! fields where the responder has standing in its eyes). The responder answers `Hello` with
//! its DID, a nonce, a proof of key for the opener's nonce, and a [`Turn`]: presentations
//! answering the asks it takes, and asks of its own. From then on the opener sends `Turn`s
//! (the first with its proof of key for the responder's nonce) and the responder answers
//! each with a `Turn`, until the opener has nothing new to say. A field nobody with
//! standing names is never mentioned; a field named where the asker has no standing is
//! ignored exactly like a field the answerer never joined.
//!
//! A responder answers a `Hello` from either side, so a peer that opens out of turn is still
//! served; our gateways simply never do.

use std::collections::BTreeMap;

use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

use crate::negotiation::Turn;

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
    /// The opener introduces itself, challenges the responder and asks in the fields it
    /// names.
    Hello {
        /// The opener's DID; it must name the connection's PeerId.
        did: String,
        /// The nonce the responder's proof of key answers.
        nonce: String,
        /// Signed asks, one per field named.
        #[serde(default)]
        asks: Vec<String>,
    },
    /// The opener's next turn.
    Turn(Turn),
}

/// A handshake response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum HandshakeResponse {
    /// The responder introduces itself, proves its key, and takes its first turn.
    Hello {
        /// The responder's DID.
        did: String,
        /// The nonce the opener's proof of key answers.
        nonce: String,
        /// An empty `vp+jwt` for the opener's DID and nonce.
        proof: String,
        /// Its answers and asks.
        turn: Turn,
    },
    /// The responder's answer to a turn.
    Turn(Turn),
    /// The request was refused. A peer without standing always reads `refused`, whatever
    /// the reason.
    Refused {
        /// A stable code (a verification code, `protocol`, or `refused`).
        code: String,
        /// Why.
        message: String,
    },
}

/// Where a member listens, as another member heard it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberAddress {
    /// The member's PeerId.
    pub peer: String,
    /// Its listen addresses (multiaddrs).
    pub addresses: Vec<String>,
}

impl MemberAddress {
    /// An entry for `peer` at `addresses`.
    pub fn new(peer: PeerId, addresses: &[Multiaddr]) -> Self {
        Self {
            peer: peer.to_base58(),
            addresses: addresses.iter().map(ToString::to_string).collect(),
        }
    }

    /// The PeerId and the addresses that parse; `None` if the PeerId does not.
    pub fn parse(&self) -> Option<(PeerId, Vec<Multiaddr>)> {
        let peer = self.peer.parse().ok()?;
        let addresses = self
            .addresses
            .iter()
            .filter_map(|address| address.parse().ok())
            .collect();
        Some((peer, addresses))
    }
}

/// An anti-entropy request on `/tfc/sync/2`: the asker says what it holds for a field, the
/// answer carries what it lacks. Served only to peers verified in that field; any other
/// asker reads `refused`, whether or not this gateway belongs to the field.
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
    /// Where the field's other members listen, as the answerer heard them: how members
    /// find each other.
    Members {
        /// The field id.
        field: String,
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
    /// Members verified in the field that the answerer is connected to, and where they
    /// listen.
    Members {
        /// The members.
        members: Vec<MemberAddress>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::negotiation::{Answer, FieldVerdict};

    #[test]
    fn handshake_messages_round_trip_and_refuse_strays() {
        let turn = Turn {
            proof: Some("p".into()),
            asks: vec!["a.b.c".into()],
            answers: vec![Answer {
                field: "f".into(),
                presentation: Some("x.y.z".into()),
                refused: None,
            }],
            verdicts: vec![FieldVerdict {
                field: "f".into(),
                tier: 2,
                verified: true,
                counted: ["OrganizationIdentityCredential".to_owned()].into(),
            }],
        };
        let messages = [
            serde_json::to_string(&HandshakeRequest::Turn(turn.clone())).unwrap(),
            serde_json::to_string(&HandshakeResponse::Hello {
                did: "d".into(),
                nonce: "n".into(),
                proof: "p".into(),
                turn: turn.clone(),
            })
            .unwrap(),
        ];
        let request: HandshakeRequest = serde_json::from_str(&messages[0]).unwrap();
        assert_eq!(request, HandshakeRequest::Turn(turn));
        let response: HandshakeResponse = serde_json::from_str(&messages[1]).unwrap();
        assert!(matches!(response, HandshakeResponse::Hello { .. }));
        let hello: HandshakeRequest =
            serde_json::from_str(r#"{"kind":"hello","did":"d","nonce":"n"}"#).unwrap();
        assert!(matches!(hello, HandshakeRequest::Hello { asks, .. } if asks.is_empty()));
        for stray in [
            r#"{"kind":"hello","did":"d","nonce":"n","fields":["f"]}"#,
            r#"{"kind":"turn","asks":[],"extra":1}"#,
            r#"{"kind":"present","presentation":"x"}"#,
        ] {
            assert!(
                serde_json::from_str::<HandshakeRequest>(stray).is_err(),
                "{stray}"
            );
        }
    }
}
