//! The admin API's request and response bodies, shared with `tfcctl` so the two cannot drift.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Every error body: `{ "code": "<stable code>", "message": "<what to do>" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiError {
    /// A stable machine code.
    pub code: String,
    /// A human message.
    pub message: String,
}

/// `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusResponse {
    /// The organisation's DID.
    pub did: String,
    /// Its legal name, from the identity credential in its wallet.
    #[serde(default)]
    pub name: Option<String>,
    /// Its libp2p PeerId.
    pub peer_id: String,
    /// The libp2p listen addresses.
    pub listen: Vec<String>,
    /// Ids of the fields joined.
    pub fields: Vec<String>,
    /// Credentials in the wallet.
    pub wallet: usize,
    /// Peers with a recorded handshake.
    pub peers: usize,
}

/// One peer in `GET /v1/peers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeerView {
    /// Its PeerId.
    pub peer_id: String,
    /// Its DID.
    pub did: String,
    /// Its verified legal name (from an identity credential a shared field trusts).
    pub name: Option<String>,
    /// Field id → tier.
    pub tiers: BTreeMap<String, u8>,
    /// Field id → what it lacked for its next tier at the last judgement
    /// (`GET /v1/fields/{field}/tier/{did}` explains it in full).
    #[serde(default)]
    pub unmet: BTreeMap<String, Vec<String>>,
    /// When the tiers were computed (RFC 3339).
    pub evaluated_at: String,
    /// When they are next due to change (RFC 3339), if ever.
    pub next_change: Option<String>,
}

/// `POST /v1/wallet`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WalletImport {
    /// A compact vc+jwt issued to this organisation.
    pub credential: String,
}

/// One credential in `GET /v1/wallet`, and the answer to an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WalletEntryView {
    /// The credential id.
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Its issuer.
    pub issuer: String,
    /// The issuer's name, as a joined field's charter (or governance) trusts it.
    #[serde(default)]
    pub issuer_name: Option<String>,
    /// Its end of validity (RFC 3339), if any.
    pub valid_until: Option<String>,
    /// The joined fields whose charter trusts its issuer for its type; empty: it counts in
    /// no field yet.
    #[serde(default)]
    pub trusted_in: Vec<String>,
}

/// `POST /v1/fields`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinField {
    /// The absolute path of a signed charter readable by the gateway.
    pub charter: String,
}

/// One field in `GET /v1/fields`, and the answer to a join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldView {
    /// The field id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `active`, or `disabled` (its charter could not be loaded at start).
    pub status: String,
    /// Why it is disabled, and what to do.
    pub problem: Option<String>,
    /// Its founders.
    pub founders: Vec<String>,
    /// Its admins (who may revoke and suspend alone).
    pub admins: Vec<String>,
    /// The quorum in force (`3` or `2/3`), as governance has it now.
    pub quorum: String,
    /// The issuers trusted now, and for which types.
    pub issuers: Vec<IssuerView>,
    /// The verified legal names of founders and admins we know, by DID.
    pub names: BTreeMap<String, String>,
    /// The credential types each tier requires.
    pub tiers: Vec<Vec<String>>,
}

/// `POST /v1/dial`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Dial {
    /// A multiaddr, e.g. `/ip4/192.0.2.10/tcp/7400/p2p/12D3KooW…`.
    pub address: String,
}

/// `POST /v1/status-lists`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusListImport {
    /// A compact BitstringStatusListCredential (vc+jwt).
    pub credential: String,
}

/// The answer to a status list import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusListImported {
    /// The list.
    #[serde(flatten)]
    pub list: crate::services::status::StatusListSummary,
    /// Whether it was new (taken and gossiped) rather than already held.
    pub taken: bool,
}

