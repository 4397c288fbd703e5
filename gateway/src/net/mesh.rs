//! Gossip scoped to fields: one gossipsub instance per field, each on a protocol of its own
//! (`/tfc/mesh/<tag>/1.1.0`, the tag a digest of the field id), and each told only about the
//! connections of peers the handshake verified in that field.
//!
//! rust-libp2p's gossipsub has no per-peer, per-topic allow list, and it announces its
//! subscriptions to every connection it knows. So [`FieldMeshes`] keeps it from knowing the
//! others: a connection enters a field's gossipsub only once the peer is allowed in that
//! field ([`FieldMeshes::allow`]), and leaves it the moment it is no longer allowed. Until
//! then no handler of that field runs on the connection: the field's protocol is not even
//! offered there, so identify does not list it, a stream for it is refused, and nothing of
//! the field (topic, subscription, message, IHAVE) is sent or accepted. A stranger sees no
//! gossip protocol at all; a member of field A alone never sees field B's.
//!
//! The handler side ([`MeshHandler`]) holds the live gossipsub handlers of a connection,
//! keyed by field, and takes new ones from the behaviour as peers are allowed. When both
//! sides allow each other at nearly the same time, one may open its stream before the other
//! offers the protocol; that stream is retried (on the peer's identify push, or after a
//! short backoff) rather than disabling the field's gossip on the connection.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{ConnectedPoint, Endpoint, Multiaddr};
use libp2p::gossipsub;
use libp2p::swarm::behaviour::{AddressChange, ConnectionClosed, ConnectionEstablished};
use libp2p::swarm::handler::{
    AddressChange as HandlerAddressChange, ConnectionEvent, ConnectionHandler,
    ConnectionHandlerEvent, DialUpgradeError, FullyNegotiatedInbound, FullyNegotiatedOutbound,
    InboundUpgradeSend, ListenUpgradeError, ProtocolsChange, StreamUpgradeError, SubstreamProtocol,
    UpgradeInfoSend,
};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, NotifyHandler, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use sha2::{Digest, Sha256};

use super::gossip::{self, TopicKind, topic_name};

type Gossip = gossipsub::Behaviour;
type InnerHandler = THandler<Gossip>;
type InnerIn = THandlerInEvent<Gossip>;
type InnerOut = THandlerOutEvent<Gossip>;
type InnerInbound = <InnerHandler as ConnectionHandler>::InboundProtocol;
type InnerOutbound = <InnerHandler as ConnectionHandler>::OutboundProtocol;

/// Attempts to open a field's stream that the peer did not offer yet, before waiting for the
/// peer to say it offers it.
const MAX_OPEN_ATTEMPTS: u32 = 8;
/// The first wait before trying again; it doubles with each attempt.
const FIRST_RETRY: Duration = Duration::from_millis(50);

/// The protocol of `field`'s gossip: a digest of the field id, offered only to members.
pub fn mesh_protocol(field: &str) -> String {
    let digest = Sha256::digest(format!("tfc/mesh:{field}").as_bytes());
    format!("/tfc/mesh/{}/1.1.0", crate::hex::encode(&digest[..16]))
}

/// How a connection was set up: what gossipsub needs to make a handler for it.
#[derive(Debug, Clone)]
enum Setup {
    Inbound {
        local: Multiaddr,
        remote: Multiaddr,
    },
    Outbound {
        address: Multiaddr,
        role: Endpoint,
        port_use: PortUse,
    },
}

/// A connection the swarm established.
#[derive(Debug)]
struct Connection {
    peer: PeerId,
    setup: Setup,
    endpoint: Option<ConnectedPoint>,
    /// The fields whose gossip runs on it.
    active: BTreeSet<String>,
}

/// One field's gossip.
struct Mesh {
    gossip: Gossip,
}

/// What the behaviour tells a connection's [`MeshHandler`].
pub(super) enum MeshIn {
    /// Run this field's gossip on the connection.
    Install(String, Box<InnerHandler>),
    /// Stop this field's gossip on the connection.
    Remove(String),
    /// An event of a field's gossipsub for its handler.
    Inner(String, InnerIn),
}

