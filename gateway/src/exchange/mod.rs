//! What members exchange besides handshakes: gossip on the field topics and anti-entropy on
//! `/tfc/sync/2`.
//!
//! Every gossip message is a signed envelope ([`MESSAGE_TYP`]) naming its field and topic.
//! A field's gossip runs only among peers verified in it (`net::mesh`), and a message is
//! accepted only if it came from such a peer, its topic is the field's, its envelope
//! verifies, its publisher is in good standing there (a member in the registry, or verified
//! by us), its time is plausible, its publisher is within its rate, and its body is valid for
//! its kind. A message wrong in itself (form, signature, marking) is rejected, which lowers
//! the forwarding peer's gossipsub score; one that only our own state refuses (a standing we
//! learnt of first, a rate) is ignored when relayed, and a sender over its own rate loses
//! score alone. The module's parts: `envelope` (the signed envelope and rates), `gossip`
//! (judging each message), `sync` (anti-entropy), `checkpoints` (audit heads), `publisher`
//! (what the API and the other services call). After a peer is verified, we ask it for what we lack in every field we share, and where
//! the field's other members listen. Sync answers only peers verified in the field asked
//! about; every other asker reads the same `refused`.

use std::collections::HashMap;
use std::sync::Arc;

use libp2p::PeerId;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::EndorseMode;
use crate::credential::CredentialVerifier;
use crate::handshake::GatewayEvent;
use crate::lifecycle::ServiceTask;
use crate::metrics;
use crate::net::{
    Command, ContentEvent, DataResponse, SyncRequest, SyncResponse, TopicKind, Verdict, parse_topic,
};
use crate::services::Services;
use crate::services::threats::Threats;

mod checkpoints;
mod envelope;
mod gossip;
mod holders;
mod publisher;
mod sync;
#[cfg(test)]
mod tests;

pub use checkpoints::{Checkpoint, CheckpointMismatch, PeerCheckpoints, kept_checkpoints};
pub use envelope::{Envelope, EnvelopeRejection, open_envelope};
pub use holders::Holder;
pub use publisher::{Delivery, OpDraft, Publisher, ThreatPublication};

use checkpoints::{
    CHECKPOINT_INTERVAL, MAX_CHECKPOINT_BYTES, MAX_CHECKPOINT_PEERS, keep_checkpoint,
};
use envelope::{Bucket, RATE_BURST, Rejection, intrinsic};
use gossip::enforce;
use sync::{call_connected, members, pull_members, pull_ops, pull_status_lists, sync};

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

/// The running exchange service.
pub struct Exchange {
    publisher: Publisher,
    task: ServiceTask,
}

impl Exchange {
    /// Starts the service on the network's content events and the handshake's outcomes.
    pub fn spawn(
        services: Arc<Services>,
        commands: mpsc::Sender<Command>,
        content: mpsc::Receiver<ContentEvent>,
        handshakes: broadcast::Receiver<GatewayEvent>,
        settings: ExchangeSettings,
        spaces: Arc<crate::spaces::Spaces>,
        threats: Arc<Threats>,
    ) -> Self {
        let publisher = Publisher {
            services: Arc::clone(&services),
            commands: commands.clone(),
            threats: Arc::clone(&threats),
        };
        let service = Service {
            services,
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
            tasks: JoinSet::new(),
        };
        let task = ServiceTask::spawn("exchange", |cancel| {
            service.run(content, handshakes, cancel)
        });
        Self { publisher, task }
    }

    /// A publisher for the API and other modules.
    pub fn publisher(&self) -> Publisher {
        self.publisher.clone()
    }

