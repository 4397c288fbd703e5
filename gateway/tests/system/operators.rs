//! Operators through the API: every role reaches the routes its declaration allows and is
//! refused the rest; a certificate with no known role reaches only the probes; four-eyes
//! actions wait for a second, differently named operator.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tfc_gateway::governance::StandingKind;
use tfc_gateway::identity::{KeyAlgorithm, KeyPair};
use tfc_gateway::roles::Role;
use tfc_gateway::tls::{TlsFiles, issue_operator};
use tfc_testkit::{Authorities, Node, start_sole_admin};

use crate::common::client;

/// A client for an operator with `role` named `name`, its certificate issued by the
/// gateway's admin CA in `dir`.
fn operator(dir: &Path, role: Role, name: &str) -> reqwest::blocking::Client {
    let files = TlsFiles::under(dir);
    let issued = issue_operator(&files, role, name).unwrap();
    let (certificate, key) = write_pair(dir, name, &issued.certificate, &issued.key);
    client(&files.ca_cert, Some((&certificate, &key)))
}

fn write_pair(dir: &Path, name: &str, certificate: &str, key: &str) -> (PathBuf, PathBuf) {
    let stem = name.replace(' ', "-");
    let certificate_path = dir.join(format!("{stem}.pem"));
    let key_path = dir.join(format!("{stem}-key.pem"));
    std::fs::write(&certificate_path, certificate).unwrap();
    tfc_gateway::secret_file::create_private(&key_path, key.as_bytes()).unwrap();
    (certificate_path, key_path)
}

/// A client whose certificate the admin CA signed with `unit` as its only organisational
/// unit (or none): a role this gateway does not know, or no role at all.
fn unroled(dir: &Path, name: &str, unit: Option<&str>) -> reqwest::blocking::Client {
    let files = TlsFiles::under(dir);
    let ca_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(&files.ca_key).unwrap()).unwrap();
    let ca =
        rcgen::Issuer::from_ca_cert_pem(&std::fs::read_to_string(&files.ca_cert).unwrap(), ca_key)
            .unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    if let Some(unit) = unit {
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationalUnitName, unit);
    }
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = rcgen::KeyPair::generate().unwrap();
    let certificate = params.signed_by(&key, &ca).unwrap();
    let (certificate, key) = write_pair(dir, name, &certificate.pem(), &key.serialize_pem());
    client(&files.ca_cert, Some((&certificate, &key)))
}

/// Every documented route, with `zz` for each path parameter.
fn routes(base: &str, admin: &reqwest::blocking::Client) -> Vec<(String, String, Option<Role>)> {
    let document: Value = admin
        .get(format!("{base}/openapi.json"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let mut routes = Vec::new();
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let declared = operation["x-tfc-role"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} declares no role in the document"));
            let least = (declared != "none").then(|| declared.parse::<Role>().unwrap());
            let concrete: String = path
                .split('/')
                .map(|part| if part.starts_with('{') { "zz" } else { part })
                .collect::<Vec<_>>()
                .join("/");
            routes.push((method.to_uppercase(), concrete, least));
        }
    }
    routes
}

#[tokio::test(flavor = "multi_thread")]
async fn every_role_reaches_its_routes_and_is_refused_the_rest() {
    let node = Node::start_default().await;
    let dir = node.dir.path().to_owned();
    let base = format!("https://localhost:{}", node.gateway.api_address().port());
    tokio::task::spawn_blocking(move || {
        let admin = operator(&dir, Role::Admin, "Aiko Admin");
        let routes = routes(&base, &admin);
        assert!(routes.len() > 40, "{} routes", routes.len());
        let mut refusals = 0;
        for role in Role::ALL {
            let caller = operator(&dir, role, &format!("{role} person"));
            for (method, path, least) in &routes {
                let answer = caller
                    .request(method.parse().unwrap(), format!("{base}{path}"))
                    .json(&json!({}))
                    .send()
                    .unwrap();
                let status = answer.status().as_u16();
                let body: Value = answer.json().unwrap_or(Value::Null);
                let allowed = least.is_none_or(|least| role.satisfies(least));
                if allowed {
                    assert!(
                        !(status == 403
                            && body["code"]
                                .as_str()
                                .is_some_and(|code| code.starts_with("role_"))),
                        "{role} was refused {method} {path}: {body}"
                    );
                } else {
                    refusals += 1;
                    assert_eq!(status, 403, "{role} reached {method} {path}: {body}");
                    assert_eq!(body["code"], "role_insufficient", "{role} {method} {path}");
                }
            }
        }
        assert!(refusals > 100, "only {refusals} refusals");
        // The siem role reads TAXII and nothing else.
        let siem = operator(&dir, Role::Siem, "Sam Siem");
        let taxii = siem.get(format!("{base}/taxii2/")).send().unwrap();
        assert_eq!(taxii.status(), 200);
        for path in ["/v1/status", "/v1/peers", "/openapi.json", "/metrics"] {
            let refused = siem.get(format!("{base}{path}")).send().unwrap();
            assert_eq!(refused.status(), 403, "siem reached {path}");
        }
        // No role, an unknown role, or two roles: only the probes answer.
        for (name, unit) in [
            ("No Role", None),
            ("Root Person", Some("tfc-role:root")),
            ("Plain Unit", Some("admin")),
        ] {
            let caller = unroled(&dir, name, unit);
            for (method, path, least) in &routes {
                let answer = caller
                    .request(method.parse().unwrap(), format!("{base}{path}"))
                    .send()
                    .unwrap();
                let status = answer.status().as_u16();
                if least.is_none() {
                    assert_eq!(status, 200, "{name}: probe {path}");
                } else {
                    let body: Value = answer.json().unwrap();
                    assert_eq!(status, 403, "{name} reached {method} {path}");
                    assert_eq!(body["code"], "role_missing", "{name} {method} {path}");
                }
            }
        }
    })
    .await
    .unwrap();
    node.gateway.shutdown().await.unwrap();
}

