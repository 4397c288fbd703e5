//! The task that owns the swarm.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Duration;

use futures::StreamExt;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, allow_block_list, connection_limits, gossipsub,
    identify, noise, ping, tcp, yamux,
};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::gate::AddressGate;
use super::gossip::parse_topic;
use super::mesh::FieldMeshes;
use super::outbox::{Offer, Outbox};
use super::strangers::StrangerGate;
use super::{
    Command, ContentEvent, DATA_PROTOCOL, DataRequest, DataResponse, HANDSHAKE_PROTOCOL,
    HandshakeRequest, HandshakeResponse, MemberAddress, NetError, NetworkEvent, NetworkEvents,
    NetworkSettings, Reply, SYNC_PROTOCOL, SyncRequest, SyncResponse, Verdict, opens_handshake,
};
use crate::lifecycle::ServiceTask;
use crate::threats::blocks::AddressChange;

/// How long the side that does not open a handshake waits before dialling a member it
/// unblocked: the opener's dial, set up at the same time, comes first unless its side kept
/// the block.
const LATE_REDIAL: Duration = Duration::from_secs(2);
/// Connections per peer; more are refused by the gate.
const MAX_CONNECTIONS_PER_PEER: u32 = 2;
/// Connections being set up from outside at once.
const MAX_PENDING_INCOMING: u32 = 64;
/// Established connections in all.
const MAX_ESTABLISHED: u32 = 512;
/// How long a request may wait for its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a block waits, after the peer's last handshake request, for the peer to hang
/// up: closing at once could lose the answer that tells it why it is refused.
const ANSWER_GRACE: Duration = Duration::from_millis(500);
/// Commands and events buffered between the swarm task and the daemon.
const CHANNEL_DEPTH: usize = 1024;
/// Listen addresses kept per peer from identify.
const MAX_ADDRESSES_PER_PEER: usize = 8;
/// Verified members remembered for redialling; beyond this, newcomers wait until another
/// member names them.
const MAX_REMEMBERED_MEMBERS: usize = 4096;

#[derive(NetworkBehaviour)]
pub(super) struct Behaviour {
    // Gating first: a blocked address or peer is refused before any other behaviour sees it.
    addresses: AddressGate,
    blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    strangers: StrangerGate,
    limits: connection_limits::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    meshes: FieldMeshes,
    handshake: request_response::json::Behaviour<HandshakeRequest, HandshakeResponse>,
    sync: request_response::json::Behaviour<SyncRequest, SyncResponse>,
    data: request_response::json::Behaviour<DataRequest, DataResponse>,
}

/// Builds the swarm, binds the listeners and starts the task.
pub(super) fn start(
    keypair: libp2p::identity::Keypair,
    settings: &NetworkSettings,
) -> Result<(ServiceTask, mpsc::Sender<Command>, NetworkEvents), NetError> {
    let mut swarm = build_swarm(keypair, settings)?;
    for address in &settings.listen {
        let listen_error = |reason: String| NetError::Listen {
            address: address.clone(),
            reason,
        };
        let multiaddr: Multiaddr = address
            .parse()
            .map_err(|error: libp2p::multiaddr::Error| listen_error(error.to_string()))?;
        swarm
            .listen_on(multiaddr)
            .map_err(|error| listen_error(error.to_string()))?;
    }
    let (command_sender, commands) = mpsc::channel(CHANNEL_DEPTH);
    let (connection_events, connections) = mpsc::channel(CHANNEL_DEPTH);
    let (content_events, content) = mpsc::channel(CHANNEL_DEPTH);
    let swarm_task = SwarmTask {
        swarm,
        commands,
        connection_events: Outbox::new(connection_events),
        content_events: Outbox::new(content_events),
        handshakes: HashMap::new(),
        syncs: HashMap::new(),
        data: HashMap::new(),
        heard: HashMap::new(),
        members: HashMap::new(),
        address_changes: None,
        late_redials: VecDeque::new(),
        asked_at: HashMap::new(),
        blocks_after_answer: HashMap::new(),
        unblocks_on_close: HashSet::new(),
    };
    let task = ServiceTask::spawn("network", |cancel| swarm_task.run(cancel));
    Ok((
        task,
        command_sender,
        NetworkEvents {
            connections,
            content,
        },
    ))
}

