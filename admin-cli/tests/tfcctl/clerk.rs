//! A screening clerk's day through `tfcctl`, with a clerk's own certificate: the inbox shows
//! an applicant, `tier explain` says what it lacks (by credential type), a refused data
//! request carries its rule trace and `data why` explains it, and the clerk admits the
//! applicant; a clerk may not revoke.

use tfc_gateway::spaces::Labels;
use tfc_testkit::{Authorities, Node};

use crate::{Run, tfcctl_against};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clerk_screens_explains_and_admits_an_applicant() {
    let authorities = Authorities::new();
    let city = Node::start_default().await;
    city.import_wallet(&authorities.tier2_wallet(&city.did))
        .await;
    let city_key = city.org_key();
    let charter = authorities.write_city_charter(&city);
    city.join(&charter).await;
    // The contractor has identity and credit (tier 1), no licence (tier 2).
    let contractor = Node::start_default().await;
    let number = tfc_testkit::next_corporate_number();
    contractor
        .import_wallet(&authorities.wallet(&contractor.did, &number, 80, None))
        .await;
    contractor.join(&charter).await;
    city.verdict_where(contractor.peer_id(), |record| {
        record.tiers.values().any(|tier| *tier >= 1)
    })
    .await;
    tfc_testkit::until_verified(&contractor, city.peer_id()).await;
    let field = city.field_id();
    let legal_name = format!("株式会社テスト{number}");

    // The clerk's own certificate, made by the admin with tfcctl.
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("hana");
    let issued = tfcctl_against(
        &city,
        None,
        &[
            "admin-cert",
            "issue",
            "--role",
            "clerk",
            "--name",
            "Hana Sato",
            "--out",
            &out.display().to_string(),
        ],
    )
    .await;
    assert_eq!(issued.code, 0, "{}", issued.all());
    let certificate = work.path().join("hana.pem").display().to_string();
    let key = work.path().join("hana-key.pem").display().to_string();
    let clerk = |args: &[&str]| {
        let mut full = vec!["--cert", certificate.as_str(), "--key", key.as_str()];
        full.extend_from_slice(args);
        let full: Vec<String> = full.into_iter().map(str::to_owned).collect();
        let city = &city;
        async move {
            let args: Vec<&str> = full.iter().map(String::as_str).collect();
            tfcctl_against(city, None, &args).await
        }
    };

    // 1. The inbox: one applicant to screen, named.
    let inbox: Run = clerk(&["inbox"]).await;
    assert_eq!(inbox.code, 0, "{}", inbox.all());
    // The session, as the clerk saw it (shown with --nocapture).
    eprintln!("$ tfcctl inbox\n{}", inbox.stdout);
    assert!(inbox.stdout.contains("application"), "{}", inbox.stdout);
    assert!(inbox.stdout.contains(&legal_name), "{}", inbox.stdout);
    assert!(
        inbox.stdout.contains("BusinessLicenseCredential"),
        "{}",
        inbox.stdout
    );

    // 2. Why tier 1: the licence is missing for tier 2, and nothing else.
    let explained = clerk(&["tier", "explain", &contractor.did, "--field", &field]).await;
    assert_eq!(explained.code, 0, "{}", explained.all());
    eprintln!("$ tfcctl tier explain DID --field F\n{}", explained.stdout);
    let text = &explained.stdout;
    assert!(
        text.contains(&legal_name) && text.contains("tier now 1"),
        "{text}"
    );
    assert!(text.contains("✓ OrganizationIdentityCredential"), "{text}");
    assert!(
        text.contains("tier 2: BusinessLicenseCredential")
            && text.contains("no BusinessLicenseCredential"),
        "{text}"
    );
    let json = clerk(&[
        "tier",
        "explain",
        &contractor.did,
        "--field",
        &field,
        "--json",
    ])
    .await;
    let explanation: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(explanation["did"], contractor.did.as_str());
    assert_eq!(
        explanation["report"]["tiers"][1]["requirements"][0]["status"],
        "missing"
    );
    assert!(
        explanation["report"]["nextChange"].is_i64(),
        "{explanation}"
    );
    let stranger =
        tfc_gateway::identity::KeyPair::generate(tfc_gateway::identity::KeyAlgorithm::Ed25519)
            .did();
    let unknown = clerk(&["tier", "explain", &stranger, "--field", &field]).await;
    assert_eq!(unknown.code, 1, "{}", unknown.all());
    assert!(unknown.stderr.contains("unknown_peer"), "{}", unknown.all());

    // 3. A refusal carries its rule trace, and `data why` shows what it rested on.
    let record = city
        .gateway
        .spaces()
        .put(
            "admin",
            &city_key,
            &city.did,
            &field,
            2,
            None,
            Labels {
                category: tfc_gateway::policy::Category::NonPersonal,
                value_level: tfc_gateway::policy::ValueLevel::Low,
                rights_holders: Default::default(),
                allowed_purposes: ["screening".to_owned()].into(),
                disclosure: [contractor.did.clone()].into(),
            },
            serde_json::json!({"notice": "審査基準"}),
            vec![],
        )
        .unwrap();
    let asked = tfcctl_against(
        &contractor,
        None,
        &[
            "data",
            "get",
            &record.id,
            "--field",
            &field,
            "--tier",
            "2",
            "--from",
            &city.did,
            "--purpose",
            "screening",
        ],
    )
    .await;
    assert_eq!(asked.code, 1, "{}", asked.all());
    let trace = asked.all();
    eprintln!("$ tfcctl data get ID --from CITY (as the contractor)\n{trace}");
    assert!(
        trace.contains("no policy permits this request") && trace.contains("you: tier 1"),
        "{trace}"
    );
    assert!(trace.contains("purpose \"screening\""), "{trace}");
    assert!(
        !trace.contains("審査基準"),
        "nothing of the record leaks: {trace}"
    );
    let why = clerk(&[
        "data",
        "why",
        "--peer",
        &contractor.did,
        "--field",
        &field,
        "--tier",
        "2",
        "--id",
        &record.id,
        "--purpose",
        "screening",
    ])
    .await;
    assert_eq!(why.code, 1, "{}", why.all());
    eprintln!(
        "$ tfcctl data why --peer DID --tier 2 --id ID --purpose screening\n{}",
        why.stdout
    );
    assert!(
        why.stdout.starts_with("DENIED") && why.stdout.contains("\"tier\":1"),
        "{}",
        why.stdout
    );
    assert!(
        why.stdout.contains("\"disclosure\""),
        "the operator sees the labels: {}",
        why.stdout
    );
    let allowed = clerk(&[
        "data",
        "why",
        "--peer",
        &contractor.did,
        "--field",
        &field,
        "--tier",
        "1",
        "--action",
        "list",
        "--purpose",
        "screening",
    ])
    .await;
    assert_eq!(allowed.code, 0, "{}", allowed.all());
    assert!(
        allowed.stdout.contains("space-access"),
        "{}",
        allowed.stdout
    );

    // 4. The clerk admits the applicant (quorum 1); the member list names it.
    let admitted = clerk(&[
        "member",
        "propose-admit",
        &contractor.did,
        "--field",
        &field,
        "--reason",
        "screened: tier 1",
    ])
    .await;
    assert_eq!(admitted.code, 0, "{}", admitted.all());
    eprintln!(
        "$ tfcctl member propose-admit DID --field F --reason …\n{}",
        admitted.stdout
    );
    assert!(
        admitted.stdout.contains("committed") && admitted.stdout.contains(&legal_name),
        "{}",
        admitted.stdout
    );
    let members = clerk(&["member", "list", "--field", &field]).await;
    eprintln!("$ tfcctl member list --field F\n{}", members.stdout);
    let line = members
        .stdout
        .lines()
        .find(|line| line.contains(&contractor.did))
        .unwrap_or_else(|| panic!("{}", members.stdout));
    assert!(
        line.contains("member") && line.contains("株式会社テスト"),
        "{line}"
    );
    let inbox = clerk(&["inbox"]).await;
    assert!(
        !inbox.stdout.contains(&contractor.did),
        "screened: {}",
        inbox.stdout
    );
    // A clerk admits; revoking takes an admin.
    let revoke = clerk(&[
        "member",
        "revoke",
        &contractor.did,
        "--field",
        &field,
        "--reason",
        "test",
        "--yes",
    ])
    .await;
    assert_eq!(revoke.code, 1, "{}", revoke.all());
    eprintln!(
        "$ tfcctl member revoke DID … --yes (as the clerk)\n{}",
        revoke.all()
    );
    assert!(
        revoke.stderr.contains("role_insufficient"),
        "{}",
        revoke.all()
    );
}
