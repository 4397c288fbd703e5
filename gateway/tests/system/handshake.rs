//! Gateways on 127.0.0.1 with real TCP, Noise and Yamux, separate sled stores, and the real
//! handshake: members reach their tier at each other, an unqualified applicant is refused
//! and gated, a credential that lapses drops the tier without a restart, and garbage on the
//! port changes nothing. Every wait is on state (a stored record) or on the gateway's journal
//! of events since it started, with a timeout.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use libp2p::{Multiaddr, PeerId};
use tfc_gateway::credential::now_unix;
use tfc_gateway::field::Field;
use tfc_gateway::handshake::{GatewayEvent, Handshakes};
use tfc_gateway::identity::{KeyAlgorithm, KeyPair};
use tfc_gateway::localnet::Journal;
use tfc_gateway::net::{Command, Network, NetworkSettings};
use tfc_gateway::services::{PeerRecord, Services};
use tfc_gateway::store::{Store, Tree};
use tfc_testkit::{Authorities, wait_event, wait_until};

/// The field's authorities: tier 1 needs identity and credit (score ≥ 60), tier 2 a licence.
struct Issuers {
    authorities: Authorities,
}

impl Issuers {
    fn new() -> Self {
        Self {
            authorities: Authorities::new(),
        }
    }

    /// The signed charter of a field open to applications whose founders are `founders`
    /// (the first is its admin): they screen the others.
    fn charter(&self, founders: &[&KeyPair]) -> PathBuf {
        self.authorities
            .write_governed_charter("field", founders, &[founders[0].did()], "1", "")
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

fn key() -> KeyPair {
    KeyPair::generate(KeyAlgorithm::Ed25519)
}

struct Gateway {
    did: String,
    network: Network,
    handshakes: Handshakes,
    services: Arc<Services>,
    journal: Journal,
    address: Multiaddr,
    store: Store,
    _dir: tempfile::TempDir,
}

impl Gateway {
    async fn start(charter: &Path, key: KeyPair, wallet: Vec<String>) -> Self {
        Self::start_with(charter, key, wallet, 1024 * 1024, 5).await
    }

    /// A gateway with its own message size limit and grace window.
    async fn start_with(
        charter: &Path,
        key: KeyPair,
        wallet: Vec<String>,
        max_message_bytes: usize,
        grace_secs: u64,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let settings = NetworkSettings {
            max_message_bytes,
            ..NetworkSettings::loopback()
        };
        let (network, network_events) =
            Network::spawn(key.libp2p_keypair().unwrap(), &settings).unwrap();
        let did = key.did();
        let services = Arc::new(
            Services::new(
                key,
                vec![Field::load(charter).unwrap()],
                wallet,
                store.clone(),
                grace_secs,
            )
            .unwrap(),
        );
        let (handshakes, events) = Handshakes::spawn(
            Arc::clone(&services),
            network.commands(),
            network_events.connections,
        );
        let journal = Journal::follow(events);
        let address = wait_event(&journal, |event| match event {
            GatewayEvent::Listening(address) => Some(address.clone()),
            _ => None,
        })
        .await;
        Self {
            did,
            network,
            handshakes,
            services,
            journal,
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

    /// Waits until this gateway's record of `peer` satisfies `accept`.
    async fn record_where(&self, peer: PeerId, accept: impl Fn(&PeerRecord) -> bool) -> PeerRecord {
        let mut found = None;
        wait_until(&format!("{} judges {peer}", self.did), || {
            found = self
                .services
                .peers
                .get(peer)
                .filter(|record| accept(record));
            let done = found.is_some();
            async move { done }
        })
        .await;
        found.unwrap()
    }

    /// Waits until this gateway refused `peer`: the code and the message.
    async fn refusal_of(&self, peer: PeerId) -> (String, String) {
        wait_event(&self.journal, |event| match event {
            GatewayEvent::PeerRefused {
                peer: p,
                code,
                message,
            } if *p == peer => Some((code.clone(), message.clone())),
            _ => None,
        })
        .await
    }

    fn tier(record: &PeerRecord) -> u8 {
        record.tiers.values().copied().max().unwrap_or(0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qualified_members_reach_their_tier_at_each_other_and_persist_it() {
    let issuers = Issuers::new();
    let year = now_unix() + 365 * 86_400;
    let (key_a, key_b) = (key(), key());
    let charter = issuers.charter(&[&key_a, &key_b]);
    let wallet_a = issuers.wallet(&key_a, 80, Some(year));
    let wallet_b = issuers.wallet(&key_b, 70, Some(year));
    let a = Gateway::start(&charter, key_a, wallet_a).await;
    let b = Gateway::start(&charter, key_b, wallet_b).await;
    b.dial(&a).await;
    let at_a = a.record_where(b.peer_id(), |r| Gateway::tier(r) == 2).await;
    let at_b = b.record_where(a.peer_id(), |r| Gateway::tier(r) == 2).await;
    assert_eq!(at_a.did, b.did);
    assert_eq!(at_b.did, a.did);
    let stored: PeerRecord = a
        .store
        .tree(Tree::Peers)
        .unwrap()
        .get(b.peer_id().to_bytes().as_slice())
        .unwrap()
        .unwrap();
    assert_eq!(stored.tiers, at_a.tiers);
    // Each side wrote the nonces it used up (the other's proof of key and presentation)
    // before it recorded the verdict, so none is accepted again after a restart.
    for gateway in [&a, &b] {
        let used = gateway.store.tree(Tree::Replay).unwrap().len();
        assert!(used >= 2, "{} kept {used} used nonces", gateway.did);
    }
    // Each side was told the other's verdict and logged what it presented and received.
    let field = a.services.fields.all()[0].charter.field_id();
    for (gateway, peer) in [(&a, &b.did), (&b, &a.did)] {
        let logged = gateway
            .services
            .disclosures
            .query(&Default::default(), 100)
            .unwrap();
        assert!(
            logged
                .iter()
                .any(|entry| entry.peer == *peer && entry.field == field)
        );
    }
    drop(b.handshakes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applicant_without_a_tier_is_refused_and_disconnected() {
    let issuers = Issuers::new();
    let year = now_unix() + 365 * 86_400;
    let (key_a, key_c) = (key(), key());
    let charter = issuers.charter(&[&key_a]);
    let wallet_a = issuers.wallet(&key_a, 80, Some(year));
    let wallet_c = issuers.wallet(&key_c, 30, None);
    let a = Gateway::start(&charter, key_a, wallet_a).await;
    let c = Gateway::start(&charter, key_c, wallet_c).await;
    c.dial(&a).await;
    let (code, message) = a.refusal_of(c.peer_id()).await;
    assert_eq!(code, "no_tier", "{message}");
    let a_peer = a.peer_id();
    wait_event(&c.journal, |event| {
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
    let (key_a, key_d) = (key(), key());
    let charter = issuers.charter(&[&key_a, &key_d]);
    let wallet_a = issuers.wallet(&key_a, 80, Some(lapse_at - 60));
    let wallet_d = issuers.wallet(&key_d, 80, Some(lapse_at - 60));
    let a = Gateway::start(&charter, key_a, wallet_a).await;
    let d = Gateway::start(&charter, key_d, wallet_d).await;
    d.dial(&a).await;
    let (a_id, d_id) = (a.peer_id(), d.peer_id());
    let judgements = [(&a, d_id, "A on D"), (&d, a_id, "D on A")];
    // Both first verdicts before either lapse is awaited: a side that already re-judged
    // would show its record after the lapse.
    for (judge, judged, name) in judgements {
        let before = judge.record_where(judged, |r| Gateway::tier(r) >= 1).await;
        if now_unix() < lapse_at {
            assert_eq!(Gateway::tier(&before), 2, "{name}: {before:?}");
            assert_eq!(before.next_change, Some(lapse_at), "{name}");
        }
    }
    for (judge, judged, name) in judgements {
        let after = judge.record_where(judged, |r| Gateway::tier(r) == 1).await;
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
    let (key_a, key_b) = (key(), key());
    let charter = issuers.charter(&[&key_a, &key_b]);
    let wallet_a = issuers.wallet(&key_a, 80, Some(year));
    let wallet_b = issuers.wallet(&key_b, 70, Some(year));
    let a = Gateway::start(&charter, key_a, wallet_a).await;
    let port = a.address.iter().find_map(|protocol| match protocol {
        libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
        _ => None,
    });
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", port.unwrap())).unwrap();
    let _ = raw.write_all(&[0xff; 4096]);
    let _ = raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    drop(raw);
    let b = Gateway::start(&charter, key_b, wallet_b).await;
    b.dial(&a).await;
    a.record_where(b.peer_id(), |r| Gateway::tier(r) == 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_did_for_the_same_corporate_number_is_refused() {
    let issuers = Issuers::new();
    let year = now_unix() + 365 * 86_400;
    let (key_a, key_b, key_e) = (key(), key(), key());
    let charter = issuers.charter(&[&key_a]);
    let wallet_a = issuers.wallet(&key_a, 80, Some(year));
    // B and E hold identity credentials for the same corporate number under two DIDs.
    let wallet_b = issuers.wallet(&key_b, 80, Some(year));
    let wallet_e = issuers.wallet(&key_e, 80, Some(year));
    let a = Gateway::start(&charter, key_a, wallet_a).await;
    let b = Gateway::start(&charter, key_b, wallet_b).await;
    let e = Gateway::start(&charter, key_e, wallet_e).await;
    b.dial(&a).await;
    a.record_where(b.peer_id(), |r| Gateway::tier(r) == 2).await;
    e.dial(&a).await;
    let (code, message) = a.refusal_of(e.peer_id()).await;
    assert_eq!(code, "identity_conflict", "{message}");
    assert!(message.contains(&b.did), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_dropped_and_the_sender_times_out() {
    let issuers = Issuers::new();
    let year = now_unix() + 365 * 86_400;
    // A accepts at most 5,500 bytes per message: B's presentation of three credentials is
    // larger; a turn with a presentation of one credential, a proof of key and an ask is
    // not (a presentation base64-encodes its credentials).
    const LIMIT: usize = 5500;
    let sample = issuers.wallet(&key(), 80, Some(year));
    assert!(
        sample.iter().map(String::len).sum::<usize>() * 4 / 3 > LIMIT,
        "the test's premise: three credentials exceed the limit"
    );
    assert!(
        sample.iter().map(String::len).max().unwrap_or(0) * 4 / 3 + 2000 < LIMIT,
        "the test's premise: one credential fits"
    );
    let (key_a, key_b, key_small) = (key(), key(), key());
    let charter = issuers.charter(&[&key_a, &key_b]);
    let wallet_a = issuers.wallet(&key_a, 80, Some(year));
    let wallet_b = issuers.wallet(&key_b, 80, Some(year));
    let wallet_small = issuers.wallet(&key_small, 80, None)[..1].to_vec();
    let a = Gateway::start_with(&charter, key_a, wallet_a, LIMIT, 1).await;
    let b = Gateway::start(&charter, key_b, wallet_b).await;
    b.dial(&a).await;
    let (code, _) = a.refusal_of(b.peer_id()).await;
    assert_eq!(code, "handshake_timeout");
    // A is unharmed: an applicant whose messages fit is judged (and refused: no tier).
    let small = Gateway::start(&charter, key_small, wallet_small).await;
    small.dial(&a).await;
    let (code, _) = a.refusal_of(small.peer_id()).await;
    assert_eq!(
        code, "no_tier",
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
    let (key_a, key_b) = (key(), key());
    let charter = issuers.charter(&[&key_a, &key_b]);
    let wallet_a = issuers.wallet(&key_a, 80, Some(year));
    let wallet_b = issuers.wallet(&key_b, 70, Some(year));
    let a = Gateway::start_with(&charter, key_a, wallet_a, 1024 * 1024, 1).await;
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
    let refused = tokio::time::timeout(tfc_testkit::WAIT, async {
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
    let (code, _) = a.refusal_of(stranger_id).await;
    assert_eq!(code, "handshake_timeout");
    tokio::time::timeout(tfc_testkit::WAIT, stranger_events)
        .await
        .expect("A closes the connection")
        .unwrap();
    let b = Gateway::start(&charter, key_b, wallet_b).await;
    b.dial(&a).await;
    a.record_where(b.peer_id(), |r| Gateway::tier(r) == 2).await;
}
