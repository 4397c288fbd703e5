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

mod handler;

use handler::MeshHandler;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::task::{Context, Poll};
use std::time::Duration;

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{ConnectedPoint, Endpoint, Multiaddr};
use libp2p::gossipsub;
use libp2p::swarm::behaviour::{AddressChange, ConnectionClosed, ConnectionEstablished};
use libp2p::swarm::handler::ConnectionHandler;
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
pub(crate) enum MeshIn {
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

    /// Ends `field`'s gossip: every connection leaves its mesh, and no peer is allowed in it.
    pub(super) fn leave(&mut self, field: &str) {
        let connections: Vec<ConnectionId> = self.connections.keys().copied().collect();
        for id in connections {
            self.deactivate(field, id);
        }
        self.meshes.remove(field);
        for fields in self.allowed.values_mut() {
            fields.remove(field);
        }
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
