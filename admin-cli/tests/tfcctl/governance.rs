//! `tfcctl --gateway … member …` and the field governance commands against real gateways on
//! loopback: each prints the op id and its quorum progress, and the state they report is the
//! gateways' own. Every wait has a timeout.

use std::sync::Arc;

use tfc_gateway::governance::StandingKind;
use tfc_testkit::{Authorities, Node, start_governed_field, wait_until};

/// Runs `tfcctl --gateway <node's API> --data-dir <node's dir> <args>`; returns stdout.
async fn tfcctl(node: &Node, args: &[&str]) -> String {
    let run = crate::tfcctl_against(node, None, args).await;
    assert_eq!(run.code, 0, "tfcctl {args:?}\n{}", run.all());
    run.stdout
}

fn op_id(printed: &str) -> String {
    printed
        .split_whitespace()
        .nth(1)
        .expect("op <id> …")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_admitted_listed_and_revoked_through_tfcctl() {
    let authorities = Authorities::new();
    let manual: fn(String) -> String =
        |text| text.replace("endorse = \"auto\"", "endorse = \"manual\"");
    let (nodes, _) = start_governed_field(&authorities, &[manual; 4]).await;
    let field = nodes[0].field_id();
    let short = &field[..12];
    let newcomer = nodes[3].did.clone();

    let proposed = tfcctl(
        &nodes[0],
        &[
            "member",
            "propose-admit",
            &newcomer,
            "--field",
            short,
            "--reason",
            "qualified contractor",
        ],
    )
    .await;
    assert!(proposed.contains("admit"), "{proposed}");
    assert!(proposed.contains("1/2 signatures, pending"), "{proposed}");
    let id = op_id(&proposed);
    let second = Arc::clone(nodes[1].gateway.services());
    let field_id = field.clone();
    let held_id = id.clone();
    wait_until("the second founder holds the proposal", || {
        let held = second.governance.op(&field_id, &held_id).is_some();
        async move { held }
    })
    .await;
    let endorsed = tfcctl(
        &nodes[1],
        &["member", "endorse", &id[..16], "--field", short],
    )
    .await;
    assert!(endorsed.contains("2/2 signatures, committed"), "{endorsed}");

    let first = Arc::clone(nodes[0].gateway.services());
    let (field_id, member) = (field.clone(), newcomer.clone());
    wait_until("the first founder admits the newcomer", || {
        let standing = first.governance.standing(&field_id, &member);
        async move { standing == Some(StandingKind::Member) }
    })
    .await;
    let list: serde_json::Value = serde_json::from_str(
        &tfcctl(&nodes[0], &["member", "list", "--field", short, "--json"]).await,
    )
    .unwrap();
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|member| member["did"] == newcomer.as_str())
        .unwrap()
        .clone();
    assert_eq!(entry["admission"], "member", "{list}");
    let founders = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|member| member["admission"] == "founder")
        .count();
    assert_eq!(founders, 3, "{list}");

    // A mistyped or unknown DID is refused before anything is signed.
    let stranger =
        tfc_gateway::identity::KeyPair::generate(tfc_gateway::identity::KeyAlgorithm::Ed25519)
            .did();
    let args = [
        "member", "revoke", &stranger, "--field", short, "--reason", "typo",
    ];
    let refused = crate::tfcctl_against(&nodes[0], None, &args).await;
    assert_ne!(refused.code, 0, "{}", refused.all());
    assert!(refused.all().contains("not_a_member"), "{}", refused.all());
    let listed = tfcctl(&nodes[0], &["member", "list", "--field", short, "--json"]).await;
    assert!(!listed.contains(&stranger), "{listed}");

    let revoked = tfcctl(
        &nodes[0],
        &[
            "member",
            "revoke",
            &newcomer,
            "--field",
            short,
            "--reason",
            "misconduct",
        ],
    )
    .await;
    assert!(revoked.contains("committed (emergency path"), "{revoked}");
    let shown = tfcctl(&nodes[0], &["member", "show", &newcomer, "--field", short]).await;
    assert!(shown.contains("revoked"), "{shown}");
    assert!(
        shown.contains("admit") && shown.contains("revoke"),
        "{shown}"
    );

    let issuers = tfcctl(&nodes[0], &["field", "issuers", "--field", short]).await;
    assert!(issuers.contains(&authorities.bureau.did()), "{issuers}");
    let newcomer_issuer =
        tfc_gateway::identity::KeyPair::generate(tfc_gateway::identity::KeyAlgorithm::Ed25519)
            .did();
    let trusted = tfcctl(
        &nodes[0],
        &[
            "field",
            "trust-issuer",
            &newcomer_issuer,
            "--types",
            "CreditRatingCredential",
            "--name",
            "Second bureau",
            "--field",
            short,
        ],
    )
    .await;
    assert!(
        trusted.contains("trust-issuer") && trusted.contains("1/2 signatures, pending"),
        "{trusted}"
    );
    for node in nodes {
        node.gateway.shutdown().await.unwrap();
    }
}
