//! `tfc-bench threats`: indicators verified and applied at one gateway, beside raw Ed25519
//! verification of the same envelopes; and an indicator's propagation until every gateway of
//! a field has applied it, beside bare gossipsub over as many nodes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use tfc_gateway::credential::{CredentialVerifier, now_unix, sign_message};
use tfc_gateway::exchange::{MAX_GOSSIP_BATCH, MIN_OPENING_SHARE, Sealed, open_envelopes};
use tfc_gateway::identity::{KeyAlgorithm, KeyPair, PublicKey};
use tfc_gateway::net::TopicKind;
use tfc_gateway::services::PeerRecord;
use tfc_gateway::services::threats::{Origin, PreparedReport, Threats};
use tfc_gateway::threats::Severity;
use tfc_testkit::{Authorities, Node, block_address_indicator};

use crate::resources::Meter;
use crate::{Series, baseline, governed};

/// Reporters the throughput run spreads its indicators over.
const REPORTERS: usize = 64;
/// Polling period while waiting for every gateway: the figures' resolution.
const POLL: Duration = Duration::from_millis(1);

/// Throughput at one gateway.
pub(crate) struct Throughput {
    pub(crate) indicators: usize,
    /// Verified and applied per second (batches as the gateway's exchange service takes
    /// them).
    pub(crate) applied_per_second: f64,
    /// Raw Ed25519 verifications of the same envelopes per second, on one core.
    pub(crate) raw_verify_per_second: f64,
    /// The share of the time spent opening envelopes (the rest is the threat book).
    pub(crate) verify_share: f64,
    /// The gateway's memory and the CPU time of the run.
    pub(crate) meter: Meter,
}

/// Every gateway automatic, quiet, and with reporter limits above the run's volume.
pub(crate) fn configure(text: String) -> String {
    text.replace("level = \"info\"", "level = \"warn\"")
        .replace("\"manual\"", "\"auto\"")
        .replace("{ auto_at_or_above = \"high\" }", "\"auto\"")
        .replace("reporter_burst = 100", "reporter_burst = 1000000")
        .replace("reporter_rate = 10.0", "reporter_rate = 1000000.0")
        .replace(
            "max_indicators_per_reporter = 1000",
            "max_indicators_per_reporter = 1000000",
        )
}

/// Indicators verified and applied at one real gateway, one envelope after another.
pub(crate) async fn throughput(count: usize) -> anyhow::Result<Throughput> {
    let mut meter = Meter::start(1)?;
    let authorities = Authorities::new();
    let node = tfc_testkit::start_sole_admin(&authorities, configure).await;
    meter.idle().await?;
    let field = node.field_id();
    let reporters: Vec<KeyPair> = (0..REPORTERS)
        .map(|_| KeyPair::generate(KeyAlgorithm::Ed25519))
        .collect();
    let peers = &node.gateway.services().peers;
    for reporter in &reporters {
        let record = PeerRecord {
            did: reporter.did(),
            tiers: [(field.clone(), 2)].into(),
            presented: Default::default(),
            evaluated_at: now_unix(),
            next_change: None,
            corporate_number: None,
            name: None,
        };
        let peer = reporter.peer_id().context("reporter peer id")?;
        peers.put(peer, &record)?;
    }
    let envelopes: Vec<String> = (0..count)
        .map(|n| {
            let reporter = &reporters[n % REPORTERS];
            let envelope = json!({
                "iss": reporter.did(),
                "field": field,
                "kind": "threat",
                "iat": now_unix(),
                "jti": format!("bench-{n}"),
                "body": { "bundle": block_address_indicator(n as u64, Severity::High) },
            });
            sign_message(reporter, &envelope).map_err(anyhow::Error::from)
        })
        .collect::<anyhow::Result<_>>()?;
    let threats = Arc::clone(node.gateway.publisher().threats());
    let verifier = Arc::new(CredentialVerifier::new());
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let envelopes = Arc::new(envelopes);
    meter.begin()?;
    let started = Instant::now();
    let mut applying = Duration::ZERO;
    // As the exchange service judges gossip: batches of what is waiting, each opened on the
    // blocking pool across the cores (signatures in batches), then taken by the book at once.
    for batch in (0..count).step_by(MAX_GOSSIP_BATCH) {
        let batch = batch..(batch + MAX_GOSSIP_BATCH).min(count);
        let share = batch.len().div_ceil(cores).max(MIN_OPENING_SHARE);
        let tasks: Vec<_> = batch
            .clone()
            .step_by(share)
            .map(|from| {
                let part = from..(from + share).min(batch.end);
                let (verifier, threats) = (Arc::clone(&verifier), Arc::clone(&threats));
                let (envelopes, field) = (Arc::clone(&envelopes), field.clone());
                tokio::task::spawn_blocking(move || {
                    open_reports(&verifier, &threats, &envelopes[part], &field)
                })
            })
            .collect();
        let mut reports = Vec::with_capacity(batch.len());
        for task in tasks {
            reports.extend(task.await??);
        }
        let begin = Instant::now();
        let book = Arc::clone(&threats);
        let outcomes = tokio::task::spawn_blocking(move || book.take(reports)).await?;
        applying += begin.elapsed();
        for outcome in outcomes {
            outcome.map_err(|error| anyhow::anyhow!("{error}"))?;
        }
    }
    let elapsed = started.elapsed();
    meter.loaded()?;
    let applied_per_second = count as f64 / elapsed.as_secs_f64();
    let verify_share = 1.0 - applying.as_secs_f64() / elapsed.as_secs_f64();
    anyhow::ensure!(
        threats.address_blocks().networks.len() == count,
        "every indicator's block is in force"
    );
    let raw_verify_per_second = raw_verify(&envelopes)?;
    node.gateway.shutdown().await?;
    Ok(Throughput {
        indicators: count,
        applied_per_second,
        raw_verify_per_second,
        verify_share,
        meter,
    })
}

