//! Resource figures of the gateways a scenario runs in this process: resident memory before
//! any gateway starts (the baseline), once the field has formed and settled (idle), and at the
//! end of the measured phase (loaded), plus the CPU time the measured phase consumed. The
//! gateways share the process, so each figure per gateway is the process's figure divided by
//! their number.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

/// How long a quiet field is watched for its idle CPU before its memory is read. A
/// measurement period, not a wait for a condition.
pub(crate) const SETTLE: Duration = Duration::from_secs(2);
/// Below this many cores busy for a second, a formed field counts as quiet.
const QUIET_CORES: f64 = 0.5;
/// The longest wait for a field to quieten down.
const MAX_SETTLE: Duration = Duration::from_secs(30);

/// Clock ticks per second in `/proc/<pid>/stat`. `libc` is not a dependency of this crate, so
/// `sysconf(_SC_CLK_TCK)` is not called: Linux reports `USER_HZ`, which is 100 on every
/// mainstream architecture whatever the kernel's own tick rate.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// The resident set size of process `pid` (`self` for this one), in bytes.
pub(crate) fn rss_bytes_of(pid: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .context("no VmRSS line")?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .context("an empty VmRSS line")?
        .parse()
        .context("VmRSS is not a number")?;
    Ok(kib * 1024)
}

/// This process's resident set size, in bytes.
pub(crate) fn rss_bytes() -> anyhow::Result<u64> {
    rss_bytes_of("self")
}

/// User plus system CPU time this process has consumed, in seconds.
pub(crate) fn cpu_seconds() -> anyhow::Result<f64> {
    cpu_seconds_of("self")
}

/// User plus system CPU time process `pid` has consumed, in seconds.
pub(crate) fn cpu_seconds_of(pid: &str) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    let (_, rest) = stat
        .rsplit_once(')')
        .context("malformed /proc/<pid>/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name come state (field 3), …, utime (14) and stime (15).
    let ticks = |index: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(index - 3)
            .context("a short /proc/<pid>/stat")?
            .parse::<f64>()?)
    };
    Ok((ticks(14)? + ticks(15)?) / CLOCK_TICKS_PER_SECOND)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The resource meter of one scenario run.
pub(crate) struct Meter {
    gateways: usize,
    baseline: u64,
    idle: Option<u64>,
    /// Cores the idle field kept busy during the settle.
    idle_cores: Option<f64>,
    /// CPU seconds per second of the settle.
    idle_series: Vec<f64>,
    /// How long the field took to quieten down.
    settled_after: Option<Duration>,
    begun: Option<(f64, Instant)>,
    loaded: Option<(u64, f64, Duration)>,
}

impl Meter {
    /// Reads the baseline: call before any gateway of the run starts.
    pub(crate) fn start(gateways: usize) -> anyhow::Result<Self> {
        Ok(Self {
            gateways: gateways.max(1),
            baseline: rss_bytes()?,
            idle: None,
            idle_cores: None,
            idle_series: Vec::new(),
            settled_after: None,
            begun: None,
            loaded: None,
        })
    }

    /// Waits until the formed field has quietened down (a second in which it kept less than
    /// [`QUIET_CORES`] busy, at most [`MAX_SETTLE`]: at 50 gateways the field keeps both cores
    /// busy for seconds after every pair is verified), then reads the idle CPU over
    /// [`SETTLE`] (or `TFC_BENCH_SETTLE_SECS`) and the idle memory.
    pub(crate) async fn idle(&mut self) -> anyhow::Result<()> {
        let began = Instant::now();
        let mut last = cpu_seconds()?;
        while began.elapsed() < MAX_SETTLE {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = cpu_seconds()?;
            let busy = now - last;
            last = now;
            self.idle_series.push(busy);
            if busy < QUIET_CORES {
                break;
            }
        }
        self.settled_after = Some(began.elapsed());
        let settle = std::env::var("TFC_BENCH_SETTLE_SECS")
            .ok()
            .and_then(|text| text.parse().ok())
            .map_or(SETTLE, Duration::from_secs);
        let (cpu, then) = (cpu_seconds()?, Instant::now());
        while then.elapsed() < settle {
            tokio::time::sleep(Duration::from_secs(1).min(settle)).await;
            let now = cpu_seconds()?;
            self.idle_series.push(now - last);
            last = now;
        }
        self.idle_cores = Some((cpu_seconds()? - cpu) / then.elapsed().as_secs_f64());
        self.idle = Some(rss_bytes()?);
        Ok(())
    }

