//! Fixtures for tests that run several gateways: the authorities of a field (a registrar that
//! also licenses, and a credit bureau), signed charters, credentials, and [`Node`], a real
//! gateway (`init`, then [`Gateway::start`]) on 127.0.0.1 with ephemeral ports and its own
//! sled store. Every wait is on state (a stored record, a standing, the node's journal of
//! events since it started), with a timeout: never on an event another wait may have taken.
//!
//! Test code: failures here panic with a message, which is what a test wants.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use serde_json::json;
use tfc_gateway::charter::Charter;
use tfc_gateway::credential::{
    CredentialDraft, StatusEntry, StatusList, StatusPurpose, issue_credential, now_unix,
};
use tfc_gateway::daemon::Gateway;
use tfc_gateway::handshake::GatewayEvent;
use tfc_gateway::identity::{KeyAlgorithm, KeyPair};
use tfc_gateway::localnet::{self, Journal, LocalGateway};
use tfc_gateway::net::Command;
use tfc_gateway::services::PeerRecord;
use tfc_gateway::threats::{ActionKind, Countermeasure, IndicatorDraft, Severity, Tlp, compose};

pub use tfc_gateway::localnet::{WAIT, top_tier};

pub mod wire;

/// A valid 法人番号 for `index`: twelve digits and their check digit.
pub fn corporate_number(index: u64) -> String {
    let base = format!("{:012}", 100_000_000_000 + index);
    let check = tfc_schemas::corporate_number_check_digit(&base).expect("twelve digits");
    format!("{check}{base}")
}

