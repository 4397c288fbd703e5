//! `tfc-bench data`: one member (the holder) writes records to its tier-2 space, disclosed to
//! every other member; the others take turns reading them through the real data path
//! (`/tfc/data/1`: the holder re-verifies the asker's credentials, decides with the field's
//! Cedar policy, audits the decision, decrypts and checks the record). Each sample runs from
//! the ask to the answer. Beside it: a bare libp2p request-response round trip of the same
//! sizes over a connection that stays open.

use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tfc_gateway::net::{DataRequest, DataResponse};
use tfc_gateway::policy::{Category, ValueLevel};
use tfc_gateway::spaces::{AttachmentRef, Labels};
use tfc_testkit::Authorities;

use crate::resources::Meter;
use crate::{Series, baseline, governed};

/// The example policy: members read records disclosed to them, for a purpose the record
/// allows, when their tier reaches the record's space.
const POLICY: &str = include_str!("../../../config/policies/housing-subsidy.cedar");
/// The space the records are written to (every member holds tier 2).
const TIER: u8 = 2;
/// Distinct records the readers cycle through.
const RECORDS: usize = 50;
const PURPOSE: &str = "screening";
/// The attachment fetched remotely, and how many times.
const ATTACHMENT_BYTES: usize = 1024 * 1024;
const ATTACHMENT_FETCHES: u32 = 30;

/// The figures of one run.
pub(crate) struct Figures {
    pub(crate) read: Series,
    pub(crate) baseline: Series,
    pub(crate) request_bytes: usize,
    pub(crate) response_bytes: usize,
    pub(crate) attachment: Attachment,
    pub(crate) meter: Meter,
}

/// Remote fetches of a 1 MiB attachment (every chunk decided, audited, decrypted; the whole
/// checked against its hash), beside bare request-response carrying the same chunk messages.
pub(crate) struct Attachment {
    pub(crate) fetches: u32,
    pub(crate) fetch: Series,
    pub(crate) baseline: Series,
    /// Bytes of one chunk request and one chunk answer on the wire (JSON, base64).
    pub(crate) chunk_sizes: (usize, usize),
}

impl Attachment {
    fn bytes_per_second(series: &Series, fetches: u32) -> f64 {
        f64::from(fetches) * ATTACHMENT_BYTES as f64 / series.wall.as_secs_f64()
    }

    /// The JSON the issue names: `bytes_per_second`, `baseline_bytes_per_second`, `ratio`.
    pub(crate) fn json(&self) -> Value {
        let ours = Self::bytes_per_second(&self.fetch, self.fetches);
        let baseline = Self::bytes_per_second(&self.baseline, self.fetches);
        json!({
            "bytes": ATTACHMENT_BYTES,
            "fetches": self.fetches,
            "bytes_per_second": ours,
            "baseline_bytes_per_second": baseline,
            "ratio": ours / baseline,
            "target_ratio": 0.8,
            "fetch": self.fetch.figures(),
            "baseline_chunk_round_trips": self.baseline.figures(),
            "chunk_request_bytes": self.chunk_sizes.0,
            "chunk_response_bytes": self.chunk_sizes.1,
        })
    }

    /// One line for the table output.
    pub(crate) fn print(&self) {
        let ours = Self::bytes_per_second(&self.fetch, self.fetches);
        let baseline = Self::bytes_per_second(&self.baseline, self.fetches);
        println!(
            "1 MiB attachment, {} remote fetches: {:.1} MiB/s, baseline {:.1} MiB/s: {:.0}% (target ≥ 80%)",
            self.fetches,
            ours / 1_048_576.0,
            baseline / 1_048_576.0,
            100.0 * ours / baseline
        );
    }
}

impl Figures {
    /// The JSON document of the run.
    pub(crate) fn json(&self, gateways: usize, rounds: u32) -> Value {
        json!({
            "scenario": "data",
            "gateways": gateways,
            "rounds": rounds,
            "request_bytes": self.request_bytes,
            "response_bytes": self.response_bytes,
            "remote_record_read": self.read.figures(),
            "baseline_libp2p_persistent_round_trip": self.baseline.figures(),
            "ratio_p50": self.read.percentile(0.5) / self.baseline.percentile(0.5),
            "attachment_1mib": self.attachment.json(),
            "resources": self.meter.figures(),
        })
    }
}

