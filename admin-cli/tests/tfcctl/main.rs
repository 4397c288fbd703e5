//! `tfcctl` end to end, in one test binary (one link, not seven): the real binary against
//! real files and real gateways. Run one concern with `cargo test -p tfc-admin --test
//! tfcctl <module>::`.

mod audit;
mod clerk;
mod cli;
mod data;
mod field;
mod governance;
mod readme;
mod threat;

use std::path::Path;
use std::process::Command;

use tfc_testkit::Node;

/// What one `tfcctl` run gave.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Everything it printed, stdout then stderr.
    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `tfcctl --gateway <node's API> --data-dir <node's dir> <args>`, from `work` if given.
async fn tfcctl_against(node: &Node, work: Option<&Path>, args: &[&str]) -> Run {
    let mut full = vec![
        "--gateway".to_owned(),
        format!("https://localhost:{}", node.gateway.api_address().port()),
        "--data-dir".to_owned(),
        node.dir.path().display().to_string(),
    ];
    full.extend(args.iter().map(|arg| (*arg).to_owned()));
    let work = work.map(Path::to_owned);
    tokio::task::spawn_blocking(move || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tfcctl"));
        command.args(&full);
        if let Some(work) = work {
            command.current_dir(work);
        }
        let output = command.output().unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}
