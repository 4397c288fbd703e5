//! The mutual handshake (DESIGN §5.1): on every new connection both sides challenge each
//! other with fresh nonces, exchange presentations of their wallet credentials, compute the
//! tier the other reaches in every shared field, and record it. A peer that reaches no tier
//! in any shared field is disconnected and gated; an unknown peer that does not finish within
//! the grace window is disconnected. Results are re-evaluated when they are due to change.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, broadcast, mpsc};
use tokio::time::Instant;

use crate::audit::{AuditError, AuditLog, Event};
use crate::charter::Charter;
use crate::credential::{
    Challenge, CredentialVerifier, ReplayCache, StatusLists, VerificationError,
    create_presentation, now_unix,
};
use crate::field::Field;
use crate::governance::Governance;
use crate::identity::{KeyPair, PublicKey};
use crate::metrics::{self, Metrics};
use crate::net::{Command, HandshakeRequest, HandshakeResponse, NetworkEvent};
use crate::policy::PolicyEngine;
use crate::store::{Store, StoreError, Stored, Tree};
use crate::tier::{TierContext, evaluate};

/// The refusal code of a handshake cut short by the network rather than by the peer.
const UNREACHABLE: &str = "unreachable";
/// The credential type that binds a corporate number to a DID.
const IDENTITY_TYPE: &str = "OrganizationIdentityCredential";
/// Presentations made in a handshake live this long.
const PRESENTATION_LIFETIME_SECS: i64 = 60;
/// Events buffered for subscribers (API, tests).
const EVENT_DEPTH: usize = 1024;

/// What this gateway knows about a peer after a handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRecord {
    /// The peer's DID.
    pub did: String,
    /// Field id → tier, for every field both belong to.
    pub tiers: BTreeMap<String, u8>,
    /// The credentials the peer presented, kept to re-evaluate without a new handshake.
    pub credentials: Vec<String>,
    /// When the tiers were computed (Unix seconds).
    pub evaluated_at: i64,
    /// When they are next due to change, if ever.
    pub next_change: Option<i64>,
    /// 法人番号 from an identity credential a shared field trusts, if any.
    #[serde(default)]
    pub corporate_number: Option<String>,
}

impl Stored for PeerRecord {
    const VERSION: u8 = 1;
}

/// A used presentation nonce in the `replay` tree: replay protection survives restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsedNonce {
    /// When the nonce may be forgotten (Unix seconds).
    pub forget_after: i64,
}

impl Stored for UsedNonce {
    const VERSION: u8 = 1;
}

impl PeerRecord {
    /// Whether the peer reaches a tier in some shared field.
    pub fn admitted(&self) -> bool {
        self.tiers.values().any(|tier| *tier >= 1)
    }
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
    /// A peer's tiers were computed (at connection or on re-evaluation).
    PeerVerified {
        /// The peer.
        peer: PeerId,
        /// What we now know of it.
        record: PeerRecord,
    },
    /// Both sides have admitted each other: the peer verified us (we opened and read its
    /// verdict) or we verified the peer after it had verified us (it opened). Exchanges
    /// that need the peer to know us (anti-entropy) start here.
    Mutual {
        /// The peer.
        peer: PeerId,
    },
    /// A peer was refused and gated (no tier anywhere, a bad presentation, or no handshake
    /// within the grace window).
    PeerRefused {
        /// The peer.
        peer: PeerId,
        /// A stable code.
        code: String,
        /// Why.
        message: String,
    },
}

