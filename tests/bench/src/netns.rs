//! `tfc-bench netns`: the scale model checked against real `tfc-gateway run` processes, each
//! in its own network namespace, every pair `rtt` apart (see [`crate::delaynet`]).
//!
//! Gateway 0, the field's admin, runs in this process (its address is in this namespace);
//! the others are child processes, watched through their JSON log lines. Each round the admin
//! suspends a member (the field's quorum is 1: its signature alone commits) and is measured
//! from the proposal until every other process has logged the op held (by the timestamps of
//! their log lines). Between rounds the admin reinstates the member and the round waits until
//! every other process holds the reinstatement and has verified the member again. The CPU the
//! processes spent while suspensions spread, per gateway per suspension, then feeds the model
//! of the same field (everyone connected, the same cores, the same round-trip time), whose
//! figures are reported beside the measured ones.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use libp2p::PeerId;
use serde_json::{Value, json};
use tfc_gateway::governance::OpKind;
use tfc_gateway::localnet::wait_until;
use tfc_testkit::{Authorities, Node};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::mpsc;

use crate::delaynet::{self, DelayNet};
use crate::scale_model::{self, EventKind, Mode, ModelInputs, PropagationFigures};
use crate::{Series, governed};

/// The port every gateway listens on (each has its own address).
const PORT: u16 = 7400;

/// What the processes log: their verdicts and the ops they take, nothing else below warn.
const LOG_LEVEL: &str = "warn,tfc_gateway::handshake=info,tfc_gateway::exchange=info";

/// How long one round (a suspension, or a reinstatement and its re-verification) may take.
const ROUND_PATIENCE: Duration = Duration::from_secs(60);

/// The figures of one run.
pub(crate) struct Figures {
    gateways: usize,
    rounds: u32,
    rtt_ms: f64,
    /// Proposal → the last process holds the suspension.
    revocation: Series,
    /// The processes' CPU while suspensions spread, per process per suspension.
    cpu_us_per_gateway: f64,
    /// The model of the same field, fed with that CPU.
    model: PropagationFigures,
    shared_cores: usize,
}

/// Runs the scenario: `gateways` gateways, `rounds` measured suspensions (after one that
/// warms the mesh up), every pair `rtt` apart.
pub(crate) async fn run(
    gateways: usize,
    rounds: u32,
    rtt: Duration,
    gateway_bin: Option<PathBuf>,
) -> anyhow::Result<Figures> {
    let binary = crate::memory::gateway_binary(gateway_bin)?;
    let net = DelayNet::create(gateways, rtt)?;
    let (mut dirs, field) = prepare(gateways).await?;
    let admin = Node::resume(dirs.remove(0)).await;
    let mut processes = Processes::spawn(&binary, &dirs)?;
    let patience = governed::formation_patience(gateways) + ROUND_PATIENCE;
    processes
        .until(
            "every process verified every other gateway",
            patience,
            |watch| (1..gateways).all(|g| watch.verified[g].len() >= gateways - 1),
        )
        .await?;
    let field_id = admin.field_id();
    until_gossiping(&admin, &field.peers[1..], &field_id).await?;
    let mut samples = Vec::new();
    let (mut measured, mut cpu) = (Duration::ZERO, 0.0);
    for round in 0..=rounds as usize {
        let target = 1 + round % (gateways - 1);
        let (last, cpu_spent) = suspend(&admin, &mut processes, &field, &field_id, target).await?;
        if round > 0 {
            samples.push(last);
            measured += last;
            cpu += cpu_spent;
        }
        reinstate(&admin, &mut processes, &field, &field_id, target).await?;
    }
    drop(processes);
    admin.stop().await;
    drop(net);
    let cpu_us_per_gateway = cpu * 1e6 / (gateways - 1) as f64 / f64::from(rounds);
    let shared_cores = std::thread::available_parallelism().map_or(2, usize::from);
    let inputs = ModelInputs {
        validation_us_op: cpu_us_per_gateway,
        loopback_rtt_ms: rtt.as_secs_f64() * 1e3,
        loopback_shared_cores: shared_cores,
        ..ModelInputs::default()
    };
    let model = scale_model::propagate(
        &inputs,
        gateways,
        EventKind::Revocation,
        Mode::Loopback { shared_cores },
    );
    Ok(Figures {
        gateways,
        rounds,
        rtt_ms: rtt.as_secs_f64() * 1e3,
        revocation: Series {
            samples,
            wall: measured,
        },
        cpu_us_per_gateway,
        model,
        shared_cores,
    })
}

