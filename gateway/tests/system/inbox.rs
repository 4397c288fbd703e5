//! The inbox through the API: what each scenario leaves for its operators, and each kind of
//! item (an op waiting for our signature with its k-of-n progress and reachability, an
//! expiring credential of ours, a member's stale status list), filtered by role.

use serde_json::Value;
use tfc_gateway::credential::{StatusEntry, StatusPurpose, now_unix};
use tfc_gateway::demo::{Scenario, play_quietly};
use tfc_gateway::exchange::OpDraft;
use tfc_gateway::governance::OpKind;
use tfc_gateway::identity::{KeyAlgorithm, KeyPair};
use tfc_gateway::roles::Role;
use tfc_gateway::tls::{TlsFiles, issue_operator};
use tfc_testkit::{Authorities, Node, until_all_verified};

use crate::common::client;

/// The inbox of the gateway whose data directory is `dir`, as an operator with `role`;
/// `None` if the role may not read it.
async fn inbox_as(dir: &std::path::Path, port: u16, role: Role) -> Option<Vec<Value>> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        let files = TlsFiles::under(&dir);
        let certificate = dir.join(format!("inbox-{role}.pem"));
        let key = dir.join(format!("inbox-{role}-key.pem"));
        if !key.exists() {
            let issued =
                issue_operator(&files, role, &format!("{role} of the inbox test")).unwrap();
            std::fs::write(&certificate, issued.certificate).unwrap();
            tfc_gateway::secret_file::create_private(&key, issued.key.as_bytes()).unwrap();
        }
        let operator = client(&files.ca_cert, Some((&certificate, &key)));
        let answer = operator
            .get(format!("https://localhost:{port}/v1/inbox"))
            .send()
            .unwrap();
        match answer.status().as_u16() {
            200 => Some(answer.json::<Vec<Value>>().unwrap()),
            403 => None,
            other => panic!("the inbox answered {other}"),
        }
    })
    .await
    .unwrap()
}

async fn inbox(dir: &std::path::Path, port: u16, role: Role) -> Vec<Value> {
    inbox_as(dir, port, role)
        .await
        .expect("the role reads the inbox")
}

fn kinds(items: &[Value]) -> Vec<&str> {
    items
        .iter()
        .map(|item| item["kind"].as_str().unwrap())
        .collect()
}

async fn scenario_inbox(scenario: Scenario, owner: usize) -> (Vec<Value>, Vec<Value>) {
    let root = tempfile::tempdir().unwrap();
    let played = play_quietly(scenario, root.path())
        .await
        .expect("the scenario plays");
    assert!(played.report.all_as_expected, "{:?}", played.report.steps);
    let (_, gateway) = &played.gateways[owner];
    let port = gateway.gateway.api_address().port();
    let operator = inbox(&gateway.dir, port, Role::Operator).await;
    let clerk = inbox(&gateway.dir, port, Role::Clerk).await;
    for (_, gateway) in played.gateways {
        gateway.gateway.shutdown().await.unwrap();
    }
    (operator, clerk)
}

