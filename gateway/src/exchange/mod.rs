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
use crate::credential::now_unix;
use crate::handshake::GatewayEvent;
use crate::lifecycle::ServiceTask;
use crate::metrics;
use crate::net::{
    Command, ContentEvent, DataResponse, SyncRequest, SyncResponse, TopicKind, Verdict, parse_topic,
};
use crate::services::Services;
use crate::services::threats::Threats;
use crate::threats::{ThreatCode, ThreatError};

mod checkpoints;
mod envelope;
mod gossip;
mod holders;
mod publisher;
mod sync;
#[cfg(test)]
mod tests;

pub use checkpoints::{Checkpoint, CheckpointMismatch, PeerCheckpoints, kept_checkpoints};
pub use envelope::{Envelope, EnvelopeRejection, Sealed, open_envelope, open_envelopes};
pub use holders::Holder;
pub use publisher::{
    AttachmentWanted, Delivery, FetchFailure, OpDraft, Publisher, ThreatPublication,
};

use checkpoints::{
    CHECKPOINT_INTERVAL, MAX_CHECKPOINT_BYTES, MAX_CHECKPOINT_PEERS, keep_checkpoint,
};
use envelope::{Bucket, RATE_BURST, Rejection, intrinsic};
use gossip::enforce;
use gossip::{Admitted, Judged, Opening, PendingThreat};
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

/// The most gossip messages judged as one batch.
pub const MAX_GOSSIP_BATCH: usize = 256;
/// The fewest messages worth a blocking task of their own.
pub const MIN_OPENING_SHARE: usize = 16;

/// A gossip message as the network delivered it.
struct GossipIn {
    field: String,
    message_id: crate::net::MessageId,
    source: PeerId,
    topic: String,
    data: Vec<u8>,
}

