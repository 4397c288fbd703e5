//! A stranger on the wire: a bare libp2p node with a fresh key and no credentials that
//! speaks the gateway's protocols directly (handshake, sync, data, identify, and gossipsub on
//! a field's mesh protocol, which it computes from a field id it knows) and records every
//! byte the gateway sends it. It tries what an outsider would: naming fields it heard of,
//! asking for every credential type, subscribing to the field's topics, asking for sync and
//! data. Tests then check that it learned nothing.

use std::time::Duration;

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, MessageId};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, identify, noise, tcp, yamux};
use sha2::Digest;
use tfc_gateway::credential::{Challenge, create_presentation, now_unix, sign_message};
use tfc_gateway::identity::{KeyAlgorithm, KeyPair};
use tfc_gateway::negotiation::{ASK_KIND, AskClaims, Turn};
use tfc_gateway::net::{
    DATA_PROTOCOL, DataRequest, DataResponse, HANDSHAKE_PROTOCOL, HandshakeRequest,
    HandshakeResponse, SYNC_PROTOCOL, SyncRequest, SyncResponse, TopicKind, mesh_protocol,
    topic_name,
};

/// How long one request may wait for its answer.
const REQUEST_WAIT: Duration = Duration::from_secs(15);

/// The stranger's protocols.
#[derive(NetworkBehaviour)]
pub struct StrangerBehaviour {
    identify: identify::Behaviour,
    handshake: request_response::json::Behaviour<HandshakeRequest, HandshakeResponse>,
    sync: request_response::json::Behaviour<SyncRequest, SyncResponse>,
    data: request_response::json::Behaviour<DataRequest, DataResponse>,
    gossipsub: gossipsub::Behaviour,
}

/// Which side of the handshake the stranger takes: the one whose PeerId sorts first opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The stranger opens (its PeerId sorts before the gateway's).
    Opener,
    /// The gateway opens (the stranger's PeerId sorts after).
    Responder,
}

/// Everything the gateway sent the stranger.
#[derive(Debug, Default)]
pub struct Heard {
    /// The protocols the gateway's identify listed.
    pub protocols: Vec<String>,
    /// Every handshake message from the gateway, as JSON text (responses and requests).
    pub handshake: Vec<String>,
    /// Every sync answer.
    pub sync: Vec<SyncResponse>,
    /// Every data answer.
    pub data: Vec<DataResponse>,
    /// Gossip messages received, by topic.
    pub gossip: Vec<(String, Vec<u8>)>,
    /// Topics the gateway was seen subscribed to.
    pub subscriptions: Vec<String>,
    /// Requests that failed (the gateway closed the connection or refused the protocol).
    pub failures: Vec<String>,
}

impl Heard {
    /// Every text the gateway sent, to search for what must not be there.
    pub fn text(&self) -> String {
        let mut text = self.handshake.join("\n");
        for answer in &self.sync {
            text.push_str(&serde_json::to_string(answer).unwrap_or_default());
        }
        for answer in &self.data {
            text.push_str(&serde_json::to_string(answer).unwrap_or_default());
        }
        for (topic, data) in &self.gossip {
            text.push_str(topic);
            text.push_str(&String::from_utf8_lossy(data));
        }
        text.push_str(&self.protocols.join(" "));
        text.push_str(&self.subscriptions.join(" "));
        text
    }

    /// The compact JWS tokens in every handshake message the gateway sent whose `typ` is
    /// `vp+jwt`, with the number of credentials each carries.
    pub fn presentations(&self) -> Vec<(String, usize)> {
        let mut found = Vec::new();
        for message in &self.handshake {
            let Ok(value) = serde_json::from_str::<serde_json::Value>(message) else {
                continue;
            };
            collect_tokens(&value, &mut found);
        }
        found
            .into_iter()
            .filter_map(|token| {
                let header = tfc_gateway::credential::unverified_header(&token)?;
                (header.get("typ")?.as_str()? == "vp+jwt").then_some(())?;
                let payload = tfc_gateway::credential::unverified_payload(&token)?;
                let count = payload
                    .get("verifiableCredential")
                    .and_then(serde_json::Value::as_array)
                    .map_or(0, Vec::len);
                Some((token, count))
            })
            .collect()
    }
}

