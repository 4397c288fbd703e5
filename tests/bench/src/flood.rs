//! `tfc-bench flood`: a misbehaving member aimed at one gateway. The attacker is a bare
//! libp2p node on the gateway's transport (TCP + Noise + Yamux) with the gateway's gossipsub
//! settings (anonymous messages identified by their SHA-256); it completes a real handshake
//! with a tier-2 wallet, so the victim treats it as a member, then publishes invalid messages
//! on the field's threat topic at a fixed rate. Measured: what was sent and what the victim
//! had to judge, the victim's `/v1/status` latency before and during the flood, and when the
//! victim's gossipsub score of the attacker crossed the graylist threshold (from then on its
//! messages are dropped unread) or the attacker was disconnected.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, MessageId};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, noise, tcp, yamux};
use serde_json::{Value, json};
use sha2::Digest;
use tfc_gateway::credential::{Challenge, create_presentation, now_unix};
use tfc_gateway::identity::{KeyAlgorithm, KeyPair};
use tfc_gateway::net::{
    Command, HANDSHAKE_PROTOCOL, HandshakeRequest, HandshakeResponse, TopicKind, topic_name,
};
use tfc_testkit::{Authorities, Node};

use crate::Series;
use crate::resources::Meter;

/// How often the victim's API and its score of the attacker are read.
const PROBE: Duration = Duration::from_millis(20);
/// Bytes of each invalid message: the size of a small envelope.
const MESSAGE_BYTES: usize = 256;
/// The victim's wait for the attacker's handshake and subscription.
const SETUP_WAIT: Duration = Duration::from_secs(30);

#[derive(NetworkBehaviour)]
struct Attacker {
    handshake: request_response::json::Behaviour<HandshakeRequest, HandshakeResponse>,
    gossipsub: gossipsub::Behaviour,
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

/// The gateway's gossipsub settings (gateway/src/net/gossip.rs), without its validation:
/// the attacker forwards nothing and judges nothing.
fn attacker_swarm(key: &KeyPair) -> anyhow::Result<Swarm<Attacker>> {
    let config = gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .message_id_fn(|message| MessageId::new(&sha2::Sha256::digest(&message.data)))
        .max_transmit_size(1024 * 1024)
        .heartbeat_initial_delay(Duration::from_millis(100))
        .heartbeat_interval(Duration::from_millis(500))
        .build()
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    let gossipsub = gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, config)
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    Ok(
        libp2p::SwarmBuilder::with_existing_identity(key.libp2p_keypair()?)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )?
            .with_behaviour(|_| Attacker {
                handshake: request_response::json::Behaviour::new(
                    [(
                        StreamProtocol::new(HANDSHAKE_PROTOCOL),
                        ProtocolSupport::Full,
                    )],
                    request_response::Config::default(),
                ),
                gossipsub,
            })?
            .with_swarm_config(|config| {
                config.with_idle_connection_timeout(Duration::from_secs(60))
            })
            .build(),
    )
}

