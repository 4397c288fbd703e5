//! The libp2p swarm: TCP + Noise + Yamux, identify, ping, connection gating and limits, and
//! request-response for `/tfc/handshake/1`.
//!
//! One task owns the `Swarm`. The rest of the daemon talks to it with [`Command`]s and hears
//! from it through [`NetworkEvent`]s; nobody else touches the swarm.

mod protocol;

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, allow_block_list, connection_limits, identify, noise,
    ping, tcp, yamux,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub use protocol::{HandshakeRequest, HandshakeResponse};

/// The handshake protocol name (DESIGN §4, Wire).
pub const HANDSHAKE_PROTOCOL: &str = "/tfc/handshake/1";
/// Connections per peer; more are refused by the gate.
const MAX_CONNECTIONS_PER_PEER: u32 = 2;
/// Connections being set up from outside at once.
const MAX_PENDING_INCOMING: u32 = 64;
/// Established connections in all.
const MAX_ESTABLISHED: u32 = 512;
/// How long a handshake request may wait for its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Commands and events buffered between the swarm task and the daemon.
const CHANNEL_DEPTH: usize = 256;

/// The network could not be started.
#[derive(Debug, thiserror::Error)]
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
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    // Gating first: a blocked peer is refused before any other behaviour sees it.
    blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    limits: connection_limits::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    handshake: request_response::json::Behaviour<HandshakeRequest, HandshakeResponse>,
}

/// What the daemon asks of the swarm task.
#[derive(Debug)]
pub enum Command {
    /// Dial an address.
    Dial(Multiaddr),
    /// Send a handshake request and deliver the answer (or the failure) to `reply`.
    Request {
        /// The peer.
        peer: PeerId,
        /// The request.
        request: HandshakeRequest,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<HandshakeResponse, String>>,
    },
    /// Answer an inbound handshake request.
    Respond {
        /// The request's channel, from [`NetworkEvent::HandshakeRequest`].
        channel: ResponseChannel<HandshakeResponse>,
        /// The answer.
        response: HandshakeResponse,
    },
    /// Close the peer's connections and refuse new ones until unblocked.
    Block(PeerId),
    /// Accept the peer again.
    Unblock(PeerId),
    /// Close the peer's connections without gating it.
    Disconnect(PeerId),
    /// Report the addresses the swarm listens on.
    ListenAddresses(oneshot::Sender<Vec<Multiaddr>>),
}

