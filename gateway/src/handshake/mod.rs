//! The mutual handshake (DESIGN §4 Disclosure, §5.1), `/tfc/handshake/2`. On every new
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

mod facts;
pub mod negotiation;
mod party;
mod view;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

pub use facts::FactsChanged;
pub use party::LocalParty;

use crate::audit::Event;
use crate::credential::{CredentialVerifier, StatusLists, VerifyContext, now_unix};
use crate::identity::PublicKey;
use crate::metrics;
use crate::net::{Command, HandshakeRequest, HandshakeResponse, NetworkEvent};
use crate::store::{StoreError, Stored, Tree};
use facts::Scope;
use negotiation::{Direction, Judgement, MAX_TURNS, Negotiation, Party, Refusal, Turn};
use view::{PartyView, StepWrites, judge_in};

/// The refusal code of a handshake cut short by the network rather than by the peer.
const UNREACHABLE: &str = "unreachable";
/// What a peer without standing is told, whatever went wrong: nothing it could use.
pub const REFUSED: &str = "refused";
/// Events buffered for subscribers (API, tests).
const EVENT_DEPTH: usize = 1024;

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
struct PeerRecordV1 {
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
    party: Arc<LocalParty>,
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
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Handshakes {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Handshakes {
    /// Starts the service on the network's events and commands. The receiver returned
    /// sees every event from the start (later subscribers see only what follows).
    pub fn spawn(
        party: Arc<LocalParty>,
        commands: mpsc::Sender<Command>,
        network_events: mpsc::Receiver<NetworkEvent>,
    ) -> (Self, broadcast::Receiver<GatewayEvent>) {
        let (events, first_subscriber) = broadcast::channel(EVENT_DEPTH);
        let did = party.key.did();
        let peer_id = party.key.peer_id().ok();
        let shared = Arc::new(Shared {
            party,
            did,
            peer_id,
            verifier: CredentialVerifier::new(),
            commands,
            events: events.clone(),
            gated: Mutex::new(HashMap::new()),
            initiating: tokio::sync::Semaphore::new(MAX_INITIATING),
        });
        let (finished_sender, finished) = mpsc::channel(EVENT_DEPTH);
        let task = tokio::spawn(
            Service {
                shared,
                opening: HashMap::new(),
                responding: HashMap::new(),
                deadlines: HashMap::new(),
                finished_sender,
                finished,
                due: HashMap::new(),
                connected: HashSet::new(),
                reopen: HashMap::new(),
            }
            .run(network_events),
        );
        (Self { events, task }, first_subscriber)
    }

    /// Subscribes to handshake outcomes.
    pub fn subscribe(&self) -> broadcast::Receiver<GatewayEvent> {
        self.events.subscribe()
    }

    /// Stops the service and waits until it has let go of the shared state.
    pub async fn shutdown(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

/// A handshake the peer opened, as this side answers it.
struct Responding {
    negotiation: Negotiation,
    reported: Reported,
}

/// What one side reported of a handshake so far.
#[derive(Default)]
struct Reported {
    /// The tiers last reported, so that an unchanged turn is not reported again.
    tiers: Option<BTreeMap<String, u8>>,
    /// The credentials last stored: a turn that brings new ones stores the record again,
    /// even when the tiers stay as they were.
    presented: Option<BTreeMap<String, Presented>>,
    /// The record last built, whose identity was checked: a turn that brought no new
    /// credential reuses its identity instead of verifying it again.
    record: Option<PeerRecord>,
    /// Whether the mutual event was sent.
    mutual: bool,
}

struct Service {
    shared: Arc<Shared>,
    /// Peers we have a handshake open with, and whether to open another once it ends (the
    /// facts changed meanwhile): one at a time per peer, or their messages would cross.
    opening: HashMap<PeerId, bool>,
    /// Handshakes peers opened with us, by peer.
    responding: HashMap<PeerId, Responding>,
    /// Connected peers not yet verified, with their deadline.
    deadlines: HashMap<PeerId, Instant>,
    /// Handshakes this side opened report here how they ended.
    finished_sender: mpsc::Sender<(PeerId, Ending)>,
    finished: mpsc::Receiver<(PeerId, Ending)>,
    /// Peers whose tiers are due to change, and when (Unix seconds).
    due: HashMap<PeerId, i64>,
    /// Peers with a connection open.
    connected: HashSet<PeerId>,
    /// Peers we do not open handshakes with whose standing changed in our eyes, and when we
    /// open one anyway: only if the peer has not opened one since (see [`REOPEN_AFTER`]).
    reopen: HashMap<PeerId, Instant>,
}

impl Service {
    async fn run(mut self, mut network_events: mpsc::Receiver<NetworkEvent>) {
        self.shared.welcome_members().await;
        loop {
            let wake = self.next_wake();
            tokio::select! {
                event = network_events.recv() => match event {
                    Some(event) => self.network_event(event).await,
                    None => break,
                },
                () = tokio::time::sleep_until(wake) => self.timers().await,
                () = self.shared.party.facts_changed.notified() => self.facts_changed().await,
                Some((peer, ending)) = self.finished.recv() => self.finished(peer, ending),
            }
        }
    }

    fn next_wake(&self) -> Instant {
        let now_instant = Instant::now();
        let now = now_unix();
        let grace = self
            .deadlines
            .values()
            .chain(self.reopen.values())
            .copied()
            .min();
        let due = self
            .due
            .values()
            .min()
            .map(|at| now_instant + Duration::from_secs(at.saturating_sub(now).max(0) as u64));
        [grace, due]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now_instant + Duration::from_secs(3600))
    }

    async fn network_event(&mut self, event: NetworkEvent) {
        match event {
            NetworkEvent::PeerConnected { peer, opener } => {
                self.connected.insert(peer);
                // Either side drops a peer that has not finished within the grace window:
                // the opener's requests to a silent peer fail without saying why.
                let grace = Duration::from_secs(self.shared.party.grace_secs);
                self.deadlines.insert(peer, Instant::now() + grace);
                if opener {
                    self.open(peer);
                }
            }
            NetworkEvent::PeerDisconnected { peer } => {
                self.connected.remove(&peer);
                if let Some(again) = self.opening.get_mut(&peer) {
                    *again = false;
                }
                // A peer that leaves before it is verified anywhere counts as a refusal: a
                // stranger cycling keys must not hang up its way past the throttle.
                if self.deadlines.remove(&peer).is_some() {
                    self.shared
                        .party
                        .metrics
                        .count(metrics::HANDSHAKES, "abandoned");
                    self.shared.stranger(peer).await;
                }
                self.responding.remove(&peer);
                self.due.remove(&peer);
                self.reopen.remove(&peer);
                let _ = self.shared.events.send(GatewayEvent::PeerGone { peer });
            }
            NetworkEvent::HandshakeRequest {
                peer,
                request,
                channel,
            } => {
                let (response, gate) = self.answer(peer, request).await;
                let _ = self
                    .shared
                    .commands
                    .send(Command::Respond { channel, response })
                    .await;
                // After the answer, so that the peer hears the verdict before the door shuts.
                if let Some((barred, code, message)) = gate {
                    self.forget(peer);
                    self.shared
                        .gate(peer, barred.as_deref(), &code, &message)
                        .await;
                }
            }
            NetworkEvent::InboundFailure { peer, reason } => {
                tracing::info!(%peer, %reason, "handshake message refused");
            }
            NetworkEvent::ConnectionRefused { address, reason } => {
                tracing::info!(%address, %reason, "incoming connection refused");
                self.shared
                    .party
                    .metrics
                    .count(metrics::HANDSHAKES, "connection_refused");
            }
            NetworkEvent::Listening(address) => {
                tracing::info!(%address, "listening");
                let _ = self.shared.events.send(GatewayEvent::Listening(address));
            }
        }
    }

    /// Opens a handshake with `peer` (again, when facts changed) in a task of its own; if
    /// one is under way, another follows when it ends.
    fn open(&mut self, peer: PeerId) {
        if let Some(again) = self.opening.get_mut(&peer) {
            *again = true;
            return;
        }
        self.opening.insert(peer, false);
        let shared = Arc::clone(&self.shared);
        let finished = self.finished_sender.clone();
        tokio::spawn(async move { shared.initiate(peer, finished).await });
    }

    fn finished(&mut self, peer: PeerId, ending: Ending) {
        let again = self.opening.remove(&peer).unwrap_or(false);
        match ending {
            Ending::Verified(record) => {
                self.deadlines.remove(&peer);
                self.schedule(peer, &record);
            }
            Ending::Gated => {
                self.deadlines.remove(&peer);
                self.due.remove(&peer);
            }
            Ending::Interrupted => {}
        }
        if again && self.connected.contains(&peer) {
            self.open(peer);
        }
    }

    fn forget(&mut self, peer: PeerId) {
        self.responding.remove(&peer);
        self.deadlines.remove(&peer);
        self.due.remove(&peer);
    }

    /// Answers one message of a handshake the peer opened. Returns the answer and, if the
    /// peer is to be gated after hearing it, why.
    async fn answer(
        &mut self,
        peer: PeerId,
        request: HandshakeRequest,
    ) -> (HandshakeResponse, Option<Gate>) {
        let step = match request {
            HandshakeRequest::Hello { did, nonce, asks } => {
                // The peer opened after our facts changed: this negotiation sees them.
                self.reopen.remove(&peer);
                self.hello(peer, &did, &nonce, &asks).await
            }
            HandshakeRequest::Turn(turn) => self.turn(peer, &turn).await,
        };
        match step {
            Ok(response) => {
                let gate = match &response {
                    HandshakeResponse::Turn(out) => self.settle(peer, out).await,
                    _ => None,
                };
                (response, gate)
            }
            Err(refusal) => {
                // Only a peer that has standing somewhere, or that one of our fields knows
                // (its key is its DID: a stranger cannot pass for it), learns why.
                let engaged = self
                    .responding
                    .get(&peer)
                    .is_some_and(|responding| responding.negotiation.any_engaged());
                let response = if engaged || self.shared.known(peer) {
                    HandshakeResponse::Refused {
                        code: refusal.code.clone(),
                        message: refusal.message.clone(),
                    }
                } else {
                    refused()
                };
                (response, Some((None, refusal.code, refusal.message)))
            }
        }
    }

    async fn hello(
        &mut self,
        peer: PeerId,
        did: &str,
        their_nonce: &str,
        asks: &[String],
    ) -> Result<HandshakeResponse, Refusal> {
        check_binding(peer, did)?;
        if their_nonce.is_empty() || their_nonce.len() > 128 {
            return Err(Refusal::protocol("a hello nonce of the wrong size"));
        }
        let shared = Arc::clone(&self.shared);
        let view = shared.view();
        let now = now_unix();
        // Kept before the asks are read, so that a refusal knows what they engaged.
        let negotiation = &mut self
            .responding
            .entry(peer)
            .insert_entry(Responding {
                negotiation: Negotiation::new(did, Shared::fresh_nonce()),
                reported: Reported::default(),
            })
            .into_mut()
            .negotiation;
        negotiation.name(&view);
        negotiation.take_asks(&view, asks, now)?;
        let turn = negotiation.next(&view, now)?;
        let proof = view.present(did, their_nonce, &[])?;
        shared.persist(peer, view.take_writes()).await?;
        Ok(HandshakeResponse::Hello {
            did: shared.did.clone(),
            nonce: negotiation.hello_nonce().to_owned(),
            proof,
            turn,
        })
    }

    async fn turn(&mut self, peer: PeerId, turn: &Turn) -> Result<HandshakeResponse, Refusal> {
        let shared = Arc::clone(&self.shared);
        let Some(responding) = self.responding.get_mut(&peer) else {
            return Err(Refusal::protocol("a turn before hello"));
        };
        let view = shared.view();
        let negotiation = &mut responding.negotiation;
        if !negotiation.proven() {
            let proof = turn
                .proof
                .as_deref()
                .ok_or_else(|| Refusal::protocol("the first turn carries no proof of key"))?;
            negotiation.take_proof(&view, proof)?;
        }
        let now = now_unix();
        let taken = negotiation.take(&view, turn, now);
        let out = taken.and_then(|()| negotiation.next(&view, now));
        shared.persist(peer, view.take_writes()).await?;
        Ok(HandshakeResponse::Turn(out?))
    }

    /// Records what this side knows after answering a turn; says whether to gate the peer.
    async fn settle(&mut self, peer: PeerId, out: &Turn) -> Option<Gate> {
        let shared = Arc::clone(&self.shared);
        let responding = self.responding.get_mut(&peer)?;
        if !responding.negotiation.any_engaged() {
            let did = responding.negotiation.peer().to_owned();
            let message = no_shared_field(&responding.negotiation);
            self.responding.remove(&peer);
            return shared.nothing_shared(peer, &did, message).await;
        }
        let progress = shared
            .progress(peer, &responding.negotiation, &mut responding.reported)
            .await;
        match progress {
            Err(refusal) => Some((None, refusal.code, refusal.message)),
            Ok(Progress::Verified(record)) => {
                self.deadlines.remove(&peer);
                self.schedule(peer, &record);
                None
            }
            // Gated once nothing more can come: we wait for no answer and ask nothing new.
            Ok(Progress::NotYet(record)) => {
                let settled = !responding.negotiation.awaiting() && out.asks.is_empty();
                settled.then(|| shared.refused_record(peer, &record))
            }
        }
    }

    fn schedule(&mut self, peer: PeerId, record: &PeerRecord) {
        match record.next_change {
            Some(at) if self.shared.verified_somewhere(record) => {
                self.due.insert(peer, at);
            }
            _ => {
                self.due.remove(&peer);
            }
        }
    }

    /// Lets the peers gated on old facts try again unless still barred; asks connected
    /// peers again where the fields or their standing changed, and judges the others again.
    async fn facts_changed(&mut self) {
        let party = Arc::clone(&self.shared.party);
        let fields_changed = party.facts_changed.take_fields();
        let scope = party.facts_changed.take();
        let lifted: Vec<PeerId> = match self.shared.gated.lock() {
            Ok(mut gated) => {
                // A member still barred would only be refused again: letting it back on
                // every change made a field of N re-handshake its barred members N times.
                let lifted: Vec<PeerId> = gated
                    .iter()
                    .filter(|(_, barred)| {
                        !barred
                            .as_deref()
                            .is_some_and(|did| party.barred_anywhere(did))
                    })
                    .map(|(peer, _)| *peer)
                    .collect();
                for peer in &lifted {
                    gated.remove(peer);
                }
                lifted
            }
            Err(_) => Vec::new(),
        };
        for peer in lifted {
            let _ = self.shared.commands.send(Command::Unblock(peer)).await;
        }
        self.shared.welcome_members().await;
        let me = self.shared.did.clone();
        let connected: Vec<PeerId> = self.connected.iter().copied().collect();
        for peer in connected {
            let Some(did) = PublicKey::did_of_peer(&peer) else {
                continue;
            };
            let standing_changed = scope.names(&did) || scope.names(&me);
            let opener = self
                .shared
                .peer_id
                .is_some_and(|local| crate::net::opens_handshake(&local, &peer));
            let ask_again = fields_changed || (standing_changed && !party.barred_anywhere(&did));
            if ask_again && opener {
                self.open(peer);
                continue;
            }
            if ask_again {
                // The peer may have asked before we knew: what we refused it then, it asks
                // again only in a new negotiation. It opens one if it learns the same news;
                // if it does not, we do (both at once would cross).
                self.reopen
                    .entry(peer)
                    .or_insert_with(|| Instant::now() + REOPEN_AFTER);
            }
            if let Some(record) = self.shared.reevaluate(peer, &scope).await {
                self.schedule(peer, &record);
            }
        }
    }

    async fn timers(&mut self) {
        let now_instant = Instant::now();
        let expired: Vec<PeerId> = self
            .deadlines
            .iter()
            .filter(|(_, deadline)| **deadline <= now_instant)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in expired {
            self.deadlines.remove(&peer);
            self.responding.remove(&peer);
            tracing::info!(%peer, "no handshake within the grace window");
            self.shared
                .party
                .metrics
                .count(metrics::HANDSHAKES, "handshake_timeout");
            self.shared.stranger(peer).await;
            let _ = self.shared.commands.send(Command::Disconnect(peer)).await;
            let _ = self.shared.events.send(GatewayEvent::PeerRefused {
                peer,
                code: "handshake_timeout".into(),
                message: "the peer did not complete the handshake within the grace window".into(),
            });
        }
        let reopen: Vec<PeerId> = self
            .reopen
            .iter()
            .filter(|(_, at)| **at <= now_instant)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in reopen {
            self.reopen.remove(&peer);
            if self.connected.contains(&peer) {
                self.open(peer);
            }
        }
        let now = now_unix();
        let due: Vec<PeerId> = self
            .due
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in due {
            self.due.remove(&peer);
            match self.shared.reevaluate(peer, &Scope::Everyone).await {
                Some(record) => self.schedule(peer, &record),
                None => tracing::debug!(%peer, "no record to re-evaluate"),
            }
        }
    }
}

/// Why a peer is gated: the DID barred (if a bar is the reason), the code, the message.
type Gate = (Option<String>, String, String);

/// The answer every peer without standing gets.
fn refused() -> HandshakeResponse {
    HandshakeResponse::Refused {
        code: REFUSED.into(),
        message: REFUSED.into(),
    }
}

fn no_shared_field(negotiation: &Negotiation) -> String {
    format!("{} has standing in no field we share", negotiation.peer())
}

/// A peer's DID must name the key of the connection it speaks on.
fn check_binding(peer: PeerId, did: &str) -> Result<(), Refusal> {
    match PublicKey::peer_id_of(did) {
        Some(bound) if bound == peer => Ok(()),
        _ => Err(Refusal {
            code: "identity_mismatch".into(),
            message: format!("{did} is not the key of connection {peer}"),
        }),
    }
}

/// `field:tier` pairs, for the audit log.
fn tiers_text(record: &PeerRecord) -> String {
    record
        .tiers
        .iter()
        .map(|(field, tier)| format!("{}={tier}", &field[..field.len().min(12)]))
        .collect::<Vec<_>>()
        .join(",")
}

impl From<StoreError> for Refusal {
    fn from(error: StoreError) -> Self {
        Self {
            code: error.code().into(),
            message: error.to_string(),
        }
    }
}

impl Shared {
    fn view(&self) -> PartyView<'_> {
        PartyView::new(&self.party, &self.did, &self.verifier)
    }

    fn fresh_nonce() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    /// Writes what a step did: the presentations it sent or received go to the disclosure
    /// log (with the peer's name if known), the nonces it used up to the `replay` tree. A
    /// step that presents something waits until that is on disk (one flush, on the blocking
    /// pool): nothing leaves that the log does not hold. What was only received reaches the
    /// disk with sled's next flush (within 500 ms) or the next durable write; the nonces are
    /// ours and fresh, so the kept ones are a second line against replay, not the first. A
    /// step whose writes fail stops the handshake.
    async fn persist(&self, peer: PeerId, writes: StepWrites) -> Result<(), Refusal> {
        if writes.is_empty() {
            return Ok(());
        }
        let party = Arc::clone(&self.party);
        tokio::task::spawn_blocking(move || {
            let replay = party.store.tree(Tree::Replay)?;
            for (nonce, forget_after) in &writes.nonces {
                replay.put(
                    nonce.as_bytes(),
                    &UsedNonce {
                        forget_after: *forget_after,
                    },
                )?;
            }
            let name = party.peer_record(peer).and_then(|record| record.name);
            let at_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
            let at_ms = i64::try_from(at_ms).unwrap_or(i64::MAX);
            let presents = writes
                .disclosures
                .iter()
                .any(|disclosure| disclosure.direction == Direction::Sent);
            party
                .disclosures
                .record(writes.disclosures, name.as_deref(), at_ms)?;
            if presents {
                party.store.flush()?;
            }
            Ok::<(), StoreError>(())
        })
        .await
        .map_err(|error| Refusal {
            code: "internal".into(),
            message: error.to_string(),
        })?
        .inspect_err(|error| tracing::error!(%peer, %error, "a handshake step not written"))
        .map_err(Refusal::from)
    }

    /// Tells the swarm which peers are members of our fields: a stranger's address may be
    /// throttled, a member's never is.
    async fn welcome_members(&self) {
        let peers: Vec<PeerId> = self
            .party
            .fields()
            .iter()
            .filter_map(|field| self.party.governance.state(&field.charter.field_id()))
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
        if self.party.knows(did) {
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
        PublicKey::did_of_peer(&peer).is_some_and(|did| self.party.knows(&did))
    }

    /// Charges a refused peer's address, unless the peer is known to one of our fields (a
    /// founder, an admin, a member or a candidate): the swarm throttles an address that keeps
    /// sending fresh identities nobody knows.
    async fn stranger(&self, peer: PeerId) {
        if !self.known(peer) {
            let _ = self.commands.send(Command::Stranger(peer)).await;
        }
    }

    /// The opener's side: hello, then turns until neither side has news. Reports what it
    /// concluded of the peer on `finished`.
    async fn initiate(self: Arc<Self>, peer: PeerId, finished: mpsc::Sender<(PeerId, Ending)>) {
        // Held until this handshake ends; after MAX_QUEUED it goes ahead without one.
        let _permit = tokio::time::timeout(MAX_QUEUED, self.initiating.acquire()).await;
        let ending = match self.initiate_steps(peer).await {
            Ok(ending) => ending,
            // A connection that broke says nothing about the peer: no gate.
            Err(refusal) if refusal.code == UNREACHABLE => {
                tracing::info!(%peer, reason = %refusal.message, "handshake interrupted");
                Ending::Interrupted
            }
            Err(refusal) => {
                self.gate(peer, None, &refusal.code, &refusal.message).await;
                Ending::Gated
            }
        };
        let _ = finished.send((peer, ending)).await;
    }

    async fn initiate_steps(&self, peer: PeerId) -> Result<Ending, Refusal> {
        let Some(did) = PublicKey::did_of_peer(&peer) else {
            return Err(Refusal::protocol(
                "the peer's key is not an organisation key",
            ));
        };
        let mut negotiation = Negotiation::new(&did, Self::fresh_nonce());
        let (asks, writes) = {
            let view = self.view();
            (negotiation.open(&view, now_unix())?, view.take_writes())
        };
        self.persist(peer, writes).await?;
        let hello = HandshakeRequest::Hello {
            did: self.did.clone(),
            nonce: negotiation.hello_nonce().to_owned(),
            asks,
        };
        let HandshakeResponse::Hello {
            did: their_did,
            nonce: their_nonce,
            proof,
            turn,
        } = self.request(peer, hello).await?
        else {
            return Err(Refusal::protocol("expected hello"));
        };
        check_binding(peer, &their_did)?;
        let mut incoming = turn;
        // The proof's nonce is written with the first turn's writes: one flush for both.
        let (proof_of_key, mut pending) = {
            let view = self.view();
            negotiation.take_proof(&view, &proof)?;
            (
                view.present(&their_did, &their_nonce, &[])?,
                view.take_writes(),
            )
        };
        let mut proof_of_key = Some(proof_of_key);
        let mut reported = Reported::default();
        for round in 0..=MAX_TURNS {
            let view = self.view();
            let taken = negotiation.take(&view, &incoming, now_unix());
            let out = taken.and_then(|()| negotiation.next(&view, now_unix()));
            pending.append(view.take_writes());
            let mut out = match out {
                Ok(out) => out,
                Err(refusal) => {
                    // What was received and failed is logged too.
                    self.persist(peer, pending).await?;
                    return Err(refusal);
                }
            };
            // Both before the turn leaves: the log holds what it presents, and the record
            // is kept before our verdict reaches the peer (once it knows we verified it, it
            // may sync with us at once). The flush and the judging overlap.
            let written = self.persist(peer, std::mem::take(&mut pending));
            let recorded = async {
                if negotiation.any_engaged() {
                    self.progress(peer, &negotiation, &mut reported).await?;
                }
                Ok(())
            };
            tokio::try_join!(written, recorded)?;
            // The responder only ever answers: with nothing to say, the exchange is over.
            // The first turn goes anyway where a field is engaged, with our proof of key.
            let first_due = round == 0 && negotiation.any_engaged();
            if round == MAX_TURNS || !(out.has_news() || first_due) {
                break;
            }
            out.proof = proof_of_key.take();
            match self.request(peer, HandshakeRequest::Turn(out)).await? {
                HandshakeResponse::Turn(turn) => incoming = turn,
                _ => return Err(Refusal::protocol("expected a turn")),
            }
        }
        if !negotiation.any_engaged() {
            if let Some((barred, code, message)) = self
                .nothing_shared(peer, negotiation.peer(), no_shared_field(&negotiation))
                .await
            {
                self.gate(peer, barred.as_deref(), &code, &message).await;
            }
            return Ok(Ending::Gated);
        }
        match self.progress(peer, &negotiation, &mut reported).await? {
            Progress::Verified(record) => Ok(Ending::Verified(record)),
            Progress::NotYet(record) => {
                let (barred, code, message) = self.refused_record(peer, &record);
                self.gate(peer, barred.as_deref(), &code, &message).await;
                Ok(Ending::Gated)
            }
        }
    }

    /// Records and reports the peer once it is verified somewhere, and again whenever its
    /// tiers change; sends the mutual event once both sides verified each other.
    async fn progress(
        &self,
        peer: PeerId,
        negotiation: &Negotiation,
        reported: &mut Reported,
    ) -> Result<Progress, Refusal> {
        let view = self.view();
        let record = self.record_of(negotiation, &view, reported.record.as_ref());
        let checked = reported.record.as_ref().is_some_and(|previous| {
            previous.did == record.did && previous.corporate_number == record.corporate_number
        });
        if !checked {
            self.check_identity(peer, &record)?;
        }
        reported.record = Some(record.clone());
        if !self.verified_somewhere(&record) {
            return Ok(Progress::NotYet(record));
        }
        let tiers_changed = reported.tiers.as_ref() != Some(&record.tiers);
        if tiers_changed || reported.presented.as_ref() != Some(&record.presented) {
            reported.presented = Some(record.presented.clone());
            self.party.put_peer_record(peer, &record)?;
        }
        if tiers_changed {
            reported.tiers = Some(record.tiers.clone());
            self.report(peer, record.clone()).await;
        }
        let mutual = record
            .tiers
            .keys()
            .any(|field| negotiation.mutual_in(&view, field));
        if mutual && !reported.mutual {
            reported.mutual = true;
            let _ = self.events.send(GatewayEvent::Mutual { peer });
        }
        Ok(Progress::Verified(record))
    }

    async fn request(
        &self,
        peer: PeerId,
        request: HandshakeRequest,
    ) -> Result<HandshakeResponse, Refusal> {
        let response = crate::net::call(&self.commands, |reply| Command::Request {
            peer,
            request,
            reply,
        })
        .await
        .map_err(|reason| Refusal {
            code: UNREACHABLE.into(),
            message: reason,
        })?;
        if let HandshakeResponse::Refused { code, message } = response {
            return Err(Refusal {
                code,
                message: format!("the peer refused: {message}"),
            });
        }
        Ok(response)
    }

    /// The record a negotiation leaves: our judgement of the peer in every engaged field.
    /// The identity is read again only if the credentials differ from `previous`'s.
    fn record_of(
        &self,
        negotiation: &Negotiation,
        view: &PartyView<'_>,
        previous: Option<&PeerRecord>,
    ) -> PeerRecord {
        let now = now_unix();
        let judged = negotiation.outcome(view);
        let mut record = PeerRecord {
            did: negotiation.peer().to_owned(),
            tiers: BTreeMap::new(),
            presented: BTreeMap::new(),
            evaluated_at: now,
            next_change: None,
            corporate_number: None,
            name: None,
        };
        for (field, (judgement, credentials)) in judged {
            record.tiers.insert(field.clone(), judgement.tier);
            record.next_change = [record.next_change, judgement.next_change]
                .into_iter()
                .flatten()
                .min();
            record.presented.insert(
                field,
                Presented {
                    credentials,
                    counted: judgement.counted,
                },
            );
        }
        (record.corporate_number, record.name) = match previous {
            Some(previous) if previous.presented == record.presented => {
                (previous.corporate_number.clone(), previous.name.clone())
            }
            _ => self.identity_of(&record, now),
        };
        record
    }

    /// Whether the record's peer is verified in some field it engaged in.
    fn verified_somewhere(&self, record: &PeerRecord) -> bool {
        record
            .tiers
            .keys()
            .any(|field| self.party.verified_in(record, field))
    }

    /// Keeps the record of a peer with standing that is verified nowhere (the operator may
    /// ask why it was refused: its tiers are there), and says why it is refused.
    fn refused_record(&self, peer: PeerId, record: &PeerRecord) -> Gate {
        if self.party.put_peer_record(peer, record).is_err() {
            tracing::warn!(%peer, "could not store the refused peer's record");
        }
        self.why_not(record)
    }

    /// Why a peer is verified nowhere: barred, blocked, or no tier.
    fn why_not(&self, record: &PeerRecord) -> Gate {
        if let Some(field) = record
            .tiers
            .keys()
            .find(|field| self.party.is_barred(field, &record.did))
        {
            let message = format!("{} is revoked or suspended in field {field}", record.did);
            return (Some(record.did.clone()), "member_barred".into(), message);
        }
        if let Some(field) = record
            .tiers
            .keys()
            .find(|field| self.party.threat_blocked(field, &record.did))
        {
            let message = format!(
                "{} is blocked in field {field} by a threat countermeasure",
                record.did
            );
            return (Some(record.did.clone()), "threat_blocked".into(), message);
        }
        let message = format!("{} reaches no tier in any shared field", record.did);
        (None, "no_tier".into(), message)
    }

    /// The corporate number and legal name of the holder's identity credential, counted
    /// only when an issuer that field trusts for identities issued it: a self-made claim to
    /// another company's number must not lock that company out.
    fn identity_of(&self, record: &PeerRecord, now: i64) -> (Option<String>, Option<String>) {
        self.party.with_status_lists(|status_lists: &StatusLists| {
            let context = VerifyContext {
                now,
                trust: None,
                status_lists,
                status_max_age_secs: crate::credential::DEFAULT_STATUS_MAX_AGE_SECS,
            };
            record
                .presented
                .iter()
                .filter_map(|(field, presented)| {
                    let joined = self.party.field(field)?;
                    let trust = joined.charter.issuer_trust();
                    presented.credentials.iter().find_map(|token| {
                        let credential = self.verifier.verify_credential(token, &context).ok()?;
                        let trusted = trust.is_trusted(&credential.issuer, &credential.type_name);
                        (credential.type_name == crate::charter::disclosure::IDENTITY_TYPE
                            && credential.subject == record.did
                            && trusted)
                            .then(|| {
                                let claim = |name: &str| {
                                    credential.claims.get(name)?.as_str().map(str::to_owned)
                                };
                                (claim("corporateNumber"), claim("legalName"))
                            })
                    })
                })
                .next()
                .unwrap_or((None, None))
        })
    }

    /// A corporate number already bound to another DID refuses the newcomer.
    fn check_identity(&self, peer: PeerId, record: &PeerRecord) -> Result<(), Refusal> {
        let Some(number) = &record.corporate_number else {
            return Ok(());
        };
        for (key, known) in self
            .party
            .store
            .tree(crate::store::Tree::Peers)?
            .entries::<PeerRecord>()?
        {
            if known.corporate_number.as_ref() == Some(number)
                && known.did != record.did
                && key != peer.to_bytes()
            {
                return Err(Refusal {
                    code: "identity_conflict".into(),
                    message: format!(
                        "corporate number {number} is already bound to {}; {} is refused",
                        known.did, record.did
                    ),
                });
            }
        }
        Ok(())
    }

    /// Reports a peer verified in some field: audit, metrics, the swarm (remember its
    /// addresses, open the gossip of the fields it takes part in) and the subscribers.
    async fn report(&self, peer: PeerId, record: PeerRecord) {
        self.party
            .metrics
            .count(metrics::DECISIONS, "admission:allow");
        // Soon, not flushed: the verdict it records is not durable either (a restart judges
        // the peer again), and a flush per peer would put the disk in every handshake.
        self.party.audit.record_soon(Event {
            actor: record.did.clone(),
            action: "handshake".into(),
            object: peer.to_string(),
            decision: "allow".into(),
            reason: format!("tiers:{}", tiers_text(&record)),
            ..Event::default()
        });
        self.party.metrics.count(metrics::HANDSHAKES, "verified");
        let _ = self.commands.send(Command::Admitted(peer)).await;
        let fields = self.party.gossip_fields(peer);
        let _ = self.commands.send(Command::Gossip { peer, fields }).await;
        let _ = self
            .events
            .send(GatewayEvent::PeerVerified { peer, record });
    }

    /// Refuses and blocks `peer`; `barred` is the member's DID when its standing or a
    /// threat countermeasure is the reason.
    async fn gate(&self, peer: PeerId, barred: Option<&str>, code: &str, message: &str) {
        tracing::info!(%peer, %code, %message, "peer refused and gated");
        self.party
            .metrics
            .count(metrics::DECISIONS, "admission:deny");
        // Soon, not flushed: a stranger must not buy a disk flush with every fresh key.
        self.party.audit.record_soon(Event {
            actor: peer.to_string(),
            action: "handshake".into(),
            object: peer.to_string(),
            decision: "deny".into(),
            reason: code.into(),
            ..Event::default()
        });
        if let Ok(mut gated) = self.gated.lock() {
            gated.insert(peer, barred.map(str::to_owned));
        }
        self.party.metrics.count(metrics::HANDSHAKES, code);
        self.stranger(peer).await;
        let _ = self.commands.send(Command::Block(peer)).await;
        let _ = self.events.send(GatewayEvent::PeerRefused {
            peer,
            code: code.into(),
            message: message.into(),
        });
    }

    /// Judges a peer again from the credentials it presented, as of now.
    async fn reevaluate(&self, peer: PeerId, scope: &Scope) -> Option<PeerRecord> {
        // The scope first: a change of one member's standing must not read every record.
        let did = PublicKey::did_of_peer(&peer)?;
        if !scope.includes(&did) {
            return None;
        }
        let previous = self
            .party
            .peer_record(peer)
            .filter(|record| record.did == did)?;
        let now = now_unix();
        let mut record = previous.clone();
        record.evaluated_at = now;
        record.next_change = None;
        for (field, tier) in &mut record.tiers {
            let Some(joined) = self.party.field(field) else {
                *tier = 0;
                continue;
            };
            let judgement: Judgement = judge_in(
                &self.party,
                &self.verifier,
                &joined,
                &record.did,
                previous.credentials_in(field),
                now,
            );
            *tier = judgement.tier;
            record.next_change = [record.next_change, judgement.next_change]
                .into_iter()
                .flatten()
                .min();
            if let Some(presented) = record.presented.get_mut(field) {
                presented.counted = judgement.counted;
            }
        }
        // Most changes touch one member: a write per unchanged peer cost a field of N
        // gateways N writes per change each.
        let unchanged = record.tiers == previous.tiers
            && record.next_change == previous.next_change
            && record.presented == previous.presented;
        if !unchanged && self.party.put_peer_record(peer, &record).is_err() {
            tracing::warn!(%peer, "could not store the re-evaluated tiers");
        }
        if self.verified_somewhere(&record) {
            self.report(peer, record.clone()).await;
        } else {
            let (barred, code, message) = self.why_not(&record);
            self.gate(peer, barred.as_deref(), &code, &message).await;
        }
        Some(record)
    }
}
