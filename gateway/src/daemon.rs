//! The running gateway: wires the store, the fields, the wallet, the network and the
//! handshake together, and takes them down in order.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::api::{ApiServer, ApiStartError};
use crate::config::GatewayConfig;
use crate::credential::now_unix;
use crate::exchange::{Exchange, ExchangeSettings};
use crate::field::Field;
use crate::handshake::{GatewayEvent, Handshakes};
use crate::identity::{IdentityError, KeyPair};
use crate::init::STORE_DIR;
use crate::net::{Command, NetError, Network, NetworkSettings};
use crate::services::holdings::{HoldingError, announce_field};
use crate::services::status::{Intake, StatusIntakeError};
use crate::services::threats::Threats;
use crate::services::{DisabledField, FieldBook, Services, Wallet};
use crate::spaces::Spaces;
use crate::store::{Store, StoreError};
use crate::webhooks::Webhooks;

/// The gateway could not start, or refused a change.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The org key is unusable.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The network could not start.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The API could not start.
    #[error(transparent)]
    Api(#[from] ApiStartError),
    /// The data spaces could not open (the data key file).
    #[error("data spaces: {0}")]
    Data(crate::spaces::DataError),
    /// A field could not be joined, or a credential not imported.
    #[error(transparent)]
    Holding(#[from] HoldingError),
    /// The threat book could not load.
    #[error("threats: {0}")]
    Threats(crate::threats::ThreatError),
    /// A webhook's secret or CA file is unusable.
    #[error(transparent)]
    Webhook(#[from] crate::webhooks::WebhookError),
}

impl DaemonError {
    /// A stable machine code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            DaemonError::Identity(error) => error.code(),
            DaemonError::Store(error) => error.code(),
            DaemonError::Net(_) => "network",
            DaemonError::Api(_) => "api",
            DaemonError::Data(error) => error.code.as_str(),
            DaemonError::Holding(error) => error.code(),
            DaemonError::Threats(error) => error.code.as_str(),
            DaemonError::Webhook(_) => "webhook_setup",
        }
    }
}

/// A running gateway.
pub struct Gateway {
    services: Arc<Services>,
    network: Network,
    handshakes: Handshakes,
    exchange: Exchange,
    api: ApiServer,
    webhooks: Webhooks,
    store: Store,
    spaces: Arc<Spaces>,
}

impl Gateway {
    /// Starts the gateway described by `config`: the first events (listen addresses, peers)
    /// arrive on the returned receiver.
    pub async fn start(
        config: &GatewayConfig,
    ) -> Result<(Self, broadcast::Receiver<GatewayEvent>), DaemonError> {
        let key = KeyPair::load(&config.resolve(&config.identity.key_file))?;
        let libp2p_key = key.libp2p_keypair()?;
        // Opening may wait for a lock and reads the disk: on the blocking pool.
        let store_dir = config.resolve(Path::new(STORE_DIR));
        let store = tokio::task::spawn_blocking(move || Store::open(&store_dir))
            .await
            .map_err(|_| StoreError::Stopped)??;
        // A field whose charter cannot be loaded is disabled alone; the others run.
        let mut fields = Vec::new();
        let mut disabled = Vec::new();
        for (id, charter) in FieldBook::stored(&store)? {
            match Field::load(&charter) {
                Ok(field) => fields.push(field),
                Err(error) => {
                    tracing::error!(field = %id, charter = %charter.display(), code = error.code(), %error, "field disabled: its charter cannot be loaded (restore it and restart, or tfcctl field leave)");
                    disabled.push(DisabledField {
                        id,
                        charter,
                        code: error.code().to_owned(),
                        message: error.to_string(),
                    });
                }
            }
        }
        let wallet = Wallet::stored(&store)?;
        let grace = u64::try_from(config.handshake_grace_secs()).unwrap_or(10);
        let services = Arc::new(Services::new(key, fields, wallet, store.clone(), grace)?);
        services.fields.set_disabled(disabled);
        // A weak handle: the audit log is part of the services it asks.
        let namer = Arc::downgrade(&services);
        services
            .audit
            .name_with(Box::new(move |did| namer.upgrade()?.name_of(did)));
        let webhooks = Webhooks::start(config, &services.audit)?;
        services.peers.restore_nonces(now_unix())?;
        let lists = services.restore_status_lists()?;
        let spaces = Arc::new(
            Spaces::open(
                &store,
                &config.resolve(Path::new(crate::spaces::DATA_KEY_FILE)),
                config.spaces.bulk_change_limit,
            )
            .map_err(DaemonError::Data)?,
        );
        let settings = NetworkSettings {
            listen: config.network.listen.clone(),
            max_message_bytes: config.network.max_message_bytes,
        };
        let (network, network_events) = Network::spawn(libp2p_key, &settings)?;
        let (handshakes, events) = Handshakes::spawn(
            Arc::clone(&services),
            network.commands(),
            network_events.connections,
        );
        let threats = Arc::new(
            Threats::load(Arc::clone(&services), config.threats.clone())
                .map_err(DaemonError::Threats)?,
        );
        if let Some(changes) = threats.take_address_changes() {
            network.send(Command::GateAddresses(changes)).await?;
        }
        let exchange = Exchange::spawn(
            Arc::clone(&services),
            network.commands(),
            network_events.content,
            handshakes.subscribe(),
            ExchangeSettings {
                max_message_bytes: config.network.max_message_bytes,
                endorse: config.governance.endorse,
                discovery: config.network.discovery,
            },
            Arc::clone(&spaces),
            threats,
        );
        for field in services.fields.all() {
            announce_field(&network.commands(), &field, network.peer_id()).await;
        }
        for address in &config.network.bootstrap {
            match address.parse() {
                Ok(address) => network.send(Command::Dial(address)).await?,
                Err(error) => tracing::warn!(%address, %error, "bootstrap address ignored"),
            }
        }
        let api = ApiServer::start(
            config,
            Arc::clone(&services),
            network.commands(),
            network.peer_id(),
            exchange.publisher(),
            Arc::clone(&spaces),
            webhooks.status(),
        )
        .await?;
        tracing::info!(did = %services.key.did(), peer_id = %network.peer_id(), api = %api.address(), status_lists = lists, "gateway started");
        Ok((
            Self {
                services,
                network,
                handshakes,
                exchange,
                api,
                webhooks,
                store,
                spaces,
            },
            events,
        ))
    }

