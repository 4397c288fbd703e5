//! What members exchange besides handshakes: gossip on the field topics and anti-entropy on
//! `/tfc/sync/2`.
//!
//! Every gossip message is a signed envelope ([`MESSAGE_TYP`]) naming its field and topic.
//! A field's gossip runs only among peers verified in it (`net::mesh`), and a message is
//! accepted only if it came from such a peer, its topic is the field's, its envelope
//! verifies, its publisher is in good standing there (a member in the registry, or verified
//! by us), its time is plausible, its publisher is within its rate, and its body is valid for
//! its kind. Anything else is rejected, which lowers the forwarding peer's gossipsub score.
//! After a peer is verified, we ask it for what we lack in every field we share, and where
//! the field's other members listen. Sync answers only peers verified in the field asked
//! about; every other asker reads the same `refused`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use crate::audit::Event;
use crate::config::EndorseMode;
use crate::credential::{CredentialVerifier, SignError, now_unix, sign_message};
use crate::governance::state::Via;
use crate::governance::{GovCode, GovError, GovIntake, OpKind, SignedOp};
use crate::handshake::{GatewayEvent, LocalParty, PeerRecord};
use crate::identity::PublicKey;
use crate::metrics;
use crate::net::{
    Command, ContentEvent, DataRequest, DataResponse, MessageId, SyncRequest, SyncResponse,
    TopicKind, Verdict, call, parse_topic, topic_name,
};
use crate::status::{Intake, StatusIntakeError};
use crate::store::Tree;
use crate::threats::book::ReportBody;
use crate::threats::{Origin, ReportOutcome, ThreatCode, ThreatError, Threats};

/// How far a message's time may stray from ours (seconds): gossip is delivered within
/// seconds, so an old message is a replay.
const MAX_MESSAGE_AGE_SECS: i64 = 600;
/// Messages a publisher may send at once, and per second after that.
const RATE_BURST: f64 = 200.0;
const RATE_PER_SEC: f64 = 50.0;
/// Takes items while their sizes fit in `budget`; what does not fit goes in the next round.
fn within_budget<T>(
    items: impl Iterator<Item = T>,
    budget: usize,
    size: impl Fn(&T) -> usize,
) -> Vec<T> {
    let mut used = 0;
    items
        .take_while(|item| {
            used += size(item) + 4;
            used <= budget
        })
        .collect()
}

/// Answers to a sync request stop growing at this share of the message limit.
const SYNC_FILL_PERCENT: usize = 75;

/// The signed envelope of every gossip message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The publisher's DID (the signer).
    pub iss: String,
    /// The field id.
    pub field: String,
    /// The topic kind: `gov`, `threat`, `status` or `audit`.
    pub kind: String,
    /// When it was published (Unix seconds).
    pub iat: i64,
    /// Makes every publication distinct, so a deliberate re-publication is not a duplicate.
    pub jti: String,
    /// What it carries.
    pub body: Value,
}

/// Why an envelope was not opened: a stable code and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeRejection {
    /// `malformed`, `wrong_topic`, `stale`, or a verification code (`bad_signature`, …).
    pub code: String,
    /// Why.
    pub message: String,
}

/// Opens a signed envelope received for `field` and `kind`, by gossip or by name: the token
/// verifies within `max_bytes`, is an envelope, names that field and kind, and was made
/// within ten minutes of `now`. Returns the signer and the envelope. Membership and rates
/// are the caller's to judge.
pub fn open_envelope(
    verifier: &CredentialVerifier,
    token: &str,
    field: &str,
    kind: TopicKind,
    max_bytes: usize,
    now: i64,
) -> Result<(String, Envelope), EnvelopeRejection> {
    let reject = |code: &str, message: String| EnvelopeRejection {
        code: code.to_owned(),
        message,
    };
    let (publisher, payload) = verifier
        .open_message(token, max_bytes)
        .map_err(|error| reject(error.code.as_str(), error.message.clone()))?;
    let envelope: Envelope = serde_json::from_value(Value::Object(payload))
        .map_err(|error| reject("malformed", format!("not an envelope: {error}")))?;
    if envelope.field != field || envelope.kind != kind.as_str() {
        return Err(reject(
            "wrong_topic",
            format!(
                "an envelope for {}/{} on {field}/{}",
                envelope.field,
                envelope.kind,
                kind.as_str()
            ),
        ));
    }
    if (now - envelope.iat).abs() > MAX_MESSAGE_AGE_SECS {
        return Err(reject(
            "stale",
            "made more than ten minutes from now".into(),
        ));
    }
    Ok((publisher, envelope))
}

/// Why a gossip message was refused (its code is counted in metrics).
#[derive(Debug)]
struct Rejection(String);

/// Whether a refusal lies in the message itself (its form, signature, marking), so that any
/// gateway, a relay included, would refuse it the same way.
fn intrinsic(code: &str) -> bool {
    matches!(
        code,
        "malformed"
            | "gov_malformed"
            | "too_large"
            | "gov_forged"
            | "bad_signature"
            | "unsupported_pattern"
            | "bad_countermeasure"
            | "tlp_violation"
            | "wrong_field"
            | "wrong_topic"
    )
}

/// Publishes signed envelopes on field topics, and sends requests to other gateways.
#[derive(Clone)]
pub struct Publisher {
    party: Arc<LocalParty>,
    commands: mpsc::Sender<Command>,
    threats: Arc<Threats>,
}