/// The local side of every handshake: who we are, what we hold, which fields we belong to.
/// Shared with the API, which changes the wallet and the fields while the daemon runs.
pub struct LocalParty {
    /// The organisation key.
    pub key: KeyPair,
    /// The fields joined.
    pub fields: RwLock<Vec<Arc<Field>>>,
    /// The organisation's own credentials (compact vc+jwt).
    pub wallet: RwLock<Vec<String>>,
    /// The store (peer records are kept in its `peers` tree).
    pub store: Store,
    /// Used nonces.
    pub replay: ReplayCache,
    /// Known status lists.
    pub status_lists: RwLock<StatusLists>,
    /// Seconds an unknown peer may take to finish the handshake.
    pub grace_secs: u64,
    /// Signalled when facts peers were judged on change (a status list, a joined field, a
    /// member's standing): the handshake service then re-judges the peers concerned.
    pub facts_changed: FactsChanged,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    /// The governance logs of the joined fields.
    pub governance: Governance,
    /// The audit log.
    pub audit: AuditLog,
    /// The threat countermeasures in force (written by [`crate::threats::Threats`]).
    pub threat_effects: RwLock<crate::threats::Effects>,
    /// Bumped whenever a peer record is written: what was read from one is stale.
    pub peers_generation: std::sync::atomic::AtomicU64,
    /// Policies amended by governance, compiled, by SHA-256 of their text.
    amended_policies: Mutex<HashMap<String, Arc<PolicyEngine>>>,
}

impl LocalParty {
    /// A party with the given fields and wallet; the governance logs are read from `store`.
    pub fn new(
        key: KeyPair,
        fields: Vec<Field>,
        wallet: Vec<String>,
        store: Store,
        grace_secs: u64,
    ) -> Result<Self, StoreError> {
        let charters: Vec<&Charter> = fields.iter().map(|field| &field.charter).collect();
        let governance = Governance::load(store.clone(), &charters)?;
        let audit = AuditLog::open(&store).map_err(|AuditError::Store(error)| error)?;
        Ok(Self {
            key,
            fields: RwLock::new(fields.into_iter().map(Arc::new).collect()),
            wallet: RwLock::new(wallet),
            store,
            replay: ReplayCache::default(),
            status_lists: RwLock::new(StatusLists::new()),
            grace_secs,
            facts_changed: FactsChanged::default(),
            metrics: Metrics::default(),
            governance,
            audit,
            threat_effects: RwLock::new(crate::threats::Effects::default()),
            peers_generation: std::sync::atomic::AtomicU64::new(0),
            amended_policies: Mutex::new(HashMap::new()),
        })
    }

    /// The joined field with this id.
    pub fn field(&self, id: &str) -> Option<Arc<Field>> {
        self.fields()
            .into_iter()
            .find(|field| field.charter.field_id() == id)
    }

    /// The charter as governance has amended it (trusted issuers, quorum): what tiers are
    /// judged against.
    pub fn effective_charter(&self, field: &Field) -> Charter {
        let mut charter = field.charter.clone();
        if let Some(state) = self.governance.state(&charter.field_id()) {
            charter.issuers = state.issuers;
            charter.quorum = state.quorum;
        }
        charter
    }

    /// The policy data requests in `field` are decided by: the latest committed
    /// `amend-policy`, else the charter's file. Amended policies are compiled once.
    pub fn policy_engine(&self, field: &Field) -> Option<Arc<PolicyEngine>> {
        let amended = self
            .governance
            .state(&field.charter.field_id())
            .and_then(|state| state.policy);
        let Some(text) = amended else {
            return field.policy.clone();
        };
        let digest = crate::governance::sha256_hex(text.as_bytes());
        let mut compiled = self
            .amended_policies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(engine) = compiled.get(&digest) {
            return Some(Arc::clone(engine));
        }
        // Intake compiled it already; a failure here would mean the schema changed.
        match PolicyEngine::new(&text) {
            Ok(engine) => {
                let engine = Arc::new(engine);
                compiled.insert(digest, Arc::clone(&engine));
                Some(engine)
            }
            Err(error) => {
                tracing::error!(%error, "the amended policy no longer compiles: every access is denied");
                None
            }
        }
    }