/// Dials the victim, opens the handshake (a responder answers a `Hello` from either side),
/// subscribes to `topic`, and returns once the victim is known to be subscribed to it too.
async fn join_as_member(
    swarm: &mut Swarm<Attacker>,
    key: &KeyPair,
    wallet: &[String],
    victim: &Multiaddr,
    victim_peer: PeerId,
    field: &str,
    topic: &IdentTopic,
) -> anyhow::Result<u8> {
    swarm.behaviour_mut().gossipsub.subscribe(topic)?;
    swarm.dial(victim.clone())?;
    let nonce = format!("flood-{}", now_unix());
    let mut tier = None;
    let mut subscribed = false;
    let deadline = tokio::time::Instant::now() + SETUP_WAIT;
    while tier.is_none() || !subscribed {
        let event = tokio::time::timeout_at(deadline, swarm.select_next_some())
            .await
            .context("the attacker's handshake or subscription timed out")?;
        match event {
            SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == victim_peer => {
                swarm.behaviour_mut().handshake.send_request(
                    &victim_peer,
                    HandshakeRequest::Hello {
                        did: key.did(),
                        nonce: nonce.clone(),
                        fields: vec![field.to_owned()],
                    },
                );
            }
            SwarmEvent::Behaviour(AttackerEvent::Handshake(request_response::Event::Message {
                message: request_response::Message::Response { response, .. },
                ..
            })) => match response {
                HandshakeResponse::Hello {
                    did, nonce: theirs, ..
                } => {
                    let presentation = create_presentation(
                        key,
                        Challenge {
                            audience: &did,
                            nonce: &theirs,
                        },
                        wallet,
                        now_unix(),
                        60,
                    )?;
                    swarm
                        .behaviour_mut()
                        .handshake
                        .send_request(&victim_peer, HandshakeRequest::Present { presentation });
                }
                HandshakeResponse::Verdict { tiers } => {
                    tier = Some(tiers.values().copied().max().unwrap_or(0));
                }
                HandshakeResponse::Refused { code, message } => {
                    bail!("the victim refused the attacker's handshake: {code}: {message}")
                }
            },
            SwarmEvent::Behaviour(AttackerEvent::Handshake(
                request_response::Event::OutboundFailure { error, .. },
            )) => bail!("the attacker's handshake request failed: {error}"),
            SwarmEvent::Behaviour(AttackerEvent::Gossipsub(gossipsub::Event::Subscribed {
                peer_id,
                topic: subscribed_to,
            })) if peer_id == victim_peer && subscribed_to == topic.hash() => subscribed = true,
            SwarmEvent::ConnectionClosed { peer_id, cause, .. } if peer_id == victim_peer => {
                bail!("the victim closed the connection during setup: {cause:?}")
            }
            SwarmEvent::OutgoingConnectionError { error, .. } => {
                bail!("the attacker cannot reach the victim: {error}")
            }
            _ => {}
        }
    }
    Ok(tier.unwrap_or(0))
}

/// What the attacker did.
struct Flooded {
    sent: u64,
    failures: u64,
    failure_kinds: std::collections::BTreeMap<String, u64>,
    disconnected: Option<Duration>,
}

/// Publishes `rate` distinct invalid messages per second on `topic` for `length`, paced by
/// the clock; keeps driving the swarm meanwhile.
async fn flood(
    mut swarm: Swarm<Attacker>,
    topic: IdentTopic,
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
        tokio::select! {
            _ = tick.tick() => {
                let due = (started.elapsed().as_secs_f64() * f64::from(rate)) as u64;
                while sent + failures < due {
                    let mut data = format!("not an envelope #{}", sent + failures).into_bytes();
                    data.extend_from_slice(filler.as_bytes());
                    data.truncate(MESSAGE_BYTES);
                    match swarm.behaviour_mut().gossipsub.publish(topic.clone(), data) {
                        Ok(_) => sent += 1,
                        Err(error) => {
                            failures += 1;
                            *failure_kinds.entry(error.to_string()).or_insert(0) += 1;
                        }
                    }
                }
            }
            event = swarm.select_next_some() => {
                if let SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } = event
                    && peer_id == victim
                    && disconnected.is_none()
                {
                    disconnected = Some(started.elapsed());
                }
            }
        }
    }
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
    victim.import_wallet(&authorities.tier2_wallet(&victim.did));
    let victim_key = victim.org_key();
    let charter = authorities.write_governed_charter(
        "bench",
        &[&victim_key],
        std::slice::from_ref(&victim.did),
        "1",
        "",
    );
    victim.join(&charter).await;
    let field = victim.field_id();
    let topic = IdentTopic::new(topic_name(&field, TopicKind::Threat));

    let key = KeyPair::generate(KeyAlgorithm::Ed25519);
    let wallet = authorities.tier2_wallet(&key.did());
    let attacker_peer = key.peer_id()?;
    let mut swarm = attacker_swarm(&key)?;
    let tier = join_as_member(
        &mut swarm,
        &key,
        &wallet,
        &victim.address,
        victim.peer_id(),
        &field,
        &topic,
    )
    .await?;
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
    let flooding = tokio::spawn(flood(swarm, topic, victim.peer_id(), rate, length, started));
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
        .party()
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
