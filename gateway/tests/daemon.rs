//! The daemon as an operator runs it: `init`, `run` until SIGTERM, and state that outlives a
//! restart. Waits are on output lines and exits, each with a timeout.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;
use tfc_gateway::charter::Charter;
use tfc_gateway::config::GatewayConfig;
use tfc_gateway::credential::{CredentialDraft, issue_credential, now_unix};
use tfc_gateway::daemon::Gateway;
use tfc_gateway::identity::{KeyAlgorithm, KeyPair};
use tfc_gateway::init::{CONFIG_FILE, KEY_FILE, init};

const WAIT: Duration = Duration::from_secs(20);

/// Initialises a data dir whose gateway listens on an ephemeral loopback port.
fn data_dir(dir: &Path) -> std::path::PathBuf {
    init(dir, None).unwrap();
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("/ip4/0.0.0.0/tcp/7400", "/ip4/127.0.0.1/tcp/0");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn run_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = data_dir(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_tfc-gateway"))
        .args(["run", "--config"])
        .arg(&config)
        .args(["--log-format", "json"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, received) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let wait_line = |needle: &str| loop {
        let line = received
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("no log line containing {needle:?}"));
        if line.contains(needle) {
            return line;
        }
    };
    let started = wait_line("gateway started");
    let log: serde_json::Value = serde_json::from_str(&started).expect("json logs");
    assert_eq!(log["fields"]["message"], "gateway started");
    assert!(!started.contains("PRIVATE KEY"));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_line("gateway stopped");
    let (exited, exit) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = exited.send(child.wait());
    });
    let status = exit
        .recv_timeout(WAIT)
        .expect("the daemon did not exit")
        .unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joined_fields_and_the_wallet_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = GatewayConfig::load(&data_dir(dir.path())).unwrap();
    let org = KeyPair::load(&dir.path().join(KEY_FILE)).unwrap();
    let bureau = KeyPair::generate(KeyAlgorithm::Ed25519);
    let charter_text = format!(
        "name = \"f\"\nfounders = [\"{}\"]\nquorum = 1\n[[issuers]]\ndid = \"{}\"\nname = \"B\"\ntypes = [\"CreditRatingCredential\"]\n[tiers.prescreening]\nrequire = [\"CreditRatingCredential\"]\n",
        org.did(),
        bureau.did()
    );
    let charter_path = dir.path().join("field.toml");
    let signature = Charter::parse(&charter_text, dir.path())
        .unwrap()
        .sign(&org)
        .unwrap();
    std::fs::write(&charter_path, format!("{charter_text}{signature}")).unwrap();
    let now = now_unix();
    let draft = |subject: &KeyPair| CredentialDraft {
        type_name: "CreditRatingCredential".into(),
        subject: subject.did(),
        claims: json!({"grade": "A", "score": 90, "assessedOn": "2026-01-01"})
            .as_object()
            .cloned()
            .unwrap(),
        valid_from: now - 60,
        valid_until: Some(now + 86_400),
        status: vec![],
    };
    let ours = issue_credential(&bureau, &draft(&org), now).unwrap();
    let theirs = issue_credential(&bureau, &draft(&bureau), now).unwrap();
    let field_id = {
        let (gateway, _) = Gateway::start(&config).await.unwrap();
        let id = gateway.join_field(&charter_path).unwrap();
        gateway.import_credential(&ours).unwrap();
        let refused = gateway.import_credential(&theirs).unwrap_err();
        assert_eq!(refused.code(), "holder_mismatch");
        assert_eq!(
            gateway.import_credential("garbage").unwrap_err().code(),
            "malformed"
        );
        gateway.shutdown().await.unwrap();
        id
    };
    let (gateway, _) = Gateway::start(&config).await.unwrap();
    let fields: Vec<String> = gateway
        .party()
        .fields()
        .iter()
        .map(|field| field.charter.field_id())
        .collect();
    assert_eq!(fields, [field_id]);
    assert_eq!(gateway.party().wallet(), [ours]);
    gateway.shutdown().await.unwrap();
}
