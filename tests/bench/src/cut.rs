//! `tfc-bench cut`: a revocation cuts an attachment transfer under way. In a field of three
//! real gateways, the admin holds a 64 MiB attachment (128 chunks, each decided, audited and
//! decrypted anew) disclosed to a member. Each round the member fetches it; once the holder
//! has allowed a few chunks, the admin suspends the member on the emergency path, and the
//! round measures from the suspension held at the holder until the member's fetch fails.
//! The holder's audit log orders what came after: no chunk decision begun after the
//! suspension may be allowed (one already under way may finish). The member is reinstated
//! between rounds, so rounds are not capped by the field's size.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tfc_gateway::exchange::AttachmentWanted;
use tfc_gateway::localnet::wait_until;
use tfc_gateway::policy::{Category, ValueLevel};
use tfc_gateway::spaces::{Labels, MAX_ATTACHMENT_BYTES};
use tfc_testkit::{Authorities, Node};

use crate::{Series, data, governed, revocation};

/// The example policy: members read records disclosed to them, for a purpose it allows.
const POLICY: &str = include_str!("../../../config/policies/housing-subsidy.cedar");
const TIER: u8 = 2;
const PURPOSE: &str = "screening";
/// Chunks the holder allows before the suspension: the transfer is well under way.
const CHUNKS_BEFORE: usize = 4;
/// Polling period of the waits.
const POLL: Duration = Duration::from_millis(1);
/// Target of the cut's p99.
const TARGET_P99_MS: f64 = 100.0;

/// The figures of one run.
pub(crate) struct Figures {
    pub(crate) cut: Series,
    /// The most chunks any round allowed after the suspension's audit entry (decisions
    /// under way when it was taken).
    pub(crate) most_allowed_after: usize,
    /// How the member's fetches ended: (refused by the holder, connection gone).
    pub(crate) endings: (u32, u32),
}

impl Figures {
    /// The JSON document of the run.
    pub(crate) fn json(&self, rounds: u32) -> Value {
        json!({
            "scenario": "cut",
            "gateways": 3,
            "rounds": rounds,
            "attachment_bytes": MAX_ATTACHMENT_BYTES,
            "chunks_allowed_before_the_suspension": CHUNKS_BEFORE,
            "revocation_held_to_transfer_cut": self.cut.figures(),
            "most_chunks_allowed_after_the_suspension": self.most_allowed_after,
            "ended_refused": self.endings.0,
            "ended_connection_closed": self.endings.1,
            "target_p99_ms": TARGET_P99_MS,
        })
    }

    /// The table output.
    pub(crate) fn print(&self, rounds: u32) {
        println!(
            "cut scenario: 3 gateways on 127.0.0.1, {rounds} transfers of a 64 MiB attachment cut by a suspension after {CHUNKS_BEFORE} chunks"
        );
        crate::print_table(&[("suspension held → transfer cut", &self.cut)]);
        println!(
            "cut p99 {:.1} ms (target < {TARGET_P99_MS} ms); at most {} chunk(s) allowed after the suspension's audit entry; fetches ended refused {} times, by the closed connection {} times",
            self.cut.percentile(0.99),
            self.most_allowed_after,
            self.endings.0,
            self.endings.1
        );
    }
}

/// Runs `rounds` cut transfers.
pub(crate) async fn run(rounds: u32) -> anyhow::Result<Figures> {
    let authorities = Authorities::new();
    std::fs::write(authorities.dir.path().join("policy.cedar"), POLICY)?;
    let (nodes, _) = governed::start_field(
        &authorities,
        3,
        governed::quiet,
        "policy = \"policy.cedar\"",
    )
    .await?;
    governed::until_all_verified(&nodes, TIER).await?;
    let wanted = store_attachment(&nodes[0], &nodes[2])?;
    let mut figures = Figures {
        cut: Series {
            samples: Vec::with_capacity(rounds as usize),
            wall: Duration::ZERO,
        },
        most_allowed_after: 0,
        endings: (0, 0),
    };
    let started = Instant::now();
    for round in 0..rounds {
        cut_one(&nodes, &wanted, &mut figures)
            .await
            .with_context(|| format!("round {round}"))?;
    }
    figures.cut.wall = started.elapsed();
    for node in nodes {
        node.gateway.shutdown().await?;
    }
    Ok(figures)
}