fn collect_tokens(value: &serde_json::Value, found: &mut Vec<String>) {
    match value {
        serde_json::Value::String(text) if text.split('.').count() == 3 => {
            found.push(text.clone());
        }
        serde_json::Value::Array(items) => {
            items.iter().for_each(|item| collect_tokens(item, found))
        }
        serde_json::Value::Object(map) => map.values().for_each(|item| collect_tokens(item, found)),
        _ => {}
    }
}

/// A stranger aimed at one gateway.
pub struct Stranger {
    key: KeyPair,
    swarm: Swarm<StrangerBehaviour>,
    target: PeerId,
    /// The fields it names and asks in, as if it belonged to them.
    fields: Vec<String>,
    /// What the gateway sent it.
    pub heard: Heard,
}

impl Stranger {
    /// A stranger with a fresh key on `side` of `target`'s handshake, whose gossipsub speaks
    /// the mesh protocol of `fields`' first field and subscribes to its topics, and that
    /// names `fields` in its asks.
    pub fn new(target: PeerId, side: Side, fields: &[String]) -> Self {
        let key = loop {
            let key = KeyPair::generate(KeyAlgorithm::Ed25519);
            let peer = key.peer_id().expect("an Ed25519 key");
            if (peer < target) == (side == Side::Opener) {
                break key;
            }
        };
        let mesh = fields.first().map(|field| mesh_protocol(field));
        let mut swarm = build(&key, mesh.as_deref());
        for field in fields.iter().take(1) {
            for kind in TopicKind::ALL {
                let topic = IdentTopic::new(topic_name(field, kind));
                swarm
                    .behaviour_mut()
                    .gossipsub
                    .subscribe(&topic)
                    .expect("subscribed");
            }
        }
        Self {
            key,
            swarm,
            target,
            fields: fields.to_vec(),
            heard: Heard::default(),
        }
    }

    /// Its DID.
    pub fn did(&self) -> String {
        self.key.did()
    }

    /// Its PeerId.
    pub fn peer_id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    /// Dials the gateway and waits until connected.
    pub async fn connect(&mut self, address: &Multiaddr) -> Result<(), String> {
        self.swarm
            .dial(address.clone())
            .map_err(|error| error.to_string())?;
        let target = self.target;
        self.drive_until(|event| match event {
            Drove::Connected(peer) if *peer == target => Some(Ok(())),
            Drove::DialFailed(error) => Some(Err(error.clone())),
            _ => None,
        })
        .await
    }

    /// Signed asks for every type in `types`, one per named field, for the gateway.
    fn asks(&self, types: &[String]) -> Vec<String> {
        let target_did = tfc_gateway::identity::PublicKey::did_of_peer(&self.target)
            .expect("the gateway's key is Ed25519");
        self.fields
            .iter()
            .map(|field| {
                let now = now_unix();
                let claims = AskClaims {
                    iss: self.did(),
                    aud: target_did.clone(),
                    kind: ASK_KIND.into(),
                    field: field.clone(),
                    types: types.iter().cloned().collect(),
                    nonce: uuid::Uuid::new_v4().simple().to_string(),
                    iat: now,
                    exp: now + 60,
                };
                sign_message(&self.key, &claims).expect("ask signed")
            })
            .collect()
    }

    /// As the opener: says hello naming its fields and asking for `types`, then sends one
    /// turn with its proof of key and the same asks again. Returns the gateway's answers.
    pub async fn open(&mut self, types: &[String]) -> Vec<Result<HandshakeResponse, String>> {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let hello = HandshakeRequest::Hello {
            did: self.did(),
            nonce,
            asks: self.asks(types),
        };
        let first = self.handshake(hello).await;
        let mut answers = vec![first.clone()];
        if let Ok(HandshakeResponse::Hello { did, nonce, .. }) = first {
            let proof = create_presentation(
                &self.key,
                Challenge {
                    audience: &did,
                    nonce: &nonce,
                },
                &[],
                now_unix(),
                60,
            )
            .expect("proof signed");
            let turn = Turn {
                proof: Some(proof),
                asks: self.asks(types),
                ..Turn::default()
            };
            answers.push(self.handshake(HandshakeRequest::Turn(turn)).await);
        }
        answers
    }