    /// Whether `did` is barred (revoked, suspended or threat-blocked) in any joined field.
    pub fn barred_anywhere(&self, did: &str) -> bool {
        self.fields().iter().any(|field| {
            let id = field.charter.field_id();
            self.is_barred(&id, did) || self.threat_blocked(&id, did)
        })
    }

    /// Whether `did` is barred from `field` by a committed revocation or suspension.
    pub fn is_barred(&self, field: &str, did: &str) -> bool {
        self.governance
            .standing(field, did)
            .is_some_and(|standing| !standing.in_good_standing())
    }

    /// Stores what we verified about a peer, durably.
    pub fn put_peer_record(&self, peer: PeerId, record: &PeerRecord) -> Result<(), StoreError> {
        self.store
            .tree(Tree::Peers)?
            .put_durable(peer.to_bytes().as_slice(), record)?;
        self.peers_generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Whether a threat countermeasure blocks `did` in `field`.
    pub fn threat_blocked(&self, field: &str, did: &str) -> bool {
        self.threat_effects
            .read()
            .is_ok_and(|effects| effects.member_blocked(field, did))
    }

    /// The tier ceiling a threat countermeasure puts on `did` in `field`.
    pub fn tier_cap(&self, field: &str, did: &str) -> Option<u8> {
        self.threat_effects
            .read()
            .ok()
            .and_then(|effects| effects.tier_cap(field, did))
    }

    /// `did`'s credentials less those a threat countermeasure suspended in `field`.
    pub fn counted_credentials(&self, field: &str, did: &str, tokens: &[String]) -> Vec<String> {
        let Ok(effects) = self.threat_effects.read() else {
            return Vec::new();
        };
        if !effects.suspends_credentials_in(field) {
            return tokens.to_vec();
        }
        tokens
            .iter()
            .filter(|token| {
                crate::threats::effects::credential_id(token)
                    .is_none_or(|id| !effects.credential_suspended(field, did, &id))
            })
            .cloned()
            .collect()
    }

    /// Whether `did` runs software an applied `mark-vulnerable` names in `field`, by the
    /// inventory credentials it presented (verified, about itself). Fails closed.
    pub fn vulnerable(&self, field: &str, did: &str, tokens: &[String]) -> bool {
        let Ok(effects) = self.threat_effects.read() else {
            return true;
        };
        if !effects.marks_vulnerable_in(field) {
            return false;
        }
        let verifier = CredentialVerifier::new();
        let inventories: Vec<_> = self.with_status_lists(|status_lists| {
            let context = crate::credential::VerifyContext {
                now: crate::credential::now_unix(),
                trust: None,
                status_lists,
                status_max_age_secs: crate::credential::DEFAULT_STATUS_MAX_AGE_SECS,
            };
            tokens
                .iter()
                .filter_map(|token| verifier.verify_credential(token, &context).ok())
                .filter(|credential| {
                    credential.type_name == crate::threats::effects::INVENTORY_TYPE
                })
                .collect()
        });
        effects.vulnerable(field, did, &inventories)
    }

    /// The fields joined, as of now.
    pub fn fields(&self) -> Vec<Arc<Field>> {
        self.fields
            .read()
            .map(|fields| fields.clone())
            .unwrap_or_default()
    }

    /// Runs `judge` against the known status lists without copying them (they hold megabytes
    /// of bits). A poisoned lock reads as no lists: credentials with a status then fail closed.
    pub fn with_status_lists<R>(&self, judge: impl FnOnce(&StatusLists) -> R) -> R {
        match self.status_lists.read() {
            Ok(lists) => judge(&lists),
            Err(_) => judge(&StatusLists::new()),
        }
    }

    /// The wallet, as of now.
    pub fn wallet(&self) -> Vec<String> {
        self.wallet
            .read()
            .map(|wallet| wallet.clone())
            .unwrap_or_default()
    }
}

struct Shared {
    party: Arc<LocalParty>,
    did: String,
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
/// evenly and all finished late (9 s), though the first
/// one to finish on each side is enough for anti-entropy and gossip to carry what the
/// other side missed. The rest queue here, behind the few in flight, but never longer
/// than [`MAX_QUEUED`]: the responder disconnects an opener that has not presented within its
/// grace window.
const MAX_INITIATING: usize = 8;
/// The longest a handshake waits for one of the [`MAX_INITIATING`] places.
const MAX_QUEUED: Duration = Duration::from_secs(2);

/// Whose judgement a change of facts may alter.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    /// Every peer's (a status list, a field, the rules).
    Everyone,
    /// Only these members' (their standing changed).
    Members(HashSet<String>),
}

impl Scope {
    fn includes(&self, did: &str) -> bool {
        match self {
            Scope::Everyone => true,
            Scope::Members(dids) => dids.contains(did),
        }
    }
}

/// Changes of facts waiting for the handshake service, gathered until it takes them.
///
/// Re-judging a peer re-verifies its credentials: a suspension re-judging every connected
/// peer cost a field of 50 gateways about 3.6 core-seconds per revocation.
#[derive(Debug, Default)]
pub struct FactsChanged {
    notify: Notify,
    pending: Mutex<Option<Scope>>,
}

impl FactsChanged {
    /// Facts every peer is judged on changed.
    pub fn everyone(&self) {
        if let Ok(mut pending) = self.pending.lock() {
            *pending = Some(Scope::Everyone);
        }
        self.notify.notify_one();
    }

