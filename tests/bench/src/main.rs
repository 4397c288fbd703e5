//! `tfc-bench`: starts real gateways on 127.0.0.1 in temporary data directories, runs a
//! named scenario, and prints each figure beside its baseline measured in the same run.
//!
//! `tfc-bench handshake [--gateways N] [--connections C] [--json]`: connect → tiers known on
//! both sides, beside a bare libp2p connection (TCP + Noise + Yamux) and one request-response
//! round trip.
//!
//! `tfc-bench revocation [--gateways N] [--rounds R] [--json]`: an admin's suspension until
//! every gateway holds it, beside bare gossipsub propagation over as many nodes.
//!
//! `tfc-bench cut [--rounds R] [--json]`: a suspension cuts a 64 MiB attachment transfer
//! under way: from the suspension held at the holder until the reader's fetch fails.
//!
//! `tfc-bench threats [--indicators K] [--gateways N]... [--rounds R] [--json]`: indicators
//! verified and applied per second at one gateway, beside raw Ed25519 verification of the
//! same envelopes; then an indicator's propagation until every gateway applied it, for each
//! N, beside bare gossipsub over as many nodes.
//!
//! `tfc-bench data [--gateways N] [--rounds R] [--json]`: a remote record read (ask → the
//! holder's decision → answer), beside a bare request-response round trip of the same sizes.
//!
//! `tfc-bench memory [--members M] [--indicators K] [--records D] [--json]`: one gateway's
//! RSS idle and loaded, beside the targets.
//!
//! `tfc-bench load [--clients C] [--seconds S] [--json]`: concurrent mutual-TLS clients
//! against one gateway's admin API, beside a trivial endpoint with the same TLS.
//!
//! `tfc-bench flood [--rate R] [--seconds S] [--json]`: a member flooding one gateway with
//! invalid gossip: the gateway's API latency, and when the member is scored out.
//!
//! `tfc-bench scale-model [--sizes N]... [--rounds R] [--json]`: a discrete-event model of
//! fields of 100 to 5,000 gateways on WAN links, fed with the CPU per event measured on a
//! loopback field first, beside that measurement.
//!
//! `tfc-bench netns [--gateways N] [--rounds R] [--rtt-ms T] [--json]`: the scale model
//! checked against real `tfc-gateway run` processes in network namespaces, every pair T ms
//! apart through a delaying relay (needs root and `/dev/net/tun`).
//!
//! `tfc-bench all [--quick] [--json]`: every scenario at 5, 20 and 50 gateways, each in its
//! own process, in one report.
//!
//! Every scenario that runs gateways in this process also reports their memory (idle and
//! loaded RSS per gateway) and the CPU time of its measured phase.

mod all;
mod baseline;
mod cut;
mod data;
mod delaynet;
mod field;
mod flood;
mod governed;
mod load;
mod memory;
mod netns;
mod partition;
mod resources;
mod revocation;
mod scale_model;
mod sled_cache;
mod threats;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::json;
use tfc_gateway::net::Command;

