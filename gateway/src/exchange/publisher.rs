//! Publishing on field topics and asking other gateways: the service the API and the other modules call.

use std::sync::Arc;

use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;

use super::{Checkpoint, CheckpointMismatch, Envelope, PeerCheckpoints};
use super::{MAX_CHECKPOINT_BYTES, MAX_CHECKPOINT_PEERS, enforce, sync};
use crate::credential::{CredentialVerifier, SignError, now_unix, sign_message};
use crate::governance::{GovCode, GovError, GovIntake, OpKind, SignedOp};
use crate::identity::PublicKey;
use crate::net::{
    Command, DataRequest, DataResponse, NetError, SyncRequest, SyncResponse, TopicKind, call,
    topic_name,
};
use crate::services::Services;
use crate::services::status::{Intake, StatusIntakeError};
use crate::services::threats::ReportBody;
use crate::services::threats::{Origin, ReportOutcome, Threats};
use crate::threats::{ThreatCode, ThreatError};

/// Publishes signed envelopes on field topics, and sends requests to other gateways.
#[derive(Clone)]
pub struct Publisher {
    pub(super) services: Arc<Services>,
    pub(super) commands: mpsc::Sender<Command>,
    pub(super) threats: Arc<Threats>,
}

impl Publisher {
    /// Sends a data request to `peer` and waits for its decision.
    pub async fn request_data(
        &self,
        peer: PeerId,
        request: DataRequest,
    ) -> Result<DataResponse, NetError> {
        call(&self.commands, |reply| Command::Data {
            peer,
            request,
            reply,
        })
        .await
    }

    /// Pulls attachment `sha256` of record `id` from `peer`, chunk by chunk, each chunk
    /// decided anew by the holder (so a revocation stops the transfer between two chunks),
    /// and checks the whole against its hash.
    pub async fn fetch_attachment(
        &self,
        peer: PeerId,
        wanted: AttachmentWanted,
    ) -> Result<Vec<u8>, FetchFailure> {
        use base64::Engine;
        let mut content = Vec::new();
        for index in 0u32.. {
            let request = DataRequest::Chunk {
                field: wanted.field.clone(),
                tier: wanted.tier,
                id: wanted.id.clone(),
                sha256: wanted.sha256.clone(),
                index,
                purpose: wanted.purpose.clone(),
            };
            let response = self.request_data(peer, request).await.map_err(|reason| {
                FetchFailure::broken(
                    "unreachable",
                    format!("{peer} stopped answering at chunk {index}: {reason}"),
                )
            })?;
            let (data, last) = match response {
                DataResponse::Chunk { data, last, .. } => (data, last),
                DataResponse::Refused { code, reason } => {
                    return Err(FetchFailure {
                        code,
                        message: format!("transfer stopped at chunk {index}: {reason}"),
                        refused: true,
                    });
                }
                DataResponse::Allowed { .. } => {
                    return Err(FetchFailure::broken(
                        "protocol",
                        "the holder answered a chunk request with records".into(),
                    ));
                }
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|_| {
                    FetchFailure::broken("data_malformed", format!("chunk {index} is not base64"))
                })?;
            content.extend_from_slice(&bytes);
            if content.len() as u64 > crate::spaces::MAX_ATTACHMENT_BYTES {
                return Err(FetchFailure::broken(
                    "data_malformed",
                    "the attachment is larger than allowed".into(),
                ));
            }
            if last {
                break;
            }
        }
        if crate::hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(&content)) != wanted.sha256 {
            return Err(FetchFailure::broken(
                "record_tampered",
                "the attachment received does not match the record's hash".into(),
            ));
        }
        Ok(content)
    }
}

/// The attachment to fetch, and the purpose declared for every chunk.
#[derive(Debug, Clone)]
pub struct AttachmentWanted {
    /// The field id.
    pub field: String,
    /// The space's tier.
    pub tier: u8,
    /// The record that refers to it.
    pub id: String,
    /// Its hash (one of the record's).
    pub sha256: String,
    /// The declared purpose.
    pub purpose: String,
}

