//! `tfc-bench partition`: a governed field split in two by gating each side's peers on the
//! other side; the admin (side A) suspends a member of side B while the split lasts; then the
//! gates are lifted and each round measures from healing until every gateway in good
//! standing holds the suspension. Beside it: a bare libp2p connect and round trip, the least
//! a reconnection costs.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use tfc_gateway::governance::StandingKind;
use tfc_gateway::net::Command;
use tfc_testkit::{Authorities, Node, across, no_connection_crosses};

use crate::resources::Meter;
use crate::{Series, baseline, governed};

/// Polling period while waiting: the figures' resolution.
const POLL: Duration = Duration::from_millis(1);
/// The promise: both sides agree this soon after healing.
pub(crate) const TARGET: Duration = Duration::from_secs(5);

pub(crate) struct Figures {
    pub(crate) convergence: Series,
    pub(crate) baseline: Series,
    pub(crate) meter: Meter,
}

impl Figures {
    pub(crate) fn json(&self, gateways: usize, rounds: u32) -> Value {
        json!({
            "scenario": "partition",
            "gateways": gateways,
            "rounds": rounds,
            "healed_to_converged": self.convergence.figures(),
            "baseline_libp2p_connect_and_round_trip": self.baseline.figures(),
            "target_ms": TARGET.as_millis() as u64,
            "resources": self.meter.figures(),
        })
    }

    pub(crate) fn print(&self, gateways: usize, rounds: u32) {
        println!(
            "partition scenario: {gateways} gateways on 127.0.0.1 split in two, {rounds} suspensions made on one side during a split"
        );
        crate::print_table(&[
            ("healed → every gateway holds it", &self.convergence),
            ("baseline: libp2p connect + 1 round trip", &self.baseline),
        ]);
        println!(
            "max {:.0} ms (target < {} ms)",
            self.convergence.percentile(1.0),
            TARGET.as_millis()
        );
        self.meter.print();
    }
}

pub(crate) async fn run(gateways: usize, rounds: u32) -> anyhow::Result<Figures> {
    let half = gateways / 2;
    anyhow::ensure!(
        half >= 3 && (rounds as usize) < gateways - half,
        "use at least 6 gateways and at most {} rounds (each suspends another member of side B)",
        gateways.saturating_sub(half + 1)
    );
    let mut meter = Meter::start(gateways)?;
    let authorities = Authorities::new();
    let (nodes, _) = governed::start_field(&authorities, gateways, governed::quiet, "").await?;
    governed::until_all_verified(&nodes, 2).await?;
    meter.idle().await?;
    let field = nodes[0].field_id();
    let (side_a, side_b) = nodes.split_at(half);
    let mut samples = Vec::new();
    let mut suspended = Vec::new();
    meter.begin()?;
    let started = Instant::now();
    for round in 0..rounds as usize {
        across(side_a, side_b, Command::Block).await;
        until(|| async { no_connection_crosses(side_a, side_b).await }).await?;
        let target = side_b[side_b.len() - 1 - round].did.clone();
        suspended.push(target.clone());
        nodes[0]
            .gateway
            .publisher()
            .propose(&field, tfc_testkit::suspension(&target))
            .await
            .context("the admin's suspension was refused")?;
        until(|| async { all_hold(side_a, &suspended, &field, &target) }).await?;
        anyhow::ensure!(
            side_b.iter().all(|node| !holds(node, &field, &target)),
            "the partition leaked"
        );
        across(side_a, side_b, Command::Unblock).await;
        let healed = Instant::now();
        until(|| async { all_hold(&nodes, &suspended, &field, &target) }).await?;
        samples.push(healed.elapsed());
    }
    let convergence = Series {
        samples,
        wall: started.elapsed(),
    };
    meter.loaded()?;
    for node in nodes {
        node.gateway.shutdown().await?;
    }
    let (samples, wall) = baseline::connect_and_round_trip(rounds.max(10)).await?;
    Ok(Figures {
        convergence,
        baseline: Series { samples, wall },
        meter,
    })
}

fn holds(node: &Node, field: &str, target: &str) -> bool {
    node.gateway.services().governance.standing(field, target) == Some(StandingKind::Suspended)
}

/// Whether every node but the `suspended` ones (cut off, they may never hear of it) holds
/// `target` suspended.
fn all_hold(nodes: &[Node], suspended: &[String], field: &str, target: &str) -> bool {
    nodes
        .iter()
        .filter(|node| !suspended.contains(&node.did))
        .all(|node| holds(node, field, target))
}

/// Polls `condition` until it holds, for at most 60 s.
async fn until<F, Fut>(mut condition: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition().await {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the field did not converge in 60 s"
        );
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}