impl GossipIn {
    /// The gossip message `event` carries, or the event back if it carries something else.
    fn from_event(event: ContentEvent) -> Result<Self, Box<ContentEvent>> {
        match event {
            ContentEvent::Gossip {
                field,
                message_id,
                source,
                topic,
                data,
            } => Ok(Self {
                field,
                message_id,
                source,
                topic,
                data,
            }),
            other => Err(Box::new(other)),
        }
    }
}

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
            verifier: Arc::new(CredentialVerifier::new()),
            cores: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
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
    verifier: Arc<CredentialVerifier>,
    /// The cores gossip messages are opened on.
    cores: usize,
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
                    Some(event) => self.content_events(event, &mut content).await,
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

    /// Takes `first` and the gossip messages already waiting behind it (at most
    /// [`MAX_GOSSIP_BATCH`]) as one batch; another kind of event ends the batch and is taken
    /// after it.
    async fn content_events(
        &mut self,
        first: ContentEvent,
        content: &mut mpsc::Receiver<ContentEvent>,
    ) {
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(event) = next.take() {
            match GossipIn::from_event(event) {
                Ok(message) => {
                    batch.push(message);
                    if batch.len() < MAX_GOSSIP_BATCH {
                        next = content.try_recv().ok();
                    }
                }
                Err(other) => {
                    self.gossip_batch(std::mem::take(&mut batch)).await;
                    self.content_event(*other).await;
                }
            }
        }
        self.gossip_batch(batch).await;
    }

    /// Judges gossip messages in order, each in the order of the module doc: their
    /// envelopes are opened on the blocking pool across the cores, signatures in batches, and
    /// consecutive threat reports are taken by the threat book at once.
    async fn gossip_batch(&mut self, mut messages: Vec<GossipIn>) {
        if messages.is_empty() {
            return;
        }
        let mut verdicts: Vec<Option<Result<Verdict, Rejection>>> =
            messages.iter().map(|_| None).collect();
        let mut admitted = Vec::new();
        for (index, message) in messages.iter_mut().enumerate() {
            let data = std::mem::take(&mut message.data);
            match self.admit_gossip(message.source, &message.field, &message.topic, data) {
                Ok(Some(message)) => admitted.push((index, message)),
                Ok(None) => verdicts[index] = Some(Ok(Verdict::Ignore)),
                Err(rejection) => verdicts[index] = Some(Err(rejection)),
            }
        }
        let mut pending = Vec::new();
        for (index, admitted, opening) in self.open_on_cores(admitted).await {
            if admitted.kind != TopicKind::Threat {
                self.take_threats(std::mem::take(&mut pending), &mut verdicts)
                    .await;
            }
            match self.judge_opened(messages[index].source, &admitted, opening) {
                Judged::Done(verdict) => verdicts[index] = Some(verdict),
                Judged::Threat(threat) => pending.push((index, threat)),
            }
        }
        self.take_threats(pending, &mut verdicts).await;
        for (message, verdict) in messages.into_iter().zip(verdicts) {
            // A message whose opening was lost (its task panicked) is dropped unjudged.
            let verdict = verdict.unwrap_or(Ok(Verdict::Ignore));
            self.finish_gossip(message, verdict).await;
        }
    }

    /// Opens admitted messages on the blocking pool, split across the cores; returns them
    /// in order with their openings.
    async fn open_on_cores(
        &self,
        admitted: Vec<(usize, Admitted)>,
    ) -> Vec<(usize, Admitted, Opening)> {
        let share = admitted.len().div_ceil(self.cores).max(MIN_OPENING_SHARE);
        let mut shares = Vec::new();
        let mut rest = admitted;
        while rest.len() > share {
            let tail = rest.split_off(share);
            shares.push(std::mem::replace(&mut rest, tail));
        }
        shares.push(rest);
        let now = now_unix();
        let tasks: Vec<_> = shares
            .into_iter()
            .map(|share| {
                let (verifier, threats) = (Arc::clone(&self.verifier), Arc::clone(&self.threats));
                let max_bytes = self.max_message_bytes;
                tokio::task::spawn_blocking(move || {
                    let (indexes, messages): (Vec<usize>, Vec<Admitted>) =
                        share.into_iter().unzip();
                    let openings =
                        gossip::open_admitted(&verifier, &threats, &messages, max_bytes, now);
                    (indexes, messages, openings)
                })
            })
            .collect();
        let mut opened = Vec::new();
        for task in tasks {
            match task.await {
                Ok((indexes, messages, openings)) => opened.extend(
                    indexes
                        .into_iter()
                        .zip(messages)
                        .zip(openings)
                        .map(|((index, message), opening)| (index, message, opening)),
                ),
                Err(error) => tracing::error!(%error, "gossip messages not opened"),
            }
        }
        opened
    }

    /// Has the threat book take the pending reports at once, on the blocking pool, and
    /// sets their verdicts.
    async fn take_threats(
        &mut self,
        pending: Vec<(usize, PendingThreat)>,
        verdicts: &mut [Option<Result<Verdict, Rejection>>],
    ) {
        if pending.is_empty() {
            return;
        }
        let (judged, reports): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .map(|(index, threat)| {
                let publisher = threat.publisher.clone();
                (
                    (index, threat.field, threat.publisher, threat.relayed),
                    (publisher, threat.report),
                )
            })
            .unzip();
        let threats = Arc::clone(&self.threats);
        let outcomes = tokio::task::spawn_blocking(move || threats.take(reports))
            .await
            .unwrap_or_default();
        let mut outcomes = outcomes.into_iter();
        for (index, field, publisher, relayed) in judged {
            let outcome = outcomes.next().unwrap_or_else(|| {
                Err(ThreatError::new(
                    ThreatCode::Store,
                    "the threat book failed",
                ))
            });
            verdicts[index] = Some(self.threat_verdict(&field, &publisher, relayed, outcome));
        }
    }

    /// Acts on a gossip message's verdict: endorsements and discovery after an op, the
    /// metrics, and the verdict to gossipsub.
    async fn finish_gossip(&mut self, message: GossipIn, verdict: Result<Verdict, Rejection>) {
        let GossipIn {
            field,
            message_id,
            source,
            topic,
            ..
        } = message;
        if let Ok(Verdict::Accept) = verdict
            && let Some((field, TopicKind::Gov)) = parse_topic(&topic)
        {
            self.endorse_pending_in(&field).await;
            // A member admitted: meet it soon rather than in a round's time. Other
            // ops bring nobody new to meet.
            if std::mem::take(&mut self.admission_taken) {
                self.next_discovery = self.next_discovery.min(Instant::now() + DISCOVERY_SETTLE);
                self.discovery_follow_ups = DISCOVERY_FOLLOW_UPS.iter().rev().copied().collect();
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

    async fn content_event(&mut self, event: ContentEvent) {
        match event {
            event @ ContentEvent::Gossip { .. } => {
                if let Ok(message) = GossipIn::from_event(event) {
                    self.gossip_batch(vec![message]).await;
                }
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