/// Why an attachment fetch stopped: a stable code, a sentence, and whether the holder
/// refused (rather than the transfer breaking).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchFailure {
    /// `unreachable`, `protocol`, `data_malformed`, `record_tampered`, or the holder's code.
    pub code: String,
    /// Why.
    pub message: String,
    /// Whether the holder refused.
    pub refused: bool,
}

impl FetchFailure {
    fn broken(code: &str, message: String) -> Self {
        Self {
            code: code.to_owned(),
            message,
            refused: false,
        }
    }
}

impl Publisher {
    /// Publishes `body` on the `kind` topic of `field`.
    pub async fn publish(
        &self,
        field: &str,
        kind: TopicKind,
        body: Value,
    ) -> Result<(), SignError> {
        let token = self.envelope(field, kind, body)?;
        let command = Command::Publish {
            topic: topic_name(field, kind),
            data: token.into_bytes(),
            reply: None,
        };
        if self.commands.send(command).await.is_err() {
            tracing::warn!("gossip not published: the network task has stopped");
        }
        Ok(())
    }

    /// Signs `body` in an envelope for the `kind` topic of `field`.
    pub(super) fn envelope(
        &self,
        field: &str,
        kind: TopicKind,
        body: Value,
    ) -> Result<String, SignError> {
        let envelope = Envelope {
            iss: self.services.key.did(),
            field: field.to_owned(),
            kind: kind.as_str().to_owned(),
            iat: now_unix(),
            jti: uuid::Uuid::new_v4().simple().to_string(),
            body,
        };
        sign_message(&self.services.key, &envelope)
    }

    /// The threat book.
    pub fn threats(&self) -> &Arc<Threats> {
        &self.threats
    }

    /// Reports a STIX bundle in `field` as this gateway: takes it here, then gossips it, or
    /// for TLP:RED sends it to each named recipient and to no one else.
    pub async fn publish_threat(
        &self,
        field: &str,
        bundle: Value,
        recipients: Vec<String>,
    ) -> Result<ThreatPublication, ThreatError> {
        self.threats.check_resharing(field, &bundle)?;
        let body = serde_json::to_value(ReportBody { bundle, recipients })
            .map_err(|error| ThreatError::new(ThreatCode::Malformed, error.to_string()))?;
        let me = self.services.key.did();
        let outcome = self.threats.receive(field, &me, &body, Origin::Local)?;
        let token = self
            .envelope(field, TopicKind::Threat, body.clone())
            .map_err(|error| ThreatError::new(ThreatCode::Store, error.to_string()))?;
        let recipients: Vec<String> = body
            .get("recipients")
            .and_then(|recipients| serde_json::from_value(recipients.clone()).ok())
            .unwrap_or_default();
        let mut deliveries = Vec::new();
        if recipients.is_empty() {
            let command = Command::Publish {
                topic: topic_name(field, TopicKind::Threat),
                data: token.clone().into_bytes(),
                reply: None,
            };
            if self.commands.send(command).await.is_err() {
                tracing::warn!("threat report taken but not gossiped: the network has stopped");
            }
        }
        for recipient in recipients {
            let result = self.deliver(field, &recipient, &token).await;
            deliveries.push(Delivery { recipient, result });
        }
        Ok(ThreatPublication {
            outcome,
            deliveries,
        })
    }

    pub(super) async fn deliver(&self, field: &str, recipient: &str, token: &str) -> String {
        let Some(peer) = PublicKey::peer_id_of(recipient) else {
            return "malformed: not a member DID".into();
        };
        // Checked where it is sent: a TLP:RED report goes only to a member verified here.
        if !self.services.peer_verified_in(peer, field) {
            return "not_member: the recipient is not verified in the field here".into();
        }
        let request = SyncRequest::Report {
            field: field.to_owned(),
            token: token.to_owned(),
        };
        match sync(&self.commands, peer, request).await {
            Ok(SyncResponse::Report { taken, .. }) => format!("taken: {taken} indicators"),
            Ok(SyncResponse::Refused { code, message }) => format!("{code}: {message}"),
            Ok(_) => "unexpected answer".into(),
            Err(reason) => format!("unreachable: {reason}"),
        }
    }

