//! What an auditor and a SIEM get: webhooks signed with HMAC and retried until the
//! receiver takes them (a real HTTPS receiver on loopback that fails twice first), audit
//! entries filtered and keyed by DID and name, CEF export, and API sessions summarised.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};
use tfc_gateway::identity::{KeyAlgorithm, KeyPair};
use tfc_gateway::tls::TlsFiles;
use tfc_testkit::{Authorities, start_sole_admin, wait_until};

use crate::common::client;

/// One request the receiver read: its headers (lower-case names) and body.
struct Received {
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map_or("", |(_, value)| value.as_str())
    }
}

/// An HTTPS receiver on loopback with a certificate from its own CA (written to `ca_path`):
/// it answers 500 to the first `failures` requests, 200 after, and hands every request on.
fn receiver(ca_path: &std::path::Path, failures: usize) -> (u16, mpsc::Receiver<Received>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    std::fs::write(ca_path, ca_cert.pem()).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let certificate = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![certificate.der().clone()],
        rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
    )
    .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (sender, received) = mpsc::channel();
    std::thread::spawn(move || {
        for (served, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut tls = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
            let mut tls = rustls::Stream::new(&mut tls, &mut stream);
            let Some(request) = read_request(&mut tls) else {
                continue;
            };
            let status = if served < failures {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = write!(
                tls,
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = tls.flush();
            if sender.send(request).is_err() {
                return;
            }
        }
    });
    (port, received)
}

fn read_request(stream: &mut impl Read) -> Option<Received> {
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 4096];
    let header_end = loop {
        let read = stream.read(&mut buffer).ok()?;
        if read == 0 {
            return None;
        }
        bytes.extend_from_slice(&buffer[..read]);
        if let Some(end) = bytes.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&bytes[..header_end]).into_owned();
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|line| {
            let (key, value) = line.split_once(':')?;
            Some((key.trim().to_lowercase(), value.trim().to_owned()))
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(key, _)| key == "content-length")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    while bytes.len() < header_end + length {
        let read = stream.read(&mut buffer).ok()?;
        if read == 0 {
            break;
        }
        bytes.extend_from_slice(&buffer[..read]);
    }
    let body = String::from_utf8_lossy(&bytes[header_end..]).into_owned();
    Some(Received { headers, body })
}