impl fmt::Debug for MeshIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MeshIn::Install(field, _) => write!(f, "Install({field})"),
            MeshIn::Remove(field) => write!(f, "Remove({field})"),
            MeshIn::Inner(field, event) => write!(f, "Inner({field}, {event:?})"),
        }
    }
}

/// The gossip of every joined field, each among the peers verified in it.
pub(super) struct FieldMeshes {
    max_bytes: usize,
    meshes: HashMap<String, Mesh>,
    connections: HashMap<ConnectionId, Connection>,
    /// The fields each peer is allowed in, by the handshake.
    allowed: HashMap<PeerId, BTreeSet<String>>,
    events: VecDeque<ToSwarm<(String, gossipsub::Event), MeshIn>>,
    /// Where the next poll starts, so that every field gets its turn.
    next_mesh: usize,
    /// Each peer's application score: minus one per message it sent over its own rate.
    penalties: HashMap<PeerId, f64>,
}

impl FieldMeshes {
    /// No field yet; every message is bounded by `max_bytes`.
    pub(super) fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            meshes: HashMap::new(),
            connections: HashMap::new(),
            allowed: HashMap::new(),
            events: VecDeque::new(),
            next_mesh: 0,
            penalties: HashMap::new(),
        }
    }

    /// Lowers `peer`'s score in every field's gossip: at gossipsub's application weight of
    /// 10, five offences put it under the publish threshold and eight graylist it.
    pub(super) fn penalise(&mut self, peer: PeerId) {
        let score = self.penalties.entry(peer).or_insert(0.0);
        *score -= 1.0;
        for mesh in self.meshes.values_mut() {
            mesh.gossip.set_application_score(&peer, *score);
        }
    }

    /// Starts `field`'s gossip: its topics, subscribed, among the peers allowed in it.
    pub(super) fn join(&mut self, field: &str) -> Result<(), String> {
        if self.meshes.contains_key(field) {
            return Ok(());
        }
        let mut gossip = gossip::behaviour(self.max_bytes, &mesh_protocol(field))?;
        for kind in TopicKind::ALL {
            let topic = gossipsub::IdentTopic::new(topic_name(field, kind));
            gossip
                .set_topic_params(topic.clone(), gossip::topic_score())
                .map_err(|error| error.to_owned())?;
            gossip
                .subscribe(&topic)
                .map_err(|error| error.to_string())?;
        }
        self.meshes.insert(field.to_owned(), Mesh { gossip });
        let connections: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(_, connection)| {
                self.allowed
                    .get(&connection.peer)
                    .is_some_and(|fields| fields.contains(field))
            })
            .map(|(id, _)| *id)
            .collect();
        for id in connections {
            self.activate(field, id);
        }
        Ok(())
    }

    /// Allows `peer` in exactly `fields`: its connections enter the gossip of fields newly
    /// allowed and leave that of fields no longer allowed, at once.
    pub(super) fn allow(&mut self, peer: PeerId, fields: BTreeSet<String>) {
        let before = self.allowed.get(&peer).cloned().unwrap_or_default();
        let connections: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(_, connection)| connection.peer == peer)
            .map(|(id, _)| *id)
            .collect();
        for field in before.difference(&fields) {
            for id in &connections {
                self.deactivate(field, *id);
            }
        }
        for field in fields.difference(&before) {
            for id in &connections {
                self.activate(field, *id);
            }
        }
        if fields.is_empty() {
            self.allowed.remove(&peer);
        } else {
            self.allowed.insert(peer, fields);
        }
    }

    /// Publishes `data` on `topic` of `field`.
    pub(super) fn publish(
        &mut self,
        field: &str,
        topic: &str,
        data: Vec<u8>,
    ) -> Result<(), String> {
        let mesh = self
            .meshes
            .get_mut(field)
            .ok_or_else(|| "not a joined field".to_owned())?;
        mesh.gossip
            .publish(gossipsub::IdentTopic::new(topic), data)
            .map(drop)
            .map_err(|error| error.to_string())
    }

    /// Reports the application's judgement of a message received in `field`.
    pub(super) fn report(
        &mut self,
        field: &str,
        message: &gossipsub::MessageId,
        source: &PeerId,
        acceptance: gossipsub::MessageAcceptance,
    ) {
        if let Some(mesh) = self.meshes.get_mut(field) {
            mesh.gossip
                .report_message_validation_result(message, source, acceptance);
        }
    }

    /// The lowest gossipsub score `peer` has in a field it takes part in.
    pub(super) fn score(&self, peer: &PeerId) -> Option<f64> {
        self.meshes
            .values()
            .filter_map(|mesh| mesh.gossip.peer_score(peer))
            .reduce(f64::min)
    }

    /// The fields whose gossip runs with `peer`: some connection to it is active there and
    /// its subscriptions have reached us, so that what we publish now goes to it too.
    pub(super) fn active_fields(&self, peer: &PeerId) -> BTreeSet<String> {
        self.connections
            .values()
            .filter(|connection| connection.peer == *peer)
            .flat_map(|connection| connection.active.iter())
            .filter(|field| {
                self.meshes.get(*field).is_some_and(|mesh| {
                    mesh.gossip
                        .all_peers()
                        .any(|(known, topics)| known == peer && !topics.is_empty())
                })
            })
            .cloned()
            .collect()
    }

    fn others_active(&self, field: &str, peer: PeerId, except: ConnectionId) -> usize {
        self.connections
            .iter()
            .filter(|(id, connection)| {
                **id != except && connection.peer == peer && connection.active.contains(field)
            })
            .count()
    }

    /// Runs `field`'s gossip on connection `id`: a handler from the field's gossipsub goes
    /// to the connection, then gossipsub hears that the connection is up.
    fn activate(&mut self, field: &str, id: ConnectionId) {
        let Some(connection) = self.connections.get(&id) else {
            return;
        };
        let (peer, setup) = (connection.peer, connection.setup.clone());
        let Some(endpoint) = connection.endpoint.clone() else {
            return;
        };
        if connection.active.contains(field) {
            return;
        }
        let others = self.others_active(field, peer, id);
        let Some(mesh) = self.meshes.get_mut(field) else {
            return;
        };
        let handler = match &setup {
            Setup::Inbound { local, remote } => mesh
                .gossip
                .handle_established_inbound_connection(id, peer, local, remote),
            Setup::Outbound {
                address,
                role,
                port_use,
            } => mesh
                .gossip
                .handle_established_outbound_connection(id, peer, address, *role, *port_use),
        };
        let Ok(handler) = handler else {
            tracing::warn!(%peer, field, "gossip refused a connection");
            return;
        };
        self.events.push_back(ToSwarm::NotifyHandler {
            peer_id: peer,
            handler: NotifyHandler::One(id),
            event: MeshIn::Install(field.to_owned(), Box::new(handler)),
        });
        mesh.gossip
            .on_swarm_event(FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id: peer,
                connection_id: id,
                endpoint: &endpoint,
                failed_addresses: &[],
                other_established: others,
            }));
        if let Some(connection) = self.connections.get_mut(&id) {
            connection.active.insert(field.to_owned());
        }
    }

    /// Stops `field`'s gossip on connection `id`: gossipsub hears the connection closed
    /// (the peer leaves the field's mesh), and the connection drops the handler.
    fn deactivate(&mut self, field: &str, id: ConnectionId) {
        let Some(connection) = self.connections.get(&id) else {
            return;
        };
        if !connection.active.contains(field) {
            return;
        }
        let peer = connection.peer;
        let endpoint = connection.endpoint.clone();
        let remaining = self.others_active(field, peer, id);
        if let (Some(mesh), Some(endpoint)) = (self.meshes.get_mut(field), endpoint) {
            mesh.gossip
                .on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
                    peer_id: peer,
                    connection_id: id,
                    endpoint: &endpoint,
                    cause: None,
                    remaining_established: remaining,
                }));
        }
        self.events.push_back(ToSwarm::NotifyHandler {
            peer_id: peer,
            handler: NotifyHandler::One(id),
            event: MeshIn::Remove(field.to_owned()),
        });
        if let Some(connection) = self.connections.get_mut(&id) {
            connection.active.remove(field);
        }
    }

    fn established(&mut self, peer: PeerId, id: ConnectionId, endpoint: &ConnectedPoint) {
        let Some(connection) = self.connections.get_mut(&id) else {
            return;
        };
        connection.endpoint = Some(endpoint.clone());
        let fields = self.allowed.get(&peer).cloned().unwrap_or_default();
        for field in fields {
            self.activate(&field, id);
        }
    }

    fn closed(&mut self, closed: &ConnectionClosed<'_>) {
        let Some(connection) = self.connections.remove(&closed.connection_id) else {
            return;
        };
        for field in &connection.active {
            let remaining = self.others_active(field, connection.peer, closed.connection_id);
            if let Some(mesh) = self.meshes.get_mut(field) {
                mesh.gossip
                    .on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
                        remaining_established: remaining,
                        ..*closed
                    }));
            }
        }
        let still_connected = self
            .connections
            .values()
            .any(|other| other.peer == connection.peer);
        if !still_connected {
            // A peer that comes back is verified again before it gossips again.
            self.allowed.remove(&connection.peer);
        }
    }

    fn address_changed(&mut self, change: &AddressChange<'_>) {
        let Some(connection) = self.connections.get_mut(&change.connection_id) else {
            return;
        };
        connection.endpoint = Some(change.new.clone());
        for field in connection.active.clone() {
            if let Some(mesh) = self.meshes.get_mut(&field) {
                mesh.gossip
                    .on_swarm_event(FromSwarm::AddressChange(AddressChange { ..*change }));
            }
        }
    }

    /// Passes an event of a field's gossipsub on, for connections where that field runs.
    fn route(
        &self,
        field: &str,
        event: ToSwarm<gossipsub::Event, InnerIn>,
    ) -> Option<ToSwarm<(String, gossipsub::Event), MeshIn>> {
        match event {
            ToSwarm::NotifyHandler {
                peer_id,
                handler,
                event,
            } => {
                let target = match handler {
                    NotifyHandler::One(id) => self
                        .connections
                        .get(&id)
                        .is_some_and(|connection| connection.active.contains(field))
                        .then_some(id)?,
                    NotifyHandler::Any => {
                        *self
                            .connections
                            .iter()
                            .find(|(_, connection)| {
                                connection.peer == peer_id && connection.active.contains(field)
                            })?
                            .0
                    }
                };
                Some(ToSwarm::NotifyHandler {
                    peer_id,
                    handler: NotifyHandler::One(target),
                    event: MeshIn::Inner(field.to_owned(), event),
                })
            }
            other => {
                let field = field.to_owned();
                let tag = field.clone();
                Some(
                    other
                        .map_out(move |event| (field, event))
                        .map_in(move |event| MeshIn::Inner(tag, event)),
                )
            }
        }
    }
}