    /// Takes a report from a file: a raw STIX bundle (this gateway becomes its reporter,
    /// and it is not shared), or a member's signed threat envelope (verified as if it had
    /// arrived by name).
    pub fn import_threats(&self, field: &str, input: &Value) -> Result<ReportOutcome, ThreatError> {
        let Some(token) = input.as_str() else {
            let body = serde_json::json!({ "bundle": input });
            return self
                .threats
                .receive(field, &self.services.key.did(), &body, Origin::Import);
        };
        let refused = |code: ThreatCode, message: String| ThreatError::new(code, message);
        let (publisher, payload) = CredentialVerifier::new()
            .open_message(token.trim(), crate::threats::MAX_BUNDLE_BYTES * 2)
            .map_err(|error| refused(ThreatCode::Malformed, error.to_string()))?;
        let envelope: Envelope = serde_json::from_value(Value::Object(payload))
            .map_err(|error| refused(ThreatCode::Malformed, error.to_string()))?;
        if envelope.field != field || envelope.kind != TopicKind::Threat.as_str() {
            return Err(refused(
                ThreatCode::WrongField,
                "the envelope is not a threat report for this field".into(),
            ));
        }
        let member = publisher == self.services.key.did()
            || self.services.in_good_standing(field, &publisher);
        if !member {
            return Err(refused(
                ThreatCode::NotMember,
                format!("{publisher} is not a verified member in good standing of the field"),
            ));
        }
        let mut body = envelope.body;
        // Imported by the operator: a RED report is for us whoever it named.
        if let Some(object) = body.as_object_mut() {
            object.remove("recipients");
        }
        self.threats
            .receive(field, &publisher, &body, Origin::Import)
    }

    /// Publishes the audit chain's head in every joined field; returns it.
    pub async fn publish_checkpoint(&self) -> Result<Option<Checkpoint>, SignError> {
        let Some((seq, head)) = self.services.audit.head() else {
            return Ok(None);
        };
        let checkpoint = Checkpoint { seq, head };
        let body = serde_json::to_value(&checkpoint).unwrap_or(Value::Null);
        for field in self.services.fields.all() {
            self.publish(&field.charter.field_id(), TopicKind::Audit, body.clone())
                .await?;
        }
        Ok(Some(checkpoint))
    }

    /// Asks the members this gateway has verified for the checkpoints of ours they keep, and
    /// compares each with our chain: a checkpoint whose head differs from our entry at its
    /// position means our history was rewritten.
    pub async fn check_peer_checkpoints(&self) -> PeerCheckpoints {
        let me = self.services.key.did();
        let verifier = CredentialVerifier::new();
        let mut report = PeerCheckpoints::default();
        let records = self.services.peers.all().unwrap_or_default();
        for (peer, record) in records.into_iter().take(MAX_CHECKPOINT_PEERS) {
            let Some(field) = record
                .tiers
                .keys()
                .find(|field| self.services.verified_in(&record, field))
                .cloned()
            else {
                continue;
            };
            let request = SyncRequest::Checkpoints {
                field,
                of: me.clone(),
            };
            let Ok(SyncResponse::Checkpoints { tokens }) =
                sync(&self.commands, peer, request).await
            else {
                continue;
            };
            report.peers += 1;
            for token in tokens {
                let Ok((signer, payload)) = verifier.open_message(&token, MAX_CHECKPOINT_BYTES)
                else {
                    continue;
                };
                let checkpoint = payload
                    .get("body")
                    .cloned()
                    .and_then(|body| serde_json::from_value::<Checkpoint>(body).ok());
                let Some(checkpoint) = checkpoint.filter(|_| signer == me) else {
                    continue;
                };
                report.checked += 1;
                let ours = self.services.audit.hash_at(checkpoint.seq).ok().flatten();
                if ours.as_deref() != Some(checkpoint.head.as_str()) {
                    report.mismatches.push(CheckpointMismatch {
                        peer: record.did.clone(),
                        seq: checkpoint.seq,
                    });
                }
            }
        }
        report
    }

