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
