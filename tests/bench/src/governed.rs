//! A governed field of real gateways for the scenarios that need one, with waits scaled to
//! the field's size: at 50 gateways on 2 cores, forming the full mesh of mutual handshakes
//! takes longer than the testkit's fixed per-pair wait allows.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tfc_testkit::{Authorities, Node, top_tier};

/// Every gateway quiet: a log line per handshake would cost more than the handshake at 50.
pub(crate) fn quiet(text: String) -> String {
    text.replace("level = \"info\"", "level = \"warn\"")
}

/// Starts `gateways` gateways configured by `configure`, each with a tier-2 wallet, and has
/// them join a field they all found (the first is its admin and its bootstrap peer; quorum
/// 2): members that all verify each other. `extra` adds charter lines (a policy). Like
/// `tfc_testkit::start_member_field`, with the charter's extra lines.
pub(crate) async fn start_field(
    authorities: &Authorities,
    gateways: usize,
    configure: fn(String) -> String,
    extra: &str,
) -> anyhow::Result<(Vec<Node>, PathBuf)> {
    let nodes = start_unjoined(authorities, gateways, configure).await?;
    let bootstrap = Authorities::bootstrap_line(std::slice::from_ref(&nodes[0].address));
    let charter = found(authorities, &nodes, "2", &format!("{extra}\n{bootstrap}")).await;
    Ok((nodes, charter))
}

/// Starts `gateways` gateways configured by `configure`, each with a tier-2 wallet, in no
/// field yet.
pub(crate) async fn start_unjoined(
    authorities: &Authorities,
    gateways: usize,
    configure: fn(String) -> String,
) -> anyhow::Result<Vec<Node>> {
    anyhow::ensure!(gateways >= 3, "a governed field has three founders");
    let mut nodes = Vec::with_capacity(gateways);
    for _ in 0..gateways {
        let node = Node::start(configure).await;
        node.import_wallet(&authorities.tier2_wallet(&node.did))
            .await;
        nodes.push(node);
    }
    Ok(nodes)
}

/// Writes a charter that all of `nodes` found (the first is its admin), with `quorum` and
/// the `extra` lines (a bootstrap line among them), and has every node join it; returns its
/// path.
pub(crate) async fn found(
    authorities: &Authorities,
    nodes: &[Node],
    quorum: &str,
    extra: &str,
) -> PathBuf {
    let keys: Vec<_> = nodes.iter().map(Node::org_key).collect();
    let charter = authorities.write_governed_charter(
        "field",
        &keys.iter().collect::<Vec<_>>(),
        std::slice::from_ref(&nodes[0].did),
        quorum,
        extra,
    );
    for node in nodes {
        node.join(&charter).await;
    }
    charter
}

/// How long a field of `gateways` may take to verify every pair: 20 s, plus 1 s per gateway
/// (each gateway handshakes with every other, and they share the cores).
pub(crate) fn formation_patience(gateways: usize) -> Duration {
    Duration::from_secs(20 + gateways as u64)
}

/// Waits until every gateway has verified every other with a tier of at least `tier`; on
/// timeout, names how many pairs are missing and the first of them.
pub(crate) async fn until_all_verified(nodes: &[Node], tier: u8) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let deadline = started + formation_patience(nodes.len());
    let peers: Vec<_> = nodes.iter().map(Node::peer_id).collect();
    loop {
        let mut missing = Vec::new();
        for (index, node) in nodes.iter().enumerate() {
            let services = node.gateway.services();
            for (other, peer) in peers.iter().enumerate() {
                let verified = services
                    .peers
                    .get(*peer)
                    .is_some_and(|record| top_tier(&record) >= tier);
                if other != index && !verified {
                    missing.push((index, other));
                }
            }
        }
        if missing.is_empty() {
            return Ok(started.elapsed());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "after {:.0} s, {} of {} gateway pairs have not verified each other (first: gateway {} has not verified gateway {})",
            started.elapsed().as_secs_f64(),
            missing.len(),
            nodes.len() * (nodes.len() - 1),
            missing[0].0,
            missing[0].1
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