impl NetworkBehaviour for FieldMeshes {
    type ConnectionHandler = MeshHandler;
    type ToSwarm = (String, gossipsub::Event);

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.connections.insert(
            id,
            Connection {
                peer,
                setup: Setup::Inbound {
                    local: local.clone(),
                    remote: remote.clone(),
                },
                endpoint: None,
                active: BTreeSet::new(),
            },
        );
        Ok(MeshHandler::new())
    }

    fn handle_established_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        address: &Multiaddr,
        role: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.connections.insert(
            id,
            Connection {
                peer,
                setup: Setup::Outbound {
                    address: address.clone(),
                    role,
                    port_use,
                },
                endpoint: None,
                active: BTreeSet::new(),
            },
        );
        Ok(MeshHandler::new())
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(established) => self.established(
                established.peer_id,
                established.connection_id,
                established.endpoint,
            ),
            FromSwarm::ConnectionClosed(closed) => self.closed(&closed),
            FromSwarm::AddressChange(change) => self.address_changed(&change),
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        (field, event): THandlerOutEvent<Self>,
    ) {
        let runs = self
            .connections
            .get(&id)
            .is_some_and(|connection| connection.active.contains(&field));
        if !runs {
            return;
        }
        if let Some(mesh) = self.meshes.get_mut(&field) {
            mesh.gossip.on_connection_handler_event(peer, id, event);
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        if let Some(event) = self.events.pop_front() {
            return Poll::Ready(event);
        }
        let mut fields: Vec<String> = self.meshes.keys().cloned().collect();
        fields.sort_unstable();
        let count = fields.len();
        for offset in 0..count {
            let field = &fields[(self.next_mesh + offset) % count];
            while let Some(mesh) = self.meshes.get_mut(field)
                && let Poll::Ready(event) = mesh.gossip.poll(cx)
            {
                // An event for a connection the field no longer runs on is dropped.
                if let Some(event) = self.route(field, event) {
                    self.next_mesh = (self.next_mesh + offset + 1) % count;
                    return Poll::Ready(event);
                }
            }
        }
        Poll::Pending
    }
}