/// A fresh corporate number, distinct within the test process.
pub fn next_corporate_number() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    corporate_number(NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The issuers of a test field and the directory its charter is written to.
pub struct Authorities {
    /// Issues identities and business licences; founds the field.
    pub registrar: KeyPair,
    /// Issues credit ratings.
    pub bureau: KeyPair,
    /// Where charters are written.
    pub dir: tempfile::TempDir,
}

impl Default for Authorities {
    fn default() -> Self {
        Self::new()
    }
}

impl Authorities {
    /// New keys and an empty directory.
    pub fn new() -> Self {
        Self {
            registrar: KeyPair::generate(KeyAlgorithm::Ed25519),
            bureau: KeyPair::generate(KeyAlgorithm::Ed25519),
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// The charter text: tier 1 needs identity and credit (score ≥ 60), tier 2 a licence.
    /// Open to applications (its founders and admins screen applicants), and every type is
    /// shown to peers verified in the field (a software inventory to founders and admins
    /// only), so that members judge each other in full.
    /// `extra` is added among the top-level keys (bootstrap addresses, a policy).
    pub fn charter_text(&self, extra: &str) -> String {
        format!(
            "name = \"loopback field\"\nfounders = [\"{registrar}\"]\nquorum = 1\napplications = \"open\"\n{extra}\n\
             [[issuers]]\ndid = \"{registrar}\"\nname = \"Registrar\"\ntypes = [\"OrganizationIdentityCredential\", \"BusinessLicenseCredential\"]\n\
             [[issuers]]\ndid = \"{bureau}\"\nname = \"Bureau\"\ntypes = [\"CreditRatingCredential\"]\n\
             [tiers.prescreening]\nrequire = [\"OrganizationIdentityCredential\", \"CreditRatingCredential\"]\nconstraints = [\"CreditRatingCredential.score >= 60\"]\n\
             [tiers.certification]\nrequire = [\"BusinessLicenseCredential\"]\n\
             [disclosure]\nOrganizationIdentityCredential = [\"verified\"]\nCreditRatingCredential = [\"verified\"]\nBusinessLicenseCredential = [\"verified\"]\n\
             SecurityCertificationCredential = [\"verified\"]\nSoftwareInventoryCredential = [\"founders\", \"admins\"]\n",
            registrar = self.registrar.did(),
            bureau = self.bureau.did()
        )
    }

    /// Writes a charter whose founders are `founders` (gateway org keys), with `admins`,
    /// `quorum` and `extra` lines, signed by every founder; returns its path. The tiers and
    /// issuers are those of [`Self::charter_text`].
    pub fn write_governed_charter(
        &self,
        name: &str,
        founders: &[&KeyPair],
        admins: &[String],
        quorum: &str,
        extra: &str,
    ) -> PathBuf {
        let quoted = |dids: Vec<String>| {
            dids.iter()
                .map(|did| format!("\"{did}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let founder_dids = quoted(founders.iter().map(|key| key.did()).collect());
        let text = self
            .charter_text(&format!("admins = [{}]\n{extra}", quoted(admins.to_vec())))
            .replacen(
                &format!("founders = [\"{}\"]\nquorum = 1", self.registrar.did()),
                &format!("founders = [{founder_dids}]\nquorum = {quorum}"),
                1,
            );
        let mut signed = text.clone();
        for founder in founders {
            let charter = Charter::parse(&signed, self.dir.path()).expect("charter parses");
            signed.push_str(&charter.sign(founder).expect("founder signs"));
        }
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, signed).expect("charter written");
        path
    }

    /// Writes the city's field `field.toml`: the city founds it alone (quorum 1, its bootstrap
    /// peer) with the example housing-subsidy policy; returns its path.
    pub fn write_city_charter(&self, city: &Node) -> PathBuf {
        std::fs::write(
            self.dir.path().join("policy.cedar"),
            include_str!("../../../config/policies/housing-subsidy.cedar"),
        )
        .expect("policy written");
        self.write_governed_charter(
            "field",
            &[&city.org_key()],
            std::slice::from_ref(&city.did),
            "1",
            &format!(
                "policy = \"policy.cedar\"\n{}",
                Self::bootstrap_line(std::slice::from_ref(&city.address))
            ),
        )
    }

    /// Writes the charter, signed by the founder, as `<name>.toml`; returns its path.
    pub fn write_charter(&self, name: &str, extra: &str) -> PathBuf {
        let text = self.charter_text(extra);
        let signature = Charter::parse(&text, self.dir.path())
            .expect("charter parses")
            .sign(&self.registrar)
            .expect("founder signs");
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, format!("{text}{signature}")).expect("charter written");
        path
    }

    /// A bootstrap line for [`Self::write_charter`]'s `extra`.
    pub fn bootstrap_line(addresses: &[Multiaddr]) -> String {
        let quoted: Vec<String> = addresses
            .iter()
            .map(|address| format!("\"{address}\""))
            .collect();
        format!("bootstrap = [{}]", quoted.join(", "))
    }

    /// A credential valid from a day ago until `valid_until`.
    pub fn issue(
        issuer: &KeyPair,
        holder: &str,
        type_name: &str,
        claims: serde_json::Value,
        valid_until: i64,
        status: Vec<StatusEntry>,
    ) -> String {
        let now = now_unix();
        let draft = CredentialDraft {
            type_name: type_name.into(),
            subject: holder.into(),
            claims: claims.as_object().cloned().expect("claims are an object"),
            valid_from: now - 86_400,
            valid_until: Some(valid_until),
            status,
        };
        issue_credential(issuer, &draft, now).expect("credential issued")
    }

    /// Identity and credit (tier 1), plus a licence (tier 2) if `licence` gives its end of
    /// validity and status entries.
    pub fn wallet(
        &self,
        holder: &str,
        corporate_number: &str,
        score: i64,
        licence: Option<(i64, Vec<StatusEntry>)>,
    ) -> Vec<String> {
        let year = now_unix() + 365 * 86_400;
        let mut wallet = vec![
            Self::issue(
                &self.registrar,
                holder,
                "OrganizationIdentityCredential",
                json!({"corporateNumber": corporate_number,
                       "legalName": format!("株式会社テスト{corporate_number}"),
                       "address": "東京都千代田区", "representative": "山田太郎"}),
                year,
                vec![],
            ),
            Self::issue(
                &self.bureau,
                holder,
                "CreditRatingCredential",
                json!({"grade": "B", "score": score, "assessedOn": "2026-04-01"}),
                year,
                vec![],
            ),
        ];
        if let Some((until, status)) = licence {
            wallet.push(Self::issue(
                &self.registrar,
                holder,
                "BusinessLicenseCredential",
                json!({"licenseNumber": "国土交通大臣許可(般-6)第1号", "authority": "MLIT",
                       "kind": "general", "trades": ["建築工事業"], "validUntil": "2029-03-31"}),
                until,
                status,
            ));
        }
        wallet
    }

    /// A tier-2 wallet with a licence valid for a year.
    pub fn tier2_wallet(&self, holder: &str) -> Vec<String> {
        let year = now_unix() + 365 * 86_400;
        self.wallet(holder, &next_corporate_number(), 80, Some((year, vec![])))
    }

    /// The registrar's revocation list `id`, issued at `issued_at`, with `revoked` set.
    pub fn revocation_list(&self, id: &str, issued_at: i64, revoked: &[usize]) -> String {
        let mut list = StatusList::new(
            id,
            &self.registrar.did(),
            StatusPurpose::Revocation,
            0,
            issued_at,
        );
        for index in revoked {
            list.set(*index, true).expect("index within the list");
        }
        list.issue(&self.registrar).expect("list signed")
    }
}

/// A real gateway on loopback.
pub struct Node {
    /// Its data directory (keys, TLS, config, store).
    pub dir: tempfile::TempDir,
    /// Its DID.
    pub did: String,
    /// The running gateway.
    pub gateway: Gateway,
    /// Its handshake events since it started.
    pub journal: Journal,
    /// Its libp2p listen address (with `/p2p/<PeerId>`).
    pub address: Multiaddr,
}

impl Node {
    /// `init`s a data directory, points it at ephemeral loopback ports, lets `configure`
    /// edit the config text, and starts the gateway.
    pub async fn start(configure: impl FnOnce(String) -> String) -> Self {
        init_logs();
        let dir = tempfile::tempdir().expect("temp dir");
        let local = LocalGateway::start(dir.path(), configure)
            .await
            .expect("gateway starts");
        Self::from_local(dir, local)
    }

    fn from_local(dir: tempfile::TempDir, local: LocalGateway) -> Self {
        Self {
            dir,
            did: local.did,
            gateway: local.gateway,
            journal: local.journal,
            address: local.address,
        }
    }

    /// The organisation key, as `init` wrote it.
    pub fn org_key(&self) -> KeyPair {
        KeyPair::load(&self.dir.path().join(tfc_gateway::init::KEY_FILE)).expect("org key")
    }

    /// Stops the gateway, keeping its data directory for [`Node::resume`].
    pub async fn stop(self) -> tempfile::TempDir {
        self.gateway.shutdown().await.expect("gateway stops");
        self.dir
    }

    /// Starts a gateway again on a data directory [`Node::stop`] kept (new ports).
    pub async fn resume(dir: tempfile::TempDir) -> Self {
        let local = LocalGateway::resume(dir.path())
            .await
            .expect("gateway restarts");
        Self::from_local(dir, local)
    }

    /// The standing of `did` in the (only) field this gateway joined.
    pub fn standing(&self, did: &str) -> Option<tfc_gateway::governance::StandingKind> {
        let services = self.gateway.services();
        let field = services.fields.all().first()?.charter.field_id();
        services.governance.standing(&field, did)
    }

    /// The id of the (only) field this gateway joined.
    pub fn field_id(&self) -> String {
        self.gateway.services().fields.all()[0].charter.field_id()
    }

    /// A gateway with the default configuration.
    pub async fn start_default() -> Self {
        Self::start(|text| text).await
    }

    /// Its PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.gateway.network().peer_id()
    }

    /// Imports credentials into its wallet (as `tfcctl wallet import` does).
    pub async fn import_wallet(&self, tokens: &[String]) {
        for token in tokens {
            self.gateway
                .services()
                .import_credential(token)
                .await
                .expect("credential imported");
        }
    }

    /// Joins the field whose charter is at `charter` (as `tfcctl field join` does).
    pub async fn join(&self, charter: &Path) {
        self.gateway
            .join_field(charter)
            .await
            .expect("field joined");
    }

    /// Waits until this gateway's record of `peer` satisfies `accept`; returns it.
    pub async fn verdict_where(
        &self,
        peer: PeerId,
        accept: impl Fn(&PeerRecord) -> bool,
    ) -> PeerRecord {
        let services = std::sync::Arc::clone(self.gateway.services());
        let mut last = None;
        let waited = localnet::wait_until(
            &format!("{} judges {peer}", self.did),
            Duration::from_millis(20),
            || {
                last = services.peers.get(peer);
                let done = last.as_ref().is_some_and(&accept);
                async move { done }
            },
        )
        .await;
        match (waited, last) {
            (Ok(()), Some(record)) => record,
            // The record as it stood says how far the judging got.
            (_, last) => panic!(
                "timed out after {WAIT:?}: {} judges {peer}; its record then: {:?}",
                self.did,
                last.map(|record| (record.tiers, record.evaluated_at))
            ),
        }
    }

    /// The fields whose gossip this gateway runs with `peer` (its subscriptions there are
    /// known): a message published in a field reaches `peer` directly only then.
    pub async fn mesh_fields(&self, peer: PeerId) -> std::collections::BTreeSet<String> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.gateway
            .network()
            .send(Command::MeshFields(peer, reply))
            .await
            .expect("the network task runs");
        answer.await.expect("the network task answers")
    }

    /// Waits until this gateway refused `peer` (at any time since it started); returns the
    /// code and the message.
    pub async fn refusal_of(&self, peer: PeerId) -> (String, String) {
        wait_event(&self.journal, |event| match event {
            GatewayEvent::PeerRefused {
                peer: p,
                code,
                message,
            } if *p == peer => Some((code.clone(), message.clone())),
            _ => None,
        })
        .await
    }

    /// The first event since the gateway started that `pick` maps to a value.
    pub async fn event<T>(&self, pick: impl Fn(&GatewayEvent) -> Option<T>) -> T {
        wait_event(&self.journal, pick).await
    }
}

/// Starts one gateway per `configs` entry, each with a tier-2 wallet, and has them all join
/// a field founded by the first three (the first is its admin, quorum 2, and its bootstrap
/// peer); the others are applicants the founders screen. Returns the nodes and the
/// charter; their handshakes are still under way.
pub async fn start_governed_field(
    authorities: &Authorities,
    configs: &[fn(String) -> String],
) -> (Vec<Node>, PathBuf) {
    start_field_founded_by(authorities, configs, 3).await
}

/// Like [`start_governed_field`], with every gateway a founder: a field of members that all
/// verify each other, for tests of what members do together.
pub async fn start_member_field(
    authorities: &Authorities,
    configs: &[fn(String) -> String],
) -> (Vec<Node>, PathBuf) {
    start_field_founded_by(authorities, configs, configs.len()).await
}

async fn start_field_founded_by(
    authorities: &Authorities,
    configs: &[fn(String) -> String],
    founders: usize,
) -> (Vec<Node>, PathBuf) {
    assert!(configs.len() >= 3, "a governed field has three founders");
    let mut nodes = Vec::new();
    for configure in configs {
        let node = Node::start(configure).await;
        node.import_wallet(&authorities.tier2_wallet(&node.did))
            .await;
        nodes.push(node);
    }
    let charter = found_field(authorities, &nodes, founders).await;
    (nodes, charter)
}

/// Writes a charter founded by the first `founders` of `nodes` (the first one its admin,
/// quorum 2, bootstrapping from it), and has every node join it; returns its path.
pub async fn found_field(authorities: &Authorities, nodes: &[Node], founders: usize) -> PathBuf {
    let keys: Vec<_> = nodes[..founders].iter().map(Node::org_key).collect();
    let charter = authorities.write_governed_charter(
        "field",
        &keys.iter().collect::<Vec<_>>(),
        std::slice::from_ref(&nodes[0].did),
        "2",
        &Authorities::bootstrap_line(std::slice::from_ref(&nodes[0].address)),
    );
    for node in nodes {
        node.join(&charter).await;
    }
    charter
}

/// Waits until `node` has verified `peer` with a tier (its peer record says so): for
/// whoever needs the record itself, whichever handshake event came first.
pub async fn until_verified(node: &Node, peer: PeerId) {
    node.verdict_where(peer, |record| top_tier(record) >= 1)
        .await;
}

/// Waits until every node has verified every other: a member a gateway has not verified is
/// not a member there (its gossip is refused).
pub async fn until_all_verified(nodes: &[Node]) {
    for node in nodes {
        for other in nodes.iter().filter(|other| other.did != node.did) {
            until_verified(node, other.peer_id()).await;
        }
    }
}

/// Waits until every node runs the gossip of `field` with every other, both ways: a
/// verified member's subscriptions arrive a moment after its verdict, and what is published
/// before they do reaches it only by gossipsub's short IHAVE window.
pub async fn until_all_meshed(nodes: &[Node], field: &str) {
    for node in nodes {
        for other in nodes.iter().filter(|other| other.did != node.did) {
            let peer = other.peer_id();
            wait_until(
                &format!("{} meshes with {} in {field}", node.did, other.did),
                || async move { node.mesh_fields(peer).await.contains(field) },
            )
            .await;
        }
    }
}

/// Sends gateway logs to the test output, filtered by `RUST_LOG` (nothing by default).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Waits for the first event since the gateway started that `pick` maps to a value.
pub async fn wait_event<T>(journal: &Journal, pick: impl Fn(&GatewayEvent) -> Option<T>) -> T {
    journal
        .wait_from(0, "a gateway event", pick)
        .await
        .expect("the awaited gateway event")
        .1
}

/// Waits until `condition` holds, checking every 20 ms: for state with no event of its own
/// (counters, scores). Panics with `what` after [`WAIT`].
pub async fn wait_until<F, Fut>(what: &str, condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    localnet::wait_until(what, Duration::from_millis(20), condition)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
}

/// A gateway with a tier-2 wallet that founds and administers a field of its own (quorum 1),
/// for runs that need one member and its admin powers.
pub async fn start_sole_admin(
    authorities: &Authorities,
    configure: impl FnOnce(String) -> String,
) -> Node {
    let node = Node::start(configure).await;
    node.import_wallet(&authorities.tier2_wallet(&node.did))
        .await;
    let charter = authorities.write_governed_charter(
        "field",
        &[&node.org_key()],
        std::slice::from_ref(&node.did),
        "1",
        "",
    );
    node.join(&charter).await;
    node
}

/// A signed-off STIX bundle whose indicator blocks the `n`-th address of 10.0.0.0/8 for an
/// hour: a distinct indicator, and a distinct block, for every `n` below 2²⁴.
pub fn block_address_indicator(n: u64, severity: Severity) -> serde_json::Value {
    let now = now_unix();
    let draft = IndicatorDraft {
        name: format!("block {n}"),
        description: String::new(),
        pattern: format!(
            "[ipv4-addr:value = '10.{}.{}.{}']",
            (n >> 16) & 0xff,
            (n >> 8) & 0xff,
            n & 0xff
        ),
        severity,
        countermeasure: Countermeasure {
            action: ActionKind::BlockAddress,
            tier: None,
            credential: None,
        },
        tlp: Tlp::Green,
        confidence: None,
        valid_from: now - 5,
        valid_until: now + 3600,
    };
    compose(&draft, now).expect("a valid draft")
}

/// The peers `node` has a connection to.
pub async fn connected_peers(node: &Node) -> Vec<PeerId> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    node.gateway
        .network()
        .send(Command::ConnectedPeers(reply))
        .await
        .expect("the swarm runs");
    answer.await.expect("the swarm answers")
}

/// Sends `command(peer)` from every node of each side about every node of the other: with
/// `Command::Block`, a partition; with `Command::Unblock`, its healing.
pub async fn across(side_a: &[Node], side_b: &[Node], command: fn(PeerId) -> Command) {
    for (near, far) in [(side_a, side_b), (side_b, side_a)] {
        for node in near {
            for other in far {
                node.gateway
                    .network()
                    .send(command(other.peer_id()))
                    .await
                    .expect("the swarm runs");
            }
        }
    }
}

/// Whether no node of either side is connected to a node of the other.
pub async fn no_connection_crosses(side_a: &[Node], side_b: &[Node]) -> bool {
    for (near, far) in [(side_a, side_b), (side_b, side_a)] {
        for node in near {
            let peers = connected_peers(node).await;
            if far.iter().any(|other| peers.contains(&other.peer_id())) {
                return false;
            }
        }
    }
    true
}

/// An admin's suspension of `target`, as a draft to propose.
pub fn suspension(target: &str) -> tfc_gateway::exchange::OpDraft {
    tfc_gateway::exchange::OpDraft {
        kind: tfc_gateway::governance::OpKind::Suspend,
        target: target.to_owned(),
        reason: "test suspension".into(),
        types: vec![],
        policy: None,
    }
}