/// A body of about 1 KiB: a realistic application document.
fn body(n: usize) -> Value {
    json!({
        "applicationId": format!("A-{n}"),
        "applicant": "ベンチ株式会社",
        "amountYen": 1_000_000 + n,
        "notes": "x".repeat(900),
    })
}

/// Runs the scenario over `gateways` gateways with `rounds` reads.
pub(crate) async fn run(gateways: usize, rounds: u32) -> anyhow::Result<Figures> {
    let mut meter = Meter::start(gateways)?;
    let authorities = Authorities::new();
    std::fs::write(authorities.dir.path().join("policy.cedar"), POLICY)?;
    let (nodes, _) = governed::start_field(
        &authorities,
        gateways,
        governed::quiet,
        "policy = \"policy.cedar\"",
    )
    .await?;
    governed::until_all_verified(&nodes, TIER).await?;
    meter.idle().await?;
    let holder = &nodes[0];
    let field = holder.field_id();
    let holder_key = holder.org_key();
    let labels = Labels {
        category: Category::NonPersonal,
        value_level: ValueLevel::Medium,
        rights_holders: Default::default(),
        allowed_purposes: [PURPOSE.to_owned()].into(),
        disclosure: nodes[1..].iter().map(|node| node.did.clone()).collect(),
    };
    let mut ids = Vec::with_capacity(RECORDS);
    for n in 0..RECORDS {
        let record = holder
            .gateway
            .spaces()
            .put(
                "bench",
                &holder_key,
                &holder.did,
                &field,
                TIER,
                None,
                labels.clone(),
                body(n),
                vec![],
            )
            .map_err(|error| anyhow::anyhow!("the holder's write failed: {error}"))?;
        ids.push(record.id);
    }
    let request = |id: &str| DataRequest::Get {
        field: field.clone(),
        tier: TIER,
        id: id.to_owned(),
        purpose: PURPOSE.to_owned(),
    };
    let holder_peer = holder.peer_id();
    let mut samples = Vec::with_capacity(rounds as usize);
    let mut sizes = (0, 0);
    meter.begin()?;
    let mut started = Instant::now();
    // Round 0 opens each reader's data stream and is not counted.
    for round in 0..=rounds as usize {
        let reader = &nodes[1 + round % (gateways - 1)];
        let asked = request(&ids[round % ids.len()]);
        let begin = Instant::now();
        let answer = reader
            .gateway
            .publisher()
            .request_data(holder_peer, asked.clone())
            .await
            .map_err(|error| anyhow::anyhow!("round {round}: the read failed: {error}"))?;
        let elapsed = begin.elapsed();
        match &answer {
            DataResponse::Allowed { records, .. } if records.len() == 1 => {}
            other => bail!("round {round}: the holder did not serve the record: {other:?}"),
        }
        if round == 0 {
            sizes = (
                serde_json::to_vec(&asked)?.len(),
                serde_json::to_vec(&answer)?.len(),
            );
            started = Instant::now();
        } else {
            samples.push(elapsed);
        }
    }
    let read = Series {
        samples,
        wall: started.elapsed(),
    };
    let attachment = fetch_attachments(&nodes, &labels).await?;
    meter.loaded()?;
    for node in nodes {
        node.gateway.shutdown().await?;
    }
    let (samples, wall) = baseline::persistent_round_trip(rounds, sizes.0, sizes.1)
        .await
        .context("the baseline round trips")?;
    let (chunk_samples, chunk_wall) = baseline::persistent_round_trip(
        attachment.fetches * chunks_per_attachment(),
        attachment.chunk_sizes.0,
        attachment.chunk_sizes.1,
    )
    .await
    .context("the baseline chunk round trips")?;
    let attachment = Attachment {
        baseline: Series {
            samples: chunk_samples,
            wall: chunk_wall,
        },
        ..attachment
    };
    Ok(Figures {
        read,
        baseline: Series { samples, wall },
        request_bytes: sizes.0,
        response_bytes: sizes.1,
        attachment,
        meter,
    })
}