/// A field's stream that the peer did not offer yet, to open again.
struct Retry {
    protocol: SubstreamProtocol<InnerOutbound, ()>,
    attempts: u32,
    /// Due now (`None`: the peer now offers it), or when the timer fires.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Whether an attempt is under way: never two at once.
    in_flight: bool,
}

/// The gossipsub handlers of the fields whose gossip runs on one connection.
pub(super) struct MeshHandler {
    handlers: BTreeMap<String, InnerHandler>,
    /// Outbound streams requested, by field: made again if the peer refuses the protocol.
    requested: HashMap<String, SubstreamProtocol<InnerOutbound, ()>>,
    retries: HashMap<String, Retry>,
    /// Where the next poll starts, so that every field gets its turn.
    next: usize,
}

type MeshEvent = ConnectionHandlerEvent<InnerOutbound, String, (String, InnerOut)>;

impl MeshHandler {
    fn new() -> Self {
        Self {
            handlers: BTreeMap::new(),
            requested: HashMap::new(),
            retries: HashMap::new(),
            next: 0,
        }
    }

    fn forget(&mut self, field: &str) {
        self.requested.remove(field);
        self.retries.remove(field);
    }

    /// The peer refused a field's protocol: it has not allowed us yet. Try again when it
    /// says it offers the protocol, or after a backoff; give up after a few attempts.
    fn retry_later(&mut self, field: String) {
        let Some(protocol) = self.requested.remove(&field) else {
            return;
        };
        let attempts = self.retries.get(&field).map_or(0, |retry| retry.attempts) + 1;
        // Past the last attempt, only the peer's identify push (it offers the protocol now)
        // tries again.
        let wait = if attempts > MAX_OPEN_ATTEMPTS {
            tracing::debug!(field, "the peer does not offer the field's gossip yet");
            Duration::from_secs(3600)
        } else {
            FIRST_RETRY * 2u32.saturating_pow(attempts - 1)
        };
        self.retries.insert(
            field,
            Retry {
                protocol,
                attempts,
                timer: Some(Box::pin(tokio::time::sleep(wait))),
                in_flight: false,
            },
        );
    }

