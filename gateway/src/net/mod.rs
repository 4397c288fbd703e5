//! The libp2p swarm: TCP + Noise + Yamux, identify, ping, connection gating and limits
//! (threat address blocks, throttled strangers), one gossipsub per field among the peers
//! verified in it (`mesh/`) with application validation and peer scoring, and
//! request-response for `/tfc/handshake/2`, `/tfc/sync/2` and `/tfc/data/1`.
//!
//! One task owns the `Swarm` (`swarm.rs`). The rest of the daemon talks to it with
//! [`Command`]s and hears from it through two event streams: [`NetworkEvent`]s about
//! connections and handshakes, and [`ContentEvent`]s about gossip and anti-entropy.

mod gate;
mod gossip;
mod mesh;
mod outbox;
mod protocol;
mod strangers;
mod swarm;

use crate::lifecycle::ServiceTask;
use libp2p::request_response::ResponseChannel;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

pub use crate::threats::blocks::{AddressBlocks, AddressChange};
pub use gossip::{TopicKind, parse_topic, topic_name};
pub use libp2p::gossipsub::MessageId;
pub use mesh::mesh_protocol;
pub use protocol::{
    DataRequest, DataResponse, HandshakeRequest, HandshakeResponse, MemberAddress, SyncRequest,
    SyncResponse, opens_handshake,
};
pub use strangers::{STRANGER_BURST, STRANGER_REFILL};

/// The handshake protocol name (docs/PROTOCOL.md): staged disclosure since version 2.
pub const HANDSHAKE_PROTOCOL: &str = "/tfc/handshake/2";
/// The anti-entropy protocol name (docs/PROTOCOL.md): member addresses since version 2.
pub const SYNC_PROTOCOL: &str = "/tfc/sync/2";
/// The data protocol name (docs/PROTOCOL.md).
pub const DATA_PROTOCOL: &str = "/tfc/data/1";

/// What went wrong at the network boundary: starting the swarm, or one request or
/// publication through it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NetError {
    /// Building the transport or behaviour failed.
    #[error("network setup: {0}")]
    Setup(String),
    /// A listen address is not a valid multiaddr or cannot be bound.
    #[error("cannot listen on {address}: {reason}")]
    Listen {
        /// The address.
        address: String,
        /// Why.
        reason: String,
    },
    /// The swarm task has stopped.
    #[error("the network task has stopped")]
    Stopped,
    /// A request to a peer failed: not connected, timed out, protocol refused, or broken.
    #[error("the request to {peer} failed: {reason}")]
    Request {
        /// The peer.
        peer: PeerId,
        /// Why, as libp2p says it.
        reason: String,
    },
    /// Gossipsub did not take a message (no peer in the topic yet, too large, not a field).
    #[error("not published: {0}")]
    Publish(String),
}

impl NetError {
    /// A stable machine code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            NetError::Setup(_) => "network_setup",
            NetError::Listen { .. } => "listen",
            NetError::Stopped => "network_stopped",
            NetError::Request { .. } => "unreachable",
            NetError::Publish(_) => "not_published",
        }
    }
}

/// How the application judged a gossip message; gossipsub forwards only accepted ones and
/// lowers the score of the peer that sent a rejected one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: deliver and forward.
    Accept,
    /// Not useful but not the sender's fault (a duplicate, a field we left): drop quietly.
    Ignore,
    /// Invalid: drop and penalise the sender.
    Reject,
}

/// How the swarm is set up.
#[derive(Debug, Clone)]
pub struct NetworkSettings {
    /// Listen multiaddrs.
    pub listen: Vec<String>,
    /// Largest message on any protocol, in bytes.
    pub max_message_bytes: usize,
}

impl NetworkSettings {
    /// Loopback on an ephemeral port, 1 MiB messages: for tests and tools that connect
    /// their peers themselves.
    pub fn loopback() -> Self {
        Self {
            listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
            max_message_bytes: 1024 * 1024,
        }
    }
}

/// A reply slot for a request sent to a peer.
pub type Reply<T> = oneshot::Sender<Result<T, NetError>>;

