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
    assert!(
        proposed.contains("1 signature from members in good standing (2 needed): pending"),
        "{proposed}"
    );
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
    assert!(
        endorsed.contains("2 signatures from members in good standing (2 needed): committed"),
        "{endorsed}"
    );

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

    // The preview: who, standing, tiers, connection, records, countermeasures. A dry run
    // stops there; without a terminal and without --yes nothing is done either (exit 3).
    let bar = [
        "member",
        "revoke",
        newcomer.as_str(),
        "--field",
        short,
        "--reason",
        "misconduct",
    ];
    let dry = crate::tfcctl_against(&nodes[0], None, &[&bar[..], &["--dry-run"]].concat()).await;
    assert_eq!(dry.code, 0, "{}", dry.all());
    assert!(
        dry.stdout.contains("revoke: 1 organisation"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("株式会社テスト") && dry.stdout.contains("standing member"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("records in this field") && dry.stdout.contains("dry run: nothing"),
        "{}",
        dry.stdout
    );
    let unconfirmed = crate::tfcctl_against(&nodes[0], None, &bar).await;
    assert_eq!(unconfirmed.code, 3, "{}", unconfirmed.all());
    assert!(
        unconfirmed.stderr.contains("confirmation_required"),
        "{}",
        unconfirmed.all()
    );
    assert_eq!(
        nodes[0]
            .gateway
            .services()
            .governance
            .standing(&field, &newcomer),
        Some(StandingKind::Member),
        "nothing was proposed"
    );
    // A bulk list with one stranger in it: one preview, the whole batch refused.
    let list_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        list_file.path(),
        format!("# to revoke\n{newcomer}\n\n{stranger}\n"),
    )
    .unwrap();
    let list_path = list_file.path().display().to_string();
    let bulk = crate::tfcctl_against(
        &nodes[0],
        None,
        &[
            "member",
            "revoke",
            "--from-file",
            &list_path,
            "--field",
            short,
            "--reason",
            "batch",
            "--yes",
        ],
    )
    .await;
    assert_eq!(bulk.code, 1, "{}", bulk.all());
    assert!(
        bulk.stdout.contains("revoke: 2 organisations") && bulk.stdout.contains("CANNOT revoke"),
        "{}",
        bulk.stdout
    );
    assert!(
        bulk.all().contains("nothing was proposed"),
        "{}",
        bulk.all()
    );

    let revoked = tfcctl(&nodes[0], &[&bar[..], &["--yes"]].concat()).await;
    assert!(revoked.contains("committed (emergency path"), "{revoked}");
    // Every other member's gateway confirms it holds the revocation.
    let revocation = op_id(
        revoked
            .lines()
            .find(|line| line.starts_with("op "))
            .unwrap(),
    );
    // The other members hold it once its gossip reached them; then each confirms it.
    for member in &nodes[1..3] {
        let services = Arc::clone(member.gateway.services());
        let (field_id, op) = (field.clone(), revocation.clone());
        wait_until("a member holds the revocation", || {
            let held = services.governance.op(&field_id, &op).is_some();
            async move { held }
        })
        .await;
    }
    let status = tfcctl(
        &nodes[0],
        &[
            "member",
            "revocation-status",
            &revocation[..16],
            "--field",
            short,
        ],
    )
    .await;
    assert!(
        status.starts_with("2 of 2 members' gateways confirm"),
        "{status}"
    );
    assert!(
        status.contains("holds") && status.contains(&nodes[1].did),
        "{status}"
    );
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
        trusted.contains("trust-issuer") && trusted.contains("(2 needed): pending"),
        "{trusted}"
    );
    for node in nodes {
        node.gateway.shutdown().await.unwrap();
    }
}