    fn due_retry(&mut self, cx: &mut Context<'_>) -> Option<MeshEvent> {
        let due = self.retries.iter_mut().find_map(|(field, retry)| {
            if retry.in_flight {
                return None;
            }
            let ready = match &mut retry.timer {
                None => true,
                Some(timer) => timer.poll_unpin(cx).is_ready(),
            };
            ready.then(|| field.clone())
        })?;
        let retry = self.retries.get_mut(&due)?;
        retry.in_flight = true;
        retry.timer = None;
        let protocol = copy_protocol(&retry.protocol);
        self.requested
            .insert(due.clone(), copy_protocol(&retry.protocol));
        Some(ConnectionHandlerEvent::OutboundSubstreamRequest {
            protocol: protocol.map_info(|()| due),
        })
    }
}

fn copy_protocol(
    protocol: &SubstreamProtocol<InnerOutbound, ()>,
) -> SubstreamProtocol<InnerOutbound, ()> {
    SubstreamProtocol::new(protocol.upgrade().clone(), ()).with_timeout(*protocol.timeout())
}

/// The inbound protocols of every field running on a connection.
pub(super) struct FieldUpgrade {
    upgrades: Vec<(String, InnerInbound)>,
}

/// One protocol name of a [`FieldUpgrade`]: which field's upgrade, and its own name.
#[derive(Debug, Clone)]
pub(super) struct FieldProtocol(usize, <InnerInbound as UpgradeInfoSend>::Info);

