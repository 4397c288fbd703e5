//! The handshake service: one task that owns the open negotiations and the timers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::credential::now_unix;
use crate::identity::PublicKey;
use crate::metrics;
use crate::negotiation::{Negotiation, Party, Refusal, Turn};
use crate::net::{Command, HandshakeRequest, HandshakeResponse, NetworkEvent};
use crate::services::Scope;
use crate::store::StoreError;

use super::{Ending, GatewayEvent, Progress, REFUSED, REOPEN_AFTER, Shared};
use crate::services::{PeerRecord, Presented};

/// Why a peer is gated: the DID barred (if a bar is the reason), the code, the message.
pub(super) type Gate = (Option<String>, String, String);

/// A handshake the peer opened, as this side answers it.
pub(super) struct Responding {
    pub(super) negotiation: Negotiation,
    pub(super) reported: Reported,
}

/// What one side reported of a handshake so far.
#[derive(Default)]
pub(super) struct Reported {
    /// The tiers last reported, so that an unchanged turn is not reported again.
    pub(super) tiers: Option<BTreeMap<String, u8>>,
    /// The credentials last stored: a turn that brings new ones stores the record again,
    /// even when the tiers stay as they were.
    pub(super) presented: Option<BTreeMap<String, Presented>>,
    /// The record last built, whose identity was checked: a turn that brought no new
    /// credential reuses its identity instead of verifying it again.
    pub(super) record: Option<PeerRecord>,
    /// Whether the mutual event was sent.
    pub(super) mutual: bool,
}

pub(super) struct Service {
    pub(super) shared: Arc<Shared>,
    /// Peers we have a handshake open with, and whether to open another once it ends (the
    /// facts changed meanwhile): one at a time per peer, or their messages would cross.
    pub(super) opening: HashMap<PeerId, bool>,
    /// Handshakes peers opened with us, by peer.
    pub(super) responding: HashMap<PeerId, Responding>,
    /// Connected peers not yet verified, with their deadline.
    pub(super) deadlines: HashMap<PeerId, Instant>,
    /// Handshakes this side opened report here how they ended.
    pub(super) finished_sender: mpsc::Sender<(PeerId, Ending)>,
    pub(super) finished: mpsc::Receiver<(PeerId, Ending)>,
    /// Peers whose tiers are due to change, and when (Unix seconds).
    pub(super) due: HashMap<PeerId, i64>,
    /// Peers with a connection open.
    pub(super) connected: HashSet<PeerId>,
    /// Peers we do not open handshakes with whose standing changed in our eyes, and when we
    /// open one anyway: only if the peer has not opened one since (see [`REOPEN_AFTER`]).
    pub(super) reopen: HashMap<PeerId, Instant>,
    /// The handshakes this side opened, each in a task of its own.
    pub(super) opened: JoinSet<()>,
}

impl Service {
    pub(super) async fn run(
        mut self,
        mut network_events: mpsc::Receiver<NetworkEvent>,
        cancel: CancellationToken,
    ) {
        self.shared.welcome_members().await;
        loop {
            let wake = self.next_wake();
            tokio::select! {
                () = cancel.cancelled() => break,
                Some(_) = self.opened.join_next(), if !self.opened.is_empty() => {}
                event = network_events.recv() => match event {
                    Some(event) => self.network_event(event).await,
                    None => break,
                },
                () = tokio::time::sleep_until(wake) => self.timers().await,
                () = self.shared.services.facts_changed.notified() => self.facts_changed().await,
                Some((peer, ending)) = self.finished.recv() => self.finished(peer, ending),
            }
        }
        crate::lifecycle::drain(&mut self.opened).await;
    }