/// Sends the command `build` makes around a reply slot, and waits for the answer.
pub async fn call<T>(
    commands: &mpsc::Sender<Command>,
    build: impl FnOnce(Reply<T>) -> Command,
) -> Result<T, NetError> {
    let (reply, answer) = oneshot::channel();
    commands
        .send(build(reply))
        .await
        .map_err(|_| NetError::Stopped)?;
    answer.await.map_err(|_| NetError::Stopped)?
}

/// What the daemon asks of the swarm task.
#[derive(Debug)]
pub enum Command {
    /// Dial an address.
    Dial(Multiaddr),
    /// Dial a member at the addresses another member gave, unless already connected.
    DialPeer {
        /// The member.
        peer: PeerId,
        /// Where it listens.
        addresses: Vec<Multiaddr>,
    },
    /// The handshake verified this peer: remember where it listens, to dial it again.
    Admitted(PeerId),
    /// The fields whose gossip this peer takes part in, by the handshake: its connections
    /// enter those fields' meshes and leave the others', at once.
    Gossip {
        /// The peer.
        peer: PeerId,
        /// The fields (none: it leaves every mesh).
        fields: std::collections::BTreeSet<String>,
    },
    /// Members of our fields: never throttled as strangers.
    Welcome(Vec<PeerId>),
    /// The handshake refused this peer, which has no standing: its address is charged.
    Stranger(PeerId),
    /// Report the listen addresses heard from these verified peers.
    PeerAddresses(Vec<PeerId>, oneshot::Sender<Vec<MemberAddress>>),
    /// Report the fields whose gossip runs with a peer (its subscriptions there known).
    MeshFields(PeerId, oneshot::Sender<std::collections::BTreeSet<String>>),
    /// Send a handshake request and deliver the answer (or the failure) to `reply`.
    Request {
        /// The peer.
        peer: PeerId,
        /// The request.
        request: HandshakeRequest,
        /// Where the answer goes.
        reply: Reply<HandshakeResponse>,
    },
    /// Answer an inbound handshake request.
    Respond {
        /// The request's channel, from [`NetworkEvent::HandshakeRequest`].
        channel: ResponseChannel<HandshakeResponse>,
        /// The answer.
        response: HandshakeResponse,
    },
    /// Send an anti-entropy request.
    Sync {
        /// The peer.
        peer: PeerId,
        /// The request.
        request: SyncRequest,
        /// Where the answer goes.
        reply: Reply<SyncResponse>,
    },
    /// Answer an inbound anti-entropy request.
    SyncRespond {
        /// The request's channel, from [`ContentEvent::SyncRequest`].
        channel: ResponseChannel<SyncResponse>,
        /// The answer.
        response: SyncResponse,
    },
    /// Send a data request to the gateway holding a space.
    Data {
        /// The peer.
        peer: PeerId,
        /// The request.
        request: DataRequest,
        /// Where the answer goes.
        reply: Reply<DataResponse>,
    },
    /// Answer an inbound data request.
    DataRespond {
        /// The request's channel, from [`ContentEvent::DataRequest`].
        channel: ResponseChannel<DataResponse>,
        /// The answer.
        response: DataResponse,
    },
    /// Take part in a field: start its gossip among the peers allowed in it.
    JoinField(String),
    /// Stop taking part in a field: its gossip ends on every connection.
    LeaveField(String),
    /// Publish on a topic.
    Publish {
        /// The topic name.
        topic: String,
        /// The message.
        data: Vec<u8>,
        /// Where to say whether gossipsub took it, if anyone asks.
        reply: Option<oneshot::Sender<Result<(), NetError>>>,
    },
    /// A peer broke a rule only it can break (it sent over its own rate): its gossip score
    /// drops in every field, without a verdict on the message that would also count
    /// against the relays that delivered copies of it.
    Penalise(PeerId),
    /// Report the application's judgement of a gossip message.
    Validated {
        /// The field whose gossip carried it.
        field: String,
        /// The message, from [`ContentEvent::Gossip`].
        message_id: MessageId,
        /// The peer that forwarded it.
        source: PeerId,
        /// The judgement.
        verdict: Verdict,
    },
    /// Close the peer's connections and refuse new ones until unblocked.
    Block(PeerId),
    /// Accept the peer again.
    Unblock(PeerId),
    /// Close the peer's connections without gating it.
    Disconnect(PeerId),
    /// Report the peers with at least one open connection.
    ConnectedPeers(oneshot::Sender<Vec<PeerId>>),
    /// Report the addresses the swarm listens on.
    ListenAddresses(oneshot::Sender<Vec<Multiaddr>>),
    /// Report the gossipsub score of a peer (none if unknown).
    PeerScore(PeerId, oneshot::Sender<Option<f64>>),
    /// Follow these changes to the address blocks (threat countermeasures) from now on.
    GateAddresses(mpsc::UnboundedReceiver<AddressChange>),
}

