//! The runner works end to end: a short handshake scenario prints every figure beside its
//! baseline.

use std::process::Command;

#[test]
fn the_handshake_scenario_reports_figures_and_baseline() {
    let output = Command::new(env!("CARGO_BIN_EXE_tfc-bench"))
        .args([
            "handshake",
            "--gateways",
            "3",
            "--connections",
            "10",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["scenario"], "handshake");
    for series in ["handshake", "baseline_libp2p_connect_and_round_trip"] {
        assert_eq!(report[series]["samples"], 10, "{report}");
        let (p50, p99) = (
            report[series]["p50_ms"].as_f64().unwrap(),
            report[series]["p99_ms"].as_f64().unwrap(),
        );
        assert!(p50 > 0.0 && p99 >= p50, "{report}");
    }
    assert!(
        report["ratio_p50"].as_f64().unwrap() > 1.0,
        "a handshake cannot beat a bare round trip: {report}"
    );
}

#[test]
fn the_revocation_scenario_reports_figures_and_baseline() {
    let output = Command::new(env!("CARGO_BIN_EXE_tfc-bench"))
        .args(["revocation", "--gateways", "5", "--rounds", "1", "--json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["scenario"], "revocation");
    for series in ["revocation", "baseline_gossipsub_propagation"] {
        assert_eq!(report[series]["samples"], 1, "{report}");
        assert!(report[series]["p50_ms"].as_f64().unwrap() > 0.0, "{report}");
    }
}

/// Runs the bench with `args` and `--json`; its report.
fn report(args: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_tfc-bench"))
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A latency series with `samples` samples and ordered percentiles.
fn assert_series(series: &serde_json::Value, samples: u64) {
    assert_eq!(series["samples"], samples, "{series}");
    let (p50, p99, max) = (
        series["p50_ms"].as_f64().unwrap(),
        series["p99_ms"].as_f64().unwrap(),
        series["max_ms"].as_f64().unwrap(),
    );
    assert!(p50 > 0.0 && p99 >= p50 && max >= p99, "{series}");
    assert!(series["per_second"].as_f64().unwrap() > 0.0, "{series}");
}

/// Resource figures: a process holds some memory, gateways add to it, and the measured
/// phase used some CPU.
fn assert_resources(resources: &serde_json::Value, gateways: u64) {
    assert_eq!(resources["gateways"], gateways, "{resources}");
    let baseline = resources["baseline_process_rss_mib"].as_f64().unwrap();
    let idle = resources["idle_process_rss_mib"].as_f64().unwrap();
    let loaded = resources["loaded_process_rss_mib"].as_f64().unwrap();
    assert!(
        baseline > 1.0 && idle > baseline && loaded > 1.0,
        "{resources}"
    );
    let per_gateway = resources["idle_rss_mib_per_gateway"].as_f64().unwrap();
    assert!(per_gateway > 0.0 && per_gateway < 1000.0, "{resources}");
    assert!(
        resources["cpu_s_per_gateway"].as_f64().unwrap() >= 0.0,
        "{resources}"
    );
    assert!(
        resources["measured_wall_s"].as_f64().unwrap() > 0.0,
        "{resources}"
    );
}

#[test]
fn the_data_scenario_reads_records_through_the_holder() {
    let report = report(&["data", "--gateways", "3", "--rounds", "5"]);
    assert_eq!(report["scenario"], "data");
    assert_series(&report["remote_record_read"], 5);
    assert_series(&report["baseline_libp2p_persistent_round_trip"], 5);
    assert!(
        report["response_bytes"].as_u64().unwrap() > 1000,
        "{report}"
    );
    assert!(
        report["ratio_p50"].as_f64().unwrap() > 1.0,
        "a decided read cannot beat a bare round trip: {report}"
    );
    let attachment = &report["attachment_1mib"];
    assert_series(&attachment["fetch"], 30);
    for key in ["bytes_per_second", "baseline_bytes_per_second", "ratio"] {
        assert!(attachment[key].as_f64().unwrap() > 0.0, "{key}: {report}");
    }
    assert_resources(&report["resources"], 3);
}

#[test]
fn the_memory_scenario_measures_idle_and_loaded_memory() {
    let report = report(&[
        "memory",
        "--members",
        "10",
        "--indicators",
        "100",
        "--records",
        "100",
    ]);
    assert_eq!(report["scenario"], "memory");
    let idle = report["idle"]["in_process_rss_mb"].as_f64().unwrap();
    assert!(idle > 0.0 && idle < 1000.0, "{report}");
    let stages = report["loaded"]["stages"].as_array().unwrap();
    let names: Vec<_> = stages.iter().map(|stage| stage["stage"].clone()).collect();
    assert_eq!(names, ["members", "indicators", "records"], "{report}");
    assert!(
        report["loaded"]["rss_mb"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert!(
        report["loaded"]["store_on_disk_mb"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    // The child gateway is measured only when its binary was built beside this one.
    let child = &report["idle"]["child_process_rss_mb"];
    assert!(child.is_null() || child.as_f64().unwrap() > 1.0, "{report}");
}

#[test]
fn the_load_scenario_serves_every_client_without_error() {
    let report = report(&["load", "--clients", "20", "--seconds", "2"]);
    assert_eq!(report["scenario"], "load");
    for side in ["gateway_api", "baseline_trivial_https_endpoint"] {
        assert_eq!(report[side]["errors"], 0, "{report}");
        assert_eq!(
            report[side]["connect_and_first_request"]["samples"], 20,
            "{report}"
        );
        assert!(
            report[side]["requests"]["samples"].as_u64().unwrap() > 20,
            "{report}"
        );
    }
    assert_resources(&report["resources"], 1);
}

#[test]
fn the_flood_scenario_scores_the_attacker_out() {
    let report = report(&[
        "flood",
        "--rate",
        "1000",
        "--seconds",
        "2",
        "--quiet-seconds",
        "1",
    ]);
    assert_eq!(report["scenario"], "flood");
    assert!(report["sent"].as_u64().unwrap() > 500, "{report}");
    assert!(report["frames"].as_u64().unwrap() > 0, "{report}");
    assert!(
        report["judged_invalid_by_victim"].as_u64().unwrap() >= 3,
        "{report}"
    );
    assert_eq!(report["scored_out"], true, "{report}");
    assert!(
        report["api_status_during_flood"]["samples"]
            .as_u64()
            .unwrap()
            > 0,
        "{report}"
    );
    assert_eq!(report["api_probe_errors"], 0, "{report}");
}

#[test]
fn all_quick_runs_every_scenario_in_one_document() {
    let report = report(&["all", "--quick"]);
    assert_eq!(report["failed_runs"], 0, "{report}");
    assert!(report["cores"].as_u64().unwrap() >= 1, "{report}");
    assert!(
        report["started_at"].as_str().unwrap().starts_with("20"),
        "{report}"
    );
    let scenarios: Vec<_> = report["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["report"]["scenario"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        scenarios,
        [
            "handshake",
            "revocation",
            "threats",
            "threats",
            "data",
            "partition",
            "memory",
            "load",
            "flood",
            "scale-model",
            "cut"
        ],
        "{report}"
    );
    for run in report["runs"].as_array().unwrap() {
        let report = &run["report"];
        if let Some(resources) = report.get("resources") {
            assert!(
                resources["idle_rss_mib_per_gateway"].as_f64().is_some(),
                "{report}"
            );
        }
    }
    let throughput = &report["runs"][2]["report"]["throughput"];
    assert!(
        throughput["verified_and_applied_per_second"]
            .as_f64()
            .unwrap()
            > 0.0,
        "{throughput}"
    );
    assert!(
        throughput["baseline_raw_ed25519_verify_per_second"]
            .as_f64()
            .unwrap()
            > 0.0,
        "{throughput}"
    );
    let model = &report["runs"][9]["report"]["report"];
    let wan = &model["wan"][0];
    assert_eq!(wan["n"], 100, "{model}");
    assert!(
        wan["revocation"]["p99_99pct_ms"].as_f64().unwrap() > 0.0,
        "{model}"
    );
    assert!(
        model["measured"]["cpu_us_per_gateway_per_indicator"]
            .as_f64()
            .unwrap()
            > 0.0,
        "{model}"
    );
    let propagation = &report["runs"][3]["report"]["propagation"][0];
    assert!(
        propagation["resources"]["cpu_s_per_gateway"]
            .as_f64()
            .unwrap()
            > 0.0,
        "{propagation}"
    );
    let cut = &report["runs"][10]["report"];
    assert_eq!(
        cut["revocation_held_to_transfer_cut"]["samples"], 2,
        "{cut}"
    );
    assert!(
        cut["most_chunks_allowed_after_the_suspension"]
            .as_u64()
            .unwrap()
            <= 1,
        "{cut}"
    );
    assert_eq!(
        cut["ended_refused"].as_u64().unwrap() + cut["ended_connection_closed"].as_u64().unwrap(),
        2,
        "{cut}"
    );
}
