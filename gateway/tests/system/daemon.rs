//! The daemon as an operator runs it: `init`, `run` until SIGTERM, and state that outlives a
//! restart. Waits are on output lines and exits, each with a timeout.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use common::{WAIT, client, data_dir};

use serde_json::{Value, json};
use tfc_gateway::charter::Charter;
use tfc_gateway::config::GatewayConfig;
use tfc_gateway::credential::{
    CredentialDraft, StatusList, StatusPurpose, issue_credential, now_unix,
};
use tfc_gateway::daemon::Gateway;
use tfc_gateway::identity::{KeyAlgorithm, KeyPair};
use tfc_gateway::init::{KEY_FILE, init};

/// A day-long credit rating from `bureau` about `subject`.
fn credit_rating(bureau: &KeyPair, subject: &KeyPair) -> String {
    let now = now_unix();
    let draft = CredentialDraft {
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
    issue_credential(bureau, &draft, now).unwrap()
}

/// Runs the daemon with logs in `format` on a pipe until "gateway started", stops it with
/// SIGTERM; returns the start line.
fn run_and_stop(format: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = data_dir(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_tfc-gateway"))
        .args(["run", "--config"])
        .arg(&config)
        .args(["--log-format", format])
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
    let mut seen = Vec::new();
    let mut wait_line = |needle: &str| loop {
        match received.recv_timeout(WAIT) {
            Ok(line) if line.contains(needle) => return line,
            Ok(line) => seen.push(line),
            Err(error) => panic!(
                "no log line containing {needle:?} ({error}); the daemon said:\n{}",
                seen.join("\n")
            ),
        }
    };
    let started = wait_line("gateway started");
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
    started
}

#[test]
fn run_stops_cleanly_on_sigterm() {
    let started = run_and_stop("json");
    let log: serde_json::Value = serde_json::from_str(&started).expect("json logs");
    assert_eq!(log["fields"]["message"], "gateway started");
    // Human logs on a pipe carry no colour codes.
    let started = run_and_stop("human");
    assert!(started.contains("gateway started"), "{started}");
    assert!(
        !started.contains('\u{1b}'),
        "colour codes in a redirected log: {started:?}"
    );
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
    let ours = credit_rating(&bureau, &org);
    let theirs = credit_rating(&bureau, &bureau);
    let field_id = {
        let (gateway, _) = Gateway::start(&config).await.unwrap();
        let id = gateway
            .services()
            .join_field(&charter_path)
            .await
            .unwrap()
            .charter
            .field_id();
        gateway.services().import_credential(&ours).await.unwrap();
        let again = gateway
            .services()
            .import_credential(&ours)
            .await
            .unwrap_err();
        assert_eq!(again.code(), "duplicate_credential");
        // Where a credential of ours counts: the field trusts the bureau for ratings only.
        let services = gateway.services();
        assert_eq!(
            services.fields_trusting_for(&bureau.did(), "CreditRatingCredential"),
            std::slice::from_ref(&id)
        );
        assert!(
            services
                .fields_trusting_for(&bureau.did(), "OrganizationIdentityCredential")
                .is_empty()
        );
        let refused = gateway
            .services()
            .import_credential(&theirs)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), "holder_mismatch");
        assert_eq!(
            gateway
                .services()
                .import_credential("garbage")
                .await
                .unwrap_err()
                .code(),
            "malformed"
        );
        // A status list from a trusted issuer is taken; one from a stranger is not.
        let list = StatusList::new(
            "urn:list:1",
            &bureau.did(),
            StatusPurpose::Revocation,
            0,
            now - 60,
        );
        gateway
            .import_status_list(&list.issue(&bureau).unwrap())
            .await
            .unwrap();
        let stranger = KeyPair::generate(KeyAlgorithm::Ed25519);
        let foreign = StatusList::new(
            "urn:list:2",
            &stranger.did(),
            StatusPurpose::Revocation,
            0,
            now,
        );
        let refused = gateway
            .import_status_list(&foreign.issue(&stranger).unwrap())
            .await
            .unwrap_err();
        assert_eq!(refused.code(), "untrusted_issuer");
        let nonces = [
            ("live-nonce".into(), now + 300),
            ("old-nonce".into(), now - 1),
        ];
        gateway.services().peers.keep_nonces(&nonces).unwrap();
        gateway.services().commit().await.unwrap();
        gateway.shutdown().await.unwrap();
        id
    };
    let (gateway, _) = Gateway::start(&config).await.unwrap();
    let fields: Vec<String> = gateway
        .services()
        .fields
        .all()
        .iter()
        .map(|field| field.charter.field_id())
        .collect();
    assert_eq!(fields, [field_id]);
    assert_eq!(gateway.services().wallet.all(), [ours]);
    assert!(
        gateway.services().peers.replay().contains("live-nonce"),
        "used nonces survive a restart"
    );
    assert!(!gateway.services().peers.replay().contains("old-nonce"));
    let lists = gateway.services().status_list_summaries();
    assert_eq!(lists.len(), 1, "status lists survive a restart");
    assert_eq!(lists[0].id, "urn:list:1");
    assert_eq!(
        gateway.services().peers.nonces_kept(),
        1,
        "expired nonces are forgotten"
    );
    gateway.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_serves_admins_and_refuses_everyone_else() {
    let dir = tempfile::tempdir().unwrap();
    let config = GatewayConfig::load(&data_dir(dir.path())).unwrap();
    let stranger = tempfile::tempdir().unwrap();
    let stranger_tls = init(stranger.path(), None).unwrap().tls_files;
    let (gateway, _) = Gateway::start(&config).await.unwrap();
    let base = format!("https://localhost:{}", gateway.api_address().port());
    let tls = tfc_gateway::tls::TlsFiles::under(dir.path());
    let did = gateway.did();
    let org = KeyPair::load(&dir.path().join(KEY_FILE)).unwrap();
    let bureau = KeyPair::generate(KeyAlgorithm::Ed25519);
    let credential = credit_rating(&bureau, &org);
    tokio::task::spawn_blocking(move || {
        let admin = client(&tls.ca_cert, Some((&tls.client_cert, &tls.client_key)));
        let health = admin.get(format!("{base}/healthz")).send().unwrap();
        assert_eq!(health.status(), 200);
        let status: serde_json::Value = admin
            .get(format!("{base}/v1/status"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(status["did"], did);
        assert!(
            status["listen"][0]
                .as_str()
                .unwrap()
                .starts_with("/ip4/127.0.0.1/tcp/")
        );
        let imported = admin
            .post(format!("{base}/v1/wallet"))
            .json(&json!({"credential": credential}))
            .send()
            .unwrap();
        assert_eq!(imported.status(), 200);
        let wallet: serde_json::Value = admin
            .get(format!("{base}/v1/wallet"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(wallet[0]["type"], "CreditRatingCredential");
        let bad = admin
            .post(format!("{base}/v1/wallet"))
            .json(&json!({"credential": "not a token"}))
            .send()
            .unwrap();
        assert_eq!(bad.status(), 422);
        let error: serde_json::Value = bad.json().unwrap();
        assert_eq!(error["code"], "malformed");
        let unknown_key = admin
            .post(format!("{base}/v1/wallet"))
            .json(&json!({"token": "x"}))
            .send()
            .unwrap();
        assert!(unknown_key.status().is_client_error());
        let metrics = admin
            .get(format!("{base}/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        assert!(metrics.contains("tfc_wallet_credentials 1"), "{metrics}");
        // The OpenAPI document describes the routes that exist: every GET path it lists
        // answers, and it lists the POST routes used above.
        let document: serde_json::Value = admin
            .get(format!("{base}/openapi.json"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert!(document["openapi"].as_str().unwrap().starts_with("3."));
        let paths = document["paths"].as_object().unwrap();
        assert!(paths["/v1/wallet"]["post"].is_object());
        assert!(paths["/v1/status-lists"]["post"].is_object());
        for (path, operations) in paths {
            if operations.get("get").is_some() && !path.contains('{') {
                let answer = admin.get(format!("{base}{path}")).send().unwrap();
                assert_eq!(answer.status(), 200, "GET {path}");
            }
        }
        // The router and the document agree: every method the document lists is served (an
        // unknown route answers 404 with an empty body, a wrong method 405) and every other
        // method on its paths is refused; every operation has a summary and a tag, and every
        // write under /v1 lists its error responses.
        for (path, operations) in paths {
            let concrete: String = path
                .split('/')
                .map(|part| if part.starts_with('{') { "zz" } else { part })
                .collect::<Vec<_>>()
                .join("/");
            for method in ["get", "post", "put", "delete", "patch"] {
                let verb = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let answer = admin
                    .request(verb, format!("{base}{concrete}"))
                    .send()
                    .unwrap();
                let status = answer.status().as_u16();
                let body = answer.bytes().unwrap();
                let Some(operation) = operations.get(method) else {
                    assert_eq!(status, 405, "{method} {path} is served but not documented");
                    continue;
                };
                assert!(
                    status != 405 && !(status == 404 && body.is_empty()),
                    "{method} {path} is documented but not served: {status}"
                );
                assert!(
                    operation["summary"]
                        .as_str()
                        .is_some_and(|text| !text.is_empty()),
                    "{method} {path} has no summary"
                );
                assert!(
                    operation["tags"][0].is_string(),
                    "{method} {path} has no tag"
                );
                if path.starts_with("/v1/") && method != "get" {
                    let responses = operation["responses"].as_object().unwrap();
                    assert!(
                        responses.keys().any(|code| code.as_str() >= "400"),
                        "{method} {path} lists no error response"
                    );
                }
            }
        }
        // No client certificate: the probes answer, saying nothing else; every other
        // route is refused, reads and writes alike.
        let anonymous = client(&tls.ca_cert, None);
        for probe in ["healthz", "readyz"] {
            let answer = anonymous.get(format!("{base}/{probe}")).send().unwrap();
            assert_eq!(answer.status(), 200, "{probe}");
            let body: Value = answer.json().unwrap();
            assert_eq!(
                body.as_object().map(|object| object.len()),
                Some(1),
                "{body}"
            );
        }
        for path in [
            "v1/status",
            "v1/peers",
            "metrics",
            "openapi.json",
            "v1/audit",
            "taxii2/",
        ] {
            let answer = anonymous.get(format!("{base}/{path}")).send().unwrap();
            assert_eq!(answer.status(), 401, "{path}");
            let body: Value = answer.json().unwrap();
            assert_eq!(body["code"], "client_certificate_required", "{path}");
        }
        let refused = anonymous
            .post(format!("{base}/v1/dial"))
            .json(&json!({"address": "/ip4/127.0.0.1/tcp/1"}))
            .send()
            .unwrap();
        assert_eq!(refused.status(), 401);
        // A certificate from another gateway's CA: refused during TLS.
        let foreign = client(
            &tls.ca_cert,
            Some((&stranger_tls.client_cert, &stranger_tls.client_key)),
        );
        assert!(foreign.get(format!("{base}/healthz")).send().is_err());
    })
    .await
    .unwrap();
    gateway.shutdown().await.unwrap();
}
