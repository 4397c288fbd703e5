//! A one-field setup for the benchmarks: issuers, a signed charter, and gateways whose
//! wallets reach tier 2.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use libp2p::{Multiaddr, PeerId};
use serde_json::json;
use tfc_gateway::charter::Charter;
use tfc_gateway::credential::{CredentialDraft, issue_credential, now_unix};
use tfc_gateway::field::Field;
use tfc_gateway::handshake::{GatewayEvent, Handshakes};
use tfc_gateway::identity::{KeyAlgorithm, KeyPair};
use tfc_gateway::net::{Network, NetworkSettings};
use tfc_gateway::services::Services;
use tfc_gateway::store::Store;
use tokio::sync::broadcast;

const WAIT: Duration = Duration::from_secs(30);

/// The issuers, the gateways' keys and the field's charter (the gateways found it), in a
/// temporary directory.
pub(crate) struct Setup {
    registrar: KeyPair,
    bureau: KeyPair,
    keys: Vec<KeyPair>,
    dir: tempfile::TempDir,
}

impl Setup {
    /// A field founded by `gateways` gateways: members that all verify each other.
    pub(crate) fn new(gateways: usize) -> anyhow::Result<Self> {
        let setup = Self {
            registrar: KeyPair::generate(KeyAlgorithm::Ed25519),
            bureau: KeyPair::generate(KeyAlgorithm::Ed25519),
            keys: (0..gateways)
                .map(|_| KeyPair::generate(KeyAlgorithm::Ed25519))
                .collect(),
            dir: tempfile::tempdir()?,
        };
        let founders: Vec<String> = setup
            .keys
            .iter()
            .map(|key| format!("\"{}\"", key.did()))
            .collect();
        let text = format!(
            "name = \"bench field\"\nfounders = [{founders}]\nquorum = 1\n\
             [[issuers]]\ndid = \"{registrar}\"\nname = \"Registrar\"\ntypes = [\"OrganizationIdentityCredential\", \"BusinessLicenseCredential\"]\n\
             [[issuers]]\ndid = \"{bureau}\"\nname = \"Bureau\"\ntypes = [\"CreditRatingCredential\"]\n\
             [tiers.prescreening]\nrequire = [\"OrganizationIdentityCredential\", \"CreditRatingCredential\"]\nconstraints = [\"CreditRatingCredential.score >= 60\"]\n\
             [tiers.certification]\nrequire = [\"BusinessLicenseCredential\"]\n\
             [disclosure]\nCreditRatingCredential = [\"verified\"]\nBusinessLicenseCredential = [\"verified\"]\n",
            founders = founders.join(", "),
            registrar = setup.registrar.did(),
            bureau = setup.bureau.did()
        );
        let mut signed = text;
        for key in &setup.keys {
            let charter = Charter::parse(&signed, setup.dir.path())?;
            signed.push_str(&charter.sign(key)?);
        }
        std::fs::write(setup.dir.path().join("field.toml"), signed)?;
        Ok(setup)
    }

    fn field(&self) -> anyhow::Result<Field> {
        Ok(Field::load(&self.dir.path().join("field.toml"))?)
    }

    fn wallet(&self, holder: &KeyPair, corporate_number: &str) -> anyhow::Result<Vec<String>> {
        let now = now_unix();
        let issue = |issuer: &KeyPair, type_name: &str, claims: serde_json::Value| {
            let draft = CredentialDraft {
                type_name: type_name.into(),
                subject: holder.did(),
                claims: claims.as_object().cloned().unwrap_or_default(),
                valid_from: now - 3600,
                valid_until: Some(now + 86_400),
                status: vec![],
            };
            issue_credential(issuer, &draft, now)
        };
        Ok(vec![
            issue(
                &self.registrar,
                "OrganizationIdentityCredential",
                json!({"corporateNumber": corporate_number, "legalName": "ベンチ株式会社", "address": "東京都", "representative": "山田"}),
            )?,
            issue(
                &self.bureau,
                "CreditRatingCredential",
                json!({"grade": "A", "score": 85, "assessedOn": "2026-04-01"}),
            )?,
            issue(
                &self.registrar,
                "BusinessLicenseCredential",
                json!({"licenseNumber": "1", "authority": "MLIT", "kind": "general", "trades": ["建築工事業"], "validUntil": "2029-03-31"}),
            )?,
        ])
    }
}

/// One gateway: network, handshake service and its own sled store.
pub(crate) struct Node {
    pub(crate) network: Network,
    pub(crate) peer_id: PeerId,
    pub(crate) address: Multiaddr,
    events: broadcast::Receiver<GatewayEvent>,
    _handshakes: Handshakes,
    _dir: tempfile::TempDir,
}

/// Corporate numbers must differ between organisations; derive a valid one per node.
fn corporate_number(index: u64) -> String {
    let base = format!("{:012}", 100_000_000_000 + index);
    let check = tfc_schemas::corporate_number_check_digit(&base).unwrap_or(1);
    format!("{check}{base}")
}

impl Node {
    /// Starts the gateway of the setup's `index`-th key.
    pub(crate) async fn start(setup: &Setup, index: usize) -> anyhow::Result<Self> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let key = setup
            .keys
            .get(index)
            .and_then(|key| KeyPair::from_pkcs8_pem(&key.to_pkcs8_pem()))
            .context("no key for that gateway")?;
        let dir = tempfile::tempdir()?;
        let store = Store::open(&dir.path().join("store"))?;
        let (network, network_events) =
            Network::spawn(key.libp2p_keypair()?, &NetworkSettings::loopback())?;
        let number = corporate_number(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let wallet = setup.wallet(&key, &number)?;
        let services = Arc::new(Services::new(key, vec![setup.field()?], wallet, store, 10)?);
        let (handshakes, mut events) =
            Handshakes::spawn(services, network.commands(), network_events.connections);
        let address = tokio::time::timeout(WAIT, async {
            loop {
                if let Ok(GatewayEvent::Listening(address)) = events.recv().await {
                    return address;
                }
            }
        })
        .await
        .context("the gateway did not start listening")?;
        let peer_id = network.peer_id();
        Ok(Self {
            network,
            peer_id,
            address,
            events,
            _handshakes: handshakes,
            _dir: dir,
        })
    }

    /// Waits until this node has judged `peer` at `tier` (the handshake reports each tier it
    /// reaches; members are verified before their credentials are judged).
    pub(crate) async fn verified_at(&mut self, peer: PeerId, tier: u8) -> anyhow::Result<u8> {
        let events = &mut self.events;
        tokio::time::timeout(WAIT, async {
            loop {
                match events.recv().await {
                    Ok(GatewayEvent::PeerVerified { peer: p, record })
                        if p == peer && record.tiers.values().copied().max() >= Some(tier) =>
                    {
                        return Ok(record.tiers.values().copied().max().unwrap_or(0));
                    }
                    Ok(GatewayEvent::PeerRefused {
                        peer: p,
                        code,
                        message,
                    }) if p == peer => bail!("refused: {code}: {message}"),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => bail!("the gateway stopped"),
                }
            }
        })
        .await
        .context("timed out waiting for a handshake verdict")?
    }

    /// Waits until `peer`'s last connection has closed.
    pub(crate) async fn wait_gone(&mut self, peer: PeerId) -> anyhow::Result<()> {
        let events = &mut self.events;
        tokio::time::timeout(WAIT, async {
            loop {
                if let Ok(GatewayEvent::PeerGone { peer: p }) = events.recv().await
                    && p == peer
                {
                    return;
                }
            }
        })
        .await
        .context("timed out waiting for a disconnection")
    }
}