fn hmac_hex(secret: &[u8], message: &str) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(message.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revocation_reaches_the_webhook_signed_after_retries_and_the_audit_answers() {
    let outside = tempfile::tempdir().unwrap();
    let ca = outside.path().join("receiver-ca.pem");
    let (port, received) = receiver(&ca, 2);
    let secret = b"a-webhook-secret-of-32-bytes-xyz";
    let secret_file = outside.path().join("webhook.key");
    tfc_gateway::secret_file::create_private(&secret_file, secret).unwrap();
    let webhook = format!(
        "\n[[webhooks]]\nurl = \"https://localhost:{port}/hook\"\nsecret_file = \"{}\"\nca_file = \"{}\"\nevents = [\"revocation\"]\n",
        secret_file.display(),
        ca.display()
    );
    let authorities = Authorities::new();
    let node = start_sole_admin(&authorities, move |text| text + &webhook).await;
    let field = node.field_id();
    let member = KeyPair::generate(KeyAlgorithm::Ed25519).did();
    let base = format!("https://localhost:{}", node.gateway.api_address().port());
    let tls = TlsFiles::under(node.dir.path());
    let own_did = node.did.clone();
    let (target, field_id, api) = (member.clone(), field.clone(), base.clone());
    let admin = tokio::task::spawn_blocking(move || {
        let admin = client(&tls.ca_cert, Some((&tls.client_cert, &tls.client_key)));
        for kind in ["admit", "revoke"] {
            let answer = admin
                .post(format!("{api}/v1/fields/{field_id}/ops"))
                .json(&json!({"kind": kind, "target": target, "reason": "webhook test"}))
                .send()
                .unwrap();
            assert_eq!(answer.status(), 200, "{kind}: {}", answer.text().unwrap());
        }
        admin
    })
    .await
    .unwrap();

    // The receiver failed twice; the third attempt is taken. Each is signed.
    let attempts: Vec<Received> = (0..3)
        .map(|_| {
            received
                .recv_timeout(Duration::from_secs(20))
                .expect("a delivery attempt")
        })
        .collect();
    for attempt in &attempts {
        let expected = hmac_hex(
            secret,
            &format!("{}.{}", attempt.header("x-tfc-timestamp"), attempt.body),
        );
        assert_eq!(
            attempt.header("x-tfc-signature"),
            format!("sha256={expected}")
        );
        assert_eq!(attempt.header("x-tfc-event"), "revocation");
    }
    assert_eq!(
        attempts[0].header("x-tfc-delivery"),
        attempts[2].header("x-tfc-delivery")
    );
    let delivered: Value = serde_json::from_str(&attempts[2].body).unwrap();
    assert_eq!(delivered["kind"], "revocation");
    assert_eq!(delivered["entry"]["action"], "governance.revoke");
    assert_eq!(delivered["entry"]["subject"], member.as_str());
    assert_eq!(delivered["entry"]["field"], field.as_str());
    assert!(delivered["entry"]["time"].as_str().unwrap().ends_with('Z'));

    // The receiver has answered the third attempt; the gateway counts it once it has read
    // that answer.
    let webhooks = format!("{base}/v1/webhooks");
    wait_until("the delivery is counted", || {
        let (admin, url) = (admin.clone(), webhooks.clone());
        async move {
            tokio::task::spawn_blocking(move || {
                let status: Value = admin.get(url).send().unwrap().json().unwrap();
                status[0]["delivered"] == 1
            })
            .await
            .unwrap()
        }
    })
    .await;
    let (api, subject) = (base.clone(), member.clone());
    tokio::task::spawn_blocking(move || {
        // The delivery status shows the three attempts and no secret.
        let status: Value = admin
            .get(format!("{api}/v1/webhooks"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(status[0]["delivered"], 1, "{status}");
        assert_eq!(status[0]["recent"][0]["attempts"], 3, "{status}");
        assert_eq!(status[0]["recent"][0]["status"], "delivered", "{status}");
        assert!(!status.to_string().contains("a-webhook-secret"), "{status}");
        // Nor the receiver's path, which may hold a token: the origin alone.
        assert_eq!(
            status[0]["url"],
            format!("https://localhost:{port}"),
            "{status}"
        );
        // Filters: by subject and action; both ops are about the member, one revokes.
        let answer: Value = admin
            .get(format!(
                "{api}/v1/audit/entries?subject={subject}&action=governance."
            ))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert!(answer["chain"]["broken"].is_null(), "{answer}");
        let actions: Vec<&str> = answer["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            ["governance.admit", "governance.revoke"],
            "{answer}"
        );
        // The actor is our DID, named from our identity credential.
        let entry = &answer["entries"][1];
        assert_eq!(entry["actor"], own_did.as_str());
        assert!(
            entry["actorName"]
                .as_str()
                .unwrap()
                .starts_with("株式会社テスト"),
            "{entry}"
        );
        assert!(
            entry["timeMs"].is_i64() && entry["time"].is_string(),
            "{entry}"
        );
        let none: Value = admin
            .get(format!(
                "{api}/v1/audit/entries?decision=commit&until=2001-01-01T00:00:00Z"
            ))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(none["entries"], json!([]));
        let refused = admin
            .get(format!("{api}/v1/audit/entries?since=yesterday"))
            .send()
            .unwrap();
        assert_eq!(refused.status(), 422);
        // CEF, filtered to the revocation.
        let cef = admin
            .get(format!(
                "{api}/v1/audit/export?format=cef&action=governance.revoke"
            ))
            .send()
            .unwrap()
            .text()
            .unwrap();
        let lines: Vec<&str> = cef.lines().collect();
        assert_eq!(lines.len(), 1, "{cef}");
        assert!(lines[0].starts_with("CEF:0|TFC|tfc-gateway|"), "{cef}");
        assert!(lines[0].contains(&format!("duser={subject}")), "{cef}");
        // Sessions are summed, not logged per request.
        let sessions: Value = admin
            .get(format!("{api}/v1/audit/entries?action=api.session"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(sessions["entries"], json!([]), "no entry per connection");
    })
    .await
    .unwrap();
    let services = std::sync::Arc::clone(node.gateway.services());
    node.gateway.shutdown().await.unwrap();
    let summaries: Vec<_> = services
        .audit
        .since(0)
        .unwrap()
        .into_iter()
        .filter(|entry| entry.action == "api.sessions")
        .collect();
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    assert_eq!(
        summaries[0].actor_name.as_deref(),
        Some(tfc_gateway::tls::FIRST_ADMIN)
    );
    assert!(summaries[0].reason.contains("2 changes"), "{summaries:?}");
}
