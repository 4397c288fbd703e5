//! `tfcctl audit verify|export`: online through the gateway, and offline on a stopped
//! gateway's store, after tampering with the sled tree directly: an edited, a deleted and an
//! inserted entry are each detected and named by position.

use std::path::Path;
use std::process::Command;

use tfc_gateway::audit::AuditEntry;
use tfc_testkit::{Authorities, Node};

fn tfcctl(args: &[String]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tfcctl"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

fn offline_verify(dir: &Path) -> (i32, String) {
    tfcctl(&[
        "--data-dir".into(),
        dir.display().to_string(),
        "audit".into(),
        "verify".into(),
    ])
}

/// Applies `tamper` to the stopped gateway's audit tree, runs the offline check, and puts the
/// tree back as it was.
fn with_tampered(dir: &Path, tamper: impl Fn(&sled::Tree)) -> (i32, String) {
    let snapshot: Vec<(sled::IVec, sled::IVec)> = {
        let db = tfc_gateway::store::open_database(&dir.join("store")).unwrap();
        let tree = db.open_tree("audit").unwrap();
        let snapshot = tree.iter().map(Result::unwrap).collect();
        tamper(&tree);
        db.flush().unwrap();
        snapshot
    };
    let result = offline_verify(dir);
    let db = tfc_gateway::store::open_database(&dir.join("store")).unwrap();
    let tree = db.open_tree("audit").unwrap();
    tree.clear().unwrap();
    for (key, value) in snapshot {
        tree.insert(key, value).unwrap();
    }
    db.flush().unwrap();
    result
}

fn entry(tree: &sled::Tree, seq: u64) -> (u8, AuditEntry) {
    let bytes = tree.get(seq.to_be_bytes()).unwrap().unwrap();
    (bytes[0], serde_json::from_slice(&bytes[1..]).unwrap())
}

fn put(tree: &sled::Tree, seq: u64, version: u8, entry: &AuditEntry) {
    let mut value = vec![version];
    value.extend(serde_json::to_vec(entry).unwrap());
    tree.insert(seq.to_be_bytes(), value).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_is_detected_and_named_offline_and_exports_work_online() {
    let authorities = Authorities::new();
    let node = Node::start_default().await;
    let charter = authorities.write_charter("field", "");
    node.import_wallet(&authorities.tier2_wallet(&node.did))
        .await;
    node.join(&charter).await;
    let gateway_args = vec![
        "--gateway".to_owned(),
        format!("https://localhost:{}", node.gateway.api_address().port()),
        "--data-dir".to_owned(),
        node.dir.path().display().to_string(),
    ];
    let run = |args: &[&str]| {
        let mut full = gateway_args.clone();
        full.extend(args.iter().map(|arg| (*arg).to_owned()));
        tokio::task::spawn_blocking(move || tfcctl(&full))
    };
    // Reads are summed per operator; every change is an entry: a few dials make a chain.
    for _ in 0..3 {
        let (code, out) = run(&["status"]).await.unwrap();
        assert_eq!(code, 0, "{out}");
    }
    let address = "/ip4/127.0.0.1/tcp/9/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
    for _ in 0..5 {
        let (code, out) = run(&["dial", address]).await.unwrap();
        assert_eq!(code, 0, "{out}");
    }
    let (code, out) = run(&["dial", address, "--json"]).await.unwrap();
    assert_eq!(code, 0, "{out}");
    let dialed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(dialed["dialing"], address, "{out}");
    let (code, out) = run(&["audit", "verify"]).await.unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("entries intact"), "{out}");
    let (code, exported) = run(&["audit", "export", "--since", "2020-01-01T00:00:00Z"])
        .await
        .unwrap();
    assert_eq!(code, 0, "{exported}");
    let lines: Vec<serde_json::Value> = exported
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    // Reads are summed per operator (at shutdown here), not logged per connection; the
    // change is logged with the operator's name, and RFC 3339 time beside the epoch.
    assert!(!lines.iter().any(|entry| entry["action"] == "api.session"));
    let dial = lines
        .iter()
        .find(|entry| entry["action"] == "api.POST /v1/dial" && entry["decision"] == "allow")
        .expect("the dial is audited");
    assert_eq!(dial["actorName"], tfc_gateway::tls::FIRST_ADMIN);
    assert!(
        dial["time"]
            .as_str()
            .is_some_and(|time| time.ends_with('Z'))
            && dial["timeMs"].is_i64()
    );
    // The list shows the chain's status first, then the matching entries.
    let (code, listed) = run(&[
        "audit",
        "list",
        "--action",
        "api.POST",
        "--decision",
        "allow",
    ])
    .await
    .unwrap();
    assert_eq!(code, 0, "{listed}");
    assert!(
        listed.starts_with("chain ") && listed.contains("entries intact"),
        "{listed}"
    );
    assert!(
        listed.contains("matching    6 entries") && listed.contains(tfc_gateway::tls::FIRST_ADMIN),
        "{listed}"
    );
    let (code, out) = run(&["audit", "export", "--since", "yesterday"])
        .await
        .unwrap();
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("bad_instant"), "{out}");

    let dir = node.stop().await;
    let (code, out) = offline_verify(dir.path());
    assert_eq!(code, 0, "{out}");
    let entries = out
        .split_whitespace()
        .nth(1)
        .and_then(|count| count.parse::<u64>().ok())
        .unwrap();
    assert!(entries >= 6, "{out}");

    let (code, out) = with_tampered(dir.path(), |tree| {
        let (version, mut edited) = entry(tree, 2);
        edited.decision = "deny".into();
        put(tree, 2, version, &edited);
    });
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("at entry 2 (edited)"), "{out}");

    let (code, out) = with_tampered(dir.path(), |tree| {
        tree.remove(3u64.to_be_bytes()).unwrap();
    });
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("at entry 3 (deleted)"), "{out}");

    let (code, out) = with_tampered(dir.path(), |tree| {
        // A forged entry slipped in at position 4, with a correct hash of its own.
        let (version, mut forged) = entry(tree, 4);
        forged.action = "data.get".into();
        forged.hash = forged.compute_hash();
        put(tree, 4, version, &forged);
    });
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("at entry 5 (inserted)"), "{out}");

    let (code, out) = offline_verify(dir.path());
    assert_eq!(code, 0, "the untampered store verifies again: {out}");
}
