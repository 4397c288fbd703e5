//! `tfc-bench memory`: the resident memory of one gateway, idle (joined to a field and
//! settled) and loaded (members, threat indicators and data records in its store), beside
//! the targets of 50 MB and 300 MB. The idle figure is taken twice: in this process
//! (process RSS minus the RSS before the gateway started), and from a real `tfc-gateway run`
//! child process, whose whole RSS is the gateway's.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tfc_gateway::credential::now_unix;
use tfc_gateway::identity::{KeyAlgorithm, KeyPair};
use tfc_gateway::policy::{Category, ValueLevel};
use tfc_gateway::services::PeerRecord;
use tfc_gateway::services::threats::Origin;
use tfc_gateway::spaces::Labels;
use tfc_testkit::{Authorities, Node};

use crate::resources::{SETTLE, rss_bytes, rss_bytes_of};

/// The idle target (docs/PERFORMANCE.md), in MB.
const IDLE_TARGET_MB: f64 = 50.0;
/// The loaded target, in MB.
const LOADED_TARGET_MB: f64 = 300.0;
/// Writers of data records at once: durable writes wait for the disk, and concurrent ones
/// share sled's flushes.
const WRITERS: usize = 16;

/// What to load the gateway with.
pub(crate) struct Load {
    pub(crate) members: usize,
    pub(crate) indicators: usize,
    pub(crate) records: usize,
    pub(crate) record_bytes: usize,
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// One stage of the loaded run: the process RSS above the baseline after it.
struct Stage {
    name: &'static str,
    count: usize,
    seconds: f64,
    rss_above_baseline: u64,
}

/// The figures of one run.
pub(crate) struct Figures {
    load: Load,
    idle_in_process: u64,
    child: Result<u64, String>,
    stages: Vec<Stage>,
    store_bytes: u64,
}

impl Figures {
    fn loaded(&self) -> u64 {
        self.stages
            .last()
            .map_or(self.idle_in_process, |stage| stage.rss_above_baseline)
    }

    /// The JSON document of the run.
    pub(crate) fn json(&self) -> Value {
        let stages: Vec<_> = self
            .stages
            .iter()
            .map(|stage| {
                json!({
                    "stage": stage.name,
                    "count": stage.count,
                    "seconds": stage.seconds,
                    "rss_mb_above_baseline": mb(stage.rss_above_baseline),
                })
            })
            .collect();
        json!({
            "scenario": "memory",
            "idle": {
                "in_process_rss_mb": mb(self.idle_in_process),
                "child_process_rss_mb": self.child.as_ref().ok().map(|bytes| mb(*bytes)),
                "child_process_error": self.child.as_ref().err(),
                "target_mb": IDLE_TARGET_MB,
                "met": mb(self.child.as_ref().copied().unwrap_or(self.idle_in_process)) < IDLE_TARGET_MB,
            },
            "loaded": {
                "members": self.load.members,
                "indicators": self.load.indicators,
                "records": self.load.records,
                "record_body_bytes": self.load.record_bytes,
                "stages": stages,
                "rss_mb": mb(self.loaded()),
                "store_on_disk_mb": mb(self.store_bytes),
                "target_mb": LOADED_TARGET_MB,
                "met": mb(self.loaded()) < LOADED_TARGET_MB,
            },
        })
    }