impl AsRef<str> for FieldProtocol {
    fn as_ref(&self) -> &str {
        AsRef::<str>::as_ref(&self.1)
    }
}

impl UpgradeInfoSend for FieldUpgrade {
    type Info = FieldProtocol;
    type InfoIter = std::vec::IntoIter<FieldProtocol>;

    fn protocol_info(&self) -> Self::InfoIter {
        self.upgrades
            .iter()
            .enumerate()
            .flat_map(|(index, (_, upgrade))| {
                upgrade
                    .protocol_info()
                    .map(move |info| FieldProtocol(index, info))
            })
            .collect::<Vec<_>>()
            .into_iter()
    }
}

impl InboundUpgradeSend for FieldUpgrade {
    type Output = (String, <InnerInbound as InboundUpgradeSend>::Output);
    type Error = (String, <InnerInbound as InboundUpgradeSend>::Error);
    type Future = BoxFuture<'static, Result<Self::Output, Self::Error>>;

    fn upgrade_inbound(
        mut self,
        stream: libp2p::swarm::Stream,
        info: FieldProtocol,
    ) -> Self::Future {
        let FieldProtocol(index, info) = info;
        if index >= self.upgrades.len() {
            // The swarm negotiates only names this upgrade listed.
            return futures::future::pending().boxed();
        }
        let (field, upgrade) = self.upgrades.swap_remove(index);
        upgrade
            .upgrade_inbound(stream, info)
            .map(move |outcome| match outcome {
                Ok(output) => Ok((field, output)),
                Err(error) => Err((field, error)),
            })
            .boxed()
    }
}

impl ConnectionHandler for MeshHandler {
    type FromBehaviour = MeshIn;
    type ToBehaviour = (String, InnerOut);
    type InboundProtocol = FieldUpgrade;
    type OutboundProtocol = InnerOutbound;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = String;

    fn listen_protocol(&self) -> SubstreamProtocol<FieldUpgrade, ()> {
        let mut timeout = Duration::ZERO;
        let upgrades = self
            .handlers
            .iter()
            .map(|(field, handler)| {
                let protocol = handler.listen_protocol();
                timeout = timeout.max(*protocol.timeout());
                let (upgrade, ()) = protocol.into_upgrade();
                (field.clone(), upgrade)
            })
            .collect();
        SubstreamProtocol::new(FieldUpgrade { upgrades }, ()).with_timeout(timeout)
    }

    fn on_behaviour_event(&mut self, event: MeshIn) {
        match event {
            MeshIn::Install(field, handler) => {
                self.forget(&field);
                self.handlers.insert(field, *handler);
            }
            MeshIn::Remove(field) => {
                self.forget(&field);
                self.handlers.remove(&field);
            }
            MeshIn::Inner(field, event) => {
                if let Some(handler) = self.handlers.get_mut(&field) {
                    handler.on_behaviour_event(event);
                }
            }
        }
    }

