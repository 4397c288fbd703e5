//! `tfc-bench revocation`: real gateways (init, config, sled, handshake, governance) in one
//! field; each round the admin suspends a member on the emergency path and is measured from
//! the proposal until every other gateway holds the member suspended (each then re-judges it
//! at once). Between rounds the member is reinstated (the admin proposes, a second founder
//! endorses: quorum 2) and the field waits until every pair has verified each other again, so
//! rounds are not capped by the field's size. Beside it: bare gossipsub propagation over as
//! many nodes.

use std::time::{Duration, Instant};

use anyhow::Context;
use tfc_gateway::governance::{OpKind, StandingKind};
use tfc_gateway::localnet::wait_until;
use tfc_testkit::{Authorities, Node};

use crate::resources::Meter;
use crate::{Series, baseline, governed};

/// Polling period while waiting for every gateway: the figures' resolution.
const POLL: Duration = Duration::from_millis(1);

pub(crate) struct Figures {
    pub(crate) revocation: Series,
    /// The process's CPU seconds while suspensions spread (measured rounds only; the
    /// reinstatements between them excluded), per gateway per round.
    pub(crate) cpu_s_per_gateway_per_suspension: f64,
    pub(crate) baseline: Series,
    pub(crate) meter: Meter,
}

pub(crate) async fn run(gateways: usize, rounds: u32) -> anyhow::Result<Figures> {
    let mut meter = Meter::start(gateways)?;
    let authorities = Authorities::new();
    let (nodes, _) = governed::start_field(&authorities, gateways, governed::quiet, "").await?;
    governed::until_all_verified(&nodes, 2).await?;
    meter.idle().await?;
    let field = nodes[0].field_id();
    // Round 0 warms the mesh up and is not counted. The admin (0) and the endorser (1) are
    // never suspended.
    let mut samples = Vec::new();
    let mut measured = Duration::ZERO;
    meter.begin()?;
    let mut suspension_cpu = 0.0;
    for round in 0..=rounds as usize {
        let target = nodes[2 + round % (gateways - 2)].did.clone();
        let cpu_before = crate::resources::cpu_seconds()?;
        let sent = Instant::now();
        nodes[0]
            .gateway
            .publisher()
            .propose(&field, tfc_testkit::suspension(&target))
            .await
            .context("the admin's suspension was refused")?;
        let others = nodes.iter().filter(|node| node.did != target);
        until_held(others, &field, &target, "suspended", |standing| {
            standing == Some(StandingKind::Suspended)
        })
        .await?;
        let elapsed = sent.elapsed();
        if round > 0 {
            samples.push(elapsed);
            measured += elapsed;
            suspension_cpu += crate::resources::cpu_seconds()? - cpu_before;
        }
        reinstate(&nodes, &field, &target).await?;
    }
    let revocation = Series {
        samples,
        wall: measured,
    };
    meter.loaded()?;
    for node in nodes {
        node.gateway.shutdown().await?;
    }
    let (samples, wall) = baseline::gossip_propagation(gateways, rounds).await?;
    Ok(Figures {
        revocation,
        cpu_s_per_gateway_per_suspension: suspension_cpu / gateways as f64 / f64::from(rounds),
        baseline: Series { samples, wall },
        meter,
    })
}

/// Lifts `target`'s suspension with a quorum (the admin proposes, gateway 1 endorses once
/// the proposal reached it) and returns once every gateway holds it reinstated and every
/// pair has verified each other again.
pub(crate) async fn reinstate(nodes: &[Node], field: &str, target: &str) -> anyhow::Result<()> {
    let draft = tfc_gateway::exchange::OpDraft {
        kind: OpKind::Reinstate,
        reason: "benchmark round over".into(),
        ..tfc_testkit::suspension(target)
    };
    let proposed = nodes[0]
        .gateway
        .publisher()
        .propose(field, draft)
        .await
        .context("the reinstatement was refused")?;
    let endorser = nodes[1].gateway.services();
    wait_until("the reinstatement reaches gateway 1", POLL, || {
        let held = endorser.governance.op(field, &proposed.id).is_some();
        async move { held }
    })
    .await?;
    nodes[1]
        .gateway
        .publisher()
        .endorse(field, &proposed.id)
        .await
        .context("gateway 1 could not endorse the reinstatement")?;
    // Every pair verified again, and every gateway, the member itself included (it learns
    // by anti-entropy once verified), holds the reinstatement: the catch-up is over before
    // the next round starts.
    governed::until_all_verified(nodes, 2).await?;
    until_held(nodes.iter(), field, target, "reinstated", |standing| {
        standing.is_some_and(StandingKind::in_good_standing)
    })
    .await
}

/// Returns once each of `nodes` holds a standing of `target` that `holds` accepts (`what`
/// names it in the error).
async fn until_held<'a>(
    nodes: impl Iterator<Item = &'a Node> + Clone,
    field: &str,
    target: &str,
    what: &str,
    holds: fn(Option<StandingKind>) -> bool,
) -> anyhow::Result<()> {
    wait_until(
        &format!("every gateway holds {target} {what}"),
        POLL,
        || {
            let all = nodes
                .clone()
                .all(|node| holds(node.gateway.services().governance.standing(field, target)));
            async move { all }
        },
    )
    .await?;
    Ok(())
}
