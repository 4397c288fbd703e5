//! The local HTTPS API: JSON over rustls with mutual TLS against the admin CA. A client
//! without a certificate the admin CA signed is refused during the TLS handshake, before any
//! HTTP is read.

pub mod types;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use libp2p::PeerId;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_rustls::TlsAcceptor;

use crate::config::GatewayConfig;
use crate::credential::format_rfc3339;
use crate::handshake::{GatewayEvent, LocalParty, PeerRecord};
use crate::net::Command;
use crate::secret_file::check_private;
use crate::store::Tree;
use types::{
    ApiError, Dial, FieldView, JoinField, PeerView, StatusResponse, WalletEntryView, WalletImport,
};

/// Largest request body accepted.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// How long a client may take to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The API could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiStartError {
    /// A TLS file is missing, unreadable, exposed or invalid.
    #[error("TLS material {path}: {reason}")]
    Tls {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The listen address cannot be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Counters for `/metrics`, fed by handshake events.
#[derive(Default)]
struct Metrics {
    handshakes: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    fn record(&self, event: &GatewayEvent) {
        let outcome = match event {
            GatewayEvent::PeerVerified { .. } => "verified".to_owned(),
            GatewayEvent::PeerRefused { code, .. } => code.clone(),
            _ => return,
        };
        if let Ok(mut counts) = self.handshakes.lock() {
            *counts.entry(outcome).or_default() += 1;
        }
    }
}

#[derive(Clone)]
struct ApiState {
    party: Arc<LocalParty>,
    commands: mpsc::Sender<Command>,
    peer_id: PeerId,
    metrics: Arc<Metrics>,
}

/// A running API server.
pub struct ApiServer {
    address: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.tasks.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

impl ApiServer {
    /// Starts the API for `party`, with TLS material from `config`.
    pub async fn start(
        config: &GatewayConfig,
        party: Arc<LocalParty>,
        commands: mpsc::Sender<Command>,
        peer_id: PeerId,
        events: broadcast::Receiver<GatewayEvent>,
    ) -> Result<Self, ApiStartError> {
        let acceptor = TlsAcceptor::from(Arc::new(tls_config(config)?));
        let listener = TcpListener::bind(config.api.listen)
            .await
            .map_err(|source| ApiStartError::Bind {
                address: config.api.listen,
                source,
            })?;
        let address = listener
            .local_addr()
            .map_err(|source| ApiStartError::Bind {
                address: config.api.listen,
                source,
            })?;
        let metrics = Arc::new(Metrics::default());
        let state = ApiState {
            party,
            commands,
            peer_id,
            metrics: Arc::clone(&metrics),
        };
        let counting = tokio::spawn(count_events(events, metrics));
        let serving = tokio::spawn(serve(listener, acceptor, router(state)));
        tracing::info!(%address, "admin API listening (mutual TLS)");
        Ok(Self {
            address,
            tasks: vec![counting, serving],
        })
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

async fn count_events(mut events: broadcast::Receiver<GatewayEvent>, metrics: Arc<Metrics>) {
    loop {
        match events.recv().await {
            Ok(event) => metrics.record(&event),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "metrics missed handshake events")
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
}

fn tls_config(config: &GatewayConfig) -> Result<rustls::ServerConfig, ApiStartError> {
    let failure = |path: &Path, reason: String| ApiStartError::Tls {
        path: path.display().to_string(),
        reason,
    };
    let ca_path = config.resolve(&config.api.ca_cert);
    let cert_path = config.resolve(&config.api.server_cert);
    let key_path = config.resolve(&config.api.server_key);
    check_private(&key_path).map_err(|error| failure(&key_path, error.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(&ca_path)
        .map_err(|error| failure(&ca_path, error.to_string()))?
    {
        let certificate = certificate.map_err(|error| failure(&ca_path, error.to_string()))?;
        roots
            .add(certificate)
            .map_err(|error| failure(&ca_path, error.to_string()))?;
    }
    let certificates = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|error| failure(&cert_path, error.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| failure(&cert_path, error.to_string()))?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|error| failure(&key_path, error.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .build()
            .map_err(|error| failure(&ca_path, error.to_string()))?;
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| failure(&cert_path, error.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certificates, key)
        .map_err(|error| failure(&cert_path, error.to_string()))
}

async fn serve(listener: TcpListener, acceptor: TlsAcceptor, router: Router) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "API accept failed");
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(error)) => {
                        tracing::info!(%remote, %error, "API client refused at the TLS layer");
                        return;
                    }
                    Err(_) => {
                        tracing::info!(%remote, "API client too slow to finish TLS");
                        return;
                    }
                };
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(error) = builder.serve_connection(TokioIo::new(tls), service).await {
                tracing::debug!(%remote, %error, "API connection ended with an error");
            }
        });
    }
}

fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/status", get(status))
        .route("/v1/peers", get(peers))
        .route("/v1/wallet", get(wallet).post(import_credential))
        .route("/v1/fields", get(fields).post(join_field))
        .route("/v1/dial", axum::routing::post(dial))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// An API failure: one mapping from errors to HTTP statuses.
struct Failure {
    status: StatusCode,
    body: ApiError,
}

impl Failure {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ApiError {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<crate::store::StoreError> for Failure {
    fn from(error: crate::store::StoreError) -> Self {
        Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            error.code(),
            error.to_string(),
        )
    }
}

impl From<crate::daemon::DaemonError> for Failure {
    fn from(error: crate::daemon::DaemonError) -> Self {
        let status = match error {
            crate::daemon::DaemonError::Store(_) | crate::daemon::DaemonError::Net(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Failure::new(status, error.code(), error.to_string())
    }
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn metrics(State(state): State<ApiState>) -> Result<String, Failure> {
    let peers = state.party.store.tree(Tree::Peers)?.len();
    let mut text = format!(
        "# HELP tfc_peers Peers with a recorded handshake.\n# TYPE tfc_peers gauge\ntfc_peers {peers}\n\
         # HELP tfc_fields Fields joined.\n# TYPE tfc_fields gauge\ntfc_fields {}\n\
         # HELP tfc_wallet_credentials Credentials in the wallet.\n# TYPE tfc_wallet_credentials gauge\ntfc_wallet_credentials {}\n\
         # HELP tfc_handshakes_total Handshakes by outcome (verified, or the refusal code).\n# TYPE tfc_handshakes_total counter\n",
        state.party.fields().len(),
        state.party.wallet().len(),
    );
    if let Ok(counts) = state.metrics.handshakes.lock() {
        for (outcome, count) in counts.iter() {
            text.push_str(&format!(
                "tfc_handshakes_total{{outcome=\"{outcome}\"}} {count}\n"
            ));
        }
    }
    Ok(text)
}

async fn status(State(state): State<ApiState>) -> Result<Json<StatusResponse>, Failure> {
    let (reply, answer) = oneshot::channel();
    let listen = match state.commands.send(Command::ListenAddresses(reply)).await {
        Ok(()) => answer
            .await
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect(),
        Err(_) => Vec::new(),
    };
    Ok(Json(StatusResponse {
        did: state.party.key.did(),
        peer_id: state.peer_id.to_string(),
        listen,
        fields: state
            .party
            .fields()
            .iter()
            .map(|field| field.charter.field_id())
            .collect(),
        wallet: state.party.wallet().len(),
        peers: state.party.store.tree(Tree::Peers)?.len(),
    }))
}

async fn peers(State(state): State<ApiState>) -> Result<Json<Vec<PeerView>>, Failure> {
    let records = state
        .party
        .store
        .tree(Tree::Peers)?
        .entries::<PeerRecord>()?;
    Ok(Json(
        records
            .into_iter()
            .map(|(key, record)| PeerView {
                peer_id: PeerId::from_bytes(&key)
                    .map(|peer| peer.to_string())
                    .unwrap_or_default(),
                did: record.did,
                tiers: record.tiers,
                evaluated_at: format_rfc3339(record.evaluated_at),
                next_change: record.next_change.map(format_rfc3339),
            })
            .collect(),
    ))
}

async fn wallet(State(state): State<ApiState>) -> Json<Vec<WalletEntryView>> {
    Json(
        state
            .party
            .wallet()
            .iter()
            .filter_map(|token| wallet_view(token))
            .collect(),
    )
}

fn wallet_view(token: &str) -> Option<WalletEntryView> {
    let payload = crate::credential::unverified_payload(token)?;
    let text = |name: &str| {
        payload
            .get(name)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    Some(WalletEntryView {
        id: text("id")?,
        type_name: payload.get("type")?.get(1)?.as_str()?.to_owned(),
        issuer: text("issuer")?,
        valid_until: text("validUntil"),
    })
}

async fn import_credential(
    State(state): State<ApiState>,
    Json(request): Json<WalletImport>,
) -> Result<Json<WalletEntryView>, Failure> {
    let credential = state.party.import_credential(&request.credential)?;
    Ok(Json(WalletEntryView {
        id: credential.id,
        type_name: credential.type_name,
        issuer: credential.issuer,
        valid_until: credential.valid_until.map(format_rfc3339),
    }))
}

fn field_view(field: &crate::field::Field) -> FieldView {
    FieldView {
        id: field.charter.field_id(),
        name: field.charter.name.clone(),
        founders: field.charter.founders.clone(),
        tiers: field
            .charter
            .tiers
            .iter()
            .map(|tier| tier.require.clone())
            .collect(),
    }
}

async fn fields(State(state): State<ApiState>) -> Json<Vec<FieldView>> {
    Json(
        state
            .party
            .fields()
            .iter()
            .map(|field| field_view(field))
            .collect(),
    )
}

async fn join_field(
    State(state): State<ApiState>,
    Json(request): Json<JoinField>,
) -> Result<Json<FieldView>, Failure> {
    let field = state.party.join_field(Path::new(&request.charter))?;
    Ok(Json(field_view(&field)))
}

async fn dial(
    State(state): State<ApiState>,
    Json(request): Json<Dial>,
) -> Result<Json<serde_json::Value>, Failure> {
    let address: libp2p::Multiaddr =
        request
            .address
            .parse()
            .map_err(|error: libp2p::multiaddr::Error| {
                Failure::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "bad_address",
                    error.to_string(),
                )
            })?;
    state
        .commands
        .send(Command::Dial(address))
        .await
        .map_err(|_| {
            Failure::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "network",
                "the network task has stopped",
            )
        })?;
    Ok(Json(serde_json::json!({"dialing": request.address})))
}