impl Publisher {
    /// Sends a data request to `peer` and waits for its decision.
    pub async fn request_data(
        &self,
        peer: PeerId,
        request: DataRequest,
    ) -> Result<DataResponse, String> {
        call(&self.commands, |reply| Command::Data {
            peer,
            request,
            reply,
        })
        .await
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
    fn envelope(&self, field: &str, kind: TopicKind, body: Value) -> Result<String, SignError> {
        let envelope = Envelope {
            iss: self.party.key.did(),
            field: field.to_owned(),
            kind: kind.as_str().to_owned(),
            iat: now_unix(),
            jti: uuid::Uuid::new_v4().simple().to_string(),
            body,
        };
        sign_message(&self.party.key, &envelope)
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
        let me = self.party.key.did();
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

    async fn deliver(&self, field: &str, recipient: &str, token: &str) -> String {
        let Some(peer) = PublicKey::peer_id_of(recipient) else {
            return "malformed: not a member DID".into();
        };
        // Checked where it is sent: a TLP:RED report goes only to a member verified here.
        if !self.party.peer_verified_in(peer, field) {
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
                .receive(field, &self.party.key.did(), &body, Origin::Import);
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
        let member =
            publisher == self.party.key.did() || self.party.in_good_standing(field, &publisher);
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
        let Some((seq, head)) = self.party.audit.head() else {
            return Ok(None);
        };
        let checkpoint = Checkpoint { seq, head };
        let body = serde_json::to_value(&checkpoint).unwrap_or(Value::Null);
        for field in self.party.fields() {
            self.publish(&field.charter.field_id(), TopicKind::Audit, body.clone())
                .await?;
        }
        Ok(Some(checkpoint))
    }

    /// Asks the members this gateway has verified for the checkpoints of ours they keep, and
    /// compares each with our chain: a checkpoint whose head differs from our entry at its
    /// position means our history was rewritten.
    pub async fn check_peer_checkpoints(&self) -> PeerCheckpoints {
        let me = self.party.key.did();
        let verifier = CredentialVerifier::new();
        let mut report = PeerCheckpoints::default();
        let records = self
            .party
            .store
            .tree(Tree::Peers)
            .and_then(|tree| tree.entries::<PeerRecord>())
            .unwrap_or_default();
        for (key, record) in records.into_iter().take(MAX_CHECKPOINT_PEERS) {
            let (Ok(peer), Some(field)) = (
                PeerId::from_bytes(&key),
                record
                    .tiers
                    .keys()
                    .find(|field| self.party.verified_in(&record, field))
                    .cloned(),
            ) else {
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
                let ours = self.party.audit.hash_at(checkpoint.seq).ok().flatten();
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
        let (signed, intake) = self.party.governance.propose(
            &charter,
            &self.party.key,
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
            self.party
                .governance
                .endorse(&charter, &self.party.key, op, now_unix())?;
        self.after_governance(field, &signed, &intake).await;
        Ok(intake)
    }

    fn charter(&self, field: &str) -> Result<crate::charter::Charter, GovError> {
        self.party
            .field(field)
            .map(|field| field.charter.clone())
            .ok_or_else(|| {
                GovError::new(
                    GovCode::WrongField,
                    "this gateway has not joined that field",
                )
            })
    }

    async fn after_governance(&self, field: &str, signed: &SignedOp, intake: &GovIntake) {
        enforce(&self.party, &self.threats, signed, intake);
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
        let intake = self.party.import_status_list(token)?;
        if let Intake::Taken(list) = &intake {
            for field in self.party.fields_trusting(&list.issuer) {
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

/// An audit checkpoint: the publisher's chain has entry `seq` with hash `head`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The entry's sequence number.
    pub seq: u64,
    /// Its hash.
    pub head: String,
}

/// A checkpoint kept in the `checkpoints` tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct KeptCheckpoint {
    head: String,
    token: String,
}

impl crate::store::Stored for KeptCheckpoint {
    const VERSION: u8 = 1;
}

fn checkpoint_key(did: &str, seq: u64) -> Vec<u8> {
    let mut key = format!("{did}/").into_bytes();
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Stores a member's checkpoint. `Ok(false)`: already held. `Err("audit_fork")`: the member
/// signed another head for the same position before.
fn keep_checkpoint(
    party: &LocalParty,
    did: &str,
    checkpoint: &Checkpoint,
    token: &str,
) -> Result<bool, &'static str> {
    let tree = party.store.tree(Tree::Checkpoints).map_err(|_| "store")?;
    let key = checkpoint_key(did, checkpoint.seq);
    match tree.get::<KeptCheckpoint>(&key) {
        Ok(Some(kept)) if kept.head == checkpoint.head => Ok(false),
        Ok(Some(kept)) => {
            tracing::error!(member = %did, seq = checkpoint.seq, kept = %kept.head, new = %checkpoint.head, "a member published two audit heads for one position: its history was rewritten");
            party.metrics.count(metrics::GOSSIP, "audit_fork");
            party.audit.record(Event {
                actor: did.to_owned(),
                action: "audit.fork".into(),
                object: checkpoint.seq.to_string(),
                decision: "alert".into(),
                reason: "audit_fork".into(),
                ..Event::default()
            });
            Err("audit_fork")
        }
        Ok(None) => {
            let kept = KeptCheckpoint {
                head: checkpoint.head.clone(),
                token: token.to_owned(),
            };
            tree.put_durable(&key, &kept).map_err(|_| "store")?;
            Ok(true)
        }
        Err(_) => Err("store"),
    }
}

/// The checkpoints of `did` this gateway keeps (signed envelopes).
fn kept_checkpoints(party: &LocalParty, did: &str) -> Vec<String> {
    let prefix = format!("{did}/");
    party
        .store
        .tree(Tree::Checkpoints)
        .and_then(|tree| tree.entries::<KeptCheckpoint>())
        .map(|entries| {
            entries
                .into_iter()
                .filter(|(key, _)| key.starts_with(prefix.as_bytes()))
                .map(|(_, kept)| kept.token)
                .collect()
        })
        .unwrap_or_default()
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

/// Puts a taken op into force: a change of standing or of the rules makes the handshake
/// service re-judge every connected peer at once, which gates the revoked and suspended.
fn enforce(party: &LocalParty, threats: &Threats, signed: &SignedOp, intake: &GovIntake) {
    let decision = match intake.progress.committed {
        Some(Via::Admin) => "commit-emergency",
        Some(Via::Quorum) => "commit",
        None => "pending",
    };
    party.audit.record(Event {
        actor: signed.op.proposer.clone(),
        action: format!("governance.{}", signed.op.kind),
        object: signed.op.target.clone(),
        decision: decision.into(),
        reason: format!(
            "op:{} signatures:{}/{}",
            intake.id, intake.progress.signatures, intake.progress.required
        ),
        ..Event::default()
    });
    if intake.progress.committed == Some(Via::Admin) {
        tracing::warn!(op = %intake.id, kind = %signed.op.kind, target = %signed.op.target, admin = %signed.op.proposer, "governance op committed on the emergency path (one admin's signature)");
    }
    if !intake.changed.is_empty() || intake.rules_changed {
        tracing::info!(op = %intake.id, kind = %signed.op.kind, changed = ?intake.changed, "governance state changed");
        party.metrics.count(
            metrics::DECISIONS,
            &format!("governance:{}", signed.op.kind),
        );
        if intake.rules_changed {
            party.facts_changed.everyone();
        } else {
            party.facts_changed.members(intake.changed.iter().cloned());
        }
        // A revoked reporter's reports stop counting; a new admin's start to.
        threats.rejudge_all();
    }
}

/// How often a verified member of each field is asked where the others listen.
const DISCOVERY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);
/// How soon after a governance change members are asked: several changes, one round.
const DISCOVERY_SETTLE: std::time::Duration = std::time::Duration::from_millis(200);
/// The rounds that follow an admission's first, after these delays: the member asked may
/// not have met the newcomer yet when the first round asks it.
const DISCOVERY_FOLLOW_UPS: [std::time::Duration; 2] = [
    std::time::Duration::from_secs(1),
    std::time::Duration::from_secs(4),
];
/// How often expired countermeasures are lifted.
const THREAT_SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);
/// How often one member's refused threat reports are audited.
const REFUSAL_AUDIT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Members asked for our checkpoints in one verification.
const MAX_CHECKPOINT_PEERS: usize = 32;
/// Largest checkpoint envelope read back.
const MAX_CHECKPOINT_BYTES: usize = 4096;
/// How often the audit head is published when it has moved.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// What the members hold of our audit checkpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PeerCheckpoints {
    /// Members that answered.
    pub peers: usize,
    /// Checkpoints compared with our chain.
    pub checked: usize,
    /// Checkpoints our chain no longer matches.
    pub mismatches: Vec<CheckpointMismatch>,
}

/// A checkpoint a member keeps that our chain no longer matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckpointMismatch {
    /// The member.
    pub peer: String,
    /// The position.
    pub seq: u64,
}

/// A token bucket per publisher.
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self, now: Instant) -> bool {
        let refill = now.duration_since(self.at).as_secs_f64() * RATE_PER_SEC;
        self.tokens = (self.tokens + refill).min(RATE_BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The running exchange service.
pub struct Exchange {
    publisher: Publisher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Exchange {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Exchange {
    /// Starts the service on the network's content events and the handshake's outcomes.
    pub fn spawn(
        party: Arc<LocalParty>,
        commands: mpsc::Sender<Command>,
        content: mpsc::Receiver<ContentEvent>,
        handshakes: broadcast::Receiver<GatewayEvent>,
        settings: ExchangeSettings,
        spaces: Arc<crate::spaces::Spaces>,
        threats: Arc<Threats>,
    ) -> Self {
        let publisher = Publisher {
            party: Arc::clone(&party),
            commands: commands.clone(),
            threats: Arc::clone(&threats),
        };
        let service = Service {
            party,
            commands,
            publisher: publisher.clone(),
            verifier: CredentialVerifier::new(),
            buckets: HashMap::new(),
            max_message_bytes: settings.max_message_bytes,
            endorse: settings.endorse,
            discovery: settings.discovery,
            next_discovery: Instant::now() + DISCOVERY_INTERVAL,
            discovery_follow_ups: Vec::new(),
            spaces,
            threats,
            refusals_audited: HashMap::new(),
            admission_taken: false,
        };
        let task = tokio::spawn(service.run(content, handshakes));
        Self { publisher, task }
    }

    /// A publisher for the API and other modules.
    pub fn publisher(&self) -> Publisher {
        self.publisher.clone()
    }

    /// Stops the service.
    pub async fn shutdown(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

/// How the exchange service runs.
#[derive(Debug, Clone, Copy)]
pub struct ExchangeSettings {
    /// Largest message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Whether to endorse admissions by ourselves.
    pub endorse: EndorseMode,
    /// Whether to ask verified members where the field's other members listen, and dial
    /// them (off: only bootstrap peers and explicit dials are connected).
    pub discovery: bool,
}

struct Service {
    party: Arc<LocalParty>,
    commands: mpsc::Sender<Command>,
    publisher: Publisher,
    verifier: CredentialVerifier,
    buckets: HashMap<String, Bucket>,
    max_message_bytes: usize,
    endorse: EndorseMode,
    discovery: bool,
    /// When members are next asked where the others listen.
    next_discovery: Instant,
    /// The delays of the follow-up rounds still due after an admission, the next last
    /// (see [`DISCOVERY_FOLLOW_UPS`]).
    discovery_follow_ups: Vec<std::time::Duration>,
    spaces: Arc<crate::spaces::Spaces>,
    threats: Arc<Threats>,
    /// When a member's refused threat report was last audited: a flood of bad reports is
    /// audited once a minute per member, not once per message.
    refusals_audited: HashMap<String, Instant>,
    /// Whether the last gossip message taken was an admission: its newcomer is met soon.
    admission_taken: bool,
}

impl Service {
    async fn run(
        mut self,
        mut content: mpsc::Receiver<ContentEvent>,
        mut handshakes: broadcast::Receiver<GatewayEvent>,
    ) {
        let mut checkpoints = tokio::time::interval(CHECKPOINT_INTERVAL);
        let mut sweeps = tokio::time::interval(THREAT_SWEEP_INTERVAL);

        let mut published: Option<u64> = None;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(self.next_discovery) => {
                    let after = self.discovery_follow_ups.pop().unwrap_or(DISCOVERY_INTERVAL);
                    self.next_discovery = Instant::now() + after;
                    self.discover();
                }
                _ = sweeps.tick() => {
                    let threats = Arc::clone(&self.threats);
                    // Lifting may write to disk: off the event loop.
                    let _ = tokio::task::spawn_blocking(move || threats.sweep()).await;
                }
                _ = checkpoints.tick() => {
                    let head = self.party.audit.head().map(|(seq, _)| seq);
                    if head != published {
                        match self.publisher.publish_checkpoint().await {
                            Ok(_) => published = head,
                            Err(error) => tracing::warn!(%error, "audit checkpoint not published"),
                        }
                    }
                }
                event = content.recv() => match event {
                    Some(event) => self.content_event(event).await,
                    None => break,
                },
                event = handshakes.recv() => match event {
                    Ok(GatewayEvent::Mutual { peer }) => self.catch_up(peer),
                    Ok(GatewayEvent::PeerVerified { record, .. }) => self.endorse_pending(&record.did).await,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "handshake events missed; anti-entropy waits for the next");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            }
        }
    }

    async fn content_event(&mut self, event: ContentEvent) {
        match event {
            ContentEvent::Gossip {
                field,
                message_id,
                source,
                topic,
                data,
            } => {
                let verdict = self.judge_gossip(source, &field, &topic, &data);
                if let Ok(Verdict::Accept) = verdict
                    && let Some((field, TopicKind::Gov)) = parse_topic(&topic)
                {
                    self.endorse_pending_in(&field).await;
                    // A member admitted: meet it soon rather than in a round's time. Other
                    // ops bring nobody new to meet.
                    if std::mem::take(&mut self.admission_taken) {
                        self.next_discovery =
                            self.next_discovery.min(Instant::now() + DISCOVERY_SETTLE);
                        self.discovery_follow_ups =
                            DISCOVERY_FOLLOW_UPS.iter().rev().copied().collect();
                    }
                }
                let (verdict, label) = match &verdict {
                    Ok(verdict @ Verdict::Accept) => (*verdict, "accept"),
                    Ok(verdict) => (*verdict, "ignore"),
                    // Over its rate: the message is dropped and its sender alone loses score.
                    // Rejecting it would also count against every relay that delivered a
                    // copy while it waited here, honest ones included.
                    Err(Rejection(code)) if code == "rate_limited" => {
                        let _ = self.commands.send(Command::Penalise(source)).await;
                        (Verdict::Ignore, code.as_str())
                    }
                    Err(Rejection(code)) => {
                        tracing::info!(%source, %topic, %code, "gossip message rejected");
                        (Verdict::Reject, code.as_str())
                    }
                };
                self.party.metrics.count(metrics::GOSSIP, label);
                self.validated(field, message_id, source, verdict).await;
            }
            ContentEvent::DataRequest {
                peer,
                request,
                channel,
            } => {
                let (party, spaces) = (Arc::clone(&self.party), Arc::clone(&self.spaces));
                // Decisions verify credentials and read sealed records: off the event loop.
                let response = tokio::task::spawn_blocking(move || {
                    crate::spaces::access::answer(&party, &spaces, peer, request)
                })
                .await
                .unwrap_or_else(|_| DataResponse::Refused {
                    code: "internal".into(),
                    reason: "the decision failed".into(),
                });
                let _ = self
                    .commands
                    .send(Command::DataRespond { channel, response })
                    .await;
            }
            ContentEvent::SyncRequest {
                peer,
                request: SyncRequest::Members { field },
                channel,
            } => {
                let (party, commands) = (Arc::clone(&self.party), self.commands.clone());
                tokio::spawn(async move {
                    let response = members(&party, &commands, peer, &field).await;
                    let _ = commands
                        .send(Command::SyncRespond { channel, response })
                        .await;
                });
            }
            ContentEvent::SyncRequest {
                peer,
                request,
                channel,
            } => {
                let response = self.answer_sync(peer, request);
                let _ = self
                    .commands
                    .send(Command::SyncRespond { channel, response })
                    .await;
            }
        }
    }

    async fn validated(
        &self,
        field: String,
        message_id: MessageId,
        source: PeerId,
        verdict: Verdict,
    ) {
        let _ = self
            .commands
            .send(Command::Validated {
                field,
                message_id,
                source,
                verdict,
            })
            .await;
    }

    /// Judges a gossip message that `field`'s gossip carried, in the order of the module
    /// doc.
    fn judge_gossip(
        &mut self,
        source: PeerId,
        mesh: &str,
        topic: &str,
        data: &[u8],
    ) -> Result<Verdict, Rejection> {
        let reject = |code: &str| Rejection(code.to_owned());
        let (field, kind) = parse_topic(topic).ok_or_else(|| reject("unknown_topic"))?;
        if field != mesh {
            return Err(reject("wrong_topic"));
        }
        if self.party.field(&field).is_none() {
            return Ok(Verdict::Ignore);
        }
        // The mesh lets in only peers verified in the field; a peer that lost its standing
        // since is refused here before its mesh slot is taken back.
        let source_gossips = self
            .party
            .peer_record(source)
            .is_some_and(|record| self.party.gossips_in(&record, &field));
        if !source_gossips {
            return Err(reject("not_member"));
        }
        let token = std::str::from_utf8(data).map_err(|_| reject("malformed"))?;
        let (publisher, envelope) = open_envelope(
            &self.verifier,
            token,
            &field,
            kind,
            self.max_message_bytes,
            now_unix(),
        )
        .map_err(|rejection| reject(&rejection.code))?;
        let publisher_peer =
            PublicKey::peer_id_of(&publisher).ok_or_else(|| reject("malformed"))?;
        // What only this gateway's own state can refuse (a standing it learnt of first, a
        // rate, a quota) punishes the publisher, never a relay: the relay judged by its own
        // state, and a penalised relay would be cut off from every later alert.
        let relayed = source != publisher_peer;
        let refuse = |code: &str| {
            if relayed {
                Ok(Verdict::Ignore)
            } else {
                Err(reject(code))
            }
        };
        if !self.party.in_good_standing(&field, &publisher)
            || (kind == TopicKind::Gov && !self.votes(&field, &publisher))
        {
            return refuse("not_member");
        }
        if !self.within_rate(&publisher) {
            return refuse("rate_limited");
        }
        let verdict = match kind {
            TopicKind::Status => self.status_message(&envelope.body),
            TopicKind::Gov => self.governance_message(&field, envelope.body),
            TopicKind::Audit => self.checkpoint_message(&publisher, &envelope.body, token),
            TopicKind::Threat => self.threat_message(&field, &publisher, &envelope.body),
        };
        match verdict {
            Err(Rejection(code)) if relayed && !intrinsic(&code) => Ok(Verdict::Ignore),
            verdict => verdict,
        }
    }

    /// Takes a member's threat report; a refused one is also reported locally. A report
    /// over its publisher's rate or quota here penalises only the publisher: a relay that
    /// forwarded it could not know.
    fn threat_message(
        &mut self,
        field: &str,
        publisher: &str,
        body: &Value,
    ) -> Result<Verdict, Rejection> {
        match self.threats.receive(field, publisher, body, Origin::Gossip) {
            Ok(_) => Ok(Verdict::Accept),
            Err(error) if error.code == ThreatCode::Replayed => Ok(Verdict::Ignore),
            Err(error) => {
                self.report_refusal(field, publisher, &error);
                Err(Rejection(error.code.as_str().to_owned()))
            }
        }
    }

    fn report_refusal(&mut self, field: &str, publisher: &str, error: &ThreatError) {
        tracing::warn!(%publisher, code = error.code.as_str(), %error, "threat report refused");
        let now = Instant::now();
        let due = self
            .refusals_audited
            .get(publisher)
            .is_none_or(|at| now.duration_since(*at) >= REFUSAL_AUDIT_INTERVAL);
        if due {
            self.refusals_audited.insert(publisher.to_owned(), now);
            self.party.audit.record(Event {
                actor: publisher.to_owned(),
                action: "threat.report".into(),
                object: field.to_owned(),
                decision: "refused".into(),
                reason: error.code.as_str().into(),
                ..Event::default()
            });
        }
    }

    /// Keeps a member's audit checkpoint; a second, different head for the same position
    /// means the member rewrote its history: alert, and refuse the message.
    fn checkpoint_message(
        &self,
        publisher: &str,
        body: &Value,
        token: &str,
    ) -> Result<Verdict, Rejection> {
        let checkpoint: Checkpoint =
            serde_json::from_value(body.clone()).map_err(|_| Rejection("malformed".into()))?;
        match keep_checkpoint(&self.party, publisher, &checkpoint, token) {
            Ok(true) => Ok(Verdict::Accept),
            Ok(false) => Ok(Verdict::Ignore),
            Err(error) => Err(Rejection(error.into())),
        }
    }

    fn governance_message(&mut self, field: &str, body: Value) -> Result<Verdict, Rejection> {
        let signed: SignedOp =
            serde_json::from_value(body).map_err(|_| Rejection("gov_malformed".into()))?;
        let Some(joined) = self.party.field(field) else {
            return Ok(Verdict::Ignore);
        };
        match self
            .party
            .governance
            .intake(&joined.charter, signed.clone(), now_unix())
        {
            Ok(intake) => {
                enforce(&self.party, &self.threats, &signed, &intake);
                self.admission_taken = signed.op.kind == OpKind::Admit;
                Ok(Verdict::Accept)
            }
            Err(error) if error.code == GovCode::Replayed => Ok(Verdict::Ignore),
            Err(error) => Err(Rejection(error.code.as_str().to_owned())),
        }
    }

    /// Whether `did` is a voting member of `field` (founder, admin or admitted, in good
    /// standing).
    fn votes(&self, field: &str, did: &str) -> bool {
        self.party
            .governance
            .standing(field, did)
            .is_some_and(|standing| standing.in_good_standing())
    }

    /// Endorses, in every field, the pending admissions of `did`.
    async fn endorse_pending(&self, did: &str) {
        for field in self.party.fields() {
            self.endorse_pending_where(&field.charter.field_id(), |target| target == did)
                .await;
        }
    }

    /// Endorses the pending admissions of a field.
    async fn endorse_pending_in(&self, field: &str) {
        self.endorse_pending_where(field, |_| true).await;
    }

    /// Signs each pending `admit` in `field` whose target `wanted` accepts, when endorsing is
    /// automatic, this gateway votes there, has not signed yet, and its own judgement of the
    /// newcomer gives it a tier in the field: admission is members' independent agreement.
    async fn endorse_pending_where(&self, field: &str, wanted: impl Fn(&str) -> bool) {
        let me = self.party.key.did();
        if self.endorse != EndorseMode::Auto || !self.votes(field, &me) {
            return;
        }
        for (id, signed, progress) in self.party.governance.ops(field) {
            let op = &signed.op;
            if op.kind != OpKind::Admit
                || progress.committed.is_some()
                || signed.signatures.contains_key(&me)
                || !wanted(&op.target)
                || !self.verified_in(&op.target, field)
            {
                continue;
            }
            match self.publisher.endorse(field, &id).await {
                Ok(intake) => {
                    tracing::info!(op = %id, target = %op.target, signatures = intake.progress.signatures, required = intake.progress.required, "admission endorsed")
                }
                Err(error) => tracing::warn!(op = %id, %error, "admission not endorsed"),
            }
        }
    }

    /// Whether our own last judgement gives `did` a tier in `field`.
    fn verified_in(&self, did: &str, field: &str) -> bool {
        PublicKey::peer_id_named(did)
            .and_then(|peer| self.party.peer_record(peer))
            .is_some_and(|record| {
                record.did == did && record.tiers.get(field).is_some_and(|tier| *tier >= 1)
            })
    }

    fn status_message(&self, body: &Value) -> Result<Verdict, Rejection> {
        let token = body.as_str().ok_or_else(|| Rejection("malformed".into()))?;
        match self.party.import_status_list(token) {
            Ok(Intake::Taken(_)) => Ok(Verdict::Accept),
            Ok(Intake::Unchanged(_)) => Ok(Verdict::Ignore),
            Err(error) => Err(Rejection(error.code().to_owned())),
        }
    }

    fn within_rate(&mut self, publisher: &str) -> bool {
        let now = Instant::now();
        self.buckets
            .entry(publisher.to_owned())
            .or_insert(Bucket {
                tokens: RATE_BURST,
                at: now,
            })
            .take(now)
    }

    fn answer_sync(&self, peer: PeerId, request: SyncRequest) -> SyncResponse {
        let field = match &request {
            SyncRequest::StatusLists { field, .. }
            | SyncRequest::Ops { field, .. }
            | SyncRequest::Checkpoints { field, .. }
            | SyncRequest::Report { field, .. }
            | SyncRequest::Members { field } => field,
        };
        // One refusal for "not verified there" and "not a field of ours": no oracle.
        let Some(joined) = self
            .party
            .field(field)
            .filter(|_| self.party.peer_verified_in(peer, field))
        else {
            return refused();
        };
        let budget = self.max_message_bytes * SYNC_FILL_PERCENT / 100;
        match request {
            SyncRequest::StatusLists { have, .. } => {
                let held = match self.party.status_lists_for(&joined) {
                    Ok(held) => held,
                    Err(error) => {
                        return SyncResponse::Refused {
                            code: error.code().into(),
                            message: error.to_string(),
                        };
                    }
                };
                let lacking = held
                    .into_iter()
                    .filter(|(id, issued_at, _)| {
                        have.get(id).is_none_or(|theirs| theirs < issued_at)
                    })
                    .map(|(_, _, token)| token);
                SyncResponse::StatusLists {
                    tokens: within_budget(lacking, budget, |token| token.len()),
                }
            }
            SyncRequest::Checkpoints { of, .. } => SyncResponse::Checkpoints {
                tokens: within_budget(
                    kept_checkpoints(&self.party, &of).into_iter(),
                    budget,
                    String::len,
                ),
            },
            SyncRequest::Report { field, token } => self.direct_report(peer, &field, &token),
            // Answered by its own task (it asks the swarm where members listen).
            SyncRequest::Members { .. } => refused(),
            SyncRequest::Ops { field, have } => {
                let lacking = self.party.governance.missing(&field, &have).into_iter();
                SyncResponse::Ops {
                    ops: within_budget(lacking, budget, |op| {
                        serde_json::to_vec(op).map_or(budget, |bytes| bytes.len())
                    }),
                }
            }
        }
    }

    /// Takes a report a member sent us by name: it must be signed by that member.
    fn direct_report(&self, peer: PeerId, field: &str, token: &str) -> SyncResponse {
        let refused = |code: &str, message: String| SyncResponse::Refused {
            code: code.into(),
            message,
        };
        let opened = open_envelope(
            &self.verifier,
            token,
            field,
            TopicKind::Threat,
            self.max_message_bytes,
            now_unix(),
        );
        let (publisher, envelope) = match opened {
            Ok(opened) => opened,
            Err(rejection) => return refused(&rejection.code, rejection.message),
        };
        if PublicKey::peer_id_named(&publisher) != Some(peer) {
            return refused(
                "wrong_topic",
                "a direct report is the sender's own threat envelope for this field".into(),
            );
        }
        match self
            .threats
            .receive(field, &publisher, &envelope.body, Origin::Direct)
        {
            Ok(outcome) => SyncResponse::Report {
                taken: outcome.taken,
                unchanged: outcome.unchanged,
            },
            Err(error) => refused(error.code.as_str(), error.message),
        }
    }

    /// Asks a peer that has just admitted us, and we it, for what we lack in every field
    /// we share with it.
    fn catch_up(&self, peer: PeerId) {
        let Some(record) = self.party.peer_record(peer) else {
            return;
        };
        let fields: Vec<Arc<crate::field::Field>> = self
            .party
            .fields()
            .into_iter()
            .filter(|field| self.party.verified_in(&record, &field.charter.field_id()))
            .collect();
        let party = Arc::clone(&self.party);
        let commands = self.commands.clone();
        let publisher = self.publisher.clone();
        let discovery = self.discovery;
        tokio::spawn(async move {
            for field in fields {
                pull_status_lists(&party, &commands, peer, &field).await;
                pull_ops(&publisher, peer, &field).await;
                if discovery {
                    pull_members(&party, &commands, peer, &field.charter.field_id()).await;
                }
            }
        });
    }

    /// Asks one verified member of each field where the field's members listen: after
    /// admissions, newcomers meet the others without waiting for them to dial.
    fn discover(&self) {
        if !self.discovery {
            return;
        }
        let party = Arc::clone(&self.party);
        let commands = self.commands.clone();
        tokio::spawn(async move {
            let Ok(connected) = call_connected(&commands).await else {
                return;
            };
            for field in party.fields() {
                let id = field.charter.field_id();
                let asked = connected
                    .iter()
                    .find(|peer| party.peer_verified_in(**peer, &id));
                if let Some(peer) = asked {
                    pull_members(&party, &commands, *peer, &id).await;
                }
            }
        });
    }
}

async fn pull_status_lists(
    party: &LocalParty,
    commands: &mpsc::Sender<Command>,
    peer: PeerId,
    field: &crate::field::Field,
) {
    let have: BTreeMap<String, i64> = match party.status_lists_for(field) {
        Ok(held) => held.into_iter().map(|(id, at, _)| (id, at)).collect(),
        Err(error) => {
            tracing::warn!(%error, "status lists unreadable; sync skipped");
            return;
        }
    };
    let request = SyncRequest::StatusLists {
        field: field.charter.field_id(),
        have,
    };
    match sync(commands, peer, request).await {
        Ok(SyncResponse::StatusLists { tokens }) => {
            for token in tokens {
                party.metrics.count(metrics::SYNCED, "status_list");
                if let Err(error) = party.import_status_list(&token) {
                    tracing::info!(%peer, code = error.code(), "synced status list refused");
                }
            }
        }
        Ok(other) => unexpected(peer, other),
        Err(reason) => tracing::info!(%peer, %reason, "sync failed"),
    }
}

/// Pulls the ops a peer holds that we lack, and gossips the ones we took: after a partition
/// heals, the members on our side that are not connected to the other side learn them too.
async fn pull_ops(publisher: &Publisher, peer: PeerId, field: &crate::field::Field) {
    let party = &publisher.party;
    let commands = &publisher.commands;
    let id = field.charter.field_id();
    let request = SyncRequest::Ops {
        have: party.governance.digest(&id),
        field: id.clone(),
    };
    match sync(commands, peer, request).await {
        Ok(SyncResponse::Ops { ops }) => {
            for signed in ops {
                party.metrics.count(metrics::SYNCED, "gov_op");
                match party
                    .governance
                    .intake(&field.charter, signed.clone(), now_unix())
                {
                    Ok(intake) => publisher.after_governance(&id, &signed, &intake).await,
                    Err(error) if error.code == GovCode::Replayed => {}
                    Err(error) => tracing::info!(%peer, %error, "synced governance op refused"),
                }
            }
        }
        Ok(other) => unexpected(peer, other),
        Err(reason) => tracing::info!(%peer, %reason, "sync failed"),
    }
}

/// The answer every asker not verified in the field gets, whether or not we belong to it.
fn refused() -> SyncResponse {
    SyncResponse::Refused {
        code: crate::handshake::REFUSED.into(),
        message: crate::handshake::REFUSED.into(),
    }
}

/// Members asked for at most per answer.
const MAX_MEMBERS_ANSWERED: usize = 64;

/// Answers a members request with the members of `field` we are connected to and verified,
/// and where they listen. Who learns what: a member in the registry, or one up for
/// admission, learns of every member; an applicant, of the founders and admins who screen
/// it (the charter names them anyway), never of other members or applicants; anyone else
/// is refused.
async fn members(
    party: &LocalParty,
    commands: &mpsc::Sender<Command>,
    asker: PeerId,
    field: &str,
) -> SyncResponse {
    let Some(joined) = party.field(field) else {
        return refused();
    };
    let Some(asker_did) = PublicKey::did_of_peer(&asker) else {
        return refused();
    };
    if !party.peer_verified_in(asker, field) {
        return refused();
    }
    let sees_everyone = party.member_standing(&joined, &asker_did);
    let listed = |peer: &PeerId| {
        PublicKey::did_of_peer(peer).is_some_and(|did| {
            let registered = party
                .governance
                .standing(field, &did)
                .is_some_and(|standing| standing.in_good_standing());
            let screener = joined.charter.is_founder(&did) || joined.charter.is_admin(&did);
            registered && (sees_everyone || screener)
        }) && party.peer_verified_in(*peer, field)
    };
    let Ok(connected) = call_connected(commands).await else {
        return refused();
    };
    let verified: Vec<PeerId> = connected
        .into_iter()
        .filter(|peer| *peer != asker && listed(peer))
        .take(MAX_MEMBERS_ANSWERED)
        .collect();
    let (reply, answer) = tokio::sync::oneshot::channel();
    if commands
        .send(Command::PeerAddresses(verified, reply))
        .await
        .is_err()
    {
        return refused();
    }
    SyncResponse::Members {
        members: answer.await.unwrap_or_default(),
    }
}

/// Asks `peer` where `field`'s members listen and dials those we are not connected to,
/// if they are members in good standing by our own registry.
async fn pull_members(
    party: &LocalParty,
    commands: &mpsc::Sender<Command>,
    peer: PeerId,
    field: &str,
) {
    let request = SyncRequest::Members {
        field: field.to_owned(),
    };
    let Some(joined) = party.field(field) else {
        return;
    };
    match sync(commands, peer, request).await {
        Ok(SyncResponse::Members { members }) => {
            for member in members.iter().take(MAX_MEMBERS_ANSWERED) {
                let Some((member, addresses)) = member.parse() else {
                    continue;
                };
                let standing = PublicKey::did_of_peer(&member)
                    .is_some_and(|did| party.member_standing(&joined, &did));
                if standing {
                    let dial = Command::DialPeer {
                        peer: member,
                        addresses,
                    };
                    let _ = commands.send(dial).await;
                }
            }
        }
        Ok(other) => unexpected(peer, other),
        Err(reason) => tracing::info!(%peer, %reason, "members not asked"),
    }
}

/// The peers the swarm has a connection to.
async fn call_connected(commands: &mpsc::Sender<Command>) -> Result<Vec<PeerId>, ()> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    commands
        .send(Command::ConnectedPeers(reply))
        .await
        .map_err(drop)?;
    answer.await.map_err(drop)
}

fn unexpected(peer: PeerId, response: SyncResponse) {
    match response {
        SyncResponse::Refused { code, message } => {
            tracing::info!(%peer, %code, %message, "sync refused");
        }
        _ => tracing::info!(%peer, "sync answered with another kind"),
    }
}

async fn sync(
    commands: &mpsc::Sender<Command>,
    peer: PeerId,
    request: SyncRequest,
) -> Result<SyncResponse, String> {
    call(commands, |reply| Command::Sync {
        peer,
        request,
        reply,
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::charter::Charter;
    use crate::credential::{StatusList, StatusPurpose};
    use crate::field::Field;
    use crate::identity::{KeyAlgorithm, KeyPair};
    use crate::store::Store;

    struct Fixture {
        service: Service,
        issuer: KeyPair,
        field: String,
        _dir: tempfile::TempDir,
    }

    /// A service in a one-field party, and a member of that field.
    fn fixture() -> (Fixture, KeyPair) {
        let dir = tempfile::tempdir().unwrap();
        let issuer = KeyPair::generate(KeyAlgorithm::Ed25519);
        let text = format!(
            "name = \"f\"\nfounders = [\"{did}\"]\nquorum = 1\n[[issuers]]\ndid = \"{did}\"\nname = \"I\"\ntypes = [\"CreditRatingCredential\"]\n[tiers.prescreening]\nrequire = [\"CreditRatingCredential\"]\n",
            did = issuer.did()
        );
        let signature = Charter::parse(&text, dir.path())
            .unwrap()
            .sign(&issuer)
            .unwrap();
        let path = dir.path().join("f.toml");
        std::fs::write(&path, format!("{text}{signature}")).unwrap();
        let field = Field::load(&path).unwrap();
        let field_id = field.charter.field_id();
        let store = Store::temporary().unwrap();
        let member = KeyPair::generate(KeyAlgorithm::Ed25519);
        let record = PeerRecord {
            did: member.did(),
            tiers: [(field_id.clone(), 1)].into(),
            presented: Default::default(),
            evaluated_at: now_unix(),
            next_change: None,
            corporate_number: None,
            name: None,
        };
        store
            .tree(Tree::Peers)
            .unwrap()
            .put(member.peer_id().unwrap().to_bytes().as_slice(), &record)
            .unwrap();
        let party = LocalParty::new(
            KeyPair::generate(KeyAlgorithm::Ed25519),
            vec![field],
            vec![],
            store,
            10,
        )
        .unwrap();
        let (commands, _) = mpsc::channel(1);
        let party_store = party.store.clone();
        let party = Arc::new(party);
        let threats = Arc::new(
            Threats::load(Arc::clone(&party), crate::config::ThreatsConfig::default()).unwrap(),
        );
        let fixture = Fixture {
            service: Service {
                publisher: Publisher {
                    party: Arc::clone(&party),
                    commands: commands.clone(),
                    threats: Arc::clone(&threats),
                },
                threats,
                refusals_audited: HashMap::new(),
                admission_taken: false,
                party,
                commands,
                verifier: CredentialVerifier::new(),
                buckets: HashMap::new(),
                max_message_bytes: 1024 * 1024,
                endorse: EndorseMode::Manual,
                discovery: false,
                next_discovery: Instant::now(),
                discovery_follow_ups: Vec::new(),
                spaces: Arc::new(
                    crate::spaces::Spaces::open(
                        &party_store,
                        &dir.path().join(crate::spaces::DATA_KEY_FILE),
                        10,
                    )
                    .unwrap(),
                ),
            },
            issuer,
            field: field_id,
            _dir: dir,
        };
        (fixture, member)
    }

    fn envelope(key: &KeyPair, field: &str, kind: &str, iat: i64, body: Value) -> Vec<u8> {
        let envelope = Envelope {
            iss: key.did(),
            field: field.into(),
            kind: kind.into(),
            iat,
            jti: uuid::Uuid::new_v4().to_string(),
            body,
        };
        sign_message(key, &envelope).unwrap().into_bytes()
    }

    impl Fixture {
        /// Records `key`'s gateway as verified at tier 1 in the field: it may forward gossip.
        fn verified(&self, key: &KeyPair) {
            let record = PeerRecord {
                did: key.did(),
                tiers: [(self.field.clone(), 1)].into(),
                presented: Default::default(),
                evaluated_at: now_unix(),
                next_change: None,
                corporate_number: None,
                name: None,
            };
            self.service
                .party
                .put_peer_record(key.peer_id().unwrap(), &record)
                .unwrap();
        }

        fn list(&self, issued_at: i64) -> Value {
            let list = StatusList::new(
                "urn:list",
                &self.issuer.did(),
                StatusPurpose::Revocation,
                0,
                issued_at,
            );
            Value::String(list.issue(&self.issuer).unwrap())
        }

        fn judge(
            &mut self,
            from: &KeyPair,
            topic_kind: TopicKind,
            data: &[u8],
        ) -> Result<Verdict, String> {
            let source = from.peer_id().unwrap();
            let topic = topic_name(&self.field, topic_kind);
            self.service
                .judge_gossip(source, &self.field, &topic, data)
                .map_err(|Rejection(code)| code)
        }
    }

    #[test]
    fn a_members_status_list_is_taken_once() {
        let (mut fixture, member) = fixture();
        let body = fixture.list(now_unix() - 10);
        let first = envelope(&member, &fixture.field, "status", now_unix(), body.clone());
        assert_eq!(
            fixture.judge(&member, TopicKind::Status, &first),
            Ok(Verdict::Accept)
        );
        let again = envelope(&member, &fixture.field, "status", now_unix(), body);
        assert_eq!(
            fixture.judge(&member, TopicKind::Status, &again),
            Ok(Verdict::Ignore)
        );
        assert_eq!(fixture.service.party.status_list_summaries().len(), 1);
    }

    #[test]
    fn invalid_messages_are_rejected_with_their_code() {
        let (mut fixture, member) = fixture();
        let stranger = KeyPair::generate(KeyAlgorithm::Ed25519);
        let field = fixture.field.clone();
        let now = now_unix();
        let body = fixture.list(now - 10);
        // A stranger's message: refused from the stranger itself; from a member that relays
        // it, ignored (the member may have judged by older facts: a revocation it had not
        // heard of yet), so that no relay is penalised for what only we knew.
        let stranger_says = envelope(&stranger, &field, "status", now, body.clone());
        assert_eq!(
            fixture.judge(&stranger, TopicKind::Status, &stranger_says),
            Err("not_member".to_owned())
        );
        assert_eq!(
            fixture.judge(&member, TopicKind::Status, &stranger_says),
            Ok(Verdict::Ignore)
        );
        let cases = [
            (
                envelope(&member, &field, "gov", now, body.clone()),
                "wrong_topic",
            ),
            (
                envelope(&member, "other", "status", now, body.clone()),
                "wrong_topic",
            ),
            (
                envelope(&member, &field, "status", now - 3600, body.clone()),
                "stale",
            ),
            (
                envelope(&member, &field, "status", now, Value::Bool(true)),
                "malformed",
            ),
            (
                envelope(&member, &field, "status", now, Value::String("x".into())),
                "malformed",
            ),
            (b"\xff\xfe".to_vec(), "malformed"),
            (b"a.b.c".to_vec(), "malformed"),
        ];
        for (data, code) in cases {
            assert_eq!(
                fixture.judge(&member, TopicKind::Status, &data),
                Err(code.to_owned())
            );
        }
        // A list from an issuer the field does not trust.
        let foreign = StatusList::new("urn:x", &stranger.did(), StatusPurpose::Revocation, 0, now);
        let data = envelope(
            &member,
            &field,
            "status",
            now,
            Value::String(foreign.issue(&stranger).unwrap()),
        );
        assert_eq!(
            fixture.judge(&member, TopicKind::Status, &data),
            Err("untrusted_issuer".to_owned())
        );
        // A topic of a field not joined is none of our business.
        let source = member.peer_id().unwrap();
        assert_eq!(
            fixture
                .service
                .judge_gossip(
                    source,
                    "feed",
                    &topic_name("feed", TopicKind::Status),
                    &data
                )
                .map_err(|Rejection(code)| code),
            Ok(Verdict::Ignore)
        );
        assert!(fixture.service.party.status_list_summaries().is_empty());
    }

    #[test]
    fn the_rate_bucket_refills_at_its_rate_up_to_its_burst() {
        let start = Instant::now();
        let mut bucket = Bucket {
            tokens: RATE_BURST,
            at: start,
        };
        let taken = (0..RATE_BURST as usize + 10)
            .filter(|_| bucket.take(start))
            .count();
        assert_eq!(taken, RATE_BURST as usize);
        let later = start + std::time::Duration::from_secs(1);
        let refilled = (0..RATE_BURST as usize)
            .filter(|_| bucket.take(later))
            .count();
        assert_eq!(refilled, RATE_PER_SEC as usize);
        let much_later = later + std::time::Duration::from_secs(3600);
        let capped = (0..2 * RATE_BURST as usize)
            .filter(|_| bucket.take(much_later))
            .count();
        assert_eq!(capped, RATE_BURST as usize);
    }

    #[test]
    fn a_reporter_over_its_threat_rate_is_rejected_but_its_relays_are_not() {
        let (mut fixture, member) = fixture();
        let config = crate::config::ThreatsConfig {
            reporter_burst: 1,
            reporter_rate: 0.001,
            ..Default::default()
        };
        fixture.service.threats =
            Arc::new(Threats::load(Arc::clone(&fixture.service.party), config).unwrap());
        let relay = KeyPair::generate(KeyAlgorithm::Ed25519);
        fixture.verified(&relay);
        let field = fixture.field.clone();
        let report = |n: u8| {
            let now = now_unix();
            let draft = crate::threats::IndicatorDraft {
                name: "n".into(),
                description: String::new(),
                pattern: format!("[ipv4-addr:value = '192.0.2.{n}']"),
                severity: crate::threats::Severity::High,
                countermeasure: crate::threats::Countermeasure {
                    action: crate::threats::ActionKind::BlockAddress,
                    tier: None,
                    credential: None,
                },
                tlp: crate::threats::Tlp::Green,
                confidence: None,
                valid_from: now,
                valid_until: now + 60,
            };
            let bundle = crate::threats::compose(&draft, now).unwrap();
            envelope(
                &member,
                &field,
                "threat",
                now,
                serde_json::json!({ "bundle": bundle }),
            )
        };
        assert_eq!(
            fixture.judge(&member, TopicKind::Threat, &report(1)),
            Ok(Verdict::Accept)
        );
        assert_eq!(
            fixture.judge(&relay, TopicKind::Threat, &report(2)),
            Ok(Verdict::Ignore)
        );
        assert_eq!(
            fixture.judge(&member, TopicKind::Threat, &report(3)),
            Err("rate_limited".to_owned())
        );
    }

    #[test]
    fn a_publisher_over_its_rate_is_rejected_but_its_relays_are_not() {
        let (mut fixture, member) = fixture();
        let relay = KeyPair::generate(KeyAlgorithm::Ed25519);
        fixture.verified(&relay);
        let field = fixture.field.clone();
        // Emptied, and dated ahead so that it cannot refill while the test runs.
        fixture.service.buckets.insert(
            member.did(),
            Bucket {
                tokens: 0.0,
                at: Instant::now() + std::time::Duration::from_secs(3600),
            },
        );
        let data = envelope(&member, &field, "threat", now_unix(), Value::Null);
        assert_eq!(
            fixture.judge(&member, TopicKind::Threat, &data),
            Err("rate_limited".to_owned())
        );
        assert_eq!(
            fixture.judge(&relay, TopicKind::Threat, &data),
            Ok(Verdict::Ignore)
        );
    }

    #[test]
    fn sync_serves_members_what_they_lack() {
        let (fixture, member) = fixture();
        let issued_at = now_unix() - 10;
        let token = fixture.list(issued_at);
        fixture
            .service
            .party
            .import_status_list(token.as_str().unwrap())
            .unwrap();
        let ask = |have: BTreeMap<String, i64>| SyncRequest::StatusLists {
            field: fixture.field.clone(),
            have,
        };
        let peer = member.peer_id().unwrap();
        assert_eq!(
            fixture.service.answer_sync(peer, ask(BTreeMap::new())),
            SyncResponse::StatusLists {
                tokens: vec![token.as_str().unwrap().to_owned()]
            }
        );
        let held = [("urn:list".to_owned(), issued_at)].into();
        assert_eq!(
            fixture.service.answer_sync(peer, ask(held)),
            SyncResponse::StatusLists { tokens: vec![] }
        );
        // A stranger, and a member asking of a field we never joined, read the same.
        let stranger = KeyPair::generate(KeyAlgorithm::Ed25519).peer_id().unwrap();
        let refusal = fixture.service.answer_sync(stranger, ask(BTreeMap::new()));
        assert_eq!(refusal, refused());
        let elsewhere = SyncRequest::StatusLists {
            field: "0".repeat(64),
            have: BTreeMap::new(),
        };
        assert_eq!(fixture.service.answer_sync(peer, elsewhere), refusal);
    }

    #[test]
    fn gossip_forwarded_by_a_peer_not_verified_in_the_field_is_rejected() {
        let (mut fixture, member) = fixture();
        let stranger = KeyPair::generate(KeyAlgorithm::Ed25519);
        let body = fixture.list(now_unix() - 10);
        let data = envelope(&member, &fixture.field.clone(), "status", now_unix(), body);
        assert_eq!(
            fixture.judge(&stranger, TopicKind::Status, &data),
            Err("not_member".to_owned())
        );
        // The same message from the member itself is taken.
        assert_eq!(
            fixture.judge(&member, TopicKind::Status, &data),
            Ok(Verdict::Accept)
        );
    }

    #[test]
    fn a_second_head_for_one_position_is_a_fork() {
        let (fixture, member) = fixture();
        let party = &fixture.service.party;
        let did = member.did();
        let first = Checkpoint {
            seq: 7,
            head: "a".repeat(64),
        };
        assert_eq!(keep_checkpoint(party, &did, &first, "token-1"), Ok(true));
        assert_eq!(keep_checkpoint(party, &did, &first, "token-1"), Ok(false));
        let rewritten = Checkpoint {
            seq: 7,
            head: "b".repeat(64),
        };
        assert_eq!(
            keep_checkpoint(party, &did, &rewritten, "token-2"),
            Err("audit_fork")
        );
        assert_eq!(kept_checkpoints(party, &did), ["token-1"]);
        assert!(
            party
                .audit
                .since(0)
                .unwrap()
                .iter()
                .any(|entry| entry.action == "audit.fork" && entry.actor == did)
        );
    }
}