    fn connection_keep_alive(&self) -> bool {
        self.handlers
            .values()
            .any(ConnectionHandler::connection_keep_alive)
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<FieldUpgrade, InnerOutbound, (), String>,
    ) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: (field, output),
                ..
            }) => {
                if let Some(handler) = self.handlers.get_mut(&field) {
                    handler.on_connection_event(ConnectionEvent::FullyNegotiatedInbound(
                        FullyNegotiatedInbound {
                            protocol: output,
                            info: (),
                        },
                    ));
                }
            }
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol,
                info: field,
            }) => {
                self.forget(&field);
                if let Some(handler) = self.handlers.get_mut(&field) {
                    handler.on_connection_event(ConnectionEvent::FullyNegotiatedOutbound(
                        FullyNegotiatedOutbound { protocol, info: () },
                    ));
                }
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError {
                info: field,
                error: StreamUpgradeError::NegotiationFailed,
            }) if self.handlers.contains_key(&field) => self.retry_later(field),
            ConnectionEvent::DialUpgradeError(DialUpgradeError { info: field, error }) => {
                self.requested.remove(&field);
                if let Some(handler) = self.handlers.get_mut(&field) {
                    handler.on_connection_event(ConnectionEvent::DialUpgradeError(
                        DialUpgradeError { info: (), error },
                    ));
                }
            }
            ConnectionEvent::ListenUpgradeError(ListenUpgradeError {
                error: (field, error),
                ..
            }) => {
                if let Some(handler) = self.handlers.get_mut(&field) {
                    handler.on_connection_event(ConnectionEvent::ListenUpgradeError(
                        ListenUpgradeError { info: (), error },
                    ));
                }
            }
            ConnectionEvent::AddressChange(HandlerAddressChange { new_address }) => {
                for handler in self.handlers.values_mut() {
                    handler.on_connection_event(ConnectionEvent::AddressChange(
                        HandlerAddressChange { new_address },
                    ));
                }
            }
            ConnectionEvent::LocalProtocolsChange(change) => {
                for handler in self.handlers.values_mut() {
                    handler
                        .on_connection_event(ConnectionEvent::LocalProtocolsChange(change.clone()));
                }
            }
            ConnectionEvent::RemoteProtocolsChange(change) => {
                if let ProtocolsChange::Added(added) = &change {
                    let offered: Vec<String> =
                        added.clone().map(|protocol| protocol.to_string()).collect();
                    for (field, retry) in &mut self.retries {
                        if !retry.in_flight && offered.contains(&mesh_protocol(field)) {
                            retry.timer = None;
                        }
                    }
                }
                for handler in self.handlers.values_mut() {
                    handler.on_connection_event(ConnectionEvent::RemoteProtocolsChange(
                        change.clone(),
                    ));
                }
            }
            _ => {}
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<MeshEvent> {
        if let Some(request) = self.due_retry(cx) {
            return Poll::Ready(request);
        }
        let fields: Vec<String> = self.handlers.keys().cloned().collect();
        let count = fields.len();
        for offset in 0..count {
            let field = &fields[(self.next + offset) % count];
            let Some(handler) = self.handlers.get_mut(field) else {
                continue;
            };
            let Poll::Ready(event) = handler.poll(cx) else {
                continue;
            };
            self.next = (self.next + offset + 1) % count;
            let event = match event {
                ConnectionHandlerEvent::OutboundSubstreamRequest { protocol } => {
                    self.requested
                        .insert(field.clone(), copy_protocol(&protocol));
                    let field = field.clone();
                    ConnectionHandlerEvent::OutboundSubstreamRequest {
                        protocol: protocol.map_info(|()| field),
                    }
                }
                other => {
                    let field = field.clone();
                    other
                        .map_outbound_open_info(|()| field.clone())
                        .map_custom(|event| (field, event))
                }
            };
            return Poll::Ready(event);
        }
        Poll::Pending
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Option<Self::ToBehaviour>> {
        let mut closing = false;
        for (field, handler) in &mut self.handlers {
            match handler.poll_close(cx) {
                Poll::Ready(Some(event)) => return Poll::Ready(Some((field.clone(), event))),
                Poll::Ready(None) => {}
                Poll::Pending => closing = true,
            }
        }
        if closing {
            Poll::Pending
        } else {
            Poll::Ready(None)
        }
    }
}