    /// The human report.
    pub(crate) fn print(&self) {
        println!("memory scenario: one gateway (MB = 10^6 bytes)");
        println!(
            "{:<52} {:>10.1} MB (target < {IDLE_TARGET_MB} MB)",
            "idle, in this process (RSS − RSS before start)",
            mb(self.idle_in_process)
        );
        match &self.child {
            Ok(bytes) => println!(
                "{:<52} {:>10.1} MB (target < {IDLE_TARGET_MB} MB)",
                "idle, `tfc-gateway run` child process (VmRSS)",
                mb(*bytes)
            ),
            Err(error) => println!("idle, child process: not measured: {error}"),
        }
        println!(
            "loaded: {} members, {} indicators, {} records of ~{} body bytes",
            self.load.members, self.load.indicators, self.load.records, self.load.record_bytes
        );
        for stage in &self.stages {
            println!(
                "  after {:<12} {:>8} in {:>6.1} s  RSS {:>8.1} MB above the baseline",
                stage.name,
                stage.count,
                stage.seconds,
                mb(stage.rss_above_baseline)
            );
        }
        println!(
            "loaded RSS {:.1} MB (target < {LOADED_TARGET_MB} MB: {}); store on disk {:.1} MB",
            mb(self.loaded()),
            if mb(self.loaded()) < LOADED_TARGET_MB {
                "met"
            } else {
                "NOT met"
            },
            mb(self.store_bytes)
        );
    }
}

/// The bytes under `path`, recursively.
pub(crate) fn disk_usage(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => disk_usage(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Runs the scenario; `gateway_bin` is the `tfc-gateway` binary for the child-process figure
/// (by default, next to this executable).
pub(crate) async fn run(load: Load, gateway_bin: Option<PathBuf>) -> anyhow::Result<Figures> {
    // The child first, while this process is small and quiet.
    let child = child_idle_rss(gateway_bin)
        .await
        .map_err(|error| format!("{error:#}"));
    let baseline = rss_bytes()?;
    let authorities = Authorities::new();
    let node = tfc_testkit::start_sole_admin(&authorities, crate::threats::configure).await;
    tokio::time::sleep(SETTLE).await;
    let idle_in_process = rss_bytes()?.saturating_sub(baseline);
    let field = node.field_id();
    let mut stages = Vec::new();
    let mut stage = |name, count, began: Instant| -> anyhow::Result<()> {
        stages.push(Stage {
            name,
            count,
            seconds: began.elapsed().as_secs_f64(),
            rss_above_baseline: rss_bytes()?.saturating_sub(baseline),
        });
        Ok(())
    };

    let began = Instant::now();
    let peers = &node.gateway.services().peers;
    let mut members = Vec::with_capacity(load.members);
    for _ in 0..load.members {
        let member = KeyPair::generate(KeyAlgorithm::Ed25519);
        let record = PeerRecord {
            did: member.did(),
            tiers: [(field.clone(), 2)].into(),
            presented: Default::default(),
            evaluated_at: now_unix(),
            next_change: None,
            corporate_number: None,
            name: None,
        };
        peers.put(member.peer_id()?, &record)?;
        members.push(member.did());
    }
    stage("members", load.members, began)?;

    let began = Instant::now();
    let threats = std::sync::Arc::clone(node.gateway.publisher().threats());
    for n in 0..load.indicators {
        let reporter = members
            .get(n % members.len().max(1))
            .context("indicators need at least one member to report them")?;
        threats
            .receive(
                &field,
                reporter,
                &json!({ "bundle": tfc_testkit::block_address_indicator(n as u64, tfc_gateway::threats::Severity::High) }),
                Origin::Gossip,
            )
            .map_err(|error| anyhow::anyhow!("indicator {n}: {error}"))?;
    }
    stage("indicators", load.indicators, began)?;

    let began = Instant::now();
    write_records(&node, &field, load.records, load.record_bytes).await?;
    stage("records", load.records, began)?;

    let store_bytes = disk_usage(node.dir.path());
    node.gateway.shutdown().await?;
    Ok(Figures {
        load,
        idle_in_process,
        child,
        stages,
        store_bytes,
    })
}

/// Writes `count` records through the API's write path (`Spaces::put`, durable before it
/// returns), from [`WRITERS`] threads at once.
async fn write_records(
    node: &Node,
    field: &str,
    count: usize,
    body_bytes: usize,
) -> anyhow::Result<()> {
    let labels = Labels {
        category: Category::NonPersonal,
        value_level: ValueLevel::Low,
        rights_holders: Default::default(),
        allowed_purposes: ["screening".to_owned()].into(),
        disclosure: Default::default(),
    };
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let spaces = std::sync::Arc::clone(node.gateway.spaces());
        // Each thread signs with its own copy of the organisation key.
        let key = node.org_key();
        let (field, labels, owner) = (field.to_owned(), labels.clone(), node.did.clone());
        writers.push(tokio::task::spawn_blocking(move || {
            for n in (writer..count).step_by(WRITERS) {
                let body = json!({ "n": n, "text": "x".repeat(body_bytes) });
                spaces
                    .put(
                        "bench",
                        &key,
                        &owner,
                        &field,
                        1,
                        None,
                        labels.clone(),
                        body,
                        vec![],
                    )
                    .map_err(|error| anyhow::anyhow!("record {n}: {error}"))?;
            }
            anyhow::Ok(())
        }));
    }
    for writer in writers {
        writer.await.context("a writer thread failed")??;
    }
    Ok(())
}

/// The `tfc-gateway` binary: `explicit`, or next to this executable.
pub(crate) fn gateway_binary(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let path = match explicit {
        Some(path) => path,
        None => std::env::current_exe()?
            .parent()
            .context("this executable has no directory")?
            .join("tfc-gateway"),
    };
    anyhow::ensure!(
        path.is_file(),
        "{} does not exist (build it with `cargo build --release -p tfc-gateway`, or pass --gateway-bin)",
        path.display()
    );
    Ok(path)
}

/// Runs `tfc-gateway run` on a fresh data directory, gives it a tier-2 wallet and a field
/// through its API, lets it settle, and reads its VmRSS.
async fn child_idle_rss(explicit: Option<PathBuf>) -> anyhow::Result<u64> {
    let binary = gateway_binary(explicit)?;
    let dir = tempfile::tempdir()?;
    tfc_gateway::init::init(dir.path(), None)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = dir.path().join(tfc_gateway::init::CONFIG_FILE);
    let text = std::fs::read_to_string(&config)?
        .replace("/ip4/0.0.0.0/tcp/7400", "/ip4/127.0.0.1/tcp/0")
        .replace("127.0.0.1:7443", &format!("127.0.0.1:{port}"))
        .replace("level = \"info\"", "level = \"warn\"");
    std::fs::write(&config, text)?;
    let mut child = std::process::Command::new(&binary)
        .arg("run")
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let pid = child.id().to_string();
    let measured = async {
        let client = crate::load::admin_client(dir.path())?;
        let base = format!("https://localhost:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while crate::load::get(&client, &format!("{base}/healthz"))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                bail!("the child gateway's API never answered");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let authorities = Authorities::new();
        let key = KeyPair::load(&dir.path().join(tfc_gateway::init::KEY_FILE))?;
        for credential in authorities.tier2_wallet(&key.did()) {
            let response = client
                .post(format!("{base}/v1/wallet"))
                .json(&json!({ "credential": credential }))
                .send()
                .await?;
            anyhow::ensure!(
                response.status().is_success(),
                "wallet import: HTTP {}",
                response.status()
            );
        }
        let charter = authorities.write_governed_charter(
            "bench",
            &[&key],
            std::slice::from_ref(&key.did()),
            "1",
            "",
        );
        let response = client
            .post(format!("{base}/v1/fields"))
            .json(&json!({ "charter": charter }))
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "field join: HTTP {}",
            response.status()
        );
        drop(client);
        tokio::time::sleep(SETTLE).await;
        rss_bytes_of(&pid)
    }
    .await;
    // Our own child, by its id.
    let _ = child.kill();
    let _ = child.wait();
    measured
}
