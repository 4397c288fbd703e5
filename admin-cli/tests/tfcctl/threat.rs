//! `tfcctl threat …` against a real gateway, and its TAXII 2.1 collection pulled by the
//! OASIS taxii2-client and checked by the OASIS stix2-validator (tests/interop).

use std::path::Path;
use std::process::Command;

use tfc_testkit::{Authorities, Node};

/// Runs `tfcctl` against `node`'s API; returns the exit code and all output.
async fn tfcctl(node: &Node, args: &[&str]) -> (i32, String) {
    let run = crate::tfcctl_against(node, None, args).await;
    (run.code, run.all())
}

/// Composes an indicator offline into `out`.
async fn indicator(node: &Node, out: &Path, args: &[&str]) {
    let out = out.display().to_string();
    let mut full = vec!["threat", "indicator", "--out", &out];
    full.extend_from_slice(args);
    let (code, output) = tfcctl(node, &full).await;
    assert_eq!(code, 0, "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threats_are_published_queued_applied_and_served_over_taxii() {
    let authorities = Authorities::new();
    let node = Node::start_default().await;
    node.import_wallet(&authorities.tier2_wallet(&node.did))
        .await;
    let key = node.org_key();
    let charter = authorities.write_governed_charter(
        "field",
        &[&key],
        std::slice::from_ref(&node.did),
        "1",
        "",
    );
    node.join(&charter).await;
    let field = node.field_id();
    let work = tempfile::tempdir().unwrap();
    let file = |name: &str| work.path().join(name);

    let member =
        tfc_gateway::identity::KeyPair::generate(tfc_gateway::identity::KeyAlgorithm::Ed25519)
            .did();
    let drafts: [(&str, String, &[&str]); 5] = [
        (
            "address.json",
            "[ipv4-addr:value = '198.51.100.0/24']".into(),
            &[
                "--severity",
                "high",
                "--action",
                "block-address",
                "--tlp",
                "green",
            ],
        ),
        (
            "domain.json",
            "[domain-name:value = 'c2.evil.example']".into(),
            &["--severity", "medium", "--action", "block-address"],
        ),
        (
            "file.json",
            format!("[file:hashes.'SHA-256' = '{}']", "ab".repeat(32)),
            &[
                "--severity",
                "critical",
                "--action",
                "quarantine",
                "--tlp",
                "amber+strict",
            ],
        ),
        (
            "software.json",
            "[software:name = 'openssl' AND software:version < '3.0.7']".into(),
            &[
                "--severity",
                "high",
                "--action",
                "mark-vulnerable",
                "--tlp",
                "clear",
            ],
        ),
        (
            "member.json",
            format!("[x-tfc-member:did = '{member}']"),
            &["--severity", "high", "--action", "cap-tier", "--tier", "1"],
        ),
    ];
    for (name, pattern, args) in &drafts {
        let mut all = vec!["--pattern", pattern.as_str(), "--name", "interop"];
        all.extend_from_slice(args);
        indicator(&node, &file(name), &all).await;
    }
    for (name, _, _) in &drafts[..3] {
        let path = file(name).display().to_string();
        let (code, output) = tfcctl(&node, &["threat", "publish", &path, "--field", &field]).await;
        assert_eq!(code, 0, "{output}");
        assert!(output.contains("1 indicators taken"), "{output}");
    }
    // The address is high: applied. The domain is medium: it waits for the operator.
    let (_, pending) = tfcctl(&node, &["threat", "pending"]).await;
    assert!(
        pending.contains("awaiting_operator") && pending.contains("c2.evil.example"),
        "{pending}"
    );
    let (_, json) = tfcctl(&node, &["threat", "pending", "--json"]).await;
    let waiting: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(waiting.len(), 1, "{json}");
    let prefix = &waiting[0]["id"].as_str().unwrap()[..12];
    let (code, output) = tfcctl(&node, &["threat", "apply", prefix]).await;
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("applied"), "{output}");
    let (_, actions) = tfcctl(
        &node,
        &["threat", "actions", "--state", "applied", "--json"],
    )
    .await;
    let applied: Vec<serde_json::Value> = serde_json::from_str(&actions).unwrap();
    assert_eq!(applied.len(), 3, "{actions}");

    let added_after =
        tfc_gateway::services::threats::taxii::timestamp(tfc_gateway::audit::now_ms());
    // Imported from an outside feed: taken here, not shared.
    let software = file("software.json").display().to_string();
    let (code, output) = tfcctl(&node, &["threat", "import", &software, "--field", &field]).await;
    assert_eq!(code, 0, "{output}");
    // A report about a member from this gateway alone (an admin: it counts).
    let member_file = file("member.json").display().to_string();
    let (code, output) = tfcctl(
        &node,
        &["threat", "publish", &member_file, "--field", &field],
    )
    .await;
    assert_eq!(code, 0, "{output}");

    // Bad input: RED without recipients, a replay, a bundle that is not one.
    indicator(
        &node,
        &file("red.json"),
        &[
            "--pattern",
            "[ipv4-addr:value = '203.0.113.1']",
            "--severity",
            "high",
            "--action",
            "block-address",
            "--tlp",
            "red",
        ],
    )
    .await;
    let red = file("red.json").display().to_string();
    let (code, output) = tfcctl(&node, &["threat", "publish", &red, "--field", &field]).await;
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("tlp_violation"), "{output}");
    let address = file("address.json").display().to_string();
    let (code, output) = tfcctl(&node, &["threat", "publish", &address, "--field", &field]).await;
    assert_eq!((code, output.contains("replayed")), (1, true), "{output}");
    std::fs::write(file("junk.json"), r#"{"type": "bundle", "objects": []}"#).unwrap();
    let junk = file("junk.json").display().to_string();
    let (code, output) = tfcctl(&node, &["threat", "publish", &junk, "--field", &field]).await;
    assert_eq!((code, output.contains("malformed")), (1, true), "{output}");
    let (code, output) = tfcctl(
        &node,
        &[
            "threat",
            "indicator",
            "--pattern",
            "[url:value = 'http://x.example/']",
            "--severity",
            "high",
            "--action",
            "block-address",
        ],
    )
    .await;
    assert_eq!(
        (code, output.contains("unsupported_pattern")),
        (1, true),
        "{output}"
    );

    let (_, listed) = tfcctl(&node, &["threat", "list", "--field", &field]).await;
    assert!(listed.contains("5 indicators"), "{listed}");

    // The OASIS client pulls the collection page by page, with a siem operator's
    // certificate (TAXII reads and nothing else); every object validates.
    let data_dir = node.dir.path().display().to_string();
    let siem_out = file("siem").display().to_string();
    let (code, output) = tfcctl(
        &node,
        &[
            "admin-cert",
            "issue",
            "--role",
            "siem",
            "--name",
            "SOC feed",
            "--out",
            &siem_out,
            "--data-dir",
            &data_dir,
        ],
    )
    .await;
    assert_eq!(code, 0, "{output}");
    let tls = node.dir.path().join("tls");
    let url = format!(
        "https://localhost:{}/taxii2/",
        node.gateway.api_address().port()
    );
    let siem = (file("siem.pem"), file("siem-key.pem"));
    let admin = (
        tls.join("admin-client.pem"),
        tls.join("admin-client-key.pem"),
    );
    let summary = taxii_client(&[], &url, &tls, &siem, &added_after).await;
    eprintln!("TAXII interop: {summary}");
    assert_eq!(summary["api_roots"], 1, "{summary}");
    assert_eq!(
        summary["collections"],
        serde_json::json!(["loopback field"]),
        "{summary}"
    );
    assert_eq!(summary["can_read"], true);
    assert_eq!(summary["objects"], 5, "{summary}");
    assert_eq!(summary["pages"], 3, "two per page: {summary}");
    assert_eq!(summary["added_after"], 2, "{summary}");
    assert_eq!(summary["invalid"], serde_json::json!([]), "{summary}");
    assert_eq!(summary["not_acceptable"], 406, "{summary}");

    // A feed pushes intel in with add_objects: an operator's certificate may, the siem's
    // may not (the collection says it cannot write, and the route refuses it).
    indicator(
        &node,
        &file("pushed.json"),
        &[
            "--pattern",
            "[ipv4-addr:value = '192.0.2.77']",
            "--severity",
            "high",
            "--action",
            "block-address",
        ],
    )
    .await;
    let pushed = file("pushed.json").display().to_string();
    let summary = taxii_client(&["push"], &url, &tls, &admin, &pushed).await;
    assert_eq!(summary["can_write"], true, "{summary}");
    assert_eq!(summary["status"], "complete", "{summary}");
    assert_eq!(
        (
            summary["success_count"].as_u64(),
            summary["failure_count"].as_u64()
        ),
        (Some(3), Some(0)),
        "{summary}"
    );
    assert_eq!(summary["status_again"], "complete", "{summary}");
    let (_, listed) = tfcctl(&node, &["threat", "list", "--field", &field]).await;
    assert!(listed.contains("6 indicators"), "{listed}");
    // The same objects again: the book's replay check refuses them, as it refuses gossip.
    let summary = taxii_client(&["push"], &url, &tls, &admin, &pushed).await;
    assert_eq!(summary["failure_count"], 3, "{summary}");
    assert!(
        summary["failures"][0]
            .as_str()
            .unwrap()
            .starts_with("replayed"),
        "{summary}"
    );
    let summary = taxii_client(&["push"], &url, &tls, &siem, &pushed).await;
    assert_eq!(summary["can_write"], false, "{summary}");
    assert!(
        summary["error"]
            .as_str()
            .is_some_and(|error| error.contains("AccessError")),
        "{summary}"
    );
}

/// Runs tests/interop/taxii_interop.py (`mode` first, if any) against the gateway at `url`
/// with one operator's certificate and key; its JSON summary.
async fn taxii_client(
    mode: &[&str],
    url: &str,
    tls: &Path,
    (certificate, key): &(std::path::PathBuf, std::path::PathBuf),
    last: &str,
) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/taxii_interop.py");
    let mut command = Command::new("python3");
    command
        .arg(script)
        .args(mode)
        .arg(url)
        .arg(tls.join("admin-ca.pem"))
        .arg(certificate)
        .arg(key)
        .arg(last);
    let output = tokio::task::spawn_blocking(move || {
        command
            .output()
            .expect("python3 is needed: install it and run `pip install -r tests/requirements.txt`")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}