/// Loopback benchmarks of the TFC gateway.
#[derive(Parser)]
#[command(name = "tfc-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
    /// Print one JSON object with every figure and its baseline.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum Scenario {
    /// Connection to tiers known on both sides.
    Handshake {
        /// Gateways to start (one listens, the others take turns dialling it).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(2..=64))]
        gateways: u16,
        /// Connections to measure.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(10..=10_000))]
        connections: u32,
    },
    /// An admin's emergency suspension until every gateway in the field holds it.
    Revocation {
        /// Gateways in the field.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(5..=100))]
        gateways: u16,
        /// Suspensions to measure (each lifted again before the next round).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        rounds: u32,
    },
    /// A suspension cuts a 64 MiB attachment transfer under way.
    Cut {
        /// Transfers to cut (the member is reinstated after each).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        rounds: u32,
    },
    /// Indicators verified and applied at one gateway; propagation to every gateway.
    Threats {
        /// Indicators for the throughput run (0: no throughput run).
        #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
        indicators: u64,
        /// Field sizes for the propagation runs; repeat for several.
        #[arg(long, default_values_t = [5u16, 20], value_parser = clap::value_parser!(u16).range(3..=100))]
        gateways: Vec<u16>,
        /// Indicators to propagate per field size.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
        rounds: u32,
        /// Only the throughput run (its memory would otherwise weigh on the propagation runs'
        /// figures, the allocator keeping what it freed).
        #[arg(long)]
        throughput_only: bool,
    },
    /// A field split in two heals: from lifting the split until both sides agree.
    Partition {
        /// Gateways in the field (split into two halves; the admin's side suspends members
        /// of the other).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(6..=100))]
        gateways: u16,
        /// Splits to heal (each with one suspension; at most half the gateways − 1).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=49))]
        rounds: u32,
    },
    /// A member reads another member's records through the holder's policy decision.
    Data {
        /// Gateways in the field (the first holds the records, the others read them).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(3..=100))]
        gateways: u16,
        /// Reads to measure.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        rounds: u32,
    },
    /// One gateway's resident memory, idle and loaded.
    Memory {
        /// Members (peer records) the loaded gateway holds.
        #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        members: u64,
        /// Threat indicators it holds.
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
        indicators: u64,
        /// Data records it holds.
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
        records: u64,
        /// Bytes of text in each record's body.
        #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(0..=500_000))]
        record_bytes: u64,
        /// The `tfc-gateway` binary for the child-process figure (default: next to this one).
        #[arg(long)]
        gateway_bin: Option<PathBuf>,
    },
    /// Concurrent mutual-TLS clients against one gateway's admin API.
    Load {
        /// Clients, each on its own connection.
        #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        clients: u32,
        /// How long they send requests.
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3_600))]
        seconds: u64,
    },
    /// A member floods one gateway with invalid gossip.
    Flood {
        /// Invalid messages per second.
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        rate: u32,
        /// How long the flood lasts.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
        /// API probes before the flood, for the baseline latency.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=600))]
        quiet_seconds: u64,
    },
    /// How much RSS sled's page cache takes: a bare sled database filled with the default
    /// cache and with a bounded one (evidence for the memory scenario's loaded figure).
    SledCache {
        /// Values to write.
        #[arg(long, default_value_t = 300_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
        values: u64,
        /// Bytes per value.
        #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        value_bytes: u64,
        /// The bounded cache, in MiB (the gateway uses 32).
        #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=4096))]
        cache_mib: u64,
    },
    /// A discrete-event model of a field of 100 to 5,000 gateways on WAN links, fed with the
    /// CPU per gateway per event measured first on a loopback field here.
    ScaleModel {
        /// Field sizes to model; repeat for several.
        #[arg(long, default_values_t = [100usize, 1000, 5000], value_parser = clap::value_parser!(usize))]
        sizes: Vec<usize>,
        /// Events modelled per size and kind.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        rounds: u32,
        /// Gateways of the loopback field whose CPU per event feeds the model.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(5..=50))]
        measure_gateways: u16,
        /// Events measured on it (each kind).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
        measure_rounds: u32,
    },
    /// The scale model against real `tfc-gateway run` processes in network namespaces,
    /// every pair a round-trip time apart (needs root and `/dev/net/tun`).
    Netns {
        /// Gateways in the field (the admin in this process, the others child processes).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(3..=250))]
        gateways: u16,
        /// Suspensions to measure (each lifted again before the next round).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        rounds: u32,
        /// Round-trip time between every two gateways, in milliseconds.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=2_000))]
        rtt_ms: u64,
        /// The `tfc-gateway` binary (default: next to this one).
        #[arg(long)]
        gateway_bin: Option<PathBuf>,
    },
    /// Every scenario at 5, 20 and 50 gateways, each run in its own process.
    All {
        /// Only 5 gateways and few rounds: a smoke test of every scenario.
        #[arg(long)]
        quick: bool,
    },
}

/// Latency percentiles of one series, in milliseconds.
struct Series {
    samples: Vec<Duration>,
    wall: Duration,
}