fn build_swarm(
    keypair: libp2p::identity::Keypair,
    settings: &NetworkSettings,
) -> Result<Swarm<Behaviour>, NetError> {
    let max_message_bytes = settings.max_message_bytes;
    let setup = |error: &dyn std::fmt::Display| NetError::Setup(error.to_string());
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER))
        .with_max_pending_incoming(Some(MAX_PENDING_INCOMING))
        .with_max_established(Some(MAX_ESTABLISHED));
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|error| setup(&error))?
        .with_behaviour(|key| Behaviour {
            addresses: AddressGate::default(),
            blocked: allow_block_list::Behaviour::default(),
            strangers: StrangerGate::default(),
            limits: connection_limits::Behaviour::new(limits),
            identify: identify::Behaviour::new(identify::Config::new(
                "/tfc/1".into(),
                key.public(),
            )),
            ping: ping::Behaviour::default(),
            meshes: FieldMeshes::new(max_message_bytes),
            handshake: json_protocol(HANDSHAKE_PROTOCOL, max_message_bytes),
            sync: json_protocol(SYNC_PROTOCOL, max_message_bytes),
            data: json_protocol(DATA_PROTOCOL, max_message_bytes),
        })
        .map_err(|error| setup(&error))?
        .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    Ok(swarm)
}

/// A JSON request-response protocol whose messages are bounded by `max_bytes` both ways.
fn json_protocol<Request, Response>(
    name: &'static str,
    max_bytes: usize,
) -> request_response::json::Behaviour<Request, Response>
where
    Request: Send + Clone + serde::Serialize + serde::de::DeserializeOwned + 'static,
    Response: Send + Clone + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    let codec = request_response::json::codec::Codec::default()
        .set_request_size_maximum(max_bytes as u64)
        .set_response_size_maximum(max_bytes as u64);
    request_response::Behaviour::with_codec(
        codec,
        [(StreamProtocol::new(name), ProtocolSupport::Full)],
        request_response::Config::default().with_request_timeout(REQUEST_TIMEOUT),
    )
}

struct SwarmTask {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    /// Connections and handshake messages, for the handshake service.
    connection_events: Outbox<NetworkEvent>,
    /// Gossip to validate and requests to answer, for the exchange service.
    content_events: Outbox<ContentEvent>,
    handshakes: HashMap<OutboundRequestId, Reply<HandshakeResponse>>,
    syncs: HashMap<OutboundRequestId, Reply<SyncResponse>>,
    data: HashMap<OutboundRequestId, Reply<DataResponse>>,
    /// Listen addresses connected peers told us (identify), kept until they are verified or
    /// leave.
    heard: HashMap<PeerId, Vec<Multiaddr>>,
    /// Peers the handshake verified since start, with the listen addresses they told us:
    /// the ones worth dialling again when the way to them reopens, and those other members
    /// may learn of.
    members: HashMap<PeerId, Vec<Multiaddr>>,
    /// The threat module's changes to the address blocks, once it is running.
    address_changes: Option<mpsc::UnboundedReceiver<AddressChange>>,
    /// Members unblocked whose handshake the other side opens: dialled at the time given
    /// unless that side has connected first (see [`SwarmTask::redial_when_unblocked`]).
    late_redials: VecDeque<(Instant, PeerId)>,
    /// When each connected peer last sent a handshake request.
    asked_at: HashMap<PeerId, Instant>,
    /// Peers to block once they hang up, or at the time given at the latest.
    blocks_after_answer: HashMap<PeerId, Instant>,
    /// Peers unblocked while their block waited: unblocked once their connections close.
    unblocks_on_close: HashSet<PeerId>,
}

/// The next change of the address blocks; never, once their sender is gone.
async fn next_change(
    changes: &mut Option<mpsc::UnboundedReceiver<AddressChange>>,
) -> AddressChange {
    if let Some(receiver) = changes {
        if let Some(change) = receiver.recv().await {
            return change;
        }
        *changes = None;
    }
    std::future::pending().await
}

/// An event for one of the two streams.
enum Report {
    Connection(NetworkEvent),
    Content(ContentEvent),
}

