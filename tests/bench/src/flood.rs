//! `tfc-bench flood`: a misbehaving member aimed at one gateway. The attacker is a gateway's
//! network and handshake service without the rest (nothing it receives is judged): a
//! co-founder of the field with a tier-2 wallet, it completes a real handshake, so the victim
//! lets it into the field's gossip. It then opens a second connection under the same key and
//! writes raw gossipsub frames on the field's protocol itself, distinct invalid messages on
//! the threat topic at a fixed rate: no gossipsub queue of its own caps it. Measured: what
//! was written and what the victim had to judge, the victim's `/v1/status` latency before
//! and during the flood, and when the victim's gossipsub score of the attacker crossed the
//! graylist threshold (from then on its frames are dropped unread) or the attacker was
//! disconnected.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use libp2p::gossipsub;
use libp2p::{PeerId, StreamProtocol, noise, tcp, yamux};
use serde_json::{Value, json};
use tfc_gateway::field::Field;
use tfc_gateway::handshake::Handshakes;
use tfc_gateway::identity::{KeyAlgorithm, KeyPair};
use tfc_gateway::net::{Command, Network, NetworkSettings, TopicKind, mesh_protocol, topic_name};
use tfc_gateway::services::Services;
use tfc_gateway::store::Store;
use tfc_testkit::{Authorities, Node};

use crate::Series;
use crate::resources::Meter;

/// How often the victim's API and its score of the attacker are read.
const PROBE: Duration = Duration::from_millis(20);
/// Bytes of each invalid message: the size of a small envelope.
const MESSAGE_BYTES: usize = 256;
/// The victim's wait for the attacker's handshake and subscription.
const SETUP_WAIT: Duration = Duration::from_secs(30);

/// The attacker's gateway parts: a network and a handshake service over its own party.
struct Attacker {
    network: Network,
    handshakes: Handshakes,
    services: Arc<Services>,
    _dir: tempfile::TempDir,
}

/// The figures of one run.
pub(crate) struct Figures {
    pub(crate) rate: u32,
    pub(crate) seconds: u64,
    pub(crate) sent: u64,
    pub(crate) frames: u64,
    pub(crate) stream_closed: Option<(Duration, String)>,
    pub(crate) judged_by_victim: u64,
    pub(crate) before: Series,
    pub(crate) during: Series,
    pub(crate) probe_errors: usize,
    pub(crate) graylist_threshold: f64,
    pub(crate) lowest_score: Option<f64>,
    pub(crate) scored_out_after: Option<Duration>,
    pub(crate) disconnected_after: Option<Duration>,
    pub(crate) meter: Meter,
}

fn millis(duration: Option<Duration>) -> Option<f64> {
    duration.map(|duration| duration.as_secs_f64() * 1e3)
}

impl Figures {
    /// The JSON document of the run.
    pub(crate) fn json(&self) -> Value {
        json!({
            "scenario": "flood",
            "target_rate_per_second": self.rate,
            "seconds": self.seconds,
            "message_bytes": MESSAGE_BYTES,
            "attacker": "raw gossipsub frames on a second connection under the member's key",
            "sent": self.sent,
            "sent_per_second": self.sent as f64 / self.seconds as f64,
            "frames": self.frames,
            "messages_per_frame": FRAME_MESSAGES,
            "stream_closed_after_ms": millis(self.stream_closed.as_ref().map(|(after, _)| *after)),
            "stream_closed_by": self.stream_closed.as_ref().map(|(_, error)| error),
            "judged_invalid_by_victim": self.judged_by_victim,
            "api_status_before_flood": self.before.figures(),
            "api_status_during_flood": self.during.figures(),
            "api_probe_errors": self.probe_errors,
            "ratio_p99_during_to_before": self.during.percentile(0.99) / self.before.percentile(0.99),
            "graylist_threshold": self.graylist_threshold,
            "lowest_score": self.lowest_score,
            "scored_out": self.scored_out_after.is_some(),
            "scored_out_after_ms": millis(self.scored_out_after),
            "disconnected_after_ms": millis(self.disconnected_after),
            "resources": self.meter.figures(),
            "resources_note": "the attacker runs in the same process: loaded RSS and CPU include it",
        })
    }