/// The admin suspends `target`; returns the time from the proposal until the last other
/// process logged it held, and the CPU seconds the processes spent meanwhile.
async fn suspend(
    admin: &Node,
    processes: &mut Processes,
    field: &PreparedField,
    field_id: &str,
    target: usize,
) -> anyhow::Result<(Duration, f64)> {
    let cpu_before = processes.cpu_seconds()?;
    let sent = OffsetDateTime::now_utc();
    let op = admin
        .gateway
        .publisher()
        .propose(field_id, tfc_testkit::suspension(&field.dids[target]))
        .await
        .context("the admin's suspension was refused")?;
    let others: Vec<usize> = (1..field.dids.len()).filter(|g| *g != target).collect();
    processes
        .until(
            "every other process holds the suspension",
            ROUND_PATIENCE,
            |watch| watch.held_by(&op.id, &others).is_some(),
        )
        .await?;
    let cpu = processes.cpu_seconds()? - cpu_before;
    let last = processes.watch.held_by(&op.id, &others).unwrap_or(sent) - sent;
    Ok((Duration::try_from(last).unwrap_or(Duration::ZERO), cpu))
}

/// The admin reinstates `target`; returns once every other process holds the reinstatement,
/// the member and every gateway have verified each other again, and the admin gossips with
/// it. The member's own intake of the reinstatement is not awaited: it often missed its
/// suspension (the admin disconnects it first) and then syncs both ops at once, which changes
/// nothing it logs.
async fn reinstate(
    admin: &Node,
    processes: &mut Processes,
    field: &PreparedField,
    field_id: &str,
    target: usize,
) -> anyhow::Result<()> {
    let mark = processes.watch.taken;
    let draft = tfc_gateway::exchange::OpDraft {
        kind: OpKind::Reinstate,
        reason: "benchmark round over".into(),
        ..tfc_testkit::suspension(&field.dids[target])
    };
    let op = admin
        .gateway
        .publisher()
        .propose(field_id, draft)
        .await
        .context("the reinstatement was refused")?;
    let others: Vec<usize> = (1..field.dids.len()).filter(|g| *g != target).collect();
    let verified_since = |watch: &Watch, by: usize, peer: &PeerId| {
        watch.verified[by].get(&peer.to_string()) > Some(&mark)
    };
    processes
        .until(
            "every other process holds the reinstatement",
            ROUND_PATIENCE,
            |watch| watch.held_by(&op.id, &others).is_some(),
        )
        .await?;
    processes
        .until(
            "every process verified the member again",
            ROUND_PATIENCE,
            |watch| {
                others
                    .iter()
                    .all(|g| verified_since(watch, *g, &field.peers[target]))
            },
        )
        .await?;
    processes
        .until(
            "the member verified every gateway again",
            ROUND_PATIENCE,
            |watch| {
                (0..field.dids.len())
                    .filter(|g| *g != target)
                    .all(|g| verified_since(watch, target, &field.peers[g]))
            },
        )
        .await?;
    until_gossiping(admin, &field.peers[target..=target], field_id).await
}

