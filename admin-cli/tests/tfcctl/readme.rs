//! Every shell command in the README and in `docs/*.md` runs here. Each ```sh block is labelled
//! by the HTML comment just before it: `commands` (the two commands at the top), `offline`
//! (tfcctl without a gateway), `tour` (against `tfc-gateway demo --keep-running`) or `machines`
//! (two gateways set up and started by hand), each label once across all the files. A line
//! starting with `! ` must fail. Commands that are only shown are fenced as ```text.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

const LABELS: [&str; 4] = ["commands", "offline", "tour", "machines"];
/// The longest any one block may run (seconds), enforced by coreutils `timeout`.
const BLOCK_TIMEOUT_SECS: &str = "240";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The files whose ```sh blocks run: the README, then every `docs/*.md` in name order.
fn documents() -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "md"))
        .collect();
    docs.sort();
    docs.insert(0, repo().join("README.md"));
    docs
}

/// The ```sh blocks of the README and the docs, by label.
fn blocks() -> HashMap<String, String> {
    // Each label's block, with the file and line where it starts.
    let mut blocks: HashMap<String, (String, String)> = HashMap::new();
    for path in documents() {
        let file = path.strip_prefix(repo()).unwrap().display().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut index = 0;
        while index < lines.len() {
            if lines[index] == "```sh" {
                let place = format!("{file} line {}", index + 1);
                let label = index
                    .checked_sub(1)
                    .and_then(|before| lines[before].strip_prefix("<!-- readme: "))
                    .and_then(|rest| rest.strip_suffix(" -->"))
                    .unwrap_or_else(|| panic!("{place}: an unlabelled sh block"));
                let end = (index + 1..lines.len())
                    .find(|line| lines[*line] == "```")
                    .unwrap_or_else(|| panic!("{place}: the block never ends"));
                let block = (place.clone(), lines[index + 1..end].join("\n"));
                if let Some((first, _)) = blocks.insert(label.to_owned(), block) {
                    panic!("{place}: a second block labelled {label} (the first is at {first})");
                }
                index = end;
            }
            index += 1;
        }
    }
    blocks
        .into_iter()
        .map(|(label, (_, block))| (label, block))
        .collect()
}

/// The directory holding `tfcctl` and `tfc-gateway` (built if a lone `cargo test -p
/// tfc-admin` did not build it).
fn bin_dir() -> PathBuf {
    let tfcctl = Path::new(env!("CARGO_BIN_EXE_tfcctl"));
    let dir = tfcctl.parent().unwrap().to_owned();
    if !dir.join("tfc-gateway").exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "tfc-gateway", "--bin", "tfc-gateway"])
            .status()
            .unwrap();
        assert!(status.success(), "building tfc-gateway");
    }
    dir
}

/// Runs `script` with bash (`set -euo pipefail`) in `dir`, the binaries first on `PATH`.
fn run(dir: &Path, script: &str, env: &[(String, String)]) -> Output {
    let prelude = "set -euo pipefail\n\
        expect_failure() { if \"$@\"; then echo \"expected to fail: $*\" >&2; exit 1; fi; }\n\
        trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n";
    let body: Vec<String> = script
        .lines()
        .map(|line| match line.strip_prefix("! ") {
            Some(command) => format!("expect_failure {command}"),
            None => line.to_owned(),
        })
        .collect();
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("timeout")
        .args([BLOCK_TIMEOUT_SECS, "bash", "-c"])
        .arg(format!("{prelude}{}", body.join("\n")))
        .current_dir(dir)
        .env("PATH", path)
        .env_remove("TFC_DATA_DIR")
        .envs(env.iter().map(|(key, value)| (key, value)))
        .output()
        .unwrap()
}

fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn every_shell_block_is_labelled_and_every_label_used() {
    let blocks = blocks();
    let mut labels: Vec<&str> = blocks.keys().map(String::as_str).collect();
    labels.sort_unstable();
    let mut expected = LABELS.to_vec();
    expected.sort_unstable();
    assert_eq!(labels, expected);
}

#[test]
fn the_two_commands_are_the_demo_and_what_ci_runs() {
    let blocks = blocks();
    let commands: Vec<&str> = blocks["commands"].lines().collect();
    assert_eq!(commands.len(), 2, "{commands:?}");
    assert_eq!(commands[0], "cargo run --release -p tfc-gateway -- demo");
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|line| line == commands[1]),
        ".ci/run must run the README's test command: {}",
        commands[1]
    );
    // The first command is the demo binary; `cargo run` only builds it first.
    let demo = Command::new(bin_dir().join("tfc-gateway"))
        .arg("demo")
        .output()
        .unwrap();
    assert_success("tfc-gateway demo", &demo);
    let narration = String::from_utf8_lossy(&demo.stdout);
    assert!(
        narration.contains("Every step went as expected."),
        "{narration}"
    );
}

#[test]
fn the_offline_tools_block_runs() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(repo().join("config"), dir.path().join("config")).unwrap();
    let output = run(dir.path(), &blocks()["offline"], &[]);
    assert_success("the offline block", &output);
    let completion = std::fs::read_to_string(dir.path().join("tfcctl.bash")).unwrap();
    assert!(completion.contains("tfcctl"), "a bash completion script");
}

#[test]
fn the_tour_runs_against_a_kept_running_demo() {
    let mut demo = Command::new(bin_dir().join("tfc-gateway"))
        .args(["demo", "--keep-running"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let exports = exports(&mut demo);
    for name in ["TFC_DATA_DIR", "G", "FIELD", "CONTRACTOR_C"] {
        assert!(
            exports.iter().any(|(key, _)| key == name),
            "{name} in {exports:?}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &blocks()["tour"], &exports);
    let claims = tour_claims(dir.path(), &blocks()["tour"], &exports);
    let stopped = Command::new("kill")
        .args(["-INT", &demo.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let status = demo.wait().unwrap();
    assert_success("the tour", &output);
    assert_eq!(
        claims,
        Vec::<String>::new(),
        "tour lines that do not print what they claim"
    );
    let printed = String::from_utf8_lossy(&output.stdout);
    let city = exports.iter().find(|(key, _)| key == "CITY").unwrap();
    assert!(
        printed.contains(&city.1),
        "status names the city: {printed}"
    );
    assert!(
        status.success(),
        "the demo stops cleanly on SIGINT: {status}"
    );
}

/// What each tour line must print, by the command after `tfcctl --gateway $G `: the words
/// its README comment promises. Every tour line has an entry.
const TOUR_CLAIMS: [(&str, &[&str]); 15] = [
    (
        "status",
        &[
            "organisation",
            "株式会社",
            "peer id",
            "listening",
            "fields",
            "wallet",
            "peers",
        ],
    ),
    ("peers", &["organisation", "tier", "株式会社"]),
    ("inbox", &["countermeasure", "tfcctl threat apply"]),
    (
        "field show $FIELD",
        &["founder", "admin", "quorum", "issuer", "tier 1"],
    ),
    (
        "member list --field $FIELD",
        &["organisation", "admission", "tier", "revoked", "株式会社"],
    ),
    (
        "member show $CONTRACTOR_C --field $FIELD",
        &["revoked", "revoke", "proposed by"],
    ),
    (
        "tier explain $CONTRACTOR_A --field $FIELD",
        &["tier now", "✓", "TIER"],
    ),
    (
        "wallet list",
        &["OrganizationIdentityCredential", "(did:key:"],
    ),
    (
        "disclosures --type CreditRatingCredential",
        &["sent to", "from", "CreditRating"],
    ),
    ("data list --field $FIELD --tier 3", &["owner did:key:"]),
    (
        "threat list --field $FIELD",
        &["2 indicators", "x-tfc-member:did"],
    ),
    ("threat pending", &["awaiting_operator"]),
    ("audit verify", &["entries intact", "members"]),
    (
        "audit list --action governance.",
        &["chain", "governance.revoke"],
    ),
    ("status --json", &["\"did\""]),
];

/// Runs each tour line on its own and returns the ones whose output lacks a claimed word.
fn tour_claims(dir: &Path, block: &str, env: &[(String, String)]) -> Vec<String> {
    let mut failures = Vec::new();
    for line in block.lines() {
        let command = line.split(" #").next().unwrap_or(line).trim();
        let rest = command
            .strip_prefix("tfcctl --gateway $G ")
            .unwrap_or_else(|| panic!("a tour line that is not `tfcctl --gateway $G …`: {line}"));
        let claims = TOUR_CLAIMS
            .iter()
            .find(|(claimed, _)| *claimed == rest)
            .unwrap_or_else(|| panic!("no claims listed for the tour line {line:?}"))
            .1;
        let output = run(dir, command, env);
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        for claim in claims {
            if !printed.contains(claim) {
                failures.push(format!("{rest}: no {claim:?} in\n{printed}"));
            }
        }
    }
    failures
}

/// Reads the demo's narration until it has printed the `export` lines of its tour; a thread
/// keeps reading the rest, so that the demo never writes to a closed pipe.
fn exports(demo: &mut Child) -> Vec<(String, String)> {
    let stdout = demo.stdout.take().unwrap();
    let (sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let mut exports = Vec::new();
    loop {
        let line = lines
            .recv_timeout(std::time::Duration::from_secs(120))
            .unwrap_or_else(|error| panic!("the demo printed no tour ({error}): {exports:?}"));
        if let Some((key, value)) = line
            .trim_start()
            .strip_prefix("export ")
            .and_then(|assignment| assignment.split_once('='))
        {
            exports.push((key.to_owned(), value.to_owned()));
        }
        if line.starts_with("then, for example") {
            return exports;
        }
    }
}

#[test]
fn the_separate_machines_block_runs() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &blocks()["machines"], &[]);
    assert_success("the separate-machines block", &output);
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("VALID"), "the charter verifies: {printed}");
}