    /// The human report.
    pub(crate) fn print(&self) {
        println!(
            "flood scenario: a tier-2 member writes {} invalid {MESSAGE_BYTES}-byte messages/s in raw gossipsub frames for {} s at one gateway",
            self.rate, self.seconds
        );
        println!(
            "sent {} in {} frames ({:.0}/s); the victim judged {} invalid",
            self.sent,
            self.frames,
            self.sent as f64 / self.seconds as f64,
            self.judged_by_victim
        );
        if let Some((after, error)) = &self.stream_closed {
            println!(
                "the attacker's raw stream closed {:.0} ms into the flood: {error}",
                after.as_secs_f64() * 1e3
            );
        }
        crate::print_table(&[
            ("GET /v1/status before the flood", &self.before),
            ("GET /v1/status during the flood", &self.during),
        ]);
        match self.scored_out_after {
            Some(after) => println!(
                "the attacker was scored out (gossipsub score < {}) {:.0} ms into the flood; lowest score {:.0}",
                self.graylist_threshold,
                after.as_secs_f64() * 1e3,
                self.lowest_score.unwrap_or(f64::NAN)
            ),
            None => println!(
                "the attacker was NOT scored out; lowest score {:?}",
                self.lowest_score
            ),
        }
        if let Some(after) = self.disconnected_after {
            println!(
                "the victim disconnected the attacker {:.0} ms into the flood",
                after.as_secs_f64() * 1e3
            );
        }
        if self.probe_errors > 0 {
            println!("{} API probes failed", self.probe_errors);
        }
        self.meter.print();
        println!("  (the attacker runs in this process: loaded RSS and CPU include it)");
    }
}

/// Starts the attacker: `key`'s network and handshake service, `wallet` in its wallet, the
/// field of `charter` joined.
async fn start_attacker(
    key: &KeyPair,
    wallet: Vec<String>,
    charter: &std::path::Path,
) -> anyhow::Result<Attacker> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("store"))?;
    let (network, events) = Network::spawn(key.libp2p_keypair()?, &NetworkSettings::loopback())?;
    let field = Field::load(charter)?;
    let field_id = field.charter.field_id();
    let copy = KeyPair::from_pkcs8_pem(&key.to_pkcs8_pem()).context("the attacker's key")?;
    let services = Arc::new(Services::new(copy, vec![field], wallet, store, 10)?);
    network.send(Command::JoinField(field_id)).await?;
    let (handshakes, _) = Handshakes::spawn(
        Arc::clone(&services),
        network.commands(),
        events.connections,
    );
    Ok(Attacker {
        network,
        handshakes,
        services,
        _dir: dir,
    })
}

/// Dials the victim and returns once each side verified the other and the victim runs the
/// field's gossip with the attacker.
async fn join_as_member(
    attacker: &Attacker,
    victim: &Node,
    attacker_peer: PeerId,
    field: &str,
) -> anyhow::Result<u8> {
    attacker
        .network
        .send(Command::Dial(victim.address.clone()))
        .await?;
    let deadline = tokio::time::Instant::now() + SETUP_WAIT;
    loop {
        let tier = victim
            .gateway
            .services()
            .peers
            .get(attacker_peer)
            .and_then(|record| record.tiers.get(field).copied());
        let verified_victim = attacker.services.peer_verified_in(victim.peer_id(), field);
        // Each side knows the other's subscription: the attacker's gossip goes to the victim.
        let (reply, answer) = tokio::sync::oneshot::channel();
        victim
            .gateway
            .network()
            .send(Command::MeshFields(attacker_peer, reply))
            .await?;
        let (attacker_reply, attacker_answer) = tokio::sync::oneshot::channel();
        attacker
            .network
            .send(Command::MeshFields(victim.peer_id(), attacker_reply))
            .await?;
        let in_mesh = answer.await?.contains(field) && attacker_answer.await?.contains(field);
        if let (Some(tier), true, true) = (tier, verified_victim, in_mesh) {
            return Ok(tier);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the attacker's handshake did not complete (victim's tier {tier:?}, attacker verified the victim: {verified_victim}, in the mesh: {in_mesh})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Messages per RPC frame the attacker writes: about 10 KiB, far below the field's bound.
const FRAME_MESSAGES: u64 = 32;

/// What the attacker did.
struct Flooded {
    sent: u64,
    frames: u64,
    /// When a write failed: the victim closed the stream or the connection.
    stream_closed: Option<(Duration, String)>,
    disconnected: Option<Duration>,
}

/// Opens the attacker's raw side: a second connection under the member's own key (the
/// victim lets it into the field's gossip as the member it verified) on which the attacker
/// writes gossipsub frames itself, with no gossipsub of its own to queue or pace them. The
/// victim's own gossip stream to it is read and dropped.
async fn open_raw_link(
    key: &KeyPair,
    victim: &Node,
    field: &str,
) -> anyhow::Result<(libp2p::Stream, tokio::task::JoinHandle<()>)> {
    use futures::StreamExt;
    let protocol = StreamProtocol::try_from_owned(mesh_protocol(field))?;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key.libp2p_keypair()?)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|_| libp2p_stream::Behaviour::new())?
        .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    let mut control = swarm.behaviour().new_control();
    let mut incoming = control.accept(protocol.clone())?;
    swarm.dial(victim.address.clone())?;
    let driver = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = swarm.select_next_some() => {}
                Some((_, mut stream)) = incoming.next() => {
                    tokio::spawn(async move {
                        let _ = futures::io::copy(&mut stream, &mut futures::io::sink()).await;
                    });
                }
            }
        }
    });
    // The victim offers the field's protocol on the connection once it has installed the
    // field's gossip there: until then the stream is refused, so it is asked again.
    let opened = std::sync::Mutex::new(None);
    let waited = tfc_gateway::localnet::wait_until(
        "the victim accepts the raw gossip stream",
        Duration::from_millis(20),
        || {
            let (mut control, protocol, opened) = (control.clone(), protocol.clone(), &opened);
            async move {
                let stream = control.open_stream(victim.peer_id(), protocol).await.ok();
                let done = stream.is_some();
                if let Ok(mut slot) = opened.lock() {
                    *slot = stream;
                }
                done
            }
        },
    )
    .await;
    match (waited, opened.into_inner().ok().flatten()) {
        (Ok(()), Some(stream)) => Ok((stream, driver)),
        (waited, _) => {
            driver.abort();
            anyhow::bail!("the victim refused the raw gossip stream: {waited:?}")
        }
    }
}

