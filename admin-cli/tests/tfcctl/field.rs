//! Four gateways form a field on loopback the way an operator would do it: `init`, keys and
//! credentials from `tfcctl`, a charter signed with `tfcctl field charter sign`, then through
//! each gateway's mutual-TLS API `tfcctl wallet import`, `field join` and `dial`. The gateways
//! run in this process, each with its own real TCP sockets and sled store. Every wait is on
//! state (a stored record, the gateway's journal of events), with a timeout.

use std::path::{Path, PathBuf};
use std::process::Command;

use libp2p::PeerId;
use tfc_gateway::config::GatewayConfig;
use tfc_gateway::daemon::Gateway;
use tfc_gateway::handshake::GatewayEvent;
use tfc_gateway::init::{CONFIG_FILE, KEY_FILE, init};
use tfc_gateway::localnet::{Journal, top_tier};

fn tfcctl(dir: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_tfcctl"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "tfcctl {args:?}\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

struct Org {
    dir: PathBuf,
    did: String,
    gateway: Gateway,
    journal: Journal,
}

impl Org {
    async fn start(dir: PathBuf) -> Self {
        let report = init(&dir, None).unwrap();
        let config_path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&config_path)
            .unwrap()
            .replace("/ip4/0.0.0.0/tcp/7400", "/ip4/127.0.0.1/tcp/0")
            .replace("127.0.0.1:7443", "127.0.0.1:0");
        std::fs::write(&config_path, text).unwrap();
        let (gateway, events) = Gateway::start(&GatewayConfig::load(&config_path).unwrap())
            .await
            .unwrap();
        Self {
            dir,
            did: report.did,
            gateway,
            journal: Journal::follow(events),
        }
    }

    /// Runs `tfcctl --gateway … <args>` against this org's API with its admin certificate.
    async fn admin(&self, work: &Path, args: &[&str]) -> String {
        let url = format!("https://localhost:{}", self.gateway.api_address().port());
        let mut full: Vec<String> = vec![
            "--gateway".into(),
            url,
            "--data-dir".into(),
            self.dir.display().to_string(),
        ];
        full.extend(args.iter().map(|arg| (*arg).to_owned()));
        let work = work.to_owned();
        tokio::task::spawn_blocking(move || {
            tfcctl(&work, &full.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .unwrap()
    }

    fn peer_id(&self) -> PeerId {
        self.gateway.network().peer_id()
    }

    /// Waits until this gateway's record of `peer` reaches `tier`.
    async fn until_tier(&self, peer: PeerId, tier: u8) {
        let services = std::sync::Arc::clone(self.gateway.services());
        tfc_testkit::wait_until(&format!("{peer} reaches tier {tier}"), || {
            let reached = services
                .peers
                .get(peer)
                .is_some_and(|record| top_tier(&record) == tier);
            async move { reached }
        })
        .await;
    }

    /// Waits until this gateway refused `peer`; returns the code.
    async fn refusal_of(&self, peer: PeerId) -> String {
        tfc_testkit::wait_event(&self.journal, |event| match event {
            GatewayEvent::PeerRefused { peer: p, code, .. } if *p == peer => Some(code.clone()),
            _ => None,
        })
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_gateways_form_a_field_through_the_admin_tools() {
    let root = tempfile::tempdir().unwrap();
    let work = root.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let mut orgs = Vec::new();
    for name in ["city", "a", "b", "c"] {
        orgs.push(Org::start(root.path().join(name)).await);
    }
    // Issuers and the charter, with the offline tools.
    let registrar = tfcctl(&work, &["key", "generate", "--out", "registrar.pem"])
        .trim()
        .to_owned();
    let bureau = tfcctl(
        &work,
        &["key", "generate", "--out", "bureau.pem", "--alg", "p256"],
    )
    .trim()
    .to_owned();
    std::fs::write(
        work.join("field.toml"),
        format!(
            "name = \"loopback subsidy field\"\nfounders = [\"{registrar}\", \"{city}\"]\n\
             admins = [\"{city}\"]\nquorum = 1\napplications = \"open\"\n\
             [[issuers]]\ndid = \"{registrar}\"\nname = \"Registrar\"\ntypes = [\"OrganizationIdentityCredential\"]\n\
             [[issuers]]\ndid = \"{bureau}\"\nname = \"Bureau\"\ntypes = [\"CreditRatingCredential\"]\n\
             [tiers.prescreening]\nrequire = [\"OrganizationIdentityCredential\", \"CreditRatingCredential\"]\n\
             constraints = [\"CreditRatingCredential.score >= 60\"]\n\
             [disclosure]\nCreditRatingCredential = [\"verified\"]\n",
            city = orgs[0].did
        ),
    )
    .unwrap();
    // The city co-founds the field: it screens the applicants.
    let city_key = orgs[0].dir.join(KEY_FILE);
    for key in [city_key.to_str().unwrap(), "registrar.pem"] {
        tfcctl(
            &work,
            &["field", "charter", "sign", "field.toml", "--key", key],
        );
    }
    // One corporate number per organisation: a number bound to two DIDs is refused.
    let numbers = [
        "7000012050002",
        "9010401123456",
        "1120001054321",
        "5011001020304",
    ];
    for (index, org) in orgs.iter().enumerate() {
        std::fs::write(
            work.join("identity.json"),
            format!(r#"{{"corporateNumber":"{}","legalName":"株式会社テスト","address":"東京都","representative":"山田"}}"#, numbers[index]),
        )
        .unwrap();
        // c has a weak credit score: it reaches no tier.
        let score = if index == 3 { 40 } else { 80 };
        std::fs::write(
            work.join("credit.json"),
            format!(r#"{{"grade":"B","score":{score},"assessedOn":"2026-04-01"}}"#),
        )
        .unwrap();
        tfcctl(
            &work,
            &[
                "credential",
                "issue",
                "--issuer-key",
                "registrar.pem",
                "--type",
                "OrganizationIdentityCredential",
                "--subject",
                &org.did,
                "--claims",
                "identity.json",
                "--out",
                "id.jwt",
            ],
        );
        tfcctl(
            &work,
            &[
                "credential",
                "issue",
                "--issuer-key",
                "bureau.pem",
                "--type",
                "CreditRatingCredential",
                "--subject",
                &org.did,
                "--claims",
                "credit.json",
                "--out",
                "credit.jwt",
            ],
        );
        org.admin(&work, &["wallet", "import", "id.jwt"]).await;
        org.admin(&work, &["wallet", "import", "credit.jwt"]).await;
        let joined = org.admin(&work, &["field", "join", "field.toml"]).await;
        assert!(
            joined.starts_with("joined loopback subsidy field"),
            "{joined}"
        );
    }
    // Everyone dials the city.
    let status: serde_json::Value =
        serde_json::from_str(&orgs[0].admin(&work, &["status", "--json"]).await).unwrap();
    let city_address = format!(
        "{}/p2p/{}",
        status["listen"][0].as_str().unwrap(),
        status["peerId"].as_str().unwrap()
    );
    for org in &orgs[1..] {
        org.admin(&work, &["dial", &city_address]).await;
    }
    let (a, b, c) = (orgs[1].peer_id(), orgs[2].peer_id(), orgs[3].peer_id());
    let city_id = orgs[0].peer_id();
    orgs[0].until_tier(a, 1).await;
    orgs[0].until_tier(b, 1).await;
    assert_eq!(orgs[0].refusal_of(c).await, "no_tier");
    // A verifies the city too: the charter shows credit to every verified peer.
    orgs[1].until_tier(city_id, 1).await;
    // The city's view, through the API.
    let peers: serde_json::Value =
        serde_json::from_str(&orgs[0].admin(&work, &["peers", "--json"]).await).unwrap();
    let tiers: Vec<u64> = peers
        .as_array()
        .unwrap()
        .iter()
        .map(|peer| {
            peer["tiers"]
                .as_object()
                .unwrap()
                .values()
                .map(|t| t.as_u64().unwrap())
                .max()
                .unwrap()
        })
        .collect();
    assert_eq!(
        tiers.iter().filter(|tier| **tier == 1).count(),
        2,
        "{peers}"
    );
    assert_eq!(
        tiers.iter().filter(|tier| **tier == 0).count(),
        1,
        "{peers}"
    );
    // Who has seen the city's credit rating? A and B, verified; never C, refused.
    let seen: serde_json::Value = serde_json::from_str(
        &orgs[0]
            .admin(
                &work,
                &[
                    "disclosures",
                    "--type",
                    "CreditRatingCredential",
                    "--direction",
                    "sent",
                    "--json",
                ],
            )
            .await,
    )
    .unwrap();
    let shown_to: std::collections::BTreeSet<&str> = seen
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| {
            entry["presented"]
                .as_array()
                .is_some_and(|types| types.iter().any(|t| t == "CreditRatingCredential"))
        })
        .map(|entry| entry["peer"].as_str().unwrap())
        .collect();
    assert_eq!(
        shown_to,
        [orgs[1].did.as_str(), orgs[2].did.as_str()].into(),
        "{seen}"
    );
    for entry in seen.as_array().unwrap() {
        assert_eq!(entry["purpose"], "tier-evaluation");
        assert!(entry["evidence"].as_str().unwrap().split('.').count() == 3);
        assert!(
            !entry.to_string().contains("\"score\""),
            "no claim value in the log: {entry}"
        );
    }
    // What C presented to the city, from C, and the table and the export.
    let from_c = orgs[0]
        .admin(&work, &["disclosures", "--to", &orgs[3].did])
        .await;
    assert!(from_c.contains("from"), "{from_c}");
    let export = orgs[0]
        .admin(
            &work,
            &[
                "disclosures",
                "--since",
                "2020-01-01T00:00:00Z",
                "--export",
                "-",
            ],
        )
        .await;
    assert!(export.lines().count() >= 4, "{export}");
    for line in export.lines().filter(|line| !line.is_empty()) {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
    // The bureau's status list, handed to the city's gateway, reaches A by gossip.
    tfcctl(
        &work,
        &[
            "status-list",
            "create",
            "--issuer-key",
            "bureau.pem",
            "--id",
            "https://bureau.example/status/1",
            "--out",
            "list.jwt",
        ],
    );
    let imported = orgs[0]
        .admin(&work, &["status-list", "import", "list.jwt"])
        .await;
    assert!(imported.starts_with("taken and gossiped:"), "{imported}");
    let again = orgs[0]
        .admin(&work, &["status-list", "import", "list.jwt"])
        .await;
    assert!(again.starts_with("already held:"), "{again}");
    let services = std::sync::Arc::clone(orgs[1].gateway.services());
    tfc_testkit::wait_until("A holds the bureau's list", || {
        let held = services.status_list_summaries().len() == 1;
        async move { held }
    })
    .await;
    let listed: serde_json::Value = serde_json::from_str(
        &orgs[1]
            .admin(&work, &["status-list", "list", "--json"])
            .await,
    )
    .unwrap();
    assert_eq!(listed[0]["id"], "https://bureau.example/status/1");
    for org in orgs {
        org.gateway.shutdown().await.unwrap();
    }
}