fn chunks_per_attachment() -> u32 {
    ATTACHMENT_BYTES.div_ceil(tfc_gateway::spaces::ATTACHMENT_CHUNK_BYTES) as u32
}

/// The holder stores a 1 MiB attachment with a record; the readers take turns fetching it
/// through the gateway's own fetch (`Publisher::fetch_attachment`). The first fetch opens the
/// streams and is not counted. The baseline is filled in by the caller.
async fn fetch_attachments(
    nodes: &[tfc_testkit::Node],
    labels: &Labels,
) -> anyhow::Result<Attachment> {
    let holder = &nodes[0];
    let field = holder.field_id();
    let content = pattern(ATTACHMENT_BYTES);
    let (record_id, reference) =
        put_attachment(holder, &content, TIER, labels.clone(), body(RECORDS))?;
    let wanted = tfc_gateway::exchange::AttachmentWanted {
        field: field.clone(),
        tier: TIER,
        id: record_id.clone(),
        sha256: reference.sha256.clone(),
        purpose: PURPOSE.to_owned(),
    };
    let chunk = DataRequest::Chunk {
        field,
        tier: TIER,
        id: record_id,
        sha256: reference.sha256,
        index: 0,
        purpose: PURPOSE.to_owned(),
    };
    let answer = nodes[1]
        .gateway
        .publisher()
        .request_data(holder.peer_id(), chunk.clone())
        .await
        .map_err(|error| anyhow::anyhow!("the first chunk failed: {error}"))?;
    let chunk_sizes = (
        serde_json::to_vec(&chunk)?.len(),
        serde_json::to_vec(&answer)?.len(),
    );
    let mut samples = Vec::new();
    let mut wall = std::time::Duration::ZERO;
    for round in 0..=ATTACHMENT_FETCHES as usize {
        let reader = &nodes[1 + round % (nodes.len() - 1)];
        let begin = Instant::now();
        let fetched = reader
            .gateway
            .publisher()
            .fetch_attachment(holder.peer_id(), wanted.clone())
            .await
            .map_err(|failure| {
                anyhow::anyhow!("fetch {round}: {}: {}", failure.code, failure.message)
            })?;
        let elapsed = begin.elapsed();
        anyhow::ensure!(fetched == content, "fetch {round} brought other bytes");
        if round > 0 {
            samples.push(elapsed);
            wall += elapsed;
        }
    }
    Ok(Attachment {
        fetches: ATTACHMENT_FETCHES,
        fetch: Series { samples, wall },
        baseline: Series {
            samples: Vec::new(),
            wall: std::time::Duration::ZERO,
        },
        chunk_sizes,
    })
}

/// `bytes` bytes of a fixed pattern: an attachment's content.
pub(crate) fn pattern(bytes: usize) -> Vec<u8> {
    (0..bytes).map(|n| (n % 251) as u8).collect()
}

/// The holder stores `content` as an attachment with a record in its `tier` space: the
/// record's id and the attachment's reference.
pub(crate) fn put_attachment(
    holder: &tfc_testkit::Node,
    content: &[u8],
    tier: u8,
    labels: Labels,
    body: Value,
) -> anyhow::Result<(String, AttachmentRef)> {
    let spaces = holder.gateway.spaces();
    let mut upload = spaces.upload();
    upload
        .write(content)
        .map_err(|error| anyhow::anyhow!("the upload failed: {error}"))?;
    let reference = upload
        .finish()
        .map_err(|error| anyhow::anyhow!("the upload failed: {error}"))?;
    let record = spaces
        .put(
            "bench",
            &holder.org_key(),
            &holder.did,
            &holder.field_id(),
            tier,
            None,
            labels,
            body,
            vec![reference.clone()],
        )
        .map_err(|error| anyhow::anyhow!("the holder's write failed: {error}"))?;
    Ok((record.id, reference))
}
