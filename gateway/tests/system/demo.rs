//! `tfc-gateway demo` is also a test: both scenarios run as child processes with `--json`,
//! and every step's observed outcome must be the one listed here.

use std::process::Command;

use serde_json::Value;

fn play(scenario: &str) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_tfc-gateway"))
        .args(["demo", scenario, "--json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap()
}

fn outcomes(report: &Value) -> Vec<(String, String)> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| {
            (
                step["step"].as_str().unwrap().to_owned(),
                step["actual"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn expect(report: &Value, expected: &[(&str, &str)]) {
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(step, actual)| ((*step).to_owned(), (*actual).to_owned()))
        .collect();
    assert_eq!(outcomes(report), expected);
    assert_eq!(report["all_as_expected"], true);
}

#[test]
fn housing_subsidy_goes_as_the_story_says() {
    let report = play("housing-subsidy");
    expect(
        &report,
        &[
            ("gateways started", "8"),
            ("credentials issued and imported", "32"),
            ("founders' signatures", "3 of 3"),
            ("the city screens registrar", "tier 1"),
            ("the city screens bureau", "tier 1"),
            ("the city screens screener", "tier 1"),
            ("the city screens licensing", "tier 1"),
            ("the city screens contractor-a", "tier 3"),
            ("the city screens contractor-b", "refused: no_tier"),
            ("the city screens contractor-c", "tier 3"),
            ("screener admitted", "member"),
            ("licensing admitted", "member"),
            ("contractor-a admitted", "member"),
            ("contractor-c admitted", "member"),
            ("contractor-b admitted", "not admitted"),
            ("city holds A's credit rating", "yes"),
            ("contractor-c holds A's credit rating", "no"),
            ("contractor-c holds A's antisocial forces screening", "no"),
            ("contractor-c holds A's business license", "yes"),
            ("A submits its application to the city", "allowed"),
            ("the city keeps a copy signed by A", "kept"),
            (
                "the city fetches the drawing from A for subsidy review",
                "drawing received",
            ),
            (
                "C asks the city for A's application",
                "refused: access_denied",
            ),
            ("C asks A for the drawing", "refused: access_denied"),
            (
                "A reports C: block-peer, severity high",
                "6 of 6 awaiting corroboration",
            ),
            ("the licensing authority reports C too", "same action"),
            ("the corroborated block", "6 of 6 awaiting operator"),
            ("every member's gateway holds C revoked", "6 of 6"),
            ("C's next request to the city", "refused"),
            ("audit chains verified", "8 of 8"),
        ],
    );
    let revocation_ms = report["figures"]["revocation_ms"].as_f64().unwrap();
    assert!(revocation_ms > 0.0 && revocation_ms < 20_000.0);
}

#[test]
fn supply_chain_goes_as_the_story_says() {
    let report = play("supply-chain");
    expect(
        &report,
        &[
            ("gateways started", "7"),
            ("credentials issued and imported", "26"),
            ("founders' signatures", "3 of 3"),
            ("registrar admitted", "member"),
            ("supplier-a admitted", "member"),
            ("supplier-b admitted", "member"),
            ("supplier-c admitted", "member"),
            ("the maker screens registrar", "tier 1"),
            ("the maker screens bureau", "tier 1"),
            ("the maker screens certifier", "tier 1"),
            ("the maker screens supplier-a", "tier 3"),
            ("the maker screens supplier-b", "tier 3"),
            ("the maker screens supplier-c", "tier 3"),
            (
                "supplier-b holds supplier-a's security certification",
                "yes",
            ),
            ("supplier-b holds supplier-c's software inventory", "no"),
            ("maker holds supplier-c's software inventory", "yes"),
            ("supplier-b holds supplier-a's credit rating", "no"),
            ("supplier-a reads a very-high record", "allowed"),
            (
                "supplier-b reads a very-high record",
                "refused: access_denied",
            ),
            ("supplier-b reads a high record", "allowed"),
            ("supplier-c reads a very-high record", "allowed"),
            (
                "mark-vulnerable, severity medium",
                "7 of 7 awaiting operator",
            ),
            ("the maker's operator applies it", "applied"),
            (
                "supplier-c reads a very-high record",
                "refused: access_denied",
            ),
            ("supplier-a reads a very-high record", "allowed"),
            ("audit chains verified", "7 of 7"),
        ],
    );
}