/// Returns once `admin` runs `field`'s gossip with each of `peers`. Verified is not yet
/// gossiping: until then an op would reach the peer through a third gateway, a round trip
/// late.
async fn until_gossiping(admin: &Node, peers: &[PeerId], field: &str) -> anyhow::Result<()> {
    for peer in peers {
        wait_until(
            "the admin gossips with every member",
            Duration::from_millis(5),
            || {
                let meshed = admin.mesh_fields(*peer);
                async move { meshed.await.contains(field) }
            },
        )
        .await?;
    }
    Ok(())
}

/// Who the gateways of a prepared field are, by index.
struct PreparedField {
    dids: Vec<String>,
    peers: Vec<PeerId>,
    /// Holds the charter the gateways joined (they read it at every start).
    _authorities: Authorities,
}

/// Sets up `gateways` data directories in this process (on loopback, without connecting
/// them): keys, tier-2 wallets, the charter joined; then points each at its address on the
/// delayed network.
async fn prepare(gateways: usize) -> anyhow::Result<(Vec<tempfile::TempDir>, PreparedField)> {
    let authorities = Authorities::new();
    let nodes = governed::start_unjoined(&authorities, gateways, governed::quiet).await?;
    let admin_address = format!(
        "/ip4/{}/tcp/{PORT}/p2p/{}",
        delaynet::address(0),
        nodes[0].peer_id()
    )
    .parse()?;
    let bootstrap = Authorities::bootstrap_line(&[admin_address]);
    governed::found(&authorities, &nodes, "1", &bootstrap).await;
    let dids = nodes.iter().map(|node| node.did.clone()).collect();
    let peers = nodes.iter().map(Node::peer_id).collect();
    let mut dirs = Vec::with_capacity(gateways);
    for (index, node) in nodes.into_iter().enumerate() {
        let dir = node.stop().await;
        place(dir.path(), index)?;
        dirs.push(dir);
    }
    let field = PreparedField {
        dids,
        peers,
        _authorities: authorities,
    };
    Ok((dirs, field))
}

/// Rewrites the config in `dir`: gateway `index`'s address, and the log lines this scenario
/// reads.
fn place(dir: &Path, index: usize) -> anyhow::Result<()> {
    let path = dir.join(tfc_gateway::init::CONFIG_FILE);
    let text = std::fs::read_to_string(&path)?;
    let listen = format!("/ip4/{}/tcp/{PORT}", delaynet::address(index));
    let placed = text
        .replace("/ip4/127.0.0.1/tcp/0", &listen)
        .replace("level = \"warn\"", &format!("level = \"{LOG_LEVEL}\""));
    anyhow::ensure!(
        placed.contains(&listen) && placed.contains(LOG_LEVEL),
        "the config in {} has no loopback listen address or quiet log level to replace",
        dir.display()
    );
    std::fs::write(&path, placed)?;
    Ok(())
}

/// One log line a process wrote, as this scenario reads it.
struct Line {
    gateway: usize,
    at: Option<OffsetDateTime>,
    message: String,
    fields: Value,
}

/// What the processes' log lines have said so far.
struct Watch {
    /// Lines taken so far: each verdict is stamped with the count at its line.
    taken: u64,
    /// For each gateway, the peers it verified, with the stamp of the latest verdict.
    verified: Vec<HashMap<String, u64>>,
    /// For each op, when each gateway logged it held.
    held: HashMap<String, Vec<Option<OffsetDateTime>>>,
    /// A process that exited, with its last lines.
    exited: Option<String>,
}

impl Watch {
    fn take(&mut self, line: Line) {
        self.taken += 1;
        let field = |name: &str| line.fields[name].as_str().map(str::to_owned);
        match line.message.as_str() {
            "peer verified" => {
                if let Some(peer) = field("peer") {
                    self.verified[line.gateway].insert(peer, self.taken);
                }
            }
            "governance state changed" => {
                if let (Some(op), Some(at)) = (field("op"), line.at) {
                    let gateways = self.verified.len();
                    self.held.entry(op).or_insert_with(|| vec![None; gateways])[line.gateway] =
                        Some(at);
                }
            }
            "process exited" => {
                self.exited = Some(format!("gateway {} exited: {}", line.gateway, line.fields));
            }
            _ => {}
        }
    }