/// What the swarm task reports.
#[derive(Debug)]
pub enum NetworkEvent {
    /// A listener is bound to this address.
    Listening(Multiaddr),
    /// The first connection to a peer is up; `dialer` says whether we dialed it.
    PeerConnected {
        /// The peer.
        peer: PeerId,
        /// Whether this side dialed.
        dialer: bool,
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
    /// An inbound message was refused (too large, undecodable, wrong protocol) or timed out.
    InboundFailure {
        /// The peer.
        peer: PeerId,
        /// Why, for the log.
        reason: String,
    },
}

/// A handle to the swarm task.
pub struct Network {
    commands: mpsc::Sender<Command>,
    peer_id: PeerId,
    task: JoinHandle<()>,
}

impl Drop for Network {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Network {
    /// Starts the swarm task listening on `listen`; returns the handle and the event stream.
    pub fn spawn(
        keypair: libp2p::identity::Keypair,
        listen: &[String],
        max_message_bytes: usize,
    ) -> Result<(Self, mpsc::Receiver<NetworkEvent>), NetError> {
        let mut swarm = build_swarm(keypair, max_message_bytes)?;
        for address in listen {
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
        let peer_id = *swarm.local_peer_id();
        let (command_sender, commands) = mpsc::channel(CHANNEL_DEPTH);
        let (events, event_receiver) = mpsc::channel(CHANNEL_DEPTH);
        let task = tokio::spawn(
            SwarmTask {
                swarm,
                commands,
                events,
                pending: HashMap::new(),
            }
            .run(),
        );
        Ok((
            Self {
                commands: command_sender,
                peer_id,
                task,
            },
            event_receiver,
        ))
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
    pub async fn shutdown(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

fn build_swarm(
    keypair: libp2p::identity::Keypair,
    max_message_bytes: usize,
) -> Result<Swarm<Behaviour>, NetError> {
    let setup = |error: &dyn std::fmt::Display| NetError::Setup(error.to_string());
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER))
        .with_max_pending_incoming(Some(MAX_PENDING_INCOMING))
        .with_max_established(Some(MAX_ESTABLISHED));
    let codec = request_response::json::codec::Codec::default()
        .set_request_size_maximum(max_message_bytes as u64)
        .set_response_size_maximum(max_message_bytes as u64);
    let handshake_config =
        request_response::Config::default().with_request_timeout(REQUEST_TIMEOUT);
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|error| setup(&error))?
        .with_behaviour(|key| Behaviour {
            blocked: allow_block_list::Behaviour::default(),
            limits: connection_limits::Behaviour::new(limits),
            identify: identify::Behaviour::new(identify::Config::new(
                "/tfc/1".into(),
                key.public(),
            )),
            ping: ping::Behaviour::default(),
            handshake: request_response::Behaviour::with_codec(
                codec,
                [(
                    StreamProtocol::new(HANDSHAKE_PROTOCOL),
                    ProtocolSupport::Full,
                )],
                handshake_config,
            ),
        })
        .map_err(|error| setup(&error))?
        .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    Ok(swarm)
}

struct SwarmTask {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<NetworkEvent>,
    pending: HashMap<OutboundRequestId, oneshot::Sender<Result<HandshakeResponse, String>>>,
}

impl SwarmTask {
    async fn run(mut self) {
        loop {
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => break,
                },
                event = self.swarm.select_next_some() => {
                    if self.swarm_event(event).await.is_err() {
                        break;
                    }
                }
            }
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Dial(address) => {
                if let Err(error) = self.swarm.dial(address.clone()) {
                    tracing::warn!(%address, %error, "dial failed");
                }
            }
            Command::Request {
                peer,
                request,
                reply,
            } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .handshake
                    .send_request(&peer, request);
                self.pending.insert(id, reply);
            }
            Command::Respond { channel, response } => {
                if self
                    .swarm
                    .behaviour_mut()
                    .handshake
                    .send_response(channel, response)
                    .is_err()
                {
                    tracing::debug!("handshake answer dropped: the peer went away");
                }
            }
            Command::Block(peer) => {
                self.swarm.behaviour_mut().blocked.block_peer(peer);
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Command::Unblock(peer) => {
                self.swarm.behaviour_mut().blocked.unblock_peer(peer);
            }
            Command::Disconnect(peer) => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Command::ListenAddresses(reply) => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
        }
    }

    /// Handles one swarm event; `Err` means the daemon stopped listening.
    async fn swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) -> Result<(), ()> {
        let report = match event {
            SwarmEvent::NewListenAddr { address, .. } => Some(NetworkEvent::Listening(address)),
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } if num_established.get() == 1 => Some(NetworkEvent::PeerConnected {
                peer: peer_id,
                dialer: endpoint.is_dialer(),
            }),
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => Some(NetworkEvent::PeerDisconnected { peer: peer_id }),
            SwarmEvent::IncomingConnectionError {
                error,
                send_back_addr,
                ..
            } => {
                tracing::info!(address = %send_back_addr, %error, "incoming connection refused");
                None
            }
            SwarmEvent::Behaviour(BehaviourEvent::Handshake(event)) => self.handshake_event(event),
            _ => None,
        };
        match report {
            Some(event) => self.events.send(event).await.map_err(drop),
            None => Ok(()),
        }
    }

    fn handshake_event(
        &mut self,
        event: request_response::Event<HandshakeRequest, HandshakeResponse>,
    ) -> Option<NetworkEvent> {
        use request_response::{Event, Message};
        match event {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => Some(NetworkEvent::HandshakeRequest {
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
                if let Some(reply) = self.pending.remove(&request_id) {
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
                tracing::info!(%peer, %error, "handshake request failed");
                if let Some(reply) = self.pending.remove(&request_id) {
                    let _ = reply.send(Err(error.to_string()));
                }
                None
            }
            Event::InboundFailure { peer, error, .. } => {
                tracing::info!(%peer, %error, "inbound handshake message refused");
                Some(NetworkEvent::InboundFailure {
                    peer,
                    reason: error.to_string(),
                })
            }
            Event::ResponseSent { .. } => None,
        }
    }
}
