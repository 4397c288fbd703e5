//! Gateways on 127.0.0.1 with real TCP, Noise and Yamux, separate sled stores, and the real
//! handshake: qualified peers reach their tier at each other, an unqualified one is refused
//! and gated, a credential that lapses drops the tier without a restart, and garbage on the
//! port changes nothing. Every wait is on an event, with a timeout.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use tfc_gateway::credential::now_unix;
use tfc_gateway::field::Field;
use tfc_gateway::handshake::{GatewayEvent, Handshakes, LocalParty, PeerRecord};
use tfc_gateway::identity::{KeyAlgorithm, KeyPair};
use tfc_gateway::net::{Command, Network, NetworkSettings};
use tfc_gateway::store::{Store, Tree};
use tfc_testkit::Authorities;
use tokio::sync::broadcast;

const WAIT: Duration = Duration::from_secs(15);

/// The field's authorities and its signed charter: tier 1 needs identity and credit
/// (score ≥ 60), tier 2 a licence.
struct Issuers {
    authorities: Authorities,
    charter: std::path::PathBuf,
}

impl Issuers {
    fn new() -> Self {
        let authorities = Authorities::new();
        let charter = authorities.write_charter("field", "");
        Self {
            authorities,
            charter,
        }
    }

    fn field(&self) -> Field {
        Field::load(&self.charter).unwrap()
    }

    /// Credentials for tier 2 (score and licence expiry as given), all under one corporate
    /// number, so that two holders conflict.
    fn wallet(&self, holder: &KeyPair, score: i64, licence_until: Option<i64>) -> Vec<String> {
        self.authorities.wallet(
            &holder.did(),
            "7000012050002",
            score,
            licence_until.map(|until| (until, vec![])),
        )
    }
}

struct Gateway {
    key: KeyPair,
    network: Network,
    handshakes: Handshakes,
    events: broadcast::Receiver<GatewayEvent>,
    address: Multiaddr,
    store: Store,
    _dir: tempfile::TempDir,
}

impl Gateway {
    async fn start(issuers: &Issuers, wallet: impl FnOnce(&KeyPair) -> Vec<String>) -> Self {
        Self::start_with(issuers, wallet, 1024 * 1024, 5).await
    }

    /// A gateway with its own message size limit and grace window.
    async fn start_with(
        issuers: &Issuers,
        wallet: impl FnOnce(&KeyPair) -> Vec<String>,
        max_message_bytes: usize,
        grace_secs: u64,
    ) -> Self {
        let key = KeyPair::generate(KeyAlgorithm::Ed25519);
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let settings = NetworkSettings {
            max_message_bytes,
            ..NetworkSettings::loopback()
        };
        let (network, network_events) =
            Network::spawn(key.libp2p_keypair().unwrap(), &settings).unwrap();
        let party = Arc::new(
            LocalParty::new(
                KeyPair::ed25519_from_seed(&seed(&key)),
                vec![issuers.field()],
                wallet(&key),
                store.clone(),
                grace_secs,
            )
            .unwrap(),
        );
        let (handshakes, mut events) =
            Handshakes::spawn(party, network.commands(), network_events.connections);
        let address = wait_for(&mut events, |event| match event {
            GatewayEvent::Listening(address) => Some(address.clone()),
            _ => None,
        })
        .await;
        Self {
            key,
            network,
            handshakes,
            events,
            address,
            store,
            _dir: dir,
        }
    }

    fn peer_id(&self) -> PeerId {
        self.network.peer_id()
    }

    async fn dial(&self, other: &Gateway) {
        self.network
            .send(Command::Dial(other.address.clone()))
            .await
            .unwrap();
    }

    /// Waits for this gateway's verdict on `peer`.
    async fn verdict_on(&mut self, peer: PeerId) -> Result<PeerRecord, (String, String)> {
        wait_for(&mut self.events, |event| match event {
            GatewayEvent::PeerVerified { peer: p, record } if *p == peer => {
                Some(Ok(record.clone()))
            }
            GatewayEvent::PeerRefused {
                peer: p,
                code,
                message,
            } if *p == peer => Some(Err((code.clone(), message.clone()))),
            _ => None,
        })
        .await
    }

    fn tier(record: &PeerRecord) -> u8 {
        record.tiers.values().copied().max().unwrap_or(0)
    }
}

fn seed(key: &KeyPair) -> [u8; 32] {
    match key {
        KeyPair::Ed25519(signing) => signing.to_bytes(),
        KeyPair::P256(_) => unreachable!("organisation keys are Ed25519"),
    }
}