/// What the swarm task reports about connections and handshakes.
#[derive(Debug)]
pub enum NetworkEvent {
    /// A listener is bound to this address.
    Listening(Multiaddr),
    /// The first connection to a peer is up.
    PeerConnected {
        /// The peer.
        peer: PeerId,
        /// Whether this side opens the handshake; see [`opens_handshake`].
        opener: bool,
    },
    /// The last connection to a peer has closed.
    PeerDisconnected {
        /// The peer.
        peer: PeerId,
    },
    /// A peer sent a handshake request; answer with [`Command::Respond`].
    HandshakeRequest {
        /// The peer.
        peer: PeerId,
        /// What it asked.
        request: HandshakeRequest,
        /// Where the answer goes.
        channel: ResponseChannel<HandshakeResponse>,
    },
    /// An inbound connection was refused before any protocol ran (a blocked address, the
    /// connection limits).
    ConnectionRefused {
        /// The remote address.
        address: Multiaddr,
        /// Why, for the log.
        reason: String,
    },
    /// An inbound message was refused (too large, undecodable, wrong protocol) or timed out.
    InboundFailure {
        /// The peer.
        peer: PeerId,
        /// Why, for the log.
        reason: String,
    },
}

/// What the swarm task reports about gossip and anti-entropy.
#[derive(Debug)]
pub enum ContentEvent {
    /// A gossip message awaiting validation; answer with [`Command::Validated`].
    Gossip {
        /// The field whose gossip carried it (the peer is allowed there).
        field: String,
        /// Its id (the SHA-256 of its bytes).
        message_id: MessageId,
        /// The peer that forwarded it.
        source: PeerId,
        /// The topic name.
        topic: String,
        /// The message.
        data: Vec<u8>,
    },
    /// A peer sent an anti-entropy request; answer with [`Command::SyncRespond`].
    SyncRequest {
        /// The peer.
        peer: PeerId,
        /// What it asked.
        request: SyncRequest,
        /// Where the answer goes.
        channel: ResponseChannel<SyncResponse>,
    },
    /// A peer sent a data request; answer with [`Command::DataRespond`].
    DataRequest {
        /// The peer.
        peer: PeerId,
        /// What it asked.
        request: DataRequest,
        /// Where the answer goes.
        channel: ResponseChannel<DataResponse>,
    },
}

/// The two event streams of the swarm task.
pub struct NetworkEvents {
    /// Connections and handshakes.
    pub connections: mpsc::Receiver<NetworkEvent>,
    /// Gossip and anti-entropy.
    pub content: mpsc::Receiver<ContentEvent>,
}

/// A handle to the swarm task.
pub struct Network {
    commands: mpsc::Sender<Command>,
    peer_id: PeerId,
    task: ServiceTask,
}

impl Network {
    /// Starts the swarm task; returns the handle and the event streams.
    pub fn spawn(
        keypair: libp2p::identity::Keypair,
        settings: &NetworkSettings,
    ) -> Result<(Self, NetworkEvents), NetError> {
        let (task, commands, events) = swarm::start(keypair.clone(), settings)?;
        let network = Self {
            commands,
            peer_id: keypair.public().to_peer_id(),
            task,
        };
        Ok((network, events))
    }

    /// This node's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Sends a command to the swarm task.
    pub async fn send(&self, command: Command) -> Result<(), NetError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| NetError::Stopped)
    }

    /// A cloneable sender of commands, for other tasks.
    pub fn commands(&self) -> mpsc::Sender<Command> {
        self.commands.clone()
    }

    /// Stops the swarm task, closing every connection, and waits for it to end.
    pub async fn shutdown(self) {
        self.task.stop().await;
    }
}
