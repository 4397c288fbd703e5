//! `tfc-bench revocation`: real gateways (init, config, sled, handshake, governance) in one
//! field; the admin suspends one member after another on the emergency path, and each round
//! measures from the proposal until every gateway still in good standing holds the member
//! suspended (each then re-judges it at once). Beside it: bare gossipsub propagation over as many nodes.

use std::time::{Duration, Instant};

use anyhow::Context;
use tfc_gateway::governance::StandingKind;
use tfc_testkit::{Authorities, Node};

use crate::resources::Meter;
use crate::{Series, baseline, governed};

/// Polling period while waiting for every gateway: the figures' resolution.
const POLL: Duration = Duration::from_millis(1);

pub(crate) struct Figures {
    pub(crate) revocation: Series,
    pub(crate) baseline: Series,
    pub(crate) meter: Meter,
}

pub(crate) async fn run(gateways: usize, rounds: u32) -> anyhow::Result<Figures> {
    anyhow::ensure!(
        rounds as usize <= gateways - 4,
        "each round suspends another member: use at most {} rounds with {gateways} gateways",
        gateways - 4
    );
    let mut meter = Meter::start(gateways)?;
    let authorities = Authorities::new();
    let (nodes, _) = governed::start_field(&authorities, gateways, governed::quiet, "").await?;
    governed::until_all_verified(&nodes, 2).await?;
    meter.idle().await?;
    let field = nodes[0].field_id();
    // Round 0 warms the mesh up and is not counted.
    let mut samples = Vec::new();
    meter.begin()?;
    let mut started = Instant::now();
    for round in 0..=rounds as usize {
        let target = nodes[3 + round].did.clone();
        let sent = Instant::now();
        nodes[0]
            .gateway
            .publisher()
            .propose(&field, tfc_testkit::suspension(&target))
            .await
            .context("the admin's suspension was refused")?;
        until_everyone(&nodes, &field, &target, 3 + round).await?;
        let elapsed = sent.elapsed();
        if round == 0 {
            started = Instant::now();
        } else {
            samples.push(elapsed);
        }
    }
    let revocation = Series {
        samples,
        wall: started.elapsed(),
    };
    meter.loaded()?;
    for node in nodes {
        node.gateway.shutdown().await?;
    }
    let (samples, wall) = baseline::gossip_propagation(gateways, rounds).await?;
    Ok(Figures {
        revocation,
        baseline: Series { samples, wall },
        meter,
    })
}

/// Returns once every gateway holds `target` suspended, except those suspended in this or
/// earlier rounds (indices 3 to `last_suspended`): they are cut off.
async fn until_everyone(
    nodes: &[Node],
    field: &str,
    target: &str,
    last_suspended: usize,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = nodes.iter().enumerate().all(|(index, node)| {
            (3..=last_suspended).contains(&index)
                || node.gateway.services().governance.standing(field, target)
                    == Some(StandingKind::Suspended)
        });
        if all {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "a gateway never learnt of the suspension"
        );
        tokio::time::sleep(POLL).await;
    }
}