/// `POST /v1/fields/{field}/ops`: a governance op to propose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposeOp {
    /// `admit`, `revoke`, `suspend`, `reinstate`, `trust-issuer`, `distrust-issuer`,
    /// `set-quorum` or `amend-policy`.
    pub kind: String,
    /// A DID (members, issuers), a quorum (`"3"`, `"2/3"`), or the policy's SHA-256.
    pub target: String,
    /// Why (for `trust-issuer`, the issuer's name).
    pub reason: String,
    /// Credential types, for `trust-issuer`.
    #[serde(default)]
    pub types: Vec<String>,
    /// The Cedar policy text, for `amend-policy`.
    #[serde(default)]
    pub policy: Option<String>,
}

/// A governance op and how far it has got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpView {
    /// The op id (SHA-256 of its canonical JSON).
    pub id: String,
    /// Its kind.
    pub kind: String,
    /// Its target.
    pub target: String,
    /// Why.
    pub reason: String,
    /// Its epoch.
    pub epoch: u64,
    /// Who proposed it.
    pub proposer: String,
    /// When (RFC 3339).
    pub created: String,
    /// Everyone who signed it.
    pub signers: Vec<String>,
    /// Signatures from members in good standing.
    pub signatures: usize,
    /// Signatures needed.
    pub required: usize,
    /// `quorum` or `admin` (the emergency path) once committed.
    pub committed: Option<String>,
    /// The verified legal names of the target, proposer and signers we know, by DID.
    #[serde(default)]
    pub names: BTreeMap<String, String>,
}

/// One member or candidate of a field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    /// The DID.
    pub did: String,
    /// Its verified legal name, once this gateway has verified it.
    pub name: Option<String>,
    /// What it lacked for its next tier at this gateway's last judgement
    /// (`GET /v1/fields/{field}/tier/{did}` explains it in full).
    #[serde(default)]
    pub unmet: Vec<String>,
    /// `founder`, `member`, `suspended`, `revoked`, `pending` (an admission is proposed)
    /// or `not_admitted`.
    pub admission: String,
    /// The epoch of the op that set the standing.
    pub epoch: u64,
    /// The tier this gateway's last judgement gave it in the field, if it has met it.
    pub tier: Option<u8>,
}

/// What revoking or suspending a member would touch, shown before it is done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberImpact {
    /// The DID.
    pub did: String,
    /// Its verified legal name, if known.
    pub name: Option<String>,
    /// The field id.
    pub field: String,
    /// `founder`, `member`, `suspended`, `revoked`, or `none` (not in the registry).
    pub standing: String,
    /// Whether it can be revoked or suspended here; else why not (the code the op would be
    /// refused with).
    pub refusal: Option<String>,
    /// Tiers this gateway's last judgement gave it, by field.
    pub tiers: BTreeMap<String, u8>,
    /// Whether its gateway is connected to this one now (the connection closes).
    pub connected: bool,
    /// Records in this field's spaces it owns, may read (disclosure) or holds rights in:
    /// each loses that access.
    pub records: RecordsAffected,
    /// Countermeasures whose target names it.
    pub countermeasures: Vec<String>,
    /// Governance ops about it not committed yet.
    pub pending_ops: Vec<String>,
    /// Other joined fields where it is a member (not affected).
    pub other_fields: Vec<String>,
}

/// Records a member's revocation touches, counted over the field's three spaces.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordsAffected {
    /// Records it owns (held here as custodian).
    pub owned: usize,
    /// Records disclosed to it.
    pub disclosed: usize,
    /// Records it holds rights in.
    pub rights: usize,
}

/// One trusted issuer of a field, as governance has it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IssuerView {
    /// The issuer's DID.
    pub did: String,
    /// Its name.
    pub name: String,
    /// The credential types it is trusted for.
    pub types: Vec<String>,
}

impl From<crate::charter::IssuerEntry> for IssuerView {
    fn from(issuer: crate::charter::IssuerEntry) -> Self {
        Self {
            did: issuer.did,
            name: issuer.name,
            types: issuer.types,
        }
    }
}