    /// Only these members' standing changed.
    pub fn members(&self, dids: impl IntoIterator<Item = String>) {
        if let Ok(mut pending) = self.pending.lock() {
            match pending.get_or_insert_with(|| Scope::Members(HashSet::new())) {
                Scope::Everyone => {}
                Scope::Members(known) => known.extend(dids),
            }
        }
        self.notify.notify_one();
    }

    /// Waits for the next change.
    pub async fn notified(&self) {
        self.notify.notified().await;
    }

    /// The changes gathered since the last call: nobody if none (a wake-up left by a change
    /// already taken), everyone if the lock was poisoned.
    fn take(&self) -> Scope {
        match self.pending.lock() {
            Ok(mut pending) => pending
                .take()
                .unwrap_or_else(|| Scope::Members(HashSet::new())),
            Err(_) => Scope::Everyone,
        }
    }
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
        let shared = Arc::new(Shared {
            party,
            did,
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
                challenges: HashMap::new(),
                deadlines: HashMap::new(),
                finished_sender,
                finished,
                due: HashMap::new(),
                connected: HashSet::new(),
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

struct Service {
    shared: Arc<Shared>,
    /// The nonce we gave each peer that opened a handshake with us.
    challenges: HashMap<PeerId, String>,
    /// Connected peers whose handshake has not finished, with their deadline.
    deadlines: HashMap<PeerId, Instant>,
    /// Handshakes this side opened report here what they judged of the peer.
    finished_sender: mpsc::Sender<(PeerId, PeerRecord)>,
    finished: mpsc::Receiver<(PeerId, PeerRecord)>,
    /// Peers whose tiers are due to change, and when (Unix seconds).
    due: HashMap<PeerId, i64>,
    /// Peers with a connection open.
    connected: HashSet<PeerId>,
}

impl Service {
    async fn run(mut self, mut network_events: mpsc::Receiver<NetworkEvent>) {
        loop {
            let wake = self.next_wake();
            tokio::select! {
                event = network_events.recv() => match event {
                    Some(event) => self.network_event(event).await,
                    None => break,
                },
                () = tokio::time::sleep_until(wake) => self.timers().await,
                () = self.shared.party.facts_changed.notified() => self.facts_changed().await,
                Some((peer, record)) = self.finished.recv() => {
                    self.deadlines.remove(&peer);
                    self.schedule(peer, &record);
                }
            }
        }
    }

    fn next_wake(&self) -> Instant {
        let now_instant = Instant::now();
        let now = now_unix();
        let grace = self.deadlines.values().copied().min();
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
                    let shared = Arc::clone(&self.shared);
                    let finished = self.finished_sender.clone();
                    tokio::spawn(async move { shared.initiate(peer, finished).await });
                }
            }
            NetworkEvent::PeerDisconnected { peer } => {
                self.connected.remove(&peer);
                self.deadlines.remove(&peer);
                self.challenges.remove(&peer);
                self.due.remove(&peer);
                let _ = self.shared.events.send(GatewayEvent::PeerGone { peer });
            }
            NetworkEvent::HandshakeRequest {
                peer,
                request,
                channel,
            } => {
                let response = self.answer(peer, request).await;
                let _ = self
                    .shared
                    .commands
                    .send(Command::Respond { channel, response })
                    .await;
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

    async fn answer(&mut self, peer: PeerId, request: HandshakeRequest) -> HandshakeResponse {
        match request {
            HandshakeRequest::Hello { did, nonce, fields } => {
                match self.shared.hello(peer, &did, &nonce, &fields) {
                    Ok((response, our_nonce)) => {
                        self.challenges.insert(peer, our_nonce);
                        response
                    }
                    Err(refusal) => self.shared.refuse(peer, refusal).await,
                }
            }
            HandshakeRequest::Present { presentation } => {
                let Some(nonce) = self.challenges.remove(&peer) else {
                    return self
                        .shared
                        .refuse(peer, Refusal::protocol("present before hello"))
                        .await;
                };
                self.deadlines.remove(&peer);
                match self.shared.judge(peer, &presentation, &nonce).await {
                    Ok(record) => {
                        self.schedule(peer, &record);
                        if record.admitted() {
                            // The opener presents only after admitting us.
                            let _ = self.shared.events.send(GatewayEvent::Mutual { peer });
                        }
                        HandshakeResponse::Verdict {
                            tiers: record.tiers,
                        }
                    }
                    Err(refusal) => self.shared.refuse(peer, refusal).await,
                }
            }
        }
    }

    fn schedule(&mut self, peer: PeerId, record: &PeerRecord) {
        match record.next_change {
            Some(at) if record.admitted() => {
                self.due.insert(peer, at);
            }
            _ => {
                self.due.remove(&peer);
            }
        }
    }

    /// Re-judges the connected peers the new facts concern, and lets the peers gated on the
    /// old ones try again unless they are still barred.
    async fn facts_changed(&mut self) {
        let party = &self.shared.party;
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
        let connected: Vec<PeerId> = self.connected.iter().copied().collect();
        for peer in connected {
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
            self.challenges.remove(&peer);
            tracing::info!(%peer, "no handshake within the grace window");
            self.shared
                .party
                .metrics
                .count(metrics::HANDSHAKES, "handshake_timeout");
            let _ = self.shared.commands.send(Command::Disconnect(peer)).await;
            let _ = self.shared.events.send(GatewayEvent::PeerRefused {
                peer,
                code: "handshake_timeout".into(),
                message: "the peer did not complete the handshake within the grace window".into(),
            });
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

/// `field:tier` pairs, for the audit log.
fn tiers_text(record: &PeerRecord) -> String {
    record
        .tiers
        .iter()
        .map(|(field, tier)| format!("{}={tier}", &field[..field.len().min(12)]))
        .collect::<Vec<_>>()
        .join(",")
}

/// Why a handshake was refused.
struct Refusal {
    code: String,
    message: String,
}

impl Refusal {
    fn protocol(message: &str) -> Self {
        Self {
            code: "protocol".into(),
            message: message.into(),
        }
    }
}

impl From<VerificationError> for Refusal {
    fn from(error: VerificationError) -> Self {
        Self {
            code: error.code.to_string(),
            message: error.message,
        }
    }
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
    fn field_ids(&self) -> Vec<String> {
        self.party
            .fields()
            .iter()
            .map(|field| field.charter.field_id())
            .collect()
    }

    fn fresh_nonce() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    fn present(&self, audience: &str, nonce: &str) -> Result<String, Refusal> {
        create_presentation(
            &self.party.key,
            Challenge { audience, nonce },
            &self.party.wallet(),
            now_unix(),
            PRESENTATION_LIFETIME_SECS,
        )
        .map_err(|error| Refusal {
            code: "sign_failed".into(),
            message: error.to_string(),
        })
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

    /// Answers an opener's hello: our presentation for its nonce, and our own challenge.
    fn hello(
        &self,
        peer: PeerId,
        did: &str,
        nonce: &str,
        _fields: &[String],
    ) -> Result<(HandshakeResponse, String), Refusal> {
        Self::check_binding(peer, did)?;
        let presentation = self.present(did, nonce)?;
        let our_nonce = Self::fresh_nonce();
        let response = HandshakeResponse::Hello {
            did: self.did.clone(),
            nonce: our_nonce.clone(),
            fields: self.field_ids(),
            presentation,
        };
        Ok((response, our_nonce))
    }

    /// The opener's side: hello, check the responder, present, read its verdict. Reports
    /// what it judged of the peer on `finished`.
    async fn initiate(self: Arc<Self>, peer: PeerId, finished: mpsc::Sender<(PeerId, PeerRecord)>) {
        // Held until this handshake ends; after MAX_QUEUED it goes ahead without one.
        let _permit = tokio::time::timeout(MAX_QUEUED, self.initiating.acquire()).await;
        match self.initiate_steps(peer).await {
            Ok(record) => {
                let _ = finished.send((peer, record)).await;
            }
            // A connection that broke says nothing about the peer: no gate.
            Err(refusal) if refusal.code == UNREACHABLE => {
                tracing::info!(%peer, reason = %refusal.message, "handshake interrupted");
            }
            Err(refusal) => {
                self.refuse(peer, refusal).await;
            }
        }
    }

    async fn initiate_steps(&self, peer: PeerId) -> Result<PeerRecord, Refusal> {
        let nonce = Self::fresh_nonce();
        let hello = HandshakeRequest::Hello {
            did: self.did.clone(),
            nonce: nonce.clone(),
            fields: self.field_ids(),
        };
        let HandshakeResponse::Hello {
            did,
            nonce: their_nonce,
            presentation,
            ..
        } = self.request(peer, hello).await?
        else {
            return Err(Refusal::protocol("expected hello"));
        };
        Self::check_binding(peer, &did)?;
        let record = self.judge(peer, &presentation, &nonce).await?;
        if !record.admitted() {
            return Ok(record);
        }
        let ours = self.present(&did, &their_nonce)?;
        match self
            .request(peer, HandshakeRequest::Present { presentation: ours })
            .await?
        {
            HandshakeResponse::Verdict { tiers } => {
                tracing::info!(%peer, ?tiers, "the peer admitted us");
                let _ = self.events.send(GatewayEvent::Mutual { peer });
                Ok(record)
            }
            HandshakeResponse::Refused { code, message } => {
                tracing::warn!(%peer, %code, %message, "the peer refused us");
                Ok(record)
            }
            HandshakeResponse::Hello { .. } => Err(Refusal::protocol("expected a verdict")),
        }
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

    /// Checks a peer's presentation for our nonce, computes its tiers, records them, and
    /// gates the peer if it reaches no tier.
    async fn judge(
        &self,
        peer: PeerId,
        presentation: &str,
        nonce: &str,
    ) -> Result<PeerRecord, Refusal> {
        let now = now_unix();
        let opened = self
            .verifier
            .open_presentation(
                presentation,
                Challenge {
                    audience: &self.did,
                    nonce,
                },
                now,
                &self.party.replay,
            )
            .inspect_err(|error| {
                self.party
                    .metrics
                    .count(metrics::VERIFICATIONS, error.code.as_str())
            })?;
        self.party.metrics.count(metrics::VERIFICATIONS, "ok");
        self.party.store.tree(Tree::Replay)?.put_durable(
            nonce.as_bytes(),
            &UsedNonce {
                forget_after: now + PRESENTATION_LIFETIME_SECS + crate::credential::CLOCK_SKEW_SECS,
            },
        )?;
        Self::check_binding(peer, &opened.holder)?;
        let record = self.evaluate(opened.holder, opened.credentials, now);
        self.check_identity(peer, &record)?;
        self.party.put_peer_record(peer, &record)?;
        self.report(peer, record.clone()).await;
        Ok(record)
    }

    fn evaluate(&self, did: String, credentials: Vec<String>, now: i64) -> PeerRecord {
        let fields = self.party.fields();
        let (tiers, next_change, corporate_number) = self.party.with_status_lists(|status_lists| {
            let mut tiers = BTreeMap::new();
            let mut next_change: Option<i64> = None;
            for field in &fields {
                let context = TierContext {
                    at: now,
                    status_lists,
                    holder: Some(&did),
                };
                let charter = self.party.effective_charter(field);
                let id = charter.field_id();
                if self.party.is_barred(&id, &did) || self.party.threat_blocked(&id, &did) {
                    // A revoked, suspended or blocked member's credentials stop counting at once.
                    tiers.insert(id, 0);
                    continue;
                }
                let counted = self.party.counted_credentials(&id, &did, &credentials);
                let report = evaluate(&charter, &self.verifier, &counted, context);
                let cap = self.party.tier_cap(&id, &did).unwrap_or(u8::MAX);
                tiers.insert(id, report.tier.min(cap));
                next_change = [next_change, report.next_change]
                    .into_iter()
                    .flatten()
                    .min();
            }
            let corporate_number =
                self.corporate_number(&did, &credentials, &fields, status_lists, now);
            (tiers, next_change, corporate_number)
        });
        PeerRecord {
            did,
            tiers,
            credentials,
            evaluated_at: now,
            next_change,
            corporate_number,
        }
    }

    /// The corporate number of the holder's identity credential, counted only when an issuer
    /// that some joined field trusts for identities issued it: a self-made claim to another
    /// company's number must not lock that company out.
    fn corporate_number(
        &self,
        did: &str,
        credentials: &[String],
        fields: &[Arc<Field>],
        status_lists: &StatusLists,
        now: i64,
    ) -> Option<String> {
        let context = crate::credential::VerifyContext {
            now,
            trust: None,
            status_lists,
            status_max_age_secs: crate::credential::DEFAULT_STATUS_MAX_AGE_SECS,
        };
        let trusts: Vec<_> = fields
            .iter()
            .map(|field| field.charter.issuer_trust())
            .collect();
        credentials.iter().find_map(|token| {
            let credential = self.verifier.verify_credential(token, &context).ok()?;
            let trusted = trusts
                .iter()
                .any(|trust| trust.is_trusted(&credential.issuer, &credential.type_name));
            (credential.type_name == IDENTITY_TYPE && credential.subject == did && trusted)
                .then(|| {
                    credential
                        .claims
                        .get("corporateNumber")?
                        .as_str()
                        .map(str::to_owned)
                })
                .flatten()
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
            .tree(Tree::Peers)?
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

    async fn report(&self, peer: PeerId, record: PeerRecord) {
        let decision = if record.admitted() {
            "admission:allow"
        } else {
            "admission:deny"
        };
        self.party.metrics.count(metrics::DECISIONS, decision);
        if record.admitted() {
            self.party.audit.record(Event {
                actor: record.did.clone(),
                action: "handshake".into(),
                object: peer.to_string(),
                decision: "allow".into(),
                reason: format!("tiers:{}", tiers_text(&record)),
                ..Event::default()
            });
            self.party.metrics.count(metrics::HANDSHAKES, "verified");
            let _ = self.commands.send(Command::Admitted(peer)).await;
            let _ = self
                .events
                .send(GatewayEvent::PeerVerified { peer, record });
        } else if let Some(field) = record
            .tiers
            .keys()
            .find(|field| self.party.is_barred(field, &record.did))
        {
            let message = format!("{} is revoked or suspended in field {field}", record.did);
            self.gate(peer, Some(&record.did), "member_barred", &message)
                .await;
        } else if let Some(field) = record
            .tiers
            .keys()
            .find(|field| self.party.threat_blocked(field, &record.did))
        {
            let message = format!(
                "{} is blocked in field {field} by a threat countermeasure",
                record.did
            );
            self.gate(peer, Some(&record.did), "threat_blocked", &message)
                .await;
        } else {
            let message = format!("{} reaches no tier in any shared field", record.did);
            self.gate(peer, None, "no_tier", &message).await;
        }
    }

    /// Refuses and blocks `peer`; `barred` is the member's DID when its standing or a
    /// threat countermeasure is the reason.
    async fn gate(&self, peer: PeerId, barred: Option<&str>, code: &str, message: &str) {
        tracing::info!(%peer, %code, %message, "peer refused and gated");
        self.party.audit.record(Event {
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
        let _ = self.commands.send(Command::Block(peer)).await;
        let _ = self.events.send(GatewayEvent::PeerRefused {
            peer,
            code: code.into(),
            message: message.into(),
        });
    }

    async fn refuse(&self, peer: PeerId, refusal: Refusal) -> HandshakeResponse {
        self.gate(peer, None, &refusal.code, &refusal.message).await;
        HandshakeResponse::Refused {
            code: refusal.code,
            message: refusal.message,
        }
    }

    /// Recomputes a peer's tiers from the credentials it presented, as of now.
    async fn reevaluate(&self, peer: PeerId, scope: &Scope) -> Option<PeerRecord> {
        let peers = self.party.store.tree(Tree::Peers).ok()?;
        let previous: PeerRecord = peers.get(peer.to_bytes().as_slice()).ok()??;
        if !scope.includes(&previous.did) {
            return None;
        }
        let record = self.evaluate(
            previous.did.clone(),
            previous.credentials.clone(),
            now_unix(),
        );
        // Most changes touch one member: a durable write per unchanged peer cost a field of
        // N gateways N fsyncs per change each.
        let unchanged =
            record.tiers == previous.tiers && record.next_change == previous.next_change;
        if !unchanged && self.party.put_peer_record(peer, &record).is_err() {
            tracing::warn!(%peer, "could not store the re-evaluated tiers");
        }
        self.report(peer, record.clone()).await;
        Some(record)
    }
}

#[cfg(test)]
mod facts_tests {
    use super::*;

    fn dids(scope: &Scope) -> Option<Vec<&str>> {
        match scope {
            Scope::Everyone => None,
            Scope::Members(dids) => {
                let mut dids: Vec<&str> = dids.iter().map(String::as_str).collect();
                dids.sort_unstable();
                Some(dids)
            }
        }
    }

    #[test]
    fn changes_of_standing_gather_until_taken() {
        let facts = FactsChanged::default();
        facts.members(["did:b".to_owned()]);
        facts.members(["did:a".to_owned(), "did:b".to_owned()]);
        let scope = facts.take();
        assert_eq!(dids(&scope), Some(vec!["did:a", "did:b"]));
        assert!(scope.includes("did:a") && !scope.includes("did:c"));
        // A second wake-up for changes already taken re-judges nobody.
        assert_eq!(dids(&facts.take()), Some(vec![]));
    }

    #[test]
    fn a_change_for_everyone_absorbs_changes_of_standing() {
        let facts = FactsChanged::default();
        facts.members(["did:a".to_owned()]);
        facts.everyone();
        facts.members(["did:b".to_owned()]);
        assert_eq!(facts.take(), Scope::Everyone);
    }
}