fn oldest_first(items: &[Value]) {
    let since: Vec<i64> = items
        .iter()
        .map(|item| item["sinceSecs"].as_i64().unwrap())
        .collect();
    let mut sorted = since.clone();
    sorted.sort_unstable();
    assert_eq!(since, sorted, "oldest first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_housing_city_is_asked_to_decide_the_block_against_c() {
    let (operator, clerk) = scenario_inbox(Scenario::HousingSubsidy, 0).await;
    let countermeasure = operator
        .iter()
        .find(|item| item["kind"] == "countermeasure")
        .unwrap_or_else(|| panic!("{operator:?}"));
    assert!(
        countermeasure["summary"]
            .as_str()
            .unwrap()
            .contains("block-peer"),
        "{countermeasure}"
    );
    assert!(
        countermeasure["act"]
            .as_str()
            .unwrap()
            .starts_with("tfcctl threat apply")
    );
    oldest_first(&operator);
    // A clerk's inbox leaves the countermeasure to the operator.
    assert!(!kinds(&clerk).contains(&"countermeasure"), "{clerk:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supply_chain_registrar_is_asked_to_decide_the_vulnerability_mark() {
    let (operator, clerk) = scenario_inbox(Scenario::SupplyChain, 1).await;
    let countermeasure = operator
        .iter()
        .find(|item| item["kind"] == "countermeasure")
        .unwrap_or_else(|| panic!("{operator:?}"));
    let summary = countermeasure["summary"].as_str().unwrap();
    assert!(
        summary.contains("mark-vulnerable") && summary.contains("openssl"),
        "{summary}"
    );
    oldest_first(&operator);
    assert!(!kinds(&clerk).contains(&"countermeasure"), "{clerk:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_to_sign_expiring_credentials_and_stale_status_lists_reach_the_inbox() {
    let authorities = Authorities::new();
    // The third member's licence points at a status list no one has imported here.
    let stale_list = "https://registrar.example/status/never-imported";
    let mut nodes = Vec::new();
    for index in 0..3 {
        let node = Node::start_default().await;
        let licence_status = if index == 2 {
            vec![StatusEntry::new(stale_list, StatusPurpose::Revocation, 7)]
        } else {
            vec![]
        };
        let wallet = authorities.wallet(
            &node.did,
            &tfc_testkit::next_corporate_number(),
            80,
            Some((now_unix() + 365 * 86_400, licence_status)),
        );
        node.import_wallet(&wallet).await;
        nodes.push(node);
    }
    tfc_testkit::found_field(&authorities, &nodes, nodes.len()).await;
    until_all_verified(&nodes).await;
    let field = nodes[0].field_id();
    // An op waiting for our signature: node 1 proposes admitting a newcomer (quorum 2).
    let newcomer = KeyPair::generate(KeyAlgorithm::Ed25519).did();
    let proposed = nodes[1]
        .gateway
        .publisher()
        .propose(
            &field,
            OpDraft {
                kind: OpKind::Admit,
                target: newcomer.clone(),
                reason: "inbox test".into(),
                types: vec![],
                policy: None,
            },
        )
        .await
        .unwrap();
    let services = std::sync::Arc::clone(nodes[0].gateway.services());
    let (held_field, held_id) = (field.clone(), proposed.id.clone());
    tfc_testkit::wait_until("node 0 holds the proposal", || {
        let held = services.governance.op(&held_field, &held_id).is_some();
        async move { held }
    })
    .await;
    // A credential of ours that expires in ten days.
    let soon = now_unix() + 10 * 86_400;
    let expiring = Authorities::issue(
        &authorities.registrar,
        &nodes[0].did,
        "BusinessLicenseCredential",
        serde_json::json!({"licenseNumber": "国土交通大臣許可(般-6)第2号", "authority": "MLIT",
                           "kind": "general", "trades": ["建築工事業"], "validUntil": "2027-01-01"}),
        soon,
        vec![],
    );
    nodes[0].import_wallet(&[expiring]).await;
    let member = &nodes[2];
    let port = nodes[0].gateway.api_address().port();
    let dir = nodes[0].dir.path().to_owned();
    // Every item's state is there already: node 0 judged the member (its records hold the
    // licence), holds the proposal, and imported the credential.
    let items = inbox(&dir, port, Role::Admin).await;
    let op = items
        .iter()
        .find(|item| item["kind"] == "governance_op")
        .unwrap_or_else(|| panic!("{items:?}"));
    let summary = op["summary"].as_str().unwrap();
    assert!(
        summary.contains("admit") && summary.contains("1 of 2 signatures"),
        "{summary}"
    );
    assert!(
        !summary.contains("cannot reach"),
        "two members have yet to sign: {summary}"
    );
    let credential = items
        .iter()
        .find(|item| item["kind"] == "credential_expiring")
        .unwrap_or_else(|| panic!("{items:?}"));
    assert!(
        credential["summary"]
            .as_str()
            .unwrap()
            .contains("BusinessLicenseCredential expires")
    );
    let stale = items
        .iter()
        .find(|item| item["kind"] == "status_list_stale")
        .unwrap_or_else(|| panic!("no stale status list in {items:?}"));
    assert_eq!(stale["subject"], member.did.as_str());
    assert!(
        stale["summary"].as_str().unwrap().contains(stale_list),
        "{stale}"
    );
    oldest_first(&items);
    // Nothing waits for a viewer: the inbox is a clerk's and up.
    assert!(inbox_as(&dir, port, Role::Viewer).await.is_none());
    for node in nodes {
        node.gateway.shutdown().await.unwrap();
    }
}