impl SwarmTask {
    async fn run(mut self, cancel: CancellationToken) {
        loop {
            tokio::select! {
                // Dropping the swarm closes every connection.
                () = cancel.cancelled() => break,
                command = self.commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => break,
                },
                event = self.swarm.select_next_some() => {
                    if !self.forward(event) {
                        break;
                    }
                }
                open = self.connection_events.drain_one(), if self.connection_events.backlogged() => {
                    if !open {
                        break;
                    }
                }
                _ = self.content_events.drain_one(), if self.content_events.backlogged() => {}
                () = Self::next_late_redial(&self.late_redials) => self.late_redial(),
                () = Self::next_overdue_block(&self.blocks_after_answer) => self.overdue_blocks(),
                change = next_change(&mut self.address_changes) => {
                    self.swarm.behaviour_mut().addresses.apply(change);
                }
            }
        }
    }

    /// Passes a swarm event on without waiting for its consumer; `false` once the daemon no
    /// longer listens to connections.
    fn forward(&mut self, event: SwarmEvent<BehaviourEvent>) -> bool {
        match self.swarm_event(event) {
            Some(Report::Connection(event)) => {
                let must = matches!(event, NetworkEvent::PeerDisconnected { .. });
                match self.connection_events.offer(event, must) {
                    Offer::Taken => true,
                    Offer::Closed => false,
                    Offer::Refused(event) => {
                        self.behind_on_connections(event);
                        true
                    }
                }
            }
            // A node without the content service (tests, tools) drops content.
            Some(Report::Content(event)) => {
                if let Offer::Refused(event) = self.content_events.offer(event, false) {
                    self.behind_on_content(event);
                }
                true
            }
            None => true,
        }
    }

    /// The handshake service is far behind: a new connection is closed (the peer may come
    /// back) and a handshake message goes unanswered, rather than either waiting unjudged.
    fn behind_on_connections(&mut self, event: NetworkEvent) {
        if self.connection_events.first_refusal() {
            tracing::warn!("the handshake service is behind: connection events refused");
        }
        if let NetworkEvent::PeerConnected { peer, .. } = event {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    /// The exchange service is far behind: a gossip message is ignored (neither delivered
    /// nor forwarded, and not held against its sender) and a request goes unanswered.
    fn behind_on_content(&mut self, event: ContentEvent) {
        if self.content_events.first_refusal() {
            tracing::warn!("the exchange service is behind: gossip messages and requests dropped");
        }
        if let ContentEvent::Gossip {
            field,
            message_id,
            source,
            ..
        } = event
        {
            self.swarm.behaviour_mut().meshes.report(
                &field,
                &message_id,
                &source,
                gossipsub::MessageAcceptance::Ignore,
            );
        }
    }

    fn command(&mut self, command: Command) {
        let behaviour = self.swarm.behaviour_mut();
        match command {
            Command::Dial(address) => self.dial(address),
            Command::DialPeer { peer, addresses } => self.dial_member(peer, addresses),
            Command::Admitted(peer) => self.admitted(peer),
            Command::Gossip { peer, fields } => behaviour.meshes.allow(peer, fields),
            Command::Welcome(peers) => behaviour.strangers.welcome(peers),
            Command::Stranger(peer) => behaviour.strangers.refused(peer),
            Command::PeerAddresses(peers, reply) => {
                let known = peers
                    .into_iter()
                    .filter_map(|peer| {
                        let addresses = self.members.get(&peer)?;
                        (!addresses.is_empty()).then(|| MemberAddress::new(peer, addresses))
                    })
                    .collect();
                let _ = reply.send(known);
            }
            Command::Penalise(peer) => behaviour.meshes.penalise(peer),
            Command::MeshFields(peer, reply) => {
                let _ = reply.send(behaviour.meshes.active_fields(&peer));
            }
            Command::Request {
                peer,
                request,
                reply,
            } => {
                let id = behaviour.handshake.send_request(&peer, request);
                self.handshakes.insert(id, reply);
            }
            Command::Respond { channel, response } => {
                if behaviour
                    .handshake
                    .send_response(channel, response)
                    .is_err()
                {
                    tracing::debug!("handshake answer dropped: the peer went away");
                }
            }
            Command::Sync {
                peer,
                request,
                reply,
            } => {
                let id = behaviour.sync.send_request(&peer, request);
                self.syncs.insert(id, reply);
            }
            Command::SyncRespond { channel, response } => {
                if behaviour.sync.send_response(channel, response).is_err() {
                    tracing::debug!("sync answer dropped: the peer went away");
                }
            }
            Command::Data {
                peer,
                request,
                reply,
            } => {
                let id = behaviour.data.send_request(&peer, request);
                self.data.insert(id, reply);
            }
            Command::DataRespond { channel, response } => {
                if behaviour.data.send_response(channel, response).is_err() {
                    tracing::debug!("data answer dropped: the peer went away");
                }
            }
            Command::JoinField(field) => {
                if let Err(error) = behaviour.meshes.join(&field) {
                    tracing::warn!(%field, %error, "the field's gossip did not start");
                }
            }
            Command::LeaveField(field) => behaviour.meshes.leave(&field),
            Command::Publish { topic, data, reply } => {
                let published = match parse_topic(&topic) {
                    Some((field, _)) => behaviour.meshes.publish(&field, &topic, data),
                    None => Err("not a field topic".to_owned()),
                }
                .map_err(NetError::Publish);
                if let Err(error) = &published {
                    // Anti-entropy delivers it to members connected later.
                    tracing::debug!(%topic, %error, "gossip not published");
                }
                if let Some(reply) = reply {
                    let _ = reply.send(published);
                }
            }
            Command::Validated {
                field,
                message_id,
                source,
                verdict,
            } => {
                let acceptance = match verdict {
                    Verdict::Accept => gossipsub::MessageAcceptance::Accept,
                    Verdict::Ignore => gossipsub::MessageAcceptance::Ignore,
                    Verdict::Reject => gossipsub::MessageAcceptance::Reject,
                };
                behaviour
                    .meshes
                    .report(&field, &message_id, &source, acceptance);
            }
            Command::Block(peer) => {
                self.unblocks_on_close.remove(&peer);
                // Out of every mesh at once. A peer just answered keeps its connection a
                // moment to read why; one refused hangs up itself.
                behaviour.meshes.allow(peer, BTreeSet::new());
                let now = Instant::now();
                match self.asked_at.get(&peer) {
                    Some(at) if now.duration_since(*at) < ANSWER_GRACE => {
                        self.blocks_after_answer.insert(peer, now + ANSWER_GRACE);
                    }
                    _ => self.block(peer),
                }
            }
            Command::Unblock(peer) => {
                // A block still waiting has taken the peer out of the meshes: its connection
                // goes now, and the unblock follows once it is closed, so that a fresh
                // handshake lets the peer back in.
                if self.blocks_after_answer.remove(&peer).is_some() {
                    self.block(peer);
                    self.unblocks_on_close.insert(peer);
                } else {
                    self.unblock(peer);
                }
            }
            Command::Disconnect(peer) => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Command::ConnectedPeers(reply) => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            Command::ListenAddresses(reply) => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::PeerScore(peer, reply) => {
                let _ = reply.send(behaviour.meshes.score(&peer));
            }
            Command::GateAddresses(changes) => self.address_changes = Some(changes),
        }
    }

    /// Every dial (here, in `redial` and in `dial_member`) takes a fresh local port. With the
    /// listen port reused, two gateways that dial each other within a round trip (both learn
    /// of the other from a third) make one TCP connection by simultaneous open, on which both
    /// act as the dialer: its upgrade fails and the pair never connects. On loopback it did
    /// not show; at 50 ms RTT (`tfc-bench netns`) it did.
    fn dial(&mut self, address: Multiaddr) {
        let options = DialOpts::unknown_peer_id()
            .address(address.clone())
            .allocate_new_port()
            .build();
        if let Err(error) = self.swarm.dial(options) {
            tracing::warn!(%address, %error, "dial failed");
        }
    }

    /// Dials a member again once a block on it is lifted. When both ends of a healed
    /// partition redial each other, every pair sets up two connections, and at 50 gateways
    /// on two cores that doubled the time to the first cross handshake. So the side that
    /// opens the handshake dials at once; the other waits [`LATE_REDIAL`], in case the block
    /// was lifted only here (a lifted suspension), and dials then if still apart.
    fn redial_when_unblocked(&mut self, peer: PeerId) {
        if opens_handshake(self.swarm.local_peer_id(), &peer) {
            self.redial(peer);
        } else if self.members.contains_key(&peer)
            && self.late_redials.len() < MAX_REMEMBERED_MEMBERS
        {
            self.late_redials
                .push_back((Instant::now() + LATE_REDIAL, peer));
        }
    }

    /// Lifts the block on `peer`. A member cut off by a block (a partition, a lifted
    /// suspension) is dialled at once rather than when another member names it again, so the
    /// field heals in seconds.
    fn unblock(&mut self, peer: PeerId) {
        self.swarm.behaviour_mut().blocked.unblock_peer(peer);
        self.redial_when_unblocked(peer);
    }

    /// Blocks `peer` and closes its connections.
    fn block(&mut self, peer: PeerId) {
        self.swarm.behaviour_mut().blocked.block_peer(peer);
        let _ = self.swarm.disconnect_peer_id(peer);
    }

    /// When the earliest block waiting for answers is due; never, if none is waiting.
    async fn next_overdue_block(blocks: &HashMap<PeerId, Instant>) {
        match blocks.values().min() {
            Some(at) => sleep_until(*at).await,
            None => std::future::pending().await,
        }
    }

    /// Blocks the peers that did not hang up within [`ANSWER_GRACE`].
    fn overdue_blocks(&mut self) {
        let now = Instant::now();
        let overdue: Vec<PeerId> = self
            .blocks_after_answer
            .extract_if(|_, at| *at <= now)
            .map(|(peer, _)| peer)
            .collect();
        for peer in overdue {
            self.block(peer);
        }
    }

    /// When the earliest late redial is due; never, if none is waiting.
    async fn next_late_redial(late_redials: &VecDeque<(Instant, PeerId)>) {
        match late_redials.front() {
            Some((at, _)) => sleep_until(*at).await,
            None => std::future::pending().await,
        }
    }

    fn late_redial(&mut self) {
        let now = Instant::now();
        while let Some((at, peer)) = self.late_redials.front().copied() {
            if at > now {
                break;
            }
            self.late_redials.pop_front();
            if !self.swarm.is_connected(&peer) {
                self.redial(peer);
            }
        }
    }

    fn redial(&mut self, peer: PeerId) {
        let Some(addresses) = self.members.get(&peer) else {
            return;
        };
        let options = DialOpts::peer_id(peer)
            .addresses(addresses.clone())
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .allocate_new_port()
            .build();
        match self.swarm.dial(options) {
            Ok(()) => tracing::debug!(%peer, "member dialled again"),
            Err(error) => tracing::debug!(%peer, %error, "member not dialled again"),
        }
    }

    fn admitted(&mut self, peer: PeerId) {
        let addresses = self.heard.get(&peer).cloned().unwrap_or_default();
        if self.members.len() < MAX_REMEMBERED_MEMBERS || self.members.contains_key(&peer) {
            self.members.insert(peer, addresses);
        }
    }

    /// Dials a member another member named, unless already connected (the handshake then
    /// decides whether it stays).
    fn dial_member(&mut self, peer: PeerId, mut addresses: Vec<Multiaddr>) {
        if peer == *self.swarm.local_peer_id() || self.swarm.is_connected(&peer) {
            return;
        }
        addresses.truncate(MAX_ADDRESSES_PER_PEER);
        let options = DialOpts::peer_id(peer)
            .addresses(addresses)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .allocate_new_port()
            .build();
        if let Err(error) = self.swarm.dial(options) {
            tracing::debug!(%peer, %error, "field member not dialled");
        }
    }

    fn swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) -> Option<Report> {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                Some(Report::Connection(NetworkEvent::Listening(address)))
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                ..
            } if num_established.get() == 1 => {
                Some(Report::Connection(NetworkEvent::PeerConnected {
                    peer: peer_id,
                    opener: opens_handshake(self.swarm.local_peer_id(), &peer_id),
                }))
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.heard.remove(&peer_id);
                self.asked_at.remove(&peer_id);
                if self.blocks_after_answer.remove(&peer_id).is_some() {
                    self.block(peer_id);
                }
                if self.unblocks_on_close.remove(&peer_id) {
                    self.unblock(peer_id);
                }
                Some(Report::Connection(NetworkEvent::PeerDisconnected {
                    peer: peer_id,
                }))
            }
            SwarmEvent::IncomingConnectionError {
                error,
                send_back_addr,
                ..
            } => Some(Report::Connection(NetworkEvent::ConnectionRefused {
                address: send_back_addr,
                reason: error.to_string(),
            })),
            SwarmEvent::Behaviour(event) => self.behaviour_event(event),
            _ => None,
        }
    }

    fn behaviour_event(&mut self, event: BehaviourEvent) -> Option<Report> {
        match event {
            BehaviourEvent::Handshake(event) => self.handshake_event(event).map(Report::Connection),
            BehaviourEvent::Sync(event) => self.sync_event(event).map(Report::Content),
            BehaviourEvent::Data(event) => match settle(event, &mut self.data, DATA_PROTOCOL)? {
                Inbound::Request {
                    peer,
                    request,
                    channel,
                } => Some(Report::Content(ContentEvent::DataRequest {
                    peer,
                    request,
                    channel,
                })),
                Inbound::Failure { .. } => None,
            },
            BehaviourEvent::Meshes((
                field,
                gossipsub::Event::Message {
                    propagation_source,
                    message_id,
                    message,
                },
            )) => Some(Report::Content(ContentEvent::Gossip {
                field,
                message_id,
                source: propagation_source,
                topic: message.topic.into_string(),
                data: message.data,
            })),
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                let mut addresses = info.listen_addrs;
                addresses.truncate(MAX_ADDRESSES_PER_PEER);
                self.heard.insert(peer_id, addresses);
                None
            }
            _ => None,
        }
    }

    fn handshake_event(
        &mut self,
        event: request_response::Event<HandshakeRequest, HandshakeResponse>,
    ) -> Option<NetworkEvent> {
        if let request_response::Event::Message {
            peer,
            message: request_response::Message::Request { .. },
            ..
        } = &event
        {
            self.asked_at.insert(*peer, Instant::now());
        }
        match settle(event, &mut self.handshakes, HANDSHAKE_PROTOCOL)? {
            Inbound::Request {
                peer,
                request,
                channel,
            } => Some(NetworkEvent::HandshakeRequest {
                peer,
                request,
                channel,
            }),
            Inbound::Failure { peer, reason } => {
                Some(NetworkEvent::InboundFailure { peer, reason })
            }
        }
    }

    fn sync_event(
        &mut self,
        event: request_response::Event<SyncRequest, SyncResponse>,
    ) -> Option<ContentEvent> {
        match settle(event, &mut self.syncs, SYNC_PROTOCOL)? {
            Inbound::Request {
                peer,
                request,
                channel,
            } => Some(ContentEvent::SyncRequest {
                peer,
                request,
                channel,
            }),
            Inbound::Failure { .. } => None,
        }
    }
}