/// Proposes `kind` on `target` in `field`; the answer's status and body.
fn propose(
    caller: &reqwest::blocking::Client,
    base: &str,
    field: &str,
    kind: &str,
    target: &str,
) -> (u16, Value) {
    let answer = caller
        .post(format!("{base}/v1/fields/{field}/ops"))
        .json(&json!({"kind": kind, "target": target, "reason": "four eyes test"}))
        .send()
        .unwrap();
    (answer.status().as_u16(), answer.json().unwrap())
}

fn decide(caller: &reqwest::blocking::Client, base: &str, id: &str, verdict: &str) -> (u16, Value) {
    let answer = caller
        .post(format!("{base}/v1/approvals/{id}/{verdict}"))
        .send()
        .unwrap();
    (answer.status().as_u16(), answer.json().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn four_eyes_hold_an_action_until_a_second_operator_approves() {
    let authorities = Authorities::new();
    let node = start_sole_admin(&authorities, |text| {
        text.replace("four_eyes = []", r#"four_eyes = ["admit", "revoke"]"#)
    })
    .await;
    let applicant = KeyPair::generate(KeyAlgorithm::Ed25519).did();
    let field = node.field_id();
    let dir = node.dir.path().to_owned();
    let base = format!("https://localhost:{}", node.gateway.api_address().port());
    let target = applicant.clone();
    let field_id = field.clone();
    tokio::task::spawn_blocking(move || {
        let hana = operator(&dir, Role::Clerk, "Hana Clerk");
        let kenji = operator(&dir, Role::Clerk, "Kenji Clerk");
        let viewer = operator(&dir, Role::Viewer, "Vera Viewer");
        let (status, held) = propose(&hana, &base, &field_id, "admit", &target);
        assert_eq!(status, 202, "{held}");
        assert_eq!(held["status"], "awaiting_approval");
        assert_eq!(held["proposer"], "Hana Clerk");
        let id = held["id"].as_str().unwrap().to_owned();
        let waiting: Value = kenji
            .get(format!("{base}/v1/approvals"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(waiting[0]["id"], id.as_str());
        // Not the proposer herself, not a viewer, not a clerk for a revocation.
        let (status, body) = decide(&hana, &base, &id[..8], "approve");
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("four_eyes_same_operator"))
        );
        let (status, body) = decide(&viewer, &base, &id, "approve");
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("role_insufficient"))
        );
        let (status, op) = decide(&kenji, &base, &id, "approve");
        assert_eq!(status, 200, "{op}");
        assert_eq!(op["kind"], "admit");
        assert_eq!(op["committed"], "quorum", "{op}");
        let (status, body) = decide(&kenji, &base, &id, "approve");
        assert_eq!(
            (status, body["code"].as_str()),
            (404, Some("unknown_approval"))
        );
        // The emergency revocation: an admin files it, a clerk may not approve it, a
        // second admin does; a rejected one is never carried out.
        let aiko = operator(&dir, Role::Admin, "Aiko Admin");
        let ren = operator(&dir, Role::Admin, "Ren Admin");
        let (status, held) = propose(&aiko, &base, &field_id, "revoke", &target);
        assert_eq!(status, 202, "{held}");
        let id = held["id"].as_str().unwrap().to_owned();
        // A clerk is not shown an admin's revocation waiting for approval.
        let listed: Value = kenji
            .get(format!("{base}/v1/approvals"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(listed, json!([]), "a clerk sees no revocation filing");
        let (status, body) = decide(&kenji, &base, &id, "approve");
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("role_insufficient"))
        );
        let (status, held_again) = propose(&ren, &base, &field_id, "revoke", &target);
        assert_eq!(status, 202);
        let (status, rejected) = decide(&aiko, &base, held_again["id"].as_str().unwrap(), "reject");
        assert_eq!(
            (status, rejected["status"].as_str()),
            (200, Some("rejected"))
        );
        let (status, op) = decide(&ren, &base, &id, "approve");
        assert_eq!(status, 200, "{op}");
        assert_eq!(op["kind"], "revoke");
        let waiting: Value = kenji
            .get(format!("{base}/v1/approvals"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(waiting, json!([]));
    })
    .await
    .unwrap();
    assert_eq!(node.standing(&applicant), Some(StandingKind::Revoked));
    // The audit names both operators of each four-eyes action.
    let entries = node.gateway.services().audit.since(0).unwrap();
    let approval = entries
        .iter()
        .find(|entry| entry.action == "four_eyes.approve" && entry.object.starts_with("revoke"))
        .expect("the approval is audited");
    assert!(approval.actor.contains("Ren Admin"), "{approval:?}");
    assert!(approval.reason.contains("Aiko Admin"), "{approval:?}");
    node.gateway.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_charter_disables_its_field_alone_and_a_field_can_be_left() {
    let authorities = Authorities::new();
    let node = Node::start_default().await;
    node.import_wallet(&authorities.tier2_wallet(&node.did))
        .await;
    let kept = authorities.write_charter("kept", "");
    let key = node.org_key();
    let moved = authorities.write_governed_charter(
        "moved",
        &[&key],
        std::slice::from_ref(&node.did),
        "1",
        "",
    );
    node.join(&kept).await;
    node.join(&moved).await;
    let ids: Vec<String> = node
        .gateway
        .services()
        .fields
        .all()
        .iter()
        .map(|field| field.charter.field_id())
        .collect();
    assert_eq!(ids.len(), 2);
    let dir = node.stop().await;
    std::fs::rename(&moved, moved.with_extension("away")).unwrap();
    let node = Node::resume(dir).await;
    let base = format!("https://localhost:{}", node.gateway.api_address().port());
    let tls = TlsFiles::under(node.dir.path());
    let kept_id = tfc_gateway::charter::Charter::load(&kept)
        .unwrap()
        .field_id();
    tokio::task::spawn_blocking(move || {
        let admin = client(&tls.ca_cert, Some((&tls.client_cert, &tls.client_key)));
        let fields: Value = admin
            .get(format!("{base}/v1/fields"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let listed = fields.as_array().unwrap();
        assert_eq!(listed.len(), 2, "{fields}");
        let active = listed
            .iter()
            .find(|field| field["status"] == "active")
            .unwrap();
        assert_eq!(active["id"], kept_id.as_str());
        assert_eq!(active["quorum"], "1", "{active}");
        let disabled = listed
            .iter()
            .find(|field| field["status"] == "disabled")
            .unwrap();
        assert!(
            disabled["problem"].as_str().unwrap().contains("moved.toml"),
            "{disabled}"
        );
        let disabled_id = disabled["id"].as_str().unwrap().to_owned();
        // The active field still works.
        let members = admin
            .get(format!("{base}/v1/fields/{kept_id}/members"))
            .send()
            .unwrap();
        assert_eq!(members.status(), 200);
        // Leave the disabled one, then the active one.
        for id in [&disabled_id, &kept_id] {
            let left = admin
                .delete(format!("{base}/v1/fields/{}", &id[..12]))
                .send()
                .unwrap();
            assert_eq!(left.status(), 200);
            let body: Value = left.json().unwrap();
            assert_eq!(body["left"], id.as_str());
        }
        let again = admin
            .delete(format!("{base}/v1/fields/{kept_id}"))
            .send()
            .unwrap();
        assert_eq!(again.status(), 404);
        let fields: Value = admin
            .get(format!("{base}/v1/fields"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(fields, json!([]));
    })
    .await
    .unwrap();
    let dir = node.stop().await;
    let node = Node::resume(dir).await;
    assert!(
        node.gateway.services().fields.all().is_empty(),
        "left for good"
    );
    assert!(node.gateway.services().fields.disabled().is_empty());
    node.gateway.shutdown().await.unwrap();
}