    /// When the last of `gateways` logged op `id` held, once they all have.
    fn held_by(&self, id: &str, gateways: &[usize]) -> Option<OffsetDateTime> {
        let held = self.held.get(id)?;
        gateways
            .iter()
            .map(|g| held.get(*g).copied().flatten())
            .try_fold(OffsetDateTime::UNIX_EPOCH, |last, at| Some(last.max(at?)))
    }
}

/// The gateway child processes and their log lines.
struct Processes {
    children: Vec<Child>,
    lines: mpsc::UnboundedReceiver<Line>,
    watch: Watch,
}

impl Processes {
    /// Starts `tfc-gateway run` on each of `dirs` (gateways 1, 2, …), each in its namespace.
    fn spawn(binary: &Path, dirs: &[tempfile::TempDir]) -> anyhow::Result<Self> {
        let (sender, lines) = mpsc::unbounded_channel();
        let mut children = Vec::with_capacity(dirs.len());
        for (offset, dir) in dirs.iter().enumerate() {
            let gateway = offset + 1;
            let namespace =
                std::fs::File::open(format!("/run/netns/{}", delaynet::namespace(gateway)))?;
            let descriptor = namespace.as_raw_fd();
            let mut command = Command::new(binary);
            command
                .arg("run")
                .arg("--config")
                .arg(dir.path().join(tfc_gateway::init::CONFIG_FILE))
                .args(["--log-format", "json"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            // SAFETY: only setns, async-signal-safe, runs between fork and exec; the
            // descriptor stays open until `spawn` returns.
            unsafe {
                command.pre_exec(move || {
                    if libc::setns(descriptor, libc::CLONE_NEWNET) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
            let mut child = command
                .spawn()
                .with_context(|| format!("starting {}", binary.display()))?;
            let stderr = child.stderr.take().context("no stderr pipe")?;
            let sender = sender.clone();
            std::thread::spawn(move || forward_lines(gateway, stderr, &sender));
            children.push(child);
        }
        let gateways = dirs.len() + 1;
        Ok(Self {
            children,
            lines,
            watch: Watch {
                taken: 0,
                verified: vec![HashMap::new(); gateways],
                held: HashMap::new(),
                exited: None,
            },
        })
    }

    /// Takes log lines until `done` holds; fails after `patience` or if a process exited.
    async fn until(
        &mut self,
        what: &str,
        patience: Duration,
        done: impl Fn(&Watch) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + patience;
        while !done(&self.watch) {
            if let Some(exited) = &self.watch.exited {
                bail!("{exited}");
            }
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => self.watch.take(line),
                Ok(None) => bail!("every gateway process has exited"),
                Err(_) => bail!("timed out after {patience:?} waiting until {what}"),
            }
        }
        Ok(())
    }

    /// The CPU seconds the processes have used.
    fn cpu_seconds(&self) -> anyhow::Result<f64> {
        self.children
            .iter()
            .map(|child| crate::resources::cpu_seconds_of(&child.id().to_string()))
            .sum()
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends each JSON log line of `gateway` on `lines`; a last line says it exited.
fn forward_lines(
    gateway: usize,
    stderr: std::process::ChildStderr,
    lines: &mpsc::UnboundedSender<Line>,
) {
    let mut last = Vec::new();
    for text in BufReader::new(stderr).lines().map_while(Result::ok) {
        let Ok(log) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let line = Line {
            gateway,
            at: log["timestamp"]
                .as_str()
                .and_then(|at| OffsetDateTime::parse(at, &Rfc3339).ok()),
            message: log["fields"]["message"].as_str().unwrap_or("").to_owned(),
            fields: log["fields"].clone(),
        };
        last.push(text);
        if last.len() > 5 {
            last.remove(0);
        }
        if lines.send(line).is_err() {
            return;
        }
    }
    let _ = lines.send(Line {
        gateway,
        at: None,
        message: "process exited".into(),
        fields: json!(last),
    });
}

impl Figures {
    /// The report, measured beside modelled.
    pub(crate) fn json(&self) -> Value {
        let measured = self.revocation.figures();
        let ratio = |key: &str, modelled: f64| measured[key].as_f64().map(|real| modelled / real);
        json!({
            "scenario": "netns",
            "gateways": self.gateways,
            "processes": self.gateways - 1,
            "rounds": self.rounds,
            "rtt_ms": self.rtt_ms,
            "revocation_last_process": measured,
            "cpu_us_per_gateway_per_suspension": self.cpu_us_per_gateway,
            "model": {
                "shared_cores": self.shared_cores,
                "rounds": self.model.rounds,
                "p50_last_ms": self.model.p50_last_ms,
                "p99_last_ms": self.model.p99_last_ms,
                "p50_model_over_measured": ratio("p50_ms", self.model.p50_last_ms),
                "p99_model_over_measured": ratio("p99_ms", self.model.p99_last_ms),
            },
        })
    }

    /// The report as text.
    pub(crate) fn print(&self) {
        println!(
            "netns scenario: {} gateways ({} `tfc-gateway run` processes, each in its own network namespace), every pair {:.0} ms apart (RTT), {} suspensions",
            self.gateways,
            self.gateways - 1,
            self.rtt_ms,
            self.rounds
        );
        crate::print_table(&[("suspension → last process holds it", &self.revocation)]);
        println!(
            "CPU per process per suspension: {:.0} µs; the model of the same field ({} shared cores) gives p50 {:.1} ms, p99 {:.1} ms to the last gateway",
            self.cpu_us_per_gateway,
            self.shared_cores,
            self.model.p50_last_ms,
            self.model.p99_last_ms
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(gateways: usize) -> Watch {
        Watch {
            taken: 0,
            verified: vec![HashMap::new(); gateways],
            held: HashMap::new(),
            exited: None,
        }
    }

    fn line(gateway: usize, at_ms: i64, message: &str, fields: Value) -> Line {
        Line {
            gateway,
            at: Some(OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(at_ms)),
            message: message.to_owned(),
            fields,
        }
    }

    #[test]
    fn an_op_is_held_by_a_set_once_its_last_member_logged_it() {
        let mut watch = watch(4);
        watch.take(line(1, 30, "governance state changed", json!({"op": "a"})));
        watch.take(line(3, 50, "governance state changed", json!({"op": "a"})));
        assert_eq!(watch.held_by("a", &[1, 2, 3]), None, "gateway 2 has not");
        assert_eq!(watch.held_by("b", &[1]), None, "nobody logged b");
        watch.take(line(2, 40, "governance state changed", json!({"op": "a"})));
        let last = watch
            .held_by("a", &[1, 2, 3])
            .map(|at| at - OffsetDateTime::UNIX_EPOCH);
        assert_eq!(last, Some(time::Duration::milliseconds(50)));
    }

    #[test]
    fn verdicts_are_stamped_so_that_a_later_one_is_told_from_an_earlier_one() {
        let mut watch = watch(3);
        watch.take(line(1, 0, "peer verified", json!({"peer": "p"})));
        let mark = watch.taken;
        watch.take(line(2, 0, "listening", json!({})));
        assert!(watch.verified[1].get("p") <= Some(&mark));
        watch.take(line(1, 0, "peer verified", json!({"peer": "p"})));
        assert!(watch.verified[1].get("p") > Some(&mark));
        assert!(watch.exited.is_none());
        watch.take(line(2, 0, "process exited", json!(["last words"])));
        assert!(
            watch
                .exited
                .as_deref()
                .is_some_and(|text| text.contains("last words"))
        );
    }
}