/// What a request-response event means for the daemon once answers are delivered.
enum Inbound<Request, Response> {
    Request {
        peer: PeerId,
        request: Request,
        channel: request_response::ResponseChannel<Response>,
    },
    Failure {
        peer: PeerId,
        reason: String,
    },
}

/// Delivers answers and outbound failures to their waiting requester; returns what is left
/// for the daemon (inbound requests and failures).
fn settle<Request, Response>(
    event: request_response::Event<Request, Response>,
    pending: &mut HashMap<OutboundRequestId, Reply<Response>>,
    protocol: &str,
) -> Option<Inbound<Request, Response>> {
    use request_response::{Event, Message};
    match event {
        Event::Message {
            peer,
            message: Message::Request {
                request, channel, ..
            },
            ..
        } => Some(Inbound::Request {
            peer,
            request,
            channel,
        }),
        Event::Message {
            message:
                Message::Response {
                    request_id,
                    response,
                },
            ..
        } => {
            if let Some(reply) = pending.remove(&request_id) {
                let _ = reply.send(Ok(response));
            }
            None
        }
        Event::OutboundFailure {
            request_id,
            error,
            peer,
            ..
        } => {
            tracing::info!(%peer, %error, protocol, "request failed");
            if let Some(reply) = pending.remove(&request_id) {
                let _ = reply.send(Err(NetError::Request {
                    peer,
                    reason: error.to_string(),
                }));
            }
            None
        }
        Event::InboundFailure { peer, error, .. } => {
            tracing::info!(%peer, %error, protocol, "inbound message refused");
            Some(Inbound::Failure {
                peer,
                reason: error.to_string(),
            })
        }
        Event::ResponseSent { .. } => None,
    }
}