/// The holder (the admin) stores a 64 MiB attachment with a record disclosed to `reader`.
fn store_attachment(holder: &Node, reader: &Node) -> anyhow::Result<AttachmentWanted> {
    let labels = Labels {
        category: Category::NonPersonal,
        value_level: ValueLevel::Medium,
        rights_holders: Default::default(),
        allowed_purposes: [PURPOSE.to_owned()].into(),
        disclosure: [reader.did.clone()].into(),
    };
    let body = json!({"drawing": "site plan"});
    let content = data::pattern(usize::try_from(MAX_ATTACHMENT_BYTES)?);
    let (id, attachment) = data::put_attachment(holder, &content, TIER, labels, body)?;
    Ok(AttachmentWanted {
        field: holder.field_id(),
        tier: TIER,
        id,
        sha256: attachment.sha256,
        purpose: PURPOSE.into(),
    })
}

/// One round: fetch, suspend after a few chunks, measure the cut, check the audit's order,
/// reinstate.
async fn cut_one(
    nodes: &[Node],
    wanted: &AttachmentWanted,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let (holder, reader) = (&nodes[0], &nodes[2]);
    let audit = &holder.gateway.services().audit;
    let start = audit.head().map_or(0, |(seq, _)| seq);
    let (publisher, holder_peer, asked) = (
        reader.gateway.publisher().clone(),
        holder.peer_id(),
        wanted.clone(),
    );
    let transfer = tokio::spawn(async move {
        let fetched = publisher.fetch_attachment(holder_peer, asked).await;
        (fetched, Instant::now())
    });
    wait_until("the holder allows the first chunks", POLL, || {
        let allowed = chunks_allowed(holder, &reader.did, start).map(|chunks| chunks.len());
        async move { allowed.is_ok_and(|allowed| allowed >= CHUNKS_BEFORE) }
    })
    .await?;
    holder
        .gateway
        .publisher()
        .propose(&wanted.field, tfc_testkit::suspension(&reader.did))
        .await
        .context("the admin's suspension was refused")?;
    // The admin is the holder: the suspension is held here once proposed.
    let held = Instant::now();
    let (fetched, ended) = transfer.await.context("the fetch task failed")?;
    let Err(failure) = fetched else {
        bail!("the transfer was not cut: the whole attachment arrived");
    };
    if failure.refused {
        figures.endings.0 += 1;
    } else {
        figures.endings.1 += 1;
    }
    figures
        .cut
        .samples
        .push(ended.saturating_duration_since(held));
    let suspended_at = audit
        .after(start, usize::MAX)?
        .into_iter()
        .find(|entry| entry.action == "governance.suspend")
        .map(|entry| entry.seq)
        .context("the suspension is not in the holder's audit log")?;
    let after = chunks_allowed(holder, &reader.did, start)?
        .into_iter()
        .filter(|seq| *seq > suspended_at)
        .count();
    if after > 1 {
        bail!("{after} chunks were allowed after the suspension's audit entry");
    }
    figures.most_allowed_after = figures.most_allowed_after.max(after);
    revocation::reinstate(nodes, &wanted.field, &reader.did).await
}

/// The audit sequence numbers of the chunk decisions the holder allowed `reader` after entry
/// `start`.
fn chunks_allowed(holder: &Node, reader: &str, start: u64) -> anyhow::Result<Vec<u64>> {
    Ok(holder
        .gateway
        .services()
        .audit
        .after(start, usize::MAX)?
        .into_iter()
        .filter(|entry| {
            entry.actor == reader && entry.action.starts_with("data.") && entry.decision == "allow"
        })
        .map(|entry| entry.seq)
        .collect())
}
