//! `tfc-bench all`: every scenario at 5, 20 and 50 gateways, each run in a child process of
//! this executable so that one run's memory (freed but kept by the allocator) and threads do
//! not weigh on the next run's figures, and a failing run does not stop the others.

use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context;
use serde_json::{Value, json};

/// Field sizes of the full run.
const SIZES: [u16; 3] = [5, 20, 50];

/// The argument lists of every run.
fn plan(quick: bool) -> Vec<Vec<String>> {
    let args = |list: &[&str]| list.iter().map(|arg| (*arg).to_owned()).collect::<Vec<_>>();
    if quick {
        return vec![
            args(&["handshake", "--gateways", "5", "--connections", "10"]),
            args(&["revocation", "--gateways", "5", "--rounds", "1"]),
            args(&["threats", "--indicators", "200", "--throughput-only"]),
            args(&[
                "threats",
                "--indicators",
                "0",
                "--gateways",
                "5",
                "--rounds",
                "3",
            ]),
            args(&["data", "--gateways", "5", "--rounds", "10"]),
            args(&["partition", "--gateways", "6", "--rounds", "1"]),
            args(&[
                "memory",
                "--members",
                "20",
                "--indicators",
                "200",
                "--records",
                "200",
            ]),
            args(&["load", "--clients", "20", "--seconds", "1"]),
            args(&[
                "flood",
                "--rate",
                "1000",
                "--seconds",
                "1",
                "--quiet-seconds",
                "1",
            ]),
            args(&[
                "scale-model",
                "--sizes",
                "100",
                "--rounds",
                "10",
                "--measure-gateways",
                "5",
                "--measure-rounds",
                "3",
            ]),
            args(&["cut", "--rounds", "2"]),
        ];
    }
    // The throughput run does not depend on N: once, in a process of its own.
    let mut runs = vec![args(&[
        "threats",
        "--indicators",
        "20000",
        "--throughput-only",
    ])];
    for size in SIZES {
        let n = size.to_string();
        runs.push(args(&[
            "handshake",
            "--gateways",
            &n,
            "--connections",
            "100",
        ]));
        // The p99s need their rounds: 100 up to 20 gateways, 30 at 50 (each round at 50
        // costs seconds: a reinstatement and the field's re-verification follow it).
        let rounds = if size <= 20 { "100" } else { "30" };
        runs.push(args(&["revocation", "--gateways", &n, "--rounds", rounds]));
        runs.push(args(&[
            "threats",
            "--indicators",
            "0",
            "--gateways",
            &n,
            "--rounds",
            rounds,
        ]));
        runs.push(args(&["data", "--gateways", &n, "--rounds", "200"]));
        // A split needs three founders on one side and someone to suspend on the other.
        let split = size.max(6).to_string();
        runs.push(args(&["partition", "--gateways", &split, "--rounds", "2"]));
    }
    runs.push(args(&["memory"]));
    runs.push(args(&["load", "--clients", "1000", "--seconds", "60"]));
    runs.push(args(&["flood", "--rate", "10000", "--seconds", "10"]));
    runs.push(args(&["scale-model"]));
    // The model's check against real processes on a delayed network (root and a TUN device).
    runs.push(args(&["netns", "--gateways", "20", "--rounds", "100"]));
    runs.push(args(&["netns", "--gateways", "50", "--rounds", "30"]));
    runs.push(args(&["cut", "--rounds", "100"]));
    runs
}

/// What a failed run said: anyhow's error and its causes without the backtrace after them,
/// or else the last 2,000 characters (a panic's message comes before its backtrace too).
fn failure(stderr: &str) -> String {
    let start = stderr
        .rfind("\nError: ")
        .or_else(|| stderr.rfind("panicked at"))
        .unwrap_or(0);
    let text = &stderr[start..];
    let text = text
        .split("\nStack backtrace:")
        .next()
        .and_then(|text| text.split("\nstack backtrace:").next())
        .unwrap_or(text);
    let chars: Vec<char> = text.trim().chars().collect();
    chars[chars.len().saturating_sub(2000)..].iter().collect()
}

/// The commit of the working directory, if git knows it.
fn git_commit() -> Option<String> {
    let output = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Runs every scenario; prints one JSON document or every table. Fails after reporting if
/// any run failed.
pub(crate) fn run(quick: bool, as_json: bool) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let started = tfc_gateway::credential::now_unix();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mut runs = Vec::new();
    let mut failed = 0;
    for args in plan(quick) {
        let begin = Instant::now();
        let mut command = Command::new(&exe);
        command.args(&args);
        if as_json {
            command.arg("--json");
        } else {
            println!("\n$ tfc-bench {}", args.join(" "));
        }
        let output = command
            .stdout(if as_json {
                Stdio::piped()
            } else {
                Stdio::inherit()
            })
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("cannot run {}", exe.display()))?;
        let seconds = begin.elapsed().as_secs_f64();
        let report: Result<Value, String> = if !output.status.success() {
            Err(format!(
                "{}: {}",
                output.status,
                failure(&String::from_utf8_lossy(&output.stderr))
            ))
        } else if as_json {
            serde_json::from_slice(&output.stdout)
                .map_err(|error| format!("the report is not JSON: {error}"))
        } else {
            Ok(Value::Null)
        };
        match report {
            Ok(report) => runs.push(json!({ "args": args, "seconds": seconds, "report": report })),
            Err(error) => {
                failed += 1;
                if !as_json {
                    println!("FAILED: {error}");
                }
                runs.push(json!({ "args": args, "seconds": seconds, "error": error }));
            }
        }
    }
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "tool": "tfc-bench all",
                "quick": quick,
                "started_at": tfc_gateway::credential::format_rfc3339(started),
                "finished_at": tfc_gateway::credential::format_rfc3339(tfc_gateway::credential::now_unix()),
                "git_commit": git_commit(),
                "cores": cores,
                "failed_runs": failed,
                "runs": runs,
            }))?
        );
    } else {
        println!("\n{} runs, {failed} failed, on {cores} cores", runs.len());
    }
    anyhow::ensure!(failed == 0, "{failed} runs failed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::failure;

    #[test]
    fn a_failed_run_reports_its_error_without_the_backtrace() {
        let stderr = "log line\n\nError: the field did not converge in 60 s\n\nCaused by:\n    x\n\nStack backtrace:\n   0: main\n";
        assert_eq!(
            failure(stderr),
            "Error: the field did not converge in 60 s\n\nCaused by:\n    x"
        );
        let panic = "thread 'main' panicked at src/x.rs:1:2:\nboom\nstack backtrace:\n   0: f\n";
        assert_eq!(failure(panic), "panicked at src/x.rs:1:2:\nboom");
        let long = "y".repeat(3000);
        assert_eq!(failure(&long).len(), 2000, "otherwise the tail");
    }
}
