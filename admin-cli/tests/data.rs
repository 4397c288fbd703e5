//! `tfcctl --gateway … data …` against real gateways: an organisation writes, lists and
//! deletes its records; another asks for one with a purpose and gets the holder's decision.

use std::process::Command;

use tfc_testkit::{Authorities, Node, top_tier};

/// Runs `tfcctl` against `node`'s API from `work`; returns the exit code and all output.
async fn tfcctl(node: &Node, work: &std::path::Path, args: &[&str]) -> (i32, String) {
    let mut full = vec![
        "--gateway".to_owned(),
        format!("https://localhost:{}", node.gateway.api_address().port()),
        "--data-dir".to_owned(),
        node.dir.path().display().to_string(),
    ];
    full.extend(args.iter().map(|arg| (*arg).to_owned()));
    let work = work.to_owned();
    tokio::task::spawn_blocking(move || {
        let output = Command::new(env!("CARGO_BIN_EXE_tfcctl"))
            .args(&full)
            .current_dir(work)
            .output()
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr),
        )
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_written_listed_asked_for_and_deleted_through_tfcctl() {
    let authorities = Authorities::new();
    let mut city = Node::start_default().await;
    let reader = Node::start_default().await;
    city.import_wallet(&authorities.tier2_wallet(&city.did));
    reader.import_wallet(&authorities.tier2_wallet(&reader.did));
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../config/policies/housing-subsidy.cedar"
        ),
        authorities.dir.path().join("policy.cedar"),
    )
    .unwrap();
    let charter = authorities.write_governed_charter(
        "field",
        &[&city.org_key()],
        &[city.did.clone()],
        "1",
        &format!(
            "policy = \"policy.cedar\"\n{}",
            Authorities::bootstrap_line(std::slice::from_ref(&city.address))
        ),
    );
    city.join(&charter).await;
    reader.join(&charter).await;
    city.verdict_where(reader.peer_id(), |record| top_tier(record) == 2)
        .await;
    let field = city.field_id();
    let short = field[..12].to_owned();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("labels.json"),
        format!(r#"{{"category":"non-personal","valueLevel":"medium","allowedPurposes":["screening"],"disclosure":["{}"]}}"#, reader.did),
    )
    .unwrap();
    std::fs::write(
        work.path().join("body.json"),
        r#"{"notice":"審査基準 2026"}"#,
    )
    .unwrap();

    let (code, out) = tfcctl(
        &city,
        work.path(),
        &[
            "data",
            "put",
            "--field",
            &short,
            "--tier",
            "1",
            "--labels",
            "labels.json",
            "--body",
            "body.json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let id = out.split_whitespace().nth(1).unwrap().to_owned();
    assert!(out.contains("version 1"), "{out}");
    let (code, out) = tfcctl(
        &city,
        work.path(),
        &["data", "list", "--field", &short, "--tier", "1"],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&id) && out.contains(" ok "), "{out}");

    let (code, out) = tfcctl(
        &reader,
        work.path(),
        &[
            "data",
            "get",
            &id,
            "--field",
            &short,
            "--tier",
            "1",
            "--from",
            &city.did,
            "--purpose",
            "screening",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("ALLOWED") && out.contains("審査基準 2026"),
        "{out}"
    );
    let (code, out) = tfcctl(
        &reader,
        work.path(),
        &[
            "data",
            "get",
            &id,
            "--field",
            &short,
            "--tier",
            "1",
            "--from",
            &city.did,
            "--purpose",
            "marketing",
        ],
    )
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("DENIED   access_denied"), "{out}");

    let (code, out) = tfcctl(
        &city,
        work.path(),
        &["data", "delete", &id, "--field", &short, "--tier", "1"],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = tfcctl(
        &city,
        work.path(),
        &["data", "get", &id, "--field", &short, "--tier", "1"],
    )
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("record_not_found"), "{out}");
    city.gateway.shutdown().await.unwrap();
    reader.gateway.shutdown().await.unwrap();
}