    pub(super) fn next_wake(&self) -> Instant {
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

    pub(super) async fn network_event(&mut self, event: NetworkEvent) {
        match event {
            NetworkEvent::PeerConnected { peer, opener } => {
                self.connected.insert(peer);
                // Either side drops a peer that has not finished within the grace window:
                // the opener's requests to a silent peer fail without saying why.
                let grace = Duration::from_secs(self.shared.services.grace_secs);
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
                        .services
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
                    .services
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
    pub(super) fn open(&mut self, peer: PeerId) {
        if let Some(again) = self.opening.get_mut(&peer) {
            *again = true;
            return;
        }
        self.opening.insert(peer, false);
        let shared = Arc::clone(&self.shared);
        let finished = self.finished_sender.clone();
        self.opened
            .spawn(async move { shared.initiate(peer, finished).await });
    }

    pub(super) fn finished(&mut self, peer: PeerId, ending: Ending) {
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

    pub(super) fn forget(&mut self, peer: PeerId) {
        self.responding.remove(&peer);
        self.deadlines.remove(&peer);
        self.due.remove(&peer);
    }

    /// Answers one message of a handshake the peer opened. Returns the answer and, if the
    /// peer is to be gated after hearing it, why.
    pub(super) async fn answer(
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

    pub(super) async fn hello(
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

    pub(super) async fn turn(
        &mut self,
        peer: PeerId,
        turn: &Turn,
    ) -> Result<HandshakeResponse, Refusal> {
        let shared = Arc::clone(&self.shared);
        let Some(mut responding) = self.responding.remove(&peer) else {
            return Err(Refusal::protocol("a turn before hello"));
        };
        let turn = turn.clone();
        let (negotiation, out, writes) = shared
            .off_the_loop(responding.negotiation, move |view, negotiation| {
                if !negotiation.proven() {
                    let proof = turn.proof.as_deref().ok_or_else(|| {
                        Refusal::protocol("the first turn carries no proof of key")
                    })?;
                    negotiation.take_proof(view, proof)?;
                }
                let now = now_unix();
                negotiation.take(view, &turn, now)?;
                negotiation.next(view, now)
            })
            .await?;
        responding.negotiation = negotiation;
        self.responding.insert(peer, responding);
        shared.persist(peer, writes).await?;
        Ok(HandshakeResponse::Turn(out?))
    }

    /// Records what this side knows after answering a turn; says whether to gate the peer.
    pub(super) async fn settle(&mut self, peer: PeerId, out: &Turn) -> Option<Gate> {
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

    pub(super) fn schedule(&mut self, peer: PeerId, record: &PeerRecord) {
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
    pub(super) async fn facts_changed(&mut self) {
        let services = Arc::clone(&self.shared.services);
        let fields_changed = services.facts_changed.take_fields();
        let scope = services.facts_changed.take();
        let lifted: Vec<PeerId> = match self.shared.gated.lock() {
            Ok(mut gated) => {
                // A member still barred would only be refused again: letting it back on
                // every change made a field of N re-handshake its barred members N times.
                let lifted: Vec<PeerId> = gated
                    .iter()
                    .filter(|(_, barred)| {
                        !barred
                            .as_deref()
                            .is_some_and(|did| services.barred_anywhere(did))
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
            let ask_again = fields_changed || (standing_changed && !services.barred_anywhere(&did));
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

    pub(super) async fn timers(&mut self) {
        let now_instant = Instant::now();
        for peer in take_due(&mut self.deadlines, now_instant) {
            self.responding.remove(&peer);
            tracing::info!(%peer, "no handshake within the grace window");
            self.shared
                .services
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
        for peer in take_due(&mut self.reopen, now_instant) {
            if self.connected.contains(&peer) {
                self.open(peer);
            }
        }
        for peer in take_due(&mut self.due, now_unix()) {
            match self.shared.reevaluate(peer, &Scope::Everyone).await {
                Some(record) => self.schedule(peer, &record),
                None => tracing::debug!(%peer, "no record to re-evaluate"),
            }
        }
    }
}

/// The answer every peer without standing gets.
/// Takes out of `timers` the peers whose time has come by `now`.
fn take_due<T: PartialOrd>(timers: &mut HashMap<PeerId, T>, now: T) -> Vec<PeerId> {
    timers
        .extract_if(|_, at| *at <= now)
        .map(|(peer, _)| peer)
        .collect()
}

pub(super) fn refused() -> HandshakeResponse {
    HandshakeResponse::Refused {
        code: REFUSED.into(),
        message: REFUSED.into(),
    }
}

pub(super) fn no_shared_field(negotiation: &Negotiation) -> String {
    format!("{} has standing in no field we share", negotiation.peer())
}

/// A peer's DID must name the key of the connection it speaks on.
pub(super) fn check_binding(peer: PeerId, did: &str) -> Result<(), Refusal> {
    match PublicKey::peer_id_of(did) {
        Some(bound) if bound == peer => Ok(()),
        _ => Err(Refusal {
            code: "identity_mismatch".into(),
            message: format!("{did} is not the key of connection {peer}"),
        }),
    }
}

/// `field:tier` pairs, for the audit log.
pub(super) fn tiers_text(record: &PeerRecord) -> String {
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