    /// Stops the service: the message in hand is finished, the requests under way drain.
    pub async fn shutdown(self) {
        self.task.stop().await;
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
    services: Arc<Services>,
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
    /// The requests to other gateways under way (catching up, discovery, members).
    tasks: JoinSet<()>,
}

impl Service {
    async fn run(
        mut self,
        mut content: mpsc::Receiver<ContentEvent>,
        mut handshakes: broadcast::Receiver<GatewayEvent>,
        cancel: CancellationToken,
    ) {
        let mut checkpoints = tokio::time::interval(CHECKPOINT_INTERVAL);
        let mut sweeps = tokio::time::interval(THREAT_SWEEP_INTERVAL);

        let mut published: Option<u64> = None;
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                Some(_) = self.tasks.join_next(), if !self.tasks.is_empty() => {}
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
                    let head = self.services.audit.head().map(|(seq, _)| seq);
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
        crate::lifecycle::drain(&mut self.tasks).await;
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
                self.services.metrics.count(metrics::GOSSIP, label);
                self.validated(field, message_id, source, verdict).await;
            }
            ContentEvent::DataRequest {
                peer,
                request,
                channel,
            } => {
                let (services, spaces) = (Arc::clone(&self.services), Arc::clone(&self.spaces));
                let commands = self.commands.clone();
                // Decisions verify credentials and read sealed records: off the event loop,
                // on the blocking pool. Nothing leaves before its audit entry is on disk.
                self.tasks.spawn(async move {
                    let decided = Arc::clone(&services);
                    let response = tokio::task::spawn_blocking(move || {
                        crate::services::access::answer(&decided, &spaces, peer, request)
                    })
                    .await
                    .unwrap_or_else(|_| refused("internal", "the decision failed"));
                    let response = match services.commit().await {
                        Ok(()) => response,
                        Err(error) => refused(error.code(), "the decision was not recorded"),
                    };
                    let _ = commands
                        .send(Command::DataRespond { channel, response })
                        .await;
                });
            }
            ContentEvent::SyncRequest {
                peer,
                request: SyncRequest::Members { field },
                channel,
            } => {
                let (services, commands) = (Arc::clone(&self.services), self.commands.clone());
                self.tasks.spawn(async move {
                    let response = members(&services, &commands, peer, &field).await;
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
                let mut response = self.answer_sync(peer, request);
                // A report sent by name is acknowledged only once it is on disk.
                if matches!(response, SyncResponse::Report { .. })
                    && let Err(error) = self.services.commit().await
                {
                    response = SyncResponse::Refused {
                        code: error.code().into(),
                        message: "the report was not recorded".into(),
                    };
                }
                let _ = self
                    .commands
                    .send(Command::SyncRespond { channel, response })
                    .await;
            }
        }
    }

    /// Asks a peer that has just admitted us, and we it, for what we lack in every field
    /// we share with it.
    fn catch_up(&mut self, peer: PeerId) {
        let Some(record) = self.services.peers.get(peer) else {
            return;
        };
        let fields: Vec<Arc<crate::field::Field>> = self
            .services
            .fields
            .all()
            .into_iter()
            .filter(|field| {
                self.services
                    .verified_in(&record, &field.charter.field_id())
            })
            .collect();
        let services = Arc::clone(&self.services);
        let commands = self.commands.clone();
        let publisher = self.publisher.clone();
        let discovery = self.discovery;
        self.tasks.spawn(async move {
            for field in fields {
                pull_status_lists(&services, &commands, peer, &field).await;
                pull_ops(&publisher, peer, &field).await;
                if discovery {
                    pull_members(&services, &commands, peer, &field.charter.field_id()).await;
                }
            }
        });
    }

    /// Asks one verified member of each field where the field's members listen: after
    /// admissions, newcomers meet the others without waiting for them to dial.
    fn discover(&mut self) {
        if !self.discovery {
            return;
        }
        let services = Arc::clone(&self.services);
        let commands = self.commands.clone();
        self.tasks.spawn(async move {
            let Ok(connected) = call_connected(&commands).await else {
                return;
            };
            for field in services.fields.all() {
                let id = field.charter.field_id();
                let asked = connected
                    .iter()
                    .find(|peer| services.peer_verified_in(**peer, &id));
                if let Some(peer) = asked {
                    pull_members(&services, &commands, *peer, &id).await;
                }
            }
        });
    }
}

fn refused(code: &str, reason: &str) -> DataResponse {
    DataResponse::Refused {
        code: code.into(),
        reason: reason.into(),
    }
}
