//! Four gateways form a field on loopback the way an operator would do it: `init`, keys and
//! credentials from `tfcctl`, a charter signed with `tfcctl field charter sign`, then through
//! each gateway's mutual-TLS API `tfcctl wallet import`, `field join` and `dial`. The gateways
//! run in this process, each with its own real TCP sockets and sled store. Every wait is on an
//! event, with a timeout.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use libp2p::PeerId;
use tfc_gateway::config::GatewayConfig;
use tfc_gateway::daemon::Gateway;
use tfc_gateway::handshake::GatewayEvent;
use tfc_gateway::init::{CONFIG_FILE, init};
use tokio::sync::broadcast;

const WAIT: Duration = Duration::from_secs(20);

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
    events: broadcast::Receiver<GatewayEvent>,
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
            events,
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

    /// Waits for this gateway's first verdict on each of `peers`, in whatever order the
    /// handshakes finish: the top tier, or the refusal code.
    async fn verdicts_on(&mut self, peers: &[PeerId]) -> Vec<Result<u8, String>> {
        let mut verdicts: std::collections::HashMap<PeerId, Result<u8, String>> =
            std::collections::HashMap::new();
        tokio::time::timeout(WAIT, async {
            while verdicts.len() < peers.len() {
                let (peer, verdict) = match self.events.recv().await {
                    Ok(GatewayEvent::PeerVerified { peer, record }) => {
                        (peer, Ok(record.tiers.values().copied().max().unwrap_or(0)))
                    }
                    Ok(GatewayEvent::PeerRefused { peer, code, .. }) => (peer, Err(code)),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => panic!("gateway stopped"),
                };
                if peers.contains(&peer) {
                    verdicts.entry(peer).or_insert(verdict);
                }
            }
        })
        .await
        .expect("timed out waiting for handshake verdicts");
        peers.iter().map(|peer| verdicts[peer].clone()).collect()
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
            "name = \"loopback subsidy field\"\nfounders = [\"{registrar}\"]\nquorum = 1\n\
             [[issuers]]\ndid = \"{registrar}\"\nname = \"Registrar\"\ntypes = [\"OrganizationIdentityCredential\"]\n\
             [[issuers]]\ndid = \"{bureau}\"\nname = \"Bureau\"\ntypes = [\"CreditRatingCredential\"]\n\
             [tiers.prescreening]\nrequire = [\"OrganizationIdentityCredential\", \"CreditRatingCredential\"]\n\
             constraints = [\"CreditRatingCredential.score >= 60\"]\n"
        ),
    )
    .unwrap();
    tfcctl(
        &work,
        &[
            "field",
            "charter",
            "sign",
            "field.toml",
            "--key",
            "registrar.pem",
        ],
    );
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
    let city = &mut orgs[0];
    assert_eq!(
        city.verdicts_on(&[a, b, c]).await,
        [Ok(1), Ok(1), Err("no_tier".into())]
    );
    assert_eq!(
        orgs[1].verdicts_on(&[city_id]).await[0],
        Ok(1),
        "A verifies the city too"
    );
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
    let party = std::sync::Arc::clone(orgs[1].gateway.party());
    tfc_testkit::wait_until("A holds the bureau's list", || {
        let held = party.status_list_summaries().len() == 1;
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