    /// Sends one handshake request and waits for its answer.
    pub async fn handshake(
        &mut self,
        request: HandshakeRequest,
    ) -> Result<HandshakeResponse, String> {
        let id = self
            .swarm
            .behaviour_mut()
            .handshake
            .send_request(&self.target, request);
        self.drive_until(|event| match event {
            Drove::Handshake(done, answer) if *done == id => Some(answer.clone()),
            _ => None,
        })
        .await
    }

    /// Sends one sync request and waits for its answer.
    pub async fn sync(&mut self, request: SyncRequest) -> Result<SyncResponse, String> {
        let id = self
            .swarm
            .behaviour_mut()
            .sync
            .send_request(&self.target, request);
        self.drive_until(|event| match event {
            Drove::Sync(done, answer) if *done == id => Some(answer.clone()),
            _ => None,
        })
        .await
    }

    /// Sends one data request and waits for its answer.
    pub async fn data(&mut self, request: DataRequest) -> Result<DataResponse, String> {
        let id = self
            .swarm
            .behaviour_mut()
            .data
            .send_request(&self.target, request);
        self.drive_until(|event| match event {
            Drove::Data(done, answer) if *done == id => Some(answer.clone()),
            _ => None,
        })
        .await
    }

    /// Keeps listening (and answering the gateway's handshake as a stranger would) for
    /// `length`.
    pub async fn listen(&mut self, length: Duration) {
        let deadline = tokio::time::Instant::now() + length;
        while let Ok(event) = tokio::time::timeout_at(deadline, self.swarm.select_next_some()).await
        {
            self.take(event);
        }
    }

    async fn drive_until<T>(&mut self, mut done: impl FnMut(&Drove) -> Option<T>) -> T
    where
        T: From<TimedOut>,
    {
        let deadline = tokio::time::Instant::now() + REQUEST_WAIT;
        loop {
            let Ok(event) = tokio::time::timeout_at(deadline, self.swarm.select_next_some()).await
            else {
                return TimedOut.into();
            };
            let drove = self.take(event);
            if let Some(value) = done(&drove) {
                return value;
            }
        }
    }

    /// Records what an event brought; answers the gateway's handshake requests.
    fn take(&mut self, event: SwarmEvent<StrangerBehaviourEvent>) -> Drove {
        match event {
            SwarmEvent::ConnectionEstablished { peer_id, .. } => Drove::Connected(peer_id),
            SwarmEvent::OutgoingConnectionError { error, .. } => {
                Drove::DialFailed(error.to_string())
            }
            SwarmEvent::Behaviour(StrangerBehaviourEvent::Identify(
                identify::Event::Received { info, .. },
            )) => {
                self.heard.protocols = info.protocols.iter().map(ToString::to_string).collect();
                Drove::Other
            }
            SwarmEvent::Behaviour(StrangerBehaviourEvent::Handshake(event)) => {
                self.handshake_event(event)
            }
            SwarmEvent::Behaviour(StrangerBehaviourEvent::Sync(event)) => match event {
                request_response::Event::Message {
                    message:
                        request_response::Message::Response {
                            request_id,
                            response,
                        },
                    ..
                } => {
                    self.heard.sync.push(response.clone());
                    Drove::Sync(request_id, Ok(response))
                }
                request_response::Event::OutboundFailure {
                    request_id, error, ..
                } => {
                    self.heard.failures.push(format!("sync: {error}"));
                    Drove::Sync(request_id, Err(error.to_string()))
                }
                _ => Drove::Other,
            },
            SwarmEvent::Behaviour(StrangerBehaviourEvent::Data(event)) => match event {
                request_response::Event::Message {
                    message:
                        request_response::Message::Response {
                            request_id,
                            response,
                        },
                    ..
                } => {
                    self.heard.data.push(response.clone());
                    Drove::Data(request_id, Ok(response))
                }
                request_response::Event::OutboundFailure {
                    request_id, error, ..
                } => {
                    self.heard.failures.push(format!("data: {error}"));
                    Drove::Data(request_id, Err(error.to_string()))
                }
                _ => Drove::Other,
            },
            SwarmEvent::Behaviour(StrangerBehaviourEvent::Gossipsub(event)) => {
                match event {
                    gossipsub::Event::Message { message, .. } => self
                        .heard
                        .gossip
                        .push((message.topic.into_string(), message.data)),
                    gossipsub::Event::Subscribed { topic, .. } => {
                        self.heard.subscriptions.push(topic.into_string());
                    }
                    _ => {}
                }
                Drove::Other
            }
            _ => Drove::Other,
        }
    }