/// Opens envelopes as the exchange service does and prepares their reports for the book.
fn open_reports(
    verifier: &CredentialVerifier,
    threats: &Threats,
    envelopes: &[String],
    field: &str,
) -> anyhow::Result<Vec<(String, PreparedReport)>> {
    let sealed: Vec<Sealed<'_>> = envelopes
        .iter()
        .map(|token| Sealed {
            token,
            field,
            kind: TopicKind::Threat,
        })
        .collect();
    open_envelopes(verifier, &sealed, 1024 * 1024, now_unix())
        .into_iter()
        .map(|opened| {
            let (publisher, envelope) =
                opened.map_err(|rejection| anyhow::anyhow!("{}", rejection.message))?;
            let report = threats
                .prepare(field, &envelope.body, Origin::Gossip)
                .map_err(|error| anyhow::anyhow!("{error}"))?;
            Ok((publisher, report))
        })
        .collect()
}

/// Raw Ed25519 verification of the envelopes' signatures, keys parsed beforehand, one
/// after another on one core.
fn raw_verify(envelopes: &[String]) -> anyhow::Result<f64> {
    use base64::Engine as _;
    let decode = |part: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part);
    let mut prepared = Vec::with_capacity(envelopes.len());
    for token in envelopes {
        let (input, signature) = token.rsplit_once('.').context("a compact JWS")?;
        let payload: Value =
            serde_json::from_slice(&decode(input.split('.').nth(1).context("a payload")?)?)?;
        let did = payload["iss"].as_str().context("an issuer")?;
        prepared.push((
            PublicKey::from_did(did)?,
            input.as_bytes().to_vec(),
            decode(signature)?,
        ));
    }
    let started = Instant::now();
    for (key, input, signature) in &prepared {
        anyhow::ensure!(key.verify(input, signature), "a signature verifies");
    }
    Ok(prepared.len() as f64 / started.elapsed().as_secs_f64())
}

/// From publication at one gateway until every gateway of the field has applied it.
pub(crate) async fn propagation(
    gateways: usize,
    rounds: u32,
) -> anyhow::Result<(Series, Series, Meter)> {
    let mut meter = Meter::start(gateways)?;
    let authorities = Authorities::new();
    let (nodes, _) = governed::start_field(&authorities, gateways, configure, "").await?;
    governed::until_all_verified(&nodes, 1).await?;
    meter.idle().await?;
    let field = nodes[0].field_id();
    // Round 0 warms the mesh up and is not counted.
    let mut samples = Vec::new();
    meter.begin()?;
    let mut started = Instant::now();
    for round in 0..=rounds as usize {
        let publisher = &nodes[1 + round % (gateways - 1)];
        let sent = Instant::now();
        publisher
            .gateway
            .publisher()
            .publish_threat(
                &field,
                block_address_indicator(round as u64, Severity::High),
                vec![],
            )
            .await
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        until_applied(&nodes, round + 1).await?;
        let elapsed = sent.elapsed();
        if round == 0 {
            started = Instant::now();
        } else {
            samples.push(elapsed);
        }
    }
    let ours = Series {
        samples,
        wall: started.elapsed(),
    };
    meter.loaded()?;
    for node in nodes {
        node.gateway.shutdown().await?;
    }
    let (samples, wall) = baseline::gossip_propagation(gateways, rounds).await?;
    Ok((ours, Series { samples, wall }, meter))
}

/// Returns once every gateway has `count` address blocks in force.
async fn until_applied(nodes: &[Node], count: usize) -> anyhow::Result<()> {
    let books: Vec<_> = nodes
        .iter()
        .map(|node| std::sync::Arc::clone(node.gateway.publisher().threats()))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if books
            .iter()
            .all(|book| book.address_blocks().networks.len() >= count)
        {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "a gateway never applied the indicator"
        );
        tokio::time::sleep(POLL).await;
    }
}
