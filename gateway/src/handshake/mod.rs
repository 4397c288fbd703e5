//! The mutual handshake (docs/PROTOCOL.md, "Handshake"), `/tfc/handshake/2`. On every new
//! connection the side whose PeerId sorts first (the opener) says hello with its DID and a
//! nonce; the other side answers with its own and a proof of key. Neither hello lists a
//! field. Then the two disclose in stages ([`negotiation`]): each names only fields where the
//! other has standing, asks only for the credential types the charter lets it receive, and
//! presents only what it was asked for and may give. Each side judges what it received,
//! records the tier per field and tells the other its verdict.
//!
//! A peer verified in no field it shares with us (a stranger, a flagged applicant, a barred
//! member) is disconnected and gated; one that does not finish within the grace window is
//! disconnected. Results are re-judged when they are due to change, and asked again when the
//! fields or a peer's standing change. Every presentation sent or received is written to
//! the disclosure log.

mod judging;
#[cfg(test)]
mod negotiation_tests;
mod opener;
mod service;
mod view;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::PeerId;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;

use crate::credential::CredentialVerifier;
use crate::identity::PublicKey;
use crate::lifecycle::ServiceTask;
use crate::negotiation::{Direction, Negotiation, Refusal};
use crate::net::{Command, NetworkEvent};
use crate::services::{PeerRecord, REFUSED, Services};
use crate::store::StoreError;
use service::{Gate, Service};
use view::{PartyView, StepWrites};

/// The refusal code of a handshake cut short by the network rather than by the peer.
const UNREACHABLE: &str = "unreachable";
/// Events buffered for subscribers (API, tests).
const EVENT_DEPTH: usize = 1024;

/// What the handshake reports to the rest of the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayEvent {
    /// The network listens on this address.
    Listening(libp2p::Multiaddr),
    /// A peer's last connection closed.
    PeerGone {
        /// The peer.
        peer: PeerId,
    },
    /// A peer is verified in some field (at connection, or judged again).
    PeerVerified {
        /// The peer.
        peer: PeerId,
        /// What we now know of it.
        record: PeerRecord,
    },
    /// Both sides verified each other in some field. Exchanges that need the peer to know
    /// us (anti-entropy) start here.
    Mutual {
        /// The peer.
        peer: PeerId,
    },
    /// A peer was refused and gated (no shared field, no tier, a bad presentation, a bar)
    /// or dropped (no handshake within the grace window).
    PeerRefused {
        /// The peer.
        peer: PeerId,
        /// A stable code.
        code: String,
        /// Why.
        message: String,
    },
}

/// The service's shared half: what both the service loop and the handshakes it opens use.
struct Shared {
    services: Arc<Services>,
    did: String,
    /// Our PeerId (none if the key is not Ed25519, which a gateway's always is).
    peer_id: Option<PeerId>,
    verifier: CredentialVerifier,
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<GatewayEvent>,
    /// Peers this service gated, with the DID it barred (a revoked, suspended or
    /// threat-blocked member) if that was the reason: when facts change, each is let back
    /// unless its DID is still barred.
    gated: Mutex<HashMap<PeerId, Option<String>>>,
    /// Bounds the handshakes this gateway initiates at once; see [`MAX_INITIATING`].
    initiating: tokio::sync::Semaphore,
}

/// Handshakes a gateway opens (initiates) at once. When a partition heals, every member of one
/// side reconnects to every member of the other together; unbounded, the heal of a 50-gateway
/// field (1,250 handshakes then, before one opener per pair made it 625) shared two cores
/// evenly and all finished late (9 s), though the first one to finish on each side is enough
/// for anti-entropy and gossip to carry what the other side missed. The rest queue here,
/// behind the few in flight, but never longer than [`MAX_QUEUED`]: the responder disconnects
/// an opener that has not presented within its grace window.
const MAX_INITIATING: usize = 8;

/// The longest a handshake waits for one of the [`MAX_INITIATING`] places.
const MAX_QUEUED: Duration = Duration::from_secs(2);

/// How long the side that does not open handshakes waits, after the news that a peer's
/// standing changed, for the peer to open one before it opens one itself. Both learn the
/// same news, usually within a gossip hop of each other: waiting keeps the two from crossing.
const REOPEN_AFTER: Duration = Duration::from_secs(1);

/// Where a handshake stands for the side that records it.
enum Progress {
    /// The peer is verified in some field: recorded and reported.
    Verified(PeerRecord),
    /// Not verified anywhere yet; what we know so far.
    NotYet(PeerRecord),
}

/// How a handshake this side opened ended.
enum Ending {
    /// The peer is verified in some field.
    Verified(PeerRecord),
    /// The peer was gated (or, a member with nothing shared yet, disconnected).
    Gated,
    /// The connection broke: nothing was concluded.
    Interrupted,
}

/// A handle on the running handshake service.
pub struct Handshakes {
    events: broadcast::Sender<GatewayEvent>,
    task: ServiceTask,
}