impl Series {
    fn percentile(&self, fraction: f64) -> f64 {
        let mut sorted = self.samples.clone();
        sorted.sort();
        let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
        sorted
            .get(index)
            .map_or(0.0, |sample| sample.as_secs_f64() * 1e3)
    }

    fn figures(&self) -> serde_json::Value {
        json!({
            "p50_ms": self.percentile(0.5),
            "p99_ms": self.percentile(0.99),
            "max_ms": self.percentile(1.0),
            "per_second": self.samples.len() as f64 / self.wall.as_secs_f64(),
            "samples": self.samples.len(),
        })
    }
}

fn main() -> anyhow::Result<()> {
    // Gateways run in this process: the same allocator settings as `tfc-gateway`.
    tfc_gateway::allocator::bound_malloc_arenas();
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("TFC_BENCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let as_json = cli.json;
    match cli.scenario {
        Scenario::Handshake {
            gateways,
            connections,
        } => runtime.block_on(handshake(gateways, connections, cli.json)),
        Scenario::Revocation { gateways, rounds } => {
            runtime.block_on(revocation(gateways.into(), rounds, cli.json))
        }
        Scenario::Threats {
            indicators,
            gateways,
            rounds,
            throughput_only,
        } => {
            let gateways = if throughput_only { vec![] } else { gateways };
            runtime.block_on(threat_scenario(indicators, &gateways, rounds, cli.json))
        }
        Scenario::Cut { rounds } => runtime.block_on(async {
            let figures = cut::run(rounds).await?;
            if as_json {
                println!("{}", figures.json(rounds));
            } else {
                figures.print(rounds);
            }
            Ok(())
        }),
        Scenario::Partition { gateways, rounds } => runtime.block_on(async {
            let figures = partition::run(gateways.into(), rounds).await?;
            if as_json {
                println!("{}", figures.json(gateways.into(), rounds));
            } else {
                figures.print(gateways.into(), rounds);
            }
            Ok(())
        }),
        Scenario::Data { gateways, rounds } => runtime.block_on(async {
            let figures = data::run(gateways.into(), rounds).await?;
            if as_json {
                println!("{}", figures.json(gateways.into(), rounds));
            } else {
                println!(
                    "data scenario: {gateways} gateways on 127.0.0.1, {rounds} remote reads ({} B asked, {} B answered)",
                    figures.request_bytes, figures.response_bytes
                );
                print_table(&[
                    ("ask → decision → record (remote read)", &figures.read),
                    ("baseline: libp2p round trip, open conn.", &figures.baseline),
                ]);
                println!(
                    "remote read p50 is {:.1}× the baseline's",
                    figures.read.percentile(0.5) / figures.baseline.percentile(0.5)
                );
                figures.attachment.print();
                figures.meter.print();
            }
            Ok(())
        }),
        Scenario::Memory {
            members,
            indicators,
            records,
            record_bytes,
            gateway_bin,
        } => runtime.block_on(async {
            let load = memory::Load {
                members: usize::try_from(members)?,
                indicators: usize::try_from(indicators)?,
                records: usize::try_from(records)?,
                record_bytes: usize::try_from(record_bytes)?,
            };
            let figures = memory::run(load, gateway_bin).await?;
            if as_json {
                println!("{}", figures.json());
            } else {
                figures.print();
            }
            Ok(())
        }),
        Scenario::Load { clients, seconds } => runtime.block_on(async {
            let figures = load::run(clients, seconds).await?;
            if as_json {
                println!("{}", figures.json(clients, seconds));
            } else {
                figures.print(clients, seconds);
            }
            Ok(())
        }),
        Scenario::Flood {
            rate,
            seconds,
            quiet_seconds,
        } => runtime.block_on(async {
            let figures = flood::run(rate, seconds, quiet_seconds).await?;
            if as_json {
                println!("{}", figures.json());
            } else {
                figures.print();
            }
            Ok(())
        }),
        Scenario::SledCache {
            values,
            value_bytes,
            cache_mib,
        } => {
            let report = sled_cache::run(
                usize::try_from(values)?,
                usize::try_from(value_bytes)?,
                cache_mib,
            )?;
            if as_json {
                println!("{report}");
            } else {
                println!(
                    "sled cache: {values} values of {value_bytes} B: RSS grows {:.1} MB with a {cache_mib} MiB cache, {:.1} MB with sled's default (1 GiB); {:.1} MB on disk",
                    report["rss_growth_mb_bounded_cache"].as_f64().unwrap_or(f64::NAN),
                    report["rss_growth_mb_default_cache"].as_f64().unwrap_or(f64::NAN),
                    report["on_disk_mb"].as_f64().unwrap_or(f64::NAN)
                );
            }
            Ok(())
        }
        Scenario::ScaleModel {
            sizes,
            rounds,
            measure_gateways,
            measure_rounds,
        } => runtime.block_on(scale_model_scenario(
            &sizes,
            rounds,
            measure_gateways.into(),
            measure_rounds,
            as_json,
        )),
        Scenario::Netns {
            gateways,
            rounds,
            rtt_ms,
            gateway_bin,
        } => runtime.block_on(async {
            let rtt = Duration::from_millis(rtt_ms);
            let figures = netns::run(gateways.into(), rounds, rtt, gateway_bin).await?;
            if as_json {
                println!("{}", figures.json());
            } else {
                figures.print();
            }
            Ok(())
        }),
        Scenario::All { quick } => all::run(quick, as_json),
    }
}

/// Measures CPU per gateway per event on a loopback field of `gateways`, feeds it to the
/// model, and models `sizes` on WAN links and the loopback field itself (and 50) beside the
/// measurement.
async fn scale_model_scenario(
    sizes: &[usize],
    rounds: u32,
    gateways: usize,
    measured_rounds: u32,
    as_json: bool,
) -> anyhow::Result<()> {
    let cpu_per_event = |meter: &resources::Meter, events: u32| {
        meter.figures()["cpu_s_per_gateway"]
            .as_f64()
            .map(|cpu| cpu * 1e6 / f64::from(events))
            .context("the measured phase has a CPU figure")
    };
    // Round 0 of each run is inside the measured phase: rounds + 1 events.
    let (indicators, _, meter) = threats::propagation(gateways, measured_rounds).await?;
    let indicator_us = cpu_per_event(&meter, measured_rounds + 1)?;
    let revocations = revocation::run(gateways, measured_rounds).await?;
    let op_us = revocations.cpu_s_per_gateway_per_suspension * 1e6;
    let inputs = scale_model::ModelInputs {
        validation_us_op: op_us,
        validation_us_indicator: indicator_us,
        rounds,
        ..scale_model::ModelInputs::default()
    };
    let mut loopback = vec![gateways];
    if gateways != 50 {
        loopback.push(50);
    }
    let mut report = scale_model::report(&inputs, sizes, &loopback);
    report["measured"] = json!({
        "gateways": gateways,
        "rounds": measured_rounds,
        "cpu_us_per_gateway_per_indicator": indicator_us,
        "cpu_us_per_gateway_per_op": op_us,
        "indicator_applied_everywhere": indicators.figures(),
        "revocation_held_everywhere": revocations.revocation.figures(),
    });
    if as_json {
        println!("{}", json!({ "scenario": "scale-model", "report": report }));
        return Ok(());
    }
    println!(
        "measured on {gateways} loopback gateways ({measured_rounds} events each): {indicator_us:.0} µs CPU per gateway per indicator, {op_us:.0} µs per op"
    );
    print_table(&[
        ("indicator applied everywhere (measured)", &indicators),
        (
            "revocation held everywhere (measured)",
            &revocations.revocation,
        ),
    ]);
    scale_model::print(&report);
    Ok(())
}

async fn threat_scenario(
    indicators: u64,
    gateways: &[u16],
    rounds: u32,
    as_json: bool,
) -> anyhow::Result<()> {
    let count = usize::try_from(indicators).context("too many indicators")?;
    let throughput = if count > 0 {
        Some(threats::throughput(count).await?)
    } else {
        None
    };
    let mut runs = Vec::new();
    for &size in gateways {
        runs.push((size, threats::propagation(size.into(), rounds).await?));
    }
    if as_json {
        let propagation: Vec<_> = runs
            .iter()
            .map(|(size, (ours, baseline, meter))| {
                json!({
                    "gateways": size,
                    "rounds": rounds,
                    "indicator_applied_everywhere": ours.figures(),
                    "baseline_gossipsub_propagation": baseline.figures(),
                    "ratio_p50": ours.percentile(0.5) / baseline.percentile(0.5),
                    "ratio_p99": ours.percentile(0.99) / baseline.percentile(0.99),
                    "resources": meter.figures(),
                })
            })
            .collect();
        let throughput = throughput.map(|throughput| {
            json!({
                "indicators": throughput.indicators,
                "verified_and_applied_per_second": throughput.applied_per_second,
                "baseline_raw_ed25519_verify_per_second": throughput.raw_verify_per_second,
                "ratio_to_raw": throughput.applied_per_second / throughput.raw_verify_per_second,
                "share_opening_envelopes": throughput.verify_share,
                "target_per_second": 10_000,
                "target_ratio_to_raw": 0.5,
                "resources": throughput.meter.figures(),
            })
        });
        println!(
            "{}",
            json!({
                "scenario": "threats",
                "throughput": throughput,
                "propagation": propagation,
                "target_p99_ms_at_20": 100,
                "target_ratio_p99": 3,
            })
        );
        return Ok(());
    }
    if let Some(throughput) = &throughput {
        print_throughput(throughput);
    }
    for (size, (ours, baseline, meter)) in &runs {
        println!("propagation over {size} gateways on 127.0.0.1, {rounds} indicators");
        print_table(&[
            ("indicator published → applied everywhere", ours),
            ("baseline: bare gossipsub 1 KiB, last node", baseline),
        ]);
        println!(
            "p99 {:.1} ms (target < 100 ms at 20); p50 is {:.1}× the baseline's",
            ours.percentile(0.99),
            ours.percentile(0.5) / baseline.percentile(0.5)
        );
        meter.print();
    }
    Ok(())
}

fn print_throughput(throughput: &threats::Throughput) {
    println!(
        "threats scenario: {} indicators at one gateway (gossip batches of up to 256)",
        throughput.indicators
    );
    println!(
        "{:<44} {:>12.0} /s",
        "indicators verified and applied", throughput.applied_per_second
    );
    println!(
        "{:<44} {:>12.0} /s",
        "baseline: raw Ed25519 verify, same envelopes", throughput.raw_verify_per_second
    );
    println!(
        "throughput {:.0}/s (target ≥ 10,000/s) is {:.0}% of raw verification (target ≥ 50%); {:.0}% of the time opens envelopes",
        throughput.applied_per_second,
        100.0 * throughput.applied_per_second / throughput.raw_verify_per_second,
        100.0 * throughput.verify_share
    );
    throughput.meter.print();
}

async fn revocation(gateways: usize, rounds: u32, as_json: bool) -> anyhow::Result<()> {
    let figures = revocation::run(gateways, rounds).await?;
    let (ours, baseline) = (&figures.revocation, &figures.baseline);
    if as_json {
        println!(
            "{}",
            json!({
                "scenario": "revocation",
                "gateways": gateways,
                "rounds": rounds,
                "revocation": ours.figures(),
                "baseline_gossipsub_propagation": baseline.figures(),
                "ratio_p50": ours.percentile(0.5) / baseline.percentile(0.5),
                "ratio_p99": ours.percentile(0.99) / baseline.percentile(0.99),
                "cpu_s_per_gateway_per_suspension": figures.cpu_s_per_gateway_per_suspension,
                "target_p99_ms_at_20": 30,
                "target_p99_ms_at_50": 60,
                "target_ratio_p99": 5,
                "resources": figures.meter.figures(),
            })
        );
    } else {
        println!("revocation scenario: {gateways} gateways on 127.0.0.1, {rounds} suspensions");
        print_table(&[
            ("admin suspends → every gateway holds it", ours),
            ("baseline: bare gossipsub 1 KiB, last node", baseline),
        ]);
        println!(
            "revocation p99 {:.1} ms (target < 30 ms at 20, < 60 ms at 50); p99 is {:.1}× the baseline's (target ≤ 5×); {:.2} ms CPU per gateway per suspension",
            ours.percentile(0.99),
            ours.percentile(0.99) / baseline.percentile(0.99),
            figures.cpu_s_per_gateway_per_suspension * 1e3
        );
        figures.meter.print();
    }
    Ok(())
}

fn print_table(rows: &[(&str, &Series)]) {
    println!(
        "{:<44} {:>9} {:>9} {:>9} {:>10}",
        "", "p50 ms", "p99 ms", "max ms", "per s"
    );
    for (name, series) in rows {
        println!(
            "{name:<44} {:>9.2} {:>9.2} {:>9.2} {:>10.1}",
            series.percentile(0.5),
            series.percentile(0.99),
            series.percentile(1.0),
            series.samples.len() as f64 / series.wall.as_secs_f64()
        );
    }
}

async fn handshake(gateways: u16, connections: u32, as_json: bool) -> anyhow::Result<()> {
    let mut meter = resources::Meter::start(gateways.into())?;
    let setup = field::Setup::new(gateways.into())?;
    let mut nodes = Vec::new();
    for index in 0..gateways.into() {
        nodes.push(field::Node::start(&setup, index).await?);
    }
    meter.idle().await?;
    meter.begin()?;
    let mut measured = Vec::with_capacity(connections as usize);
    let started = Instant::now();
    for round in 0..connections as usize {
        let dialer = 1 + round % (nodes.len() - 1);
        let (listener_peer, dialer_peer) = (nodes[0].peer_id, nodes[dialer].peer_id);
        let address = nodes[0].address.clone();
        let begin = Instant::now();
        nodes[dialer].network.send(Command::Dial(address)).await?;
        let (at_listener, at_dialer) = {
            let (first, rest) = nodes.split_at_mut(1);
            tokio::join!(
                first[0].verified_at(dialer_peer, 2),
                rest[dialer - 1].verified_at(listener_peer, 2)
            )
        };
        let elapsed = begin.elapsed();
        let at_listener =
            at_listener.with_context(|| format!("round {round}: the listener's verdict"))?;
        let at_dialer =
            at_dialer.with_context(|| format!("round {round}: the dialer's verdict"))?;
        if at_listener == 0 || at_dialer == 0 {
            bail!("round {round}: a qualified peer reached no tier");
        }
        measured.push(elapsed);
        nodes[dialer]
            .network
            .send(Command::Disconnect(listener_peer))
            .await?;
        nodes[0].wait_gone(dialer_peer).await?;
        nodes[dialer].wait_gone(listener_peer).await?;
    }
    let ours = Series {
        samples: measured,
        wall: started.elapsed(),
    };
    meter.loaded()?;
    let baseline = baseline::connect_and_round_trip(connections).await?;
    let baseline = Series {
        samples: baseline.0,
        wall: baseline.1,
    };
    if as_json {
        println!(
            "{}",
            json!({
                "scenario": "handshake",
                "gateways": gateways,
                "connections": connections,
                "handshake": ours.figures(),
                "baseline_libp2p_connect_and_round_trip": baseline.figures(),
                "ratio_p50": ours.percentile(0.5) / baseline.percentile(0.5),
                "resources": meter.figures(),
            })
        );
    } else {
        println!("handshake scenario: {gateways} gateways on 127.0.0.1, {connections} connections");
        print_table(&[
            ("connect → tiers known on both sides", &ours),
            ("baseline: libp2p connect + 1 round trip", &baseline),
        ]);
        println!(
            "handshake p50 is {:.1}× the baseline's",
            ours.percentile(0.5) / baseline.percentile(0.5)
        );
        meter.print();
    }
    Ok(())
}