/// `GET /v1/audit/verify`: the chain, and what the members hold of its checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditVerification {
    /// The local chain.
    pub chain: crate::audit::ChainReport,
    /// The members' checkpoints of it.
    pub peers: crate::exchange::PeerCheckpoints,
}

/// `GET /v1/audit/entries`: the entries asked for, and whether the chain verifies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntries {
    /// The whole chain's verification.
    pub chain: crate::audit::ChainReport,
    /// The matching entries, each with `time` (RFC 3339) beside `timeMs`.
    #[schema(value_type = Vec<Object>)]
    pub entries: Vec<serde_json::Value>,
}

/// `POST /v1/data/{field}/{tier}`: write one of this organisation's records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRecord {
    /// The record to overwrite (its next version); a new id if absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Its labels.
    pub labels: crate::spaces::Labels,
    /// The document.
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
    /// Attachments uploaded first with `POST /v1/attachments`.
    #[serde(default)]
    pub attachments: Vec<AttachmentInput>,
}

/// An attachment a record refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachmentInput {
    /// A file name, for people.
    pub name: String,
    /// The content hash `POST /v1/attachments` answered.
    pub sha256: String,
}

/// One record in `GET /v1/data/{field}/{tier}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordSummary {
    /// The record id.
    pub id: String,
    /// `ok`, or `record_tampered` (it is not served).
    pub status: String,
    /// Its version.
    pub version: Option<u64>,
    /// Its owner.
    pub owner: Option<String>,
    /// Its labels.
    pub labels: Option<crate::spaces::Labels>,
}

/// `POST /v1/data/{field}/{tier}/{id}/submit`: hand a copy to another organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitRecord {
    /// The recipient's DID.
    pub to: String,
    /// The declared purpose.
    pub purpose: String,
}

/// `POST /v1/data/ask`: ask another organisation's gateway for its data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AskData {
    /// The holder's DID.
    pub from: String,
    /// `get` (with `id`), `list`, or `attachment` (with `id` and `sha256`: the answer is the
    /// file).
    pub kind: String,
    /// The field id.
    pub field: String,
    /// The space's tier.
    pub tier: u8,
    /// The record id, for `get` and `attachment`.
    #[serde(default)]
    pub id: Option<String>,
    /// The attachment's hash, for `attachment`.
    #[serde(default)]
    pub sha256: Option<String>,
    /// For `list`: only records whose labels match.
    #[serde(default)]
    pub filter: crate::spaces::LabelFilter,
    /// The declared purpose.
    pub purpose: String,
}

/// `POST /v1/data/why`: a request to explain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WhyRequest {
    /// The asking organisation's DID.
    pub peer: String,
    /// The field id or unambiguous prefix.
    pub field: String,
    /// The space's tier.
    pub tier: u8,
    /// A record id; without it, the space.
    #[serde(default)]
    pub id: Option<String>,
    /// `read`, `list`, `write`, `submit` or `delete`.
    pub action: String,
    /// The declared purpose.
    pub purpose: String,
}

/// The holder's answer to a data request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DataAnswer {
    /// Whether it was allowed.
    pub allowed: bool,
    /// `ok` or the refusal code.
    pub code: String,
    /// The decision's reason.
    pub reason: String,
    /// The records served.
    pub records: Vec<crate::spaces::Record>,
}

impl From<crate::net::DataResponse> for DataAnswer {
    fn from(response: crate::net::DataResponse) -> Self {
        match response {
            crate::net::DataResponse::Allowed { records, reason } => Self {
                allowed: true,
                code: "ok".into(),
                reason,
                records,
            },
            crate::net::DataResponse::Chunk { reason, .. } => Self {
                allowed: true,
                code: "ok".into(),
                reason,
                records: Vec::new(),
            },
            crate::net::DataResponse::Refused { code, reason } => Self {
                allowed: false,
                code,
                reason,
                records: Vec::new(),
            },
        }
    }
}