async fn wait_for<T>(
    events: &mut broadcast::Receiver<GatewayEvent>,
    mut pick: impl FnMut(&GatewayEvent) -> Option<T>,
) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let Some(found) = pick(&event) {
                        return found;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => panic!("the gateway stopped"),
            }
        }
    })
    .await
    .expect("timed out waiting for a gateway event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qualified_peers_reach_their_tier_at_each_other_and_persist_it() {
    let issuers = Issuers::new();
    let year = now_unix() + 365 * 86_400;
    let mut a = Gateway::start(&issuers, |key| issuers.wallet(key, 80, Some(year))).await;
    let mut b = Gateway::start(&issuers, |key| issuers.wallet(key, 70, Some(year))).await;
    b.dial(&a).await;
    let at_a = a.verdict_on(b.peer_id()).await.expect("A admits B");
    let at_b = b.verdict_on(a.peer_id()).await.expect("B admits A");
    assert_eq!((Gateway::tier(&at_a), Gateway::tier(&at_b)), (2, 2));
    assert_eq!(at_a.did, b.key.did());
    let stored: PeerRecord = a
        .store
        .tree(Tree::Peers)
        .unwrap()
        .get(b.peer_id().to_bytes().as_slice())
        .unwrap()
        .unwrap();
    assert_eq!(stored.tiers, at_a.tiers);
    drop(b.handshakes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_a_tier_is_refused_and_disconnected() {
    let issuers = Issuers::new();
    let year = now_unix() + 365 * 86_400;
    let mut a = Gateway::start(&issuers, |key| issuers.wallet(key, 80, Some(year))).await;
    let mut c = Gateway::start(&issuers, |key| issuers.wallet(key, 30, None)).await;
    c.dial(&a).await;
    let (code, message) = a.verdict_on(c.peer_id()).await.expect_err("A refuses C");
    assert_eq!(code, "no_tier", "{message}");
    let a_peer = a.peer_id();
    wait_for(&mut c.events, |event| {
        matches!(event, GatewayEvent::PeerGone { peer } if *peer == a_peer).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsing_licence_drops_the_tier_without_a_restart() {
    let issuers = Issuers::new();
    // With the 60 s clock-skew tolerance, a licence that "expired" 57 s ago lapses in 3 s.
    // Both hold one, so that the side that opened the handshake and the side that answered
    // are each checked to re-judge the other when it lapses.
    let lapse_at = now_unix() + 3;
    let mut a = Gateway::start(&issuers, |key| issuers.wallet(key, 80, Some(lapse_at - 60))).await;
    let mut d = Gateway::start(&issuers, |key| issuers.wallet(key, 80, Some(lapse_at - 60))).await;
    d.dial(&a).await;
    let (a_id, d_id) = (a.peer_id(), d.peer_id());
    for (judge, judged, name) in [(&mut a, d_id, "A on D"), (&mut d, a_id, "D on A")] {
        let before = judge.verdict_on(judged).await.expect("admitted");
        assert_eq!(Gateway::tier(&before), 2, "{name}");
        assert_eq!(before.next_change, Some(lapse_at), "{name}");
        let after = judge.verdict_on(judged).await.expect("keeps tier 1");
        assert_eq!(Gateway::tier(&after), 1, "{name}");
        assert!(
            after.evaluated_at >= lapse_at && after.evaluated_at <= lapse_at + 2,
            "{name}: re-evaluated at {} for a lapse at {lapse_at}",
            after.evaluated_at
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_port_changes_nothing() {
    let issuers = Issuers::new();
    let year = now_unix() + 365 * 86_400;
    let mut a = Gateway::start(&issuers, |key| issuers.wallet(key, 80, Some(year))).await;
    let port = a.address.iter().find_map(|protocol| match protocol {
        libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
        _ => None,
    });
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", port.unwrap())).unwrap();
    let _ = raw.write_all(&[0xff; 4096]);
    let _ = raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    drop(raw);
    let b = Gateway::start(&issuers, |key| issuers.wallet(key, 70, Some(year))).await;
    b.dial(&a).await;
    assert_eq!(
        Gateway::tier(&a.verdict_on(b.peer_id()).await.expect("A still works")),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_did_for_the_same_corporate_number_is_refused() {
    let issuers = Issuers::new();
    let year = now_unix() + 365 * 86_400;
    let mut a = Gateway::start(&issuers, |key| issuers.wallet(key, 80, Some(year))).await;
    // B and E hold identity credentials for the same corporate number under two DIDs.
    let b = Gateway::start(&issuers, |key| issuers.wallet(key, 80, Some(year))).await;
    let e = Gateway::start(&issuers, |key| issuers.wallet(key, 80, Some(year))).await;
    b.dial(&a).await;
    assert_eq!(
        Gateway::tier(&a.verdict_on(b.peer_id()).await.expect("A admits B")),
        2
    );
    e.dial(&a).await;
    let (code, message) = a.verdict_on(e.peer_id()).await.expect_err("A refuses E");
    assert_eq!(code, "identity_conflict", "{message}");
    assert!(message.contains(&b.key.did()), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_dropped_and_the_sender_times_out() {
    let issuers = Issuers::new();
    let year = now_unix() + 365 * 86_400;
    // A accepts at most 3,000 bytes per message: B's presentation of three credentials is larger,
    // a presentation of one credential is not (a presentation base64-encodes its credentials).
    let sample = issuers.wallet(&KeyPair::generate(KeyAlgorithm::Ed25519), 80, Some(year));
    assert!(
        sample.iter().map(String::len).sum::<usize>() > 3000,
        "the test's premise: three credentials exceed the limit"
    );
    assert!(
        sample[0].len() * 4 / 3 + 600 < 3000,
        "the test's premise: one credential fits"
    );
    let mut a =
        Gateway::start_with(&issuers, |key| issuers.wallet(key, 80, Some(year)), 3000, 1).await;
    let b = Gateway::start(&issuers, |key| issuers.wallet(key, 80, Some(year))).await;
    b.dial(&a).await;
    let (code, _) = a
        .verdict_on(b.peer_id())
        .await
        .expect_err("B cannot finish");
    assert_eq!(code, "handshake_timeout");
    // A is unharmed: a peer whose messages fit is still verified.
    let small = Gateway::start(&issuers, |key| issuers.wallet(key, 80, None)[..1].to_vec()).await;
    small.dial(&a).await;
    let verdict = a.verdict_on(small.peer_id()).await;
    assert_eq!(
        verdict.map_err(|(code, _)| code),
        Err("no_tier".to_owned()),
        "a one-credential wallet fits and reaches no tier"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_speaking_another_protocol_is_dropped_after_the_grace_window() {
    use futures::StreamExt;
    use libp2p::request_response::{self, ProtocolSupport};
    use libp2p::swarm::SwarmEvent;

    let issuers = Issuers::new();
    let year = now_unix() + 365 * 86_400;
    let mut a = Gateway::start_with(
        &issuers,
        |key| issuers.wallet(key, 80, Some(year)),
        1024 * 1024,
        1,
    )
    .await;
    // A libp2p peer that speaks only its own protocol.
    let mut stranger = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| {
            request_response::json::Behaviour::<String, String>::new(
                [(
                    libp2p::StreamProtocol::new("/not-tfc/1"),
                    ProtocolSupport::Full,
                )],
                request_response::Config::default(),
            )
        })
        .unwrap()
        .build();
    let stranger_id = *stranger.local_peer_id();
    stranger.dial(a.address.clone()).unwrap();
    let refused = tokio::time::timeout(WAIT, async {
        loop {
            match stranger.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                    stranger
                        .behaviour_mut()
                        .send_request(&peer_id, "hello?".into());
                }
                SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                    error, ..
                }) => return error.to_string(),
                _ => {}
            }
        }
    })
    .await
    .expect("the stranger's request must fail");
    assert!(refused.to_lowercase().contains("protocol"), "{refused}");
    let stranger_events = tokio::spawn(async move {
        // Keep the stranger's connection driven until A drops it.
        loop {
            if let SwarmEvent::ConnectionClosed {
                num_established: 0, ..
            } = stranger.select_next_some().await
            {
                return;
            }
        }
    });
    let (code, _) = a
        .verdict_on(stranger_id)
        .await
        .expect_err("A drops the stranger");
    assert_eq!(code, "handshake_timeout");
    tokio::time::timeout(WAIT, stranger_events)
        .await
        .expect("A closes the connection")
        .unwrap();
    let b = Gateway::start(&issuers, |key| issuers.wallet(key, 70, Some(year))).await;
    b.dial(&a).await;
    assert_eq!(
        Gateway::tier(&a.verdict_on(b.peer_id()).await.expect("A still works")),
        2
    );
}