    /// The organisation's DID.
    pub fn did(&self) -> String {
        self.services.key.did()
    }

    /// The API's bound address.
    pub fn api_address(&self) -> std::net::SocketAddr {
        self.api.address()
    }

    /// The network handle.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Subscribes to handshake outcomes.
    pub fn subscribe(&self) -> broadcast::Receiver<GatewayEvent> {
        self.handshakes.subscribe()
    }

    /// Joins the field whose signed charter is at `charter` and takes part in it on the
    /// network at once.
    pub async fn join_field(&self, charter: &Path) -> Result<Arc<Field>, DaemonError> {
        let field = self.services.join_field(charter).await?;
        announce_field(&self.network.commands(), &field, self.network.peer_id()).await;
        Ok(field)
    }

    /// Takes a status list credential (see [`Services::import_status_list`]) and gossips
    /// it if it is new.
    pub async fn import_status_list(&self, token: &str) -> Result<Intake, StatusIntakeError> {
        self.exchange.publisher().import_status_list(token).await
    }

    /// Publishes governance ops and status lists for this gateway.
    pub fn publisher(&self) -> crate::exchange::Publisher {
        self.exchange.publisher()
    }

    /// The data spaces this gateway holds.
    pub fn spaces(&self) -> &Arc<Spaces> {
        &self.spaces
    }

    /// The shared state (fields, wallet, store).
    pub fn services(&self) -> &Arc<Services> {
        &self.services
    }

    /// Stops the services, then waits for the store writer to commit what they wrote.
    pub async fn shutdown(self) -> Result<(), DaemonError> {
        self.api.shutdown().await;
        self.exchange.shutdown().await;
        self.handshakes.shutdown().await;
        self.network.shutdown().await;
        self.webhooks.shutdown().await;
        let_go(&self.services, &self.spaces).await;
        self.store.commit().await?;
        tracing::info!("gateway stopped");
        Ok(())
    }
}

/// Waits (at most [`crate::lifecycle::DRAIN`]) until no task holds the services or the
/// spaces but the gateway itself. A blocking task (a verification, a data decision) cannot
/// be aborted and may still be finishing; once it is done, dropping the gateway closes the
/// store at once, and another process may open it.
async fn let_go(services: &Arc<Services>, spaces: &Arc<Spaces>) {
    let deadline = tokio::time::Instant::now() + crate::lifecycle::DRAIN;
    while Arc::strong_count(services) > 1 || Arc::strong_count(spaces) > 1 {
        if tokio::time::Instant::now() >= deadline {
            tracing::info!("the services are still held: the store closes when they are let go");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