impl Handshakes {
    /// Starts the service on the network's events and commands. The receiver returned
    /// sees every event from the start (later subscribers see only what follows).
    pub fn spawn(
        services: Arc<Services>,
        commands: mpsc::Sender<Command>,
        network_events: mpsc::Receiver<NetworkEvent>,
    ) -> (Self, broadcast::Receiver<GatewayEvent>) {
        let (events, first_subscriber) = broadcast::channel(EVENT_DEPTH);
        let did = services.key.did();
        let peer_id = services.key.peer_id().ok();
        let shared = Arc::new(Shared {
            services,
            did,
            peer_id,
            verifier: CredentialVerifier::new(),
            commands,
            events: events.clone(),
            gated: Mutex::new(HashMap::new()),
            initiating: tokio::sync::Semaphore::new(MAX_INITIATING),
        });
        let (finished_sender, finished) = mpsc::channel(EVENT_DEPTH);
        let service = Service {
            shared,
            opening: HashMap::new(),
            responding: HashMap::new(),
            deadlines: HashMap::new(),
            finished_sender,
            finished,
            due: HashMap::new(),
            connected: HashSet::new(),
            reopen: HashMap::new(),
            opened: JoinSet::new(),
        };
        let task = ServiceTask::spawn("handshakes", |cancel| service.run(network_events, cancel));
        (Self { events, task }, first_subscriber)
    }

    /// Subscribes to handshake outcomes.
    pub fn subscribe(&self) -> broadcast::Receiver<GatewayEvent> {
        self.events.subscribe()
    }

    /// Stops the service (the handshakes it opened drain) and waits until it has let go of
    /// the shared state.
    pub async fn shutdown(self) {
        self.task.stop().await;
    }
}

impl Shared {
    fn view(&self) -> PartyView<'_> {
        PartyView::new(&self.services, &self.did, &self.verifier)
    }

    /// Runs a step that verifies what the peer sent (credential signatures: CPU-bound) on
    /// the blocking pool, off the async workers. Returns the negotiation, the step's result
    /// and what the step wants written.
    async fn off_the_loop<T: Send + 'static>(
        self: &Arc<Self>,
        mut negotiation: Negotiation,
        step: impl FnOnce(&PartyView<'_>, &mut Negotiation) -> T + Send + 'static,
    ) -> Result<(Negotiation, T, StepWrites), Refusal> {
        let shared = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let view = shared.view();
            let out = step(&view, &mut negotiation);
            let writes = view.take_writes();
            (negotiation, out, writes)
        })
        .await
        .map_err(|error| Refusal {
            code: "internal".into(),
            message: error.to_string(),
        })
    }

    fn fresh_nonce() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    /// Writes what a step did: the presentations it sent or received go to the disclosure
    /// log (with the peer's name if known), the nonces it used up to the peer book. A step
    /// that presents something waits until that is on disk (a commit of the store writer):
    /// nothing leaves that the log does not hold. What was only received reaches the
    /// disk with sled's next flush (within 500 ms) or the next durable write; the nonces are
    /// ours and fresh, so the kept ones are a second line against replay, not the first. A
    /// step whose writes fail stops the handshake.
    async fn persist(&self, peer: PeerId, writes: StepWrites) -> Result<(), Refusal> {
        if writes.is_empty() {
            return Ok(());
        }
        self.write_step(peer, writes)
            .await
            .inspect_err(|error| tracing::error!(%peer, %error, "a handshake step not written"))
            .map_err(Refusal::from)
    }

    async fn write_step(&self, peer: PeerId, writes: StepWrites) -> Result<(), StoreError> {
        let services = &self.services;
        services.peers.keep_nonces(&writes.nonces)?;
        let name = services.peers.get(peer).and_then(|record| record.name);
        let at_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        let at_ms = i64::try_from(at_ms).unwrap_or(i64::MAX);
        let presents = writes
            .disclosures
            .iter()
            .any(|disclosure| disclosure.direction == Direction::Sent);
        services
            .disclosures
            .record(writes.disclosures, name.as_deref(), at_ms)?;
        if presents {
            services.commit().await?;
        }
        Ok(())
    }

    /// Tells the swarm which peers are members of our fields: a stranger's address may be
    /// throttled, a member's never is.
    async fn welcome_members(&self) {
        let peers: Vec<PeerId> = self
            .services
            .fields
            .all()
            .iter()
            .filter_map(|field| self.services.governance.state(&field.charter.field_id()))
            .flat_map(|state| {
                state
                    .in_good_standing()
                    .filter_map(|did| PublicKey::peer_id_named(did))
                    .collect::<Vec<_>>()
            })
            .collect();
        let _ = self.commands.send(Command::Welcome(peers)).await;
    }

    /// A handshake where neither side named a field the other answers. A stranger is gated
    /// (returned) and its address charged; a founder, admin or member of one of our fields
    /// (whose view of the registry may lag ours, or ours theirs) is only disconnected, so that
    /// a later dial, once the registries agree, is not refused.
    async fn nothing_shared(&self, peer: PeerId, did: &str, message: String) -> Option<Gate> {
        if self.services.knows(did) {
            tracing::info!(%peer, %message, "no field in common yet: disconnected");
            let _ = self.commands.send(Command::Disconnect(peer)).await;
            let _ = self.events.send(GatewayEvent::PeerRefused {
                peer,
                code: "no_shared_field".into(),
                message,
            });
            return None;
        }
        Some((None, "no_shared_field".into(), message))
    }

    /// Whether one of our fields names `peer` (a founder, an admin or a member): its key is
    /// its DID, so a stranger cannot pass for it.
    fn known(&self, peer: PeerId) -> bool {
        PublicKey::did_of_peer(&peer).is_some_and(|did| self.services.knows(&did))
    }

    /// Charges a refused peer's address, unless the peer is known to one of our fields (a
    /// founder, an admin, a member or a candidate): the swarm throttles an address that keeps
    /// sending fresh identities nobody knows.
    async fn stranger(&self, peer: PeerId) {
        if !self.known(peer) {
            let _ = self.commands.send(Command::Stranger(peer)).await;
        }
    }
}
