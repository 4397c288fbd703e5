//! `tfc-gateway demo` is also a test: every step must go as it expects.

use std::process::Command;

#[test]
fn demo_steps_all_go_as_expected() {
    let output = Command::new(env!("CARGO_BIN_EXE_tfc-gateway"))
        .args(["demo", "--json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["ok"], true);
    let steps = report["steps"].as_array().unwrap();
    let actual: Vec<&str> = steps
        .iter()
        .map(|step| step["actual"].as_str().unwrap())
        .collect();
    assert_eq!(
        actual,
        [
            "accepted",
            "replayed",
            "self_declared_not_accepted",
            "bad_signature",
            "holder_mismatch",
            "revoked"
        ]
    );
}
