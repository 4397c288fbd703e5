//! `tfcctl --gateway … data …` against real gateways: an organisation writes, lists and
//! deletes its records; another asks for one with a purpose and gets the holder's decision.

use tfc_testkit::{Authorities, Node, top_tier};

/// Runs `tfcctl` against `node`'s API from `work`; returns the exit code and all output.
async fn tfcctl(node: &Node, work: &std::path::Path, args: &[&str]) -> (i32, String) {
    let run = crate::tfcctl_against(node, Some(work), args).await;
    (run.code, run.all())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_written_listed_asked_for_and_deleted_through_tfcctl() {
    let authorities = Authorities::new();
    let city = Node::start_default().await;
    let reader = Node::start_default().await;
    city.import_wallet(&authorities.tier2_wallet(&city.did))
        .await;
    reader
        .import_wallet(&authorities.tier2_wallet(&reader.did))
        .await;
    let charter = authorities.write_city_charter(&city);
    city.join(&charter).await;
    reader.join(&charter).await;
    city.verdict_where(reader.peer_id(), |record| top_tier(record) == 2)
        .await;
    // Whichever side opened the handshake judged first: wait for the reader's verdict too.
    tfc_testkit::until_verified(&reader, city.peer_id()).await;
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

    // Listings filter by label, here and at the holder.
    let (code, out) = tfcctl(
        &city,
        work.path(),
        &[
            "data",
            "list",
            "--field",
            &short,
            "--tier",
            "1",
            "--category",
            "trade-secret",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains(&id), "{out}");
    let (code, out) = tfcctl(
        &reader,
        work.path(),
        &[
            "data",
            "list",
            "--field",
            &short,
            "--tier",
            "1",
            "--from",
            &city.did,
            "--purpose",
            "screening",
            "--category",
            "non-personal",
            "--json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["records"][0]["id"], id.as_str(), "{listed}");
    let (code, out) = tfcctl(
        &city,
        work.path(),
        &[
            "data",
            "list",
            "--field",
            &short,
            "--tier",
            "1",
            "--category",
            "secretish",
        ],
    )
    .await;
    assert_eq!(code, 2, "{out}");

    // A drawing attached to a record reaches the reader chunk by chunk, checked by hash.
    let drawing: Vec<u8> = (0..1_300_000u32)
        .map(|index| (index * 7 % 251) as u8)
        .collect();
    std::fs::write(work.path().join("drawing.bin"), &drawing).unwrap();
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
            "--attach",
            "drawing.bin",
            "--json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let with_drawing: serde_json::Value = serde_json::from_str(&out).unwrap();
    let sha256 = with_drawing["attachments"][0]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(with_drawing["attachments"][0]["size"], 1_300_000);
    let drawing_record = with_drawing["id"].as_str().unwrap().to_owned();
    let (code, out) = tfcctl(
        &reader,
        work.path(),
        &[
            "data",
            "fetch",
            &drawing_record,
            "--sha256",
            &sha256,
            "--out",
            "got.bin",
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
    assert_eq!(std::fs::read(work.path().join("got.bin")).unwrap(), drawing);
    let (code, out) = tfcctl(
        &reader,
        work.path(),
        &[
            "data",
            "fetch",
            &drawing_record,
            "--sha256",
            &sha256,
            "--out",
            "no.bin",
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
    assert!(
        out.contains("access_denied") && out.contains("chunk 0"),
        "{out}"
    );
    assert!(!work.path().join("no.bin").exists());

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mass_deletion_through_the_api_is_stopped_and_alerted() {
    let authorities = Authorities::new();
    let node =
        Node::start(|text| text.replace("bulk_change_limit = 60", "bulk_change_limit = 2")).await;
    node.join(&authorities.write_charter("field", "")).await;
    let short = node.field_id()[..12].to_owned();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("labels.json"),
        r#"{"category":"non-personal","valueLevel":"low"}"#,
    )
    .unwrap();
    std::fs::write(work.path().join("body.json"), r#"{"n":1}"#).unwrap();
    let mut ids = Vec::new();
    for _ in 0..4 {
        let (code, out) = tfcctl(
            &node,
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
        ids.push(out.split_whitespace().nth(1).unwrap().to_owned());
    }
    let delete = |id: String| {
        let (node, work, short) = (&node, work.path().to_owned(), short.clone());
        async move {
            tfcctl(
                node,
                &work,
                &["data", "delete", &id, "--field", &short, "--tier", "1"],
            )
            .await
        }
    };
    assert_eq!(delete(ids[0].clone()).await.0, 0);
    assert_eq!(delete(ids[1].clone()).await.0, 0);
    let (code, out) = delete(ids[2].clone()).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("bulk_change_blocked"), "{out}");
    let (code, out) = delete(ids[3].clone()).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("access_denied"), "{out}");
    let (code, out) = tfcctl(
        &node,
        work.path(),
        &["data", "get", &ids[2], "--field", &short, "--tier", "1"],
    )
    .await;
    assert_eq!(code, 0, "the blocked deletion changed nothing: {out}");
    let (code, exported) = tfcctl(&node, work.path(), &["audit", "export"]).await;
    assert_eq!(code, 0, "{exported}");
    assert!(
        exported
            .lines()
            .any(|line| line.contains("\"action\":\"data.bulk_guard\"")
                && line.contains("\"decision\":\"alert\"")),
        "{exported}"
    );
    node.gateway.shutdown().await.unwrap();
}
