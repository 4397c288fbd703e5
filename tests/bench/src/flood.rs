//! `tfc-bench flood`: a misbehaving member aimed at one gateway. The attacker is a gateway's
//! network and handshake service without the rest (nothing it receives is judged): a
//! co-founder of the field with a tier-2 wallet, it completes a real handshake, so the victim
//! lets it into the field's gossip, then publishes invalid messages on the field's threat
//! topic at a fixed rate. Measured: what was sent and what the victim
//! had to judge, the victim's `/v1/status` latency before and during the flood, and when the
//! victim's gossipsub score of the attacker crossed the graylist threshold (from then on its
//! messages are dropped unread) or the attacker was disconnected.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use libp2p::PeerId;
use libp2p::gossipsub;
use serde_json::{Value, json};
use tfc_gateway::field::Field;
use tfc_gateway::handshake::Handshakes;
use tfc_gateway::identity::{KeyAlgorithm, KeyPair};
use tfc_gateway::net::{Command, Network, NetworkSettings, TopicKind, topic_name};
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
    pub(crate) publish_failures: u64,
    pub(crate) publish_failure_kinds: std::collections::BTreeMap<String, u64>,
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
            "sent": self.sent,
            "sent_per_second": self.sent as f64 / self.seconds as f64,
            "publish_failures": self.publish_failures,
            "publish_failures_by_kind": self.publish_failure_kinds,
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
            "flood scenario: a tier-2 member publishes {} invalid {MESSAGE_BYTES}-byte messages/s for {} s at one gateway",
            self.rate, self.seconds
        );
        println!(
            "sent {} ({:.0}/s); {} publishes refused by the attacker's own gossipsub {:?}; the victim judged {} invalid",
            self.sent,
            self.sent as f64 / self.seconds as f64,
            self.publish_failures,
            self.publish_failure_kinds,
            self.judged_by_victim
        );
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

/// What the attacker did.
struct Flooded {
    sent: u64,
    failures: u64,
    failure_kinds: std::collections::BTreeMap<String, u64>,
    disconnected: Option<Duration>,
}

/// Publishes `rate` distinct invalid messages per second on `topic` for `length`, paced by
/// the clock; notes when the victim disconnects the attacker.
async fn flood(
    attacker: Attacker,
    topic: String,
    victim: PeerId,
    rate: u32,
    length: Duration,
    started: Instant,
) -> Flooded {
    let mut sent = 0u64;
    let mut failures = 0u64;
    let mut failure_kinds = std::collections::BTreeMap::new();
    let mut disconnected = None;
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let filler = "#".repeat(MESSAGE_BYTES);
    while started.elapsed() < length {
        tick.tick().await;
        let due = (started.elapsed().as_secs_f64() * f64::from(rate)) as u64;
        while sent + failures < due {
            let mut data = format!("not an envelope #{}", sent + failures).into_bytes();
            data.extend_from_slice(filler.as_bytes());
            data.truncate(MESSAGE_BYTES);
            let (reply, answer) = tokio::sync::oneshot::channel();
            let publish = Command::Publish {
                topic: topic.clone(),
                data,
                reply: Some(reply),
            };
            let outcome = match attacker.network.send(publish).await {
                Ok(()) => answer
                    .await
                    .unwrap_or(Err(tfc_gateway::net::NetError::Stopped))
                    .map_err(|error| error.to_string()),
                Err(error) => Err(error.to_string()),
            };
            match outcome {
                Ok(()) => sent += 1,
                Err(error) => {
                    failures += 1;
                    *failure_kinds.entry(error).or_insert(0) += 1;
                }
            }
        }
        if disconnected.is_none() {
            let (reply, answer) = tokio::sync::oneshot::channel();
            if attacker
                .network
                .send(Command::ConnectedPeers(reply))
                .await
                .is_ok()
                && answer.await.is_ok_and(|peers| !peers.contains(&victim))
            {
                disconnected = Some(started.elapsed());
            }
        }
    }
    attacker.handshakes.shutdown().await;
    attacker.network.shutdown().await;
    Flooded {
        sent,
        failures,
        failure_kinds,
        disconnected,
    }
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
        publish_failures: flooded.failures,
        publish_failure_kinds: flooded.failure_kinds,
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