    /// Marks the start of the measured phase (its CPU time counts from here).
    pub(crate) fn begin(&mut self) -> anyhow::Result<()> {
        self.begun = Some((cpu_seconds()?, Instant::now()));
        Ok(())
    }

    /// Marks the end of the measured phase: loaded memory and the CPU time it consumed.
    pub(crate) fn loaded(&mut self) -> anyhow::Result<()> {
        let (cpu_then, then) = self.begun.context("the measured phase never began")?;
        self.loaded = Some((rss_bytes()?, cpu_seconds()? - cpu_then, then.elapsed()));
        Ok(())
    }

    fn per_gateway(&self, rss: u64) -> f64 {
        mib(rss.saturating_sub(self.baseline)) / self.gateways as f64
    }

    /// The figures, for the JSON output.
    pub(crate) fn figures(&self) -> Value {
        let (loaded, cpu, wall) = self.loaded.map_or((None, None, None), |(rss, cpu, wall)| {
            (Some(rss), Some(cpu), Some(wall))
        });
        json!({
            "gateways": self.gateways,
            "baseline_process_rss_mib": mib(self.baseline),
            "idle_process_rss_mib": self.idle.map(mib),
            "loaded_process_rss_mib": loaded.map(mib),
            "idle_rss_mib_per_gateway": self.idle.map(|rss| self.per_gateway(rss)),
            "idle_cpu_cores_busy": self.idle_cores,
            "idle_cpu_cores_busy_by_second": self.idle_series,
            "quiet_after_s": self.settled_after.map(|after| after.as_secs_f64()),
            "loaded_rss_mib_per_gateway": loaded.map(|rss| self.per_gateway(rss)),
            "measured_wall_s": wall.map(|wall| wall.as_secs_f64()),
            "cpu_s_measured": cpu,
            "cpu_s_per_gateway": cpu.map(|cpu| cpu / self.gateways as f64),
            "cpu_cores_busy": cpu.zip(wall).map(|(cpu, wall)| cpu / wall.as_secs_f64()),
        })
    }

    /// One line per figure, for the human output.
    pub(crate) fn print(&self) {
        let n = self.gateways;
        let show = |rss: Option<u64>| {
            rss.map_or_else(
                || "—".to_owned(),
                |rss| {
                    format!(
                        "{:.1} MiB per gateway ({:.1} MiB process)",
                        self.per_gateway(rss),
                        mib(rss)
                    )
                },
            )
        };
        println!(
            "resources ({n} gateway(s) in this process, baseline {:.1} MiB before any started):",
            mib(self.baseline)
        );
        println!("  idle RSS    {}", show(self.idle));
        if let (Some(cores), Some(after)) = (self.idle_cores, self.settled_after) {
            println!(
                "  idle CPU    {cores:.2} cores busy once quiet (after {:.0} s)",
                after.as_secs_f64()
            );
        }
        println!("  loaded RSS  {}", show(self.loaded.map(|(rss, _, _)| rss)));
        if let Some((_, cpu, wall)) = self.loaded {
            println!(
                "  CPU         {:.2} s per gateway over {:.1} s measured ({:.2} s in all, {:.2} cores busy)",
                cpu / n as f64,
                wall.as_secs_f64(),
                cpu,
                cpu / wall.as_secs_f64()
            );
        }
    }
}