    /// Proposes a governance op signed by this gateway, takes it, and gossips it.
    pub async fn propose(&self, field: &str, draft: OpDraft) -> Result<GovIntake, GovError> {
        let charter = self.charter(field)?;
        if draft.kind.is_membership() && draft.kind != OpKind::Admit {
            // An applicant this gateway judged in the field may be barred too.
            let engaged = self
                .services
                .peers
                .judged_tier(&draft.target, field)
                .is_some()
                || self
                    .services
                    .governance
                    .admission_pending(field, &draft.target);
            self.services
                .governance
                .check_target(field, draft.kind, &draft.target, engaged)?;
        }
        let (signed, intake) = self.services.governance.propose(
            &charter,
            &self.services.key,
            draft.kind,
            draft.target,
            draft.reason,
            draft.types,
            draft.policy,
            now_unix(),
        )?;
        self.after_governance(field, &signed, &intake).await;
        Ok(intake)
    }

    /// Adds this gateway's signature to an op, takes it, and gossips it.
    pub async fn endorse(&self, field: &str, op: &str) -> Result<GovIntake, GovError> {
        let charter = self.charter(field)?;
        let (signed, intake) =
            self.services
                .governance
                .endorse(&charter, &self.services.key, op, now_unix())?;
        self.after_governance(field, &signed, &intake).await;
        Ok(intake)
    }

    pub(super) fn charter(&self, field: &str) -> Result<crate::charter::Charter, GovError> {
        self.services
            .fields
            .get(field)
            .map(|field| field.charter.clone())
            .ok_or_else(|| {
                GovError::new(
                    GovCode::WrongField,
                    "this gateway has not joined that field",
                )
            })
    }

    pub(super) async fn after_governance(
        &self,
        field: &str,
        signed: &SignedOp,
        intake: &GovIntake,
    ) {
        enforce(&self.services, &self.threats, signed, intake);
        match serde_json::to_value(signed) {
            Ok(body) => {
                if let Err(error) = self.publish(field, TopicKind::Gov, body).await {
                    tracing::warn!(%error, "governance op taken but not gossiped");
                }
            }
            Err(error) => tracing::warn!(%error, "governance op not serialisable"),
        }
    }

    /// Takes a status list credential and, if it is new, gossips it in every joined field
    /// that trusts its issuer.
    pub async fn import_status_list(&self, token: &str) -> Result<Intake, StatusIntakeError> {
        let intake = self.services.import_status_list(token)?;
        if let Intake::Taken(list) = &intake {
            for field in self.services.fields_trusting(&list.issuer) {
                let body = Value::String(token.trim().to_owned());
                if let Err(error) = self.publish(&field, TopicKind::Status, body).await {
                    tracing::warn!(%error, "status list taken but not gossiped");
                }
            }
        }
        Ok(intake)
    }
}

/// What publishing a threat report did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThreatPublication {
    /// What this gateway took from it.
    pub outcome: ReportOutcome,
    /// For TLP:RED, what each named recipient answered.
    pub deliveries: Vec<Delivery>,
}

/// One named recipient's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Delivery {
    /// The recipient's DID.
    pub recipient: String,
    /// `taken: N indicators`, or the refusal code and reason.
    pub result: String,
}

/// A governance op as an admin asks for it.
#[derive(Debug, Clone)]
pub struct OpDraft {
    /// What it does.
    pub kind: OpKind,
    /// Whom or what it is about.
    pub target: String,
    /// Why.
    pub reason: String,
    /// Credential types, for `trust-issuer`.
    pub types: Vec<String>,
    /// The policy text, for `amend-policy`.
    pub policy: Option<String>,
}