/// Appends `value` as an unsigned LEB128 varint (protobuf and the frame's length prefix).
fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends protobuf field `number` of wire type 2 (bytes) holding `bytes`.
fn bytes_field(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
    varint(out, (number << 3) | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// One gossipsub RPC frame publishing each of `payloads` on `topic`: the length as a varint,
/// then `RPC { repeated Message publish = 2 }` with `Message { data = 2; topic = 4 }`, no
/// author, sequence number or signature, as the field's anonymous gossip expects.
fn rpc_frame(topic: &str, payloads: impl Iterator<Item = Vec<u8>>) -> Vec<u8> {
    let mut rpc = Vec::new();
    for data in payloads {
        let mut message = Vec::with_capacity(data.len() + topic.len() + 8);
        bytes_field(&mut message, 2, &data);
        bytes_field(&mut message, 4, topic.as_bytes());
        bytes_field(&mut rpc, 2, &message);
    }
    let mut frame = Vec::with_capacity(rpc.len() + 4);
    varint(&mut frame, rpc.len() as u64);
    frame.extend(rpc);
    frame
}

/// A distinct invalid message of [`MESSAGE_BYTES`]: distinct, so that each one is judged.
fn invalid_message(n: u64) -> Vec<u8> {
    let mut data = format!("not an envelope #{n} ").into_bytes();
    data.resize(MESSAGE_BYTES, b'#');
    data
}

/// Writes `rate` distinct invalid messages per second on `topic` for `length`, in frames of
/// [`FRAME_MESSAGES`], paced by the clock; notes when a write fails and when the victim
/// disconnects the member.
async fn flood(
    attacker: Attacker,
    mut stream: libp2p::Stream,
    topic: String,
    victim: PeerId,
    rate: u32,
    length: Duration,
    started: Instant,
) -> Flooded {
    use futures::AsyncWriteExt;
    let mut flooded = Flooded {
        sent: 0,
        frames: 0,
        stream_closed: None,
        disconnected: None,
    };
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while started.elapsed() < length {
        tick.tick().await;
        let due = (started.elapsed().as_secs_f64() * f64::from(rate)) as u64;
        while flooded.stream_closed.is_none() && flooded.sent < due {
            let count = FRAME_MESSAGES.min(due - flooded.sent);
            let first = flooded.sent;
            let frame = rpc_frame(&topic, (first..first + count).map(invalid_message));
            match stream.write_all(&frame).await {
                Ok(()) => {
                    flooded.sent += count;
                    flooded.frames += 1;
                }
                Err(error) => flooded.stream_closed = Some((started.elapsed(), error.to_string())),
            }
        }
        if flooded.disconnected.is_none() {
            let (reply, answer) = tokio::sync::oneshot::channel();
            if attacker
                .network
                .send(Command::ConnectedPeers(reply))
                .await
                .is_ok()
                && answer.await.is_ok_and(|peers| !peers.contains(&victim))
            {
                flooded.disconnected = Some(started.elapsed());
            }
        }
    }
    let _ = stream.close().await;
    attacker.handshakes.shutdown().await;
    attacker.network.shutdown().await;
    flooded
}

/// `GET /v1/status` every [`PROBE`] until `until`: the latencies and the failures.
async fn probe_api(
    client: &reqwest::Client,
    url: &str,
    until: Instant,
) -> (Vec<Duration>, Duration, usize) {
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut errors = 0;
    while Instant::now() < until {
        let begin = Instant::now();
        match tokio::time::timeout(Duration::from_secs(5), crate::load::get(client, url)).await {
            Ok(Ok(_)) => samples.push(begin.elapsed()),
            _ => errors += 1,
        }
        tokio::time::sleep(PROBE.saturating_sub(begin.elapsed())).await;
    }
    (samples, started.elapsed(), errors)
}

/// Runs the scenario: `rate` invalid messages per second for `seconds` at one gateway,
/// after `quiet_seconds` of API probes without the flood.
pub(crate) async fn run(rate: u32, seconds: u64, quiet_seconds: u64) -> anyhow::Result<Figures> {
    let mut meter = Meter::start(1)?;
    let authorities = Authorities::new();
    let victim = Node::start(crate::governed::quiet).await;
    victim
        .import_wallet(&authorities.tier2_wallet(&victim.did))
        .await;
    let victim_key = victim.org_key();
    // The attacker sorts first, so that it opens the handshake: the victim never waits on it.
    let key = loop {
        let key = KeyPair::generate(KeyAlgorithm::Ed25519);
        if key.peer_id()? < victim.peer_id() {
            break key;
        }
    };
    let attacker_peer = key.peer_id()?;
    let charter = authorities.write_governed_charter(
        "bench",
        &[&victim_key, &key],
        std::slice::from_ref(&victim.did),
        "1",
        "",
    );
    victim.join(&charter).await;
    let field = victim.field_id();
    let topic = topic_name(&field, TopicKind::Threat);
    let attacker = start_attacker(&key, authorities.tier2_wallet(&key.did()), &charter).await?;
    let tier = join_as_member(&attacker, &victim, attacker_peer, &field).await?;
    anyhow::ensure!(tier == 2, "the attacker reached tier {tier}, not 2");
    let (stream, raw_driver) = open_raw_link(&key, &victim, &field).await?;
    meter.idle().await?;

    let client = crate::load::admin_client(victim.dir.path())?;
    let url = format!(
        "https://localhost:{}/v1/status",
        victim.gateway.api_address().port()
    );
    let (samples, wall, mut probe_errors) = probe_api(
        &client,
        &url,
        Instant::now() + Duration::from_secs(quiet_seconds),
    )
    .await;
    let before = Series { samples, wall };

    meter.begin()?;
    let length = Duration::from_secs(seconds);
    let started = Instant::now();
    let flooding = tokio::spawn(flood(
        attacker,
        stream,
        topic,
        victim.peer_id(),
        rate,
        length,
        started,
    ));
    let network = victim.gateway.network().commands();
    let threshold = gossipsub::PeerScoreThresholds::default().graylist_threshold;
    let watching = tokio::spawn(async move {
        let mut lowest: Option<f64> = None;
        let mut scored_out = None;
        while started.elapsed() < length {
            let (reply, answer) = tokio::sync::oneshot::channel();
            if network
                .send(Command::PeerScore(attacker_peer, reply))
                .await
                .is_err()
            {
                break;
            }
            if let Ok(Some(score)) = answer.await {
                lowest = Some(lowest.map_or(score, |lowest: f64| lowest.min(score)));
                if score < threshold && scored_out.is_none() {
                    scored_out = Some(started.elapsed());
                }
            }
            tokio::time::sleep(PROBE).await;
        }
        (lowest, scored_out)
    });
    let (samples, wall, errors) = probe_api(&client, &url, started + length).await;
    probe_errors += errors;
    let during = Series { samples, wall };
    let flooded = flooding.await.context("the attacker task failed")?;
    raw_driver.abort();
    let (lowest_score, scored_out_after) = watching.await.context("the score watcher failed")?;
    meter.loaded()?;
    let judged_by_victim = victim
        .gateway
        .services()
        .metrics
        .get(tfc_gateway::metrics::GOSSIP, "malformed");
    victim.gateway.shutdown().await?;
    Ok(Figures {
        rate,
        seconds,
        sent: flooded.sent,
        frames: flooded.frames,
        stream_closed: flooded.stream_closed,
        judged_by_victim,
        before,
        during,
        probe_errors,
        graylist_threshold: threshold,
        lowest_score,
        scored_out_after,
        disconnected_after: flooded.disconnected,
        meter,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_a_length_prefixed_rpc_of_anonymous_messages() {
        let frame = rpc_frame("t", [b"ab".to_vec()].into_iter());
        // RPC.publish (field 2) holding Message { data (field 2): "ab", topic (field 4): "t" }.
        assert_eq!(frame, [9, 0x12, 7, 0x12, 2, b'a', b'b', 0x22, 1, b't']);
    }

    #[test]
    fn varints_past_one_byte_carry_a_continuation_bit() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        varint(&mut out, 127);
        assert_eq!(out, [0xac, 0x02, 0x7f]);
    }

    #[test]
    fn invalid_messages_are_distinct_and_of_one_size() {
        let (first, second) = (invalid_message(1), invalid_message(2));
        assert_ne!(first, second);
        assert_eq!((first.len(), second.len()), (MESSAGE_BYTES, MESSAGE_BYTES));
    }
}