    fn handshake_event(
        &mut self,
        event: request_response::Event<HandshakeRequest, HandshakeResponse>,
    ) -> Drove {
        match event {
            request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                self.heard
                    .handshake
                    .push(serde_json::to_string(&response).unwrap_or_default());
                Drove::Handshake(request_id, Ok(response))
            }
            request_response::Event::Message {
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                self.heard
                    .handshake
                    .push(serde_json::to_string(&request).unwrap_or_default());
                self.answer(request, channel);
                Drove::Other
            }
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => {
                self.heard.failures.push(format!("handshake: {error}"));
                Drove::Handshake(request_id, Err(error.to_string()))
            }
            _ => Drove::Other,
        }
    }

    /// Answers the gateway's hello as a stranger would: a proof of key, and asks for every
    /// credential type in the fields it names.
    fn answer(&mut self, request: HandshakeRequest, channel: ResponseChannel<HandshakeResponse>) {
        let response = match request {
            HandshakeRequest::Hello { did, nonce, .. } => {
                let proof = create_presentation(
                    &self.key,
                    Challenge {
                        audience: &did,
                        nonce: &nonce,
                    },
                    &[],
                    now_unix(),
                    60,
                )
                .expect("proof signed");
                HandshakeResponse::Hello {
                    did: self.did(),
                    nonce: uuid::Uuid::new_v4().simple().to_string(),
                    proof,
                    turn: Turn {
                        asks: self.asks(&every_type()),
                        ..Turn::default()
                    },
                }
            }
            HandshakeRequest::Turn(_) => HandshakeResponse::Turn(Turn {
                asks: self.asks(&every_type()),
                ..Turn::default()
            }),
        };
        let _ = self
            .swarm
            .behaviour_mut()
            .handshake
            .send_response(channel, response);
    }
}

/// Every credential type the schemas know.
pub fn every_type() -> Vec<String> {
    tfc_schemas::CREDENTIAL_TYPES
        .iter()
        .map(|kind| kind.name.to_owned())
        .collect()
}

/// What one swarm event meant to a waiting request.
enum Drove {
    Connected(PeerId),
    DialFailed(String),
    Handshake(OutboundRequestId, Result<HandshakeResponse, String>),
    Sync(OutboundRequestId, Result<SyncResponse, String>),
    Data(OutboundRequestId, Result<DataResponse, String>),
    Other,
}

/// A wait that ran out.
struct TimedOut;

impl<T> From<TimedOut> for Result<T, String> {
    fn from(_: TimedOut) -> Self {
        Err("timed out".into())
    }
}

fn build(key: &KeyPair, mesh: Option<&str>) -> Swarm<StrangerBehaviour> {
    let mut config = gossipsub::ConfigBuilder::default();
    config
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .message_id_fn(|message| MessageId::new(&sha2::Sha256::digest(&message.data)))
        .heartbeat_initial_delay(Duration::from_millis(100))
        .heartbeat_interval(Duration::from_millis(500));
    if let Some(mesh) = mesh {
        config.protocol_id(mesh.to_owned(), gossipsub::Version::V1_1);
    }
    let gossipsub = gossipsub::Behaviour::new(
        MessageAuthenticity::Anonymous,
        config.build().expect("gossipsub config"),
    )
    .expect("gossipsub");
    fn json<Request, Response>(
        name: &'static str,
    ) -> request_response::json::Behaviour<Request, Response>
    where
        Request: Send + Clone + serde::Serialize + serde::de::DeserializeOwned + 'static,
        Response: Send + Clone + serde::Serialize + serde::de::DeserializeOwned + 'static,
    {
        request_response::json::Behaviour::new(
            [(StreamProtocol::new(name), ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(REQUEST_WAIT),
        )
    }
    libp2p::SwarmBuilder::with_existing_identity(key.libp2p_keypair().expect("libp2p key"))
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("transport")
        .with_behaviour(|local| StrangerBehaviour {
            identify: identify::Behaviour::new(identify::Config::new(
                "/tfc/1".into(),
                local.public(),
            )),
            handshake: json(HANDSHAKE_PROTOCOL),
            sync: json(SYNC_PROTOCOL),
            data: json(DATA_PROTOCOL),
            gossipsub,
        })
        .expect("behaviour")
        .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}
