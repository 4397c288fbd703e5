//! The local HTTPS API: JSON over rustls with mutual TLS against the admin CA. A client
//! without a certificate the admin CA signed is refused during the TLS handshake, before any
//! HTTP is read.

pub mod disclosures;
pub mod threats;
pub mod types;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
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
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::TlsAcceptor;

use crate::audit::Event;
use crate::config::GatewayConfig;
use crate::credential::format_rfc3339;
use crate::exchange::OpDraft;
use crate::exchange::Publisher;
use crate::governance::state::Progress;
use crate::governance::{GovCode, GovError, GovIntake, SignedOp, StandingKind};
use crate::handshake::{LocalParty, PeerRecord};
use crate::net::Command;
use crate::secret_file::check_private;
use crate::spaces::{DataCode, DataError, Spaces};
use crate::status::{Intake, StatusIntakeError, StatusListSummary};
use crate::store::Tree;
use types::{
    ApiError, AskData, AuditVerification, DataAnswer, Dial, FieldView, IssuerView, JoinField,
    MemberView, OpView, PeerView, ProposeOp, PutRecord, RecordSummary, StatusListImport,
    StatusListImported, StatusResponse, SubmitRecord, WalletEntryView, WalletImport,
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

#[derive(Clone)]
struct ApiState {
    party: Arc<LocalParty>,
    commands: mpsc::Sender<Command>,
    peer_id: PeerId,
    publisher: Publisher,
    spaces: Arc<Spaces>,
}

/// A running API server.
pub struct ApiServer {
    address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    /// Tells the server to stop accepting and drain its connections.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ApiServer {
    /// Starts the API for `party`, with TLS material from `config`.
    pub async fn start(
        config: &GatewayConfig,
        party: Arc<LocalParty>,
        commands: mpsc::Sender<Command>,
        peer_id: PeerId,
        publisher: Publisher,
        spaces: Arc<Spaces>,
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
        let state = ApiState {
            party,
            commands,
            peer_id,
            publisher,
            spaces,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let serving = tokio::spawn(serve(
            listener,
            acceptor,
            router(state.clone()),
            Arc::new(state),
            stopped,
        ));
        tracing::info!(%address, "admin API listening (mutual TLS)");
        Ok(Self {
            address,
            task: serving,
            stop: Some(stop),
        })
    }

    /// Stops accepting and waits (at most [`API_DRAIN`]) for open connections to end, so
    /// that none writes to the store after the gateway has stopped.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Err(error) = (&mut self.task).await {
            tracing::warn!(%error, "the API server did not stop cleanly");
        }
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.address
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

async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    state: std::sync::Arc<ApiState>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let mut connections = tokio::task::JoinSet::new();
    // Flips to true at shutdown: each connection then finishes its request and closes.
    let (closing, closing_seen) = tokio::sync::watch::channel(false);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut stopped => break,
            Some(_) = connections.join_next() => continue,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "API accept failed");
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let state = std::sync::Arc::clone(&state);
        let mut closing = closing_seen.clone();
        connections.spawn(async move {
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
            let session = AdminSession::of(&tls);
            state.party.audit.record(session.event("start", None));
            let service = TowerToHyperService::new(router.layer(axum::Extension(session.clone())));
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection(TokioIo::new(tls), service);
            tokio::pin!(connection);
            let served = tokio::select! {
                served = connection.as_mut() => served,
                () = async { drop(closing.wait_for(|closing| *closing).await) } => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = served {
                tracing::debug!(%remote, %error, "API connection ended with an error");
            }
            state
                .party
                .audit
                .record(session.event("end", Some(session.started.elapsed())));
        });
    }
    drop(listener);
    let _ = closing.send(true);
    let drained = tokio::time::timeout(API_DRAIN, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            open = connections.len(),
            "API connections cut at shutdown after {API_DRAIN:?}"
        );
    }
}

/// How long a stopping API waits for its open connections to end.
const API_DRAIN: std::time::Duration = std::time::Duration::from_secs(3);

/// One admin's TLS session: who (the client certificate's fingerprint) and since when.
#[derive(Clone)]
struct AdminSession {
    actor: String,
    started: std::time::Instant,
    started_ms: i64,
}

impl AdminSession {
    fn of(tls: &tokio_rustls::server::TlsStream<tokio::net::TcpStream>) -> Self {
        use sha2::Digest;
        let fingerprint = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certificates| certificates.first())
            .map(|certificate| {
                sha2::Sha256::digest(certificate.as_ref())
                    .iter()
                    .take(16)
                    .map(|byte| format!("{byte:02x}"))
                    .collect::<String>()
            })
            .unwrap_or_else(|| "unknown".into());
        Self {
            actor: format!("admin:{fingerprint}"),
            started: std::time::Instant::now(),
            started_ms: crate::audit::now_ms(),
        }
    }

    fn event(&self, decision: &str, duration: Option<Duration>) -> Event {
        Event {
            actor: self.actor.clone(),
            action: "api.session".into(),
            object: "admin-api".into(),
            decision: decision.into(),
            reason: "mutual_tls".into(),
            session: duration.map(|duration| {
                (
                    self.started_ms,
                    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
                )
            }),
            ..Event::default()
        }
    }
}

/// Every request that changes something is an admin action: audited with the session's
/// actor, the method and path, and the outcome.
async fn audit_admin_actions(
    State(state): State<ApiState>,
    session: Option<axum::Extension<AdminSession>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let changes = request.method() != axum::http::Method::GET;
    let action = format!("api.{} {}", request.method(), request.uri().path());
    let response = next.run(request).await;
    if changes {
        let status = response.status();
        state.party.audit.record(Event {
            actor: session.map_or_else(|| "admin:unknown".into(), |session| session.actor.clone()),
            action,
            object: "admin-api".into(),
            decision: if status.is_success() {
                "allow"
            } else {
                "refuse"
            }
            .into(),
            reason: format!("http:{}", status.as_u16()),
            ..Event::default()
        });
    }
    response
}

/// The OpenAPI description of this API, served at `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "TFC gateway admin API",
        description = "Local admin and application API; every client authenticates with the admin CA's certificate (mutual TLS)."
    ),
    paths(
        healthz,
        metrics,
        openapi,
        status,
        peers,
        wallet,
        import_credential,
        fields,
        join_field,
        dial,
        status_lists,
        import_status_list,
        threats::publish,
        threats::import,
        threats::list_indicators,
        threats::list_actions,
        threats::decide,
        disclosures::list,
        disclosures::export
    )
)]
pub struct ApiDoc;

#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "This document")))]
async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(<ApiDoc as utoipa::OpenApi>::openapi())
}

fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .route("/v1/status", get(status))
        .route("/v1/peers", get(peers))
        .route("/v1/wallet", get(wallet).post(import_credential))
        .route("/v1/fields", get(fields).post(join_field))
        .route("/v1/dial", axum::routing::post(dial))
        .route(
            "/v1/status-lists",
            get(status_lists).post(import_status_list),
        )
        .route("/v1/fields/{field}/ops", get(list_ops).post(propose_op))
        .route(
            "/v1/fields/{field}/ops/{op}/endorse",
            axum::routing::post(endorse_op),
        )
        .route("/v1/fields/{field}/members", get(members))
        .route("/v1/data/ask", axum::routing::post(ask_data))
        .route("/v1/attachments", axum::routing::post(upload_attachment))
        .route("/v1/attachments/{sha256}", get(download_attachment))
        .route(
            "/v1/data/{field}/{tier}",
            get(list_records).post(put_record),
        )
        .route(
            "/v1/data/{field}/{tier}/{id}",
            get(get_record).delete(delete_record),
        )
        .route(
            "/v1/data/{field}/{tier}/{id}/submit",
            axum::routing::post(submit_record),
        )
        .route("/v1/audit/verify", get(verify_audit))
        .route("/v1/audit/export", get(export_audit))
        .route(
            "/v1/audit/checkpoint",
            axum::routing::post(publish_checkpoint),
        )
        .route("/v1/fields/{field}/issuers", get(issuers))
        .merge(threats::routes())
        .merge(disclosures::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit_admin_actions,
        ))
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
        let status = if error.is_full() {
            StatusCode::INSUFFICIENT_STORAGE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        Failure::new(status, error.code(), error.to_string())
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

#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "The gateway is up")))]
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
async fn metrics(State(state): State<ApiState>) -> Result<String, Failure> {
    let peers = state.party.store.tree(Tree::Peers)?.len();
    let mut text = format!(
        "# HELP tfc_peers Peers with a recorded handshake.\n# TYPE tfc_peers gauge\ntfc_peers {peers}\n\
         # HELP tfc_fields Fields joined.\n# TYPE tfc_fields gauge\ntfc_fields {}\n\
         # HELP tfc_wallet_credentials Credentials in the wallet.\n# TYPE tfc_wallet_credentials gauge\ntfc_wallet_credentials {}\n\
         # HELP tfc_status_lists Status lists in force.\n# TYPE tfc_status_lists gauge\ntfc_status_lists {}\n",
        state.party.fields().len(),
        state.party.wallet().len(),
        state.party.with_status_lists(|lists| lists.iter().count()),
    );
    text.push_str(&state.party.metrics.render());
    Ok(text)
}

#[utoipa::path(get, path = "/v1/status", responses((status = 200, body = StatusResponse), (status = 500, body = ApiError)))]
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

#[utoipa::path(get, path = "/v1/peers", responses((status = 200, body = Vec<PeerView>), (status = 500, body = ApiError)))]
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

#[utoipa::path(get, path = "/v1/wallet", responses((status = 200, body = Vec<WalletEntryView>)))]
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

#[utoipa::path(post, path = "/v1/wallet", request_body = WalletImport, responses((status = 200, body = WalletEntryView), (status = 422, description = "The credential does not verify or is not ours", body = ApiError)))]
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

#[utoipa::path(get, path = "/v1/fields", responses((status = 200, body = Vec<FieldView>)))]
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

#[utoipa::path(post, path = "/v1/fields", request_body = JoinField, responses((status = 200, body = FieldView), (status = 422, description = "The charter does not load or is not fully signed", body = ApiError)))]
async fn join_field(
    State(state): State<ApiState>,
    Json(request): Json<JoinField>,
) -> Result<Json<FieldView>, Failure> {
    let field = state.party.join_field(Path::new(&request.charter))?;
    crate::daemon::announce_field(&state.commands, &field, state.peer_id).await;
    Ok(Json(field_view(&field)))
}

#[utoipa::path(post, path = "/v1/dial", request_body = Dial, responses((status = 200, description = "Dialing"), (status = 422, body = ApiError)))]
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

#[utoipa::path(get, path = "/v1/status-lists", responses((status = 200, body = Vec<StatusListSummary>)))]
async fn status_lists(State(state): State<ApiState>) -> Json<Vec<StatusListSummary>> {
    Json(state.party.status_list_summaries())
}

#[utoipa::path(post, path = "/v1/status-lists", request_body = StatusListImport, responses((status = 200, body = StatusListImported), (status = 422, description = "The list does not verify or no joined field trusts its issuer", body = ApiError)))]
async fn import_status_list(
    State(state): State<ApiState>,
    Json(request): Json<StatusListImport>,
) -> Result<Json<StatusListImported>, Failure> {
    let intake = state
        .publisher
        .import_status_list(&request.credential)
        .await
        .map_err(|error| {
            let status = match error {
                StatusIntakeError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
                StatusIntakeError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            Failure::new(status, error.code(), error.to_string())
        })?;
    let (list, taken) = match intake {
        Intake::Taken(list) => (list, true),
        Intake::Unchanged(list) => (list, false),
    };
    Ok(Json(StatusListImported { list, taken }))
}

impl From<GovError> for Failure {
    fn from(error: GovError) -> Self {
        let status = match error.code {
            GovCode::Store => StatusCode::INTERNAL_SERVER_ERROR,
            GovCode::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
            GovCode::UnknownOp => StatusCode::NOT_FOUND,
            GovCode::Replayed => StatusCode::CONFLICT,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Failure::new(status, error.code.as_str(), error.message)
    }
}

/// The joined field whose id is `id` or starts with it (unambiguously).
fn resolve_field(
    state: &ApiState,
    id: &str,
) -> Result<std::sync::Arc<crate::field::Field>, Failure> {
    let fields = state.party.fields();
    let mut matches = fields
        .iter()
        .filter(|field| field.charter.field_id().starts_with(id) && !id.is_empty());
    match (matches.next(), matches.next()) {
        (Some(field), None) => Ok(std::sync::Arc::clone(field)),
        (Some(_), Some(_)) => Err(Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "ambiguous_field",
            format!("{id} is the start of several field ids; give more of it"),
        )),
        (None, _) => Err(Failure::new(
            StatusCode::NOT_FOUND,
            "unknown_field",
            format!("this gateway has not joined a field {id} (see tfcctl field list)"),
        )),
    }
}

fn op_view(id: &str, signed: &SignedOp, progress: &Progress) -> OpView {
    let op = &signed.op;
    OpView {
        id: id.to_owned(),
        kind: op.kind.to_string(),
        target: op.target.clone(),
        reason: op.reason.clone(),
        epoch: op.epoch,
        proposer: op.proposer.clone(),
        created: format_rfc3339(op.created),
        signers: signed.signatures.keys().cloned().collect(),
        signatures: progress.signatures,
        required: progress.required,
        committed: progress.committed.map(|via| {
            match via {
                crate::governance::state::Via::Quorum => "quorum",
                crate::governance::state::Via::Admin => "admin",
            }
            .to_owned()
        }),
    }
}

fn intake_view(state: &ApiState, field: &str, intake: &GovIntake) -> Result<OpView, Failure> {
    let signed = state
        .party
        .governance
        .op(field, &intake.id)
        .ok_or_else(|| Failure::from(GovError::new(GovCode::UnknownOp, "the op vanished")))?;
    Ok(op_view(&intake.id, &signed, &intake.progress))
}

#[utoipa::path(get, path = "/v1/fields/{field}/ops", params(("field" = String, Path, description = "Field id or unambiguous prefix")), responses((status = 200, body = Vec<OpView>), (status = 404, body = ApiError)))]
async fn list_ops(
    State(state): State<ApiState>,
    axum::extract::Path(field): axum::extract::Path<String>,
) -> Result<Json<Vec<OpView>>, Failure> {
    let field = resolve_field(&state, &field)?;
    let ops = state.party.governance.ops(&field.charter.field_id());
    Ok(Json(
        ops.iter()
            .map(|(id, signed, progress)| op_view(id, signed, progress))
            .collect(),
    ))
}

#[utoipa::path(post, path = "/v1/fields/{field}/ops", params(("field" = String, Path, description = "Field id or unambiguous prefix")), request_body = ProposeOp, responses((status = 200, body = OpView), (status = 422, body = ApiError)))]
async fn propose_op(
    State(state): State<ApiState>,
    axum::extract::Path(field): axum::extract::Path<String>,
    Json(request): Json<ProposeOp>,
) -> Result<Json<OpView>, Failure> {
    let field = resolve_field(&state, &field)?.charter.field_id();
    let kind = request.kind.parse().map_err(|message: String| {
        Failure::new(StatusCode::UNPROCESSABLE_ENTITY, "gov_malformed", message)
    })?;
    let draft = OpDraft {
        kind,
        target: request.target,
        reason: request.reason,
        types: request.types,
        policy: request.policy,
    };
    let intake = state.publisher.propose(&field, draft).await?;
    Ok(Json(intake_view(&state, &field, &intake)?))
}

#[utoipa::path(post, path = "/v1/fields/{field}/ops/{op}/endorse", params(("field" = String, Path, description = "Field id or unambiguous prefix"), ("op" = String, Path, description = "Op id or unambiguous prefix")), responses((status = 200, body = OpView), (status = 404, body = ApiError), (status = 409, description = "Already signed", body = ApiError)))]
async fn endorse_op(
    State(state): State<ApiState>,
    axum::extract::Path((field, op)): axum::extract::Path<(String, String)>,
) -> Result<Json<OpView>, Failure> {
    let field = resolve_field(&state, &field)?.charter.field_id();
    let id = state
        .party
        .governance
        .op(&field, &op)
        .map(|signed| signed.op.id())
        .transpose()?
        .ok_or_else(|| {
            Failure::from(GovError::new(
                GovCode::UnknownOp,
                format!("no op {op} in this field (see tfcctl member ops)"),
            ))
        })?;
    let intake = state.publisher.endorse(&field, &id).await?;
    Ok(Json(intake_view(&state, &field, &intake)?))
}

#[utoipa::path(get, path = "/v1/fields/{field}/members", params(("field" = String, Path, description = "Field id or unambiguous prefix")), responses((status = 200, body = Vec<MemberView>), (status = 404, body = ApiError)))]
async fn members(
    State(state): State<ApiState>,
    axum::extract::Path(field): axum::extract::Path<String>,
) -> Result<Json<Vec<MemberView>>, Failure> {
    let field = resolve_field(&state, &field)?.charter.field_id();
    let governance = state.party.governance.state(&field).ok_or_else(|| {
        Failure::from(GovError::new(
            GovCode::WrongField,
            "no governance state for the field",
        ))
    })?;
    let mut view: BTreeMap<String, MemberView> = BTreeMap::new();
    for (did, standing) in &governance.members {
        let admission = match standing.kind {
            StandingKind::Founder => "founder",
            StandingKind::Member => "member",
            StandingKind::Suspended => "suspended",
            StandingKind::Revoked => "revoked",
        };
        view.insert(
            did.clone(),
            MemberView {
                did: did.clone(),
                admission: admission.into(),
                epoch: standing.epoch,
                tier: None,
            },
        );
    }
    for (_, signed, progress) in state.party.governance.ops(&field) {
        if signed.op.kind == crate::governance::OpKind::Admit && progress.committed.is_none() {
            view.entry(signed.op.target.clone()).or_insert(MemberView {
                did: signed.op.target.clone(),
                admission: "pending".into(),
                epoch: signed.op.epoch,
                tier: None,
            });
        }
    }
    for (_, record) in state
        .party
        .store
        .tree(Tree::Peers)?
        .entries::<PeerRecord>()?
    {
        let tier = record.tiers.get(&field).copied();
        let entry = view.entry(record.did.clone()).or_insert(MemberView {
            did: record.did.clone(),
            admission: "not_admitted".into(),
            epoch: 0,
            tier: None,
        });
        entry.tier = tier;
    }
    Ok(Json(view.into_values().collect()))
}

#[utoipa::path(get, path = "/v1/fields/{field}/issuers", params(("field" = String, Path, description = "Field id or unambiguous prefix")), responses((status = 200, body = Vec<IssuerView>), (status = 404, body = ApiError)))]
async fn issuers(
    State(state): State<ApiState>,
    axum::extract::Path(field): axum::extract::Path<String>,
) -> Result<Json<Vec<IssuerView>>, Failure> {
    let field = resolve_field(&state, &field)?;
    let charter = state.party.effective_charter(&field);
    Ok(Json(
        charter
            .issuers
            .into_iter()
            .map(|issuer| IssuerView {
                did: issuer.did,
                name: issuer.name,
                types: issuer.types,
            })
            .collect(),
    ))
}

#[utoipa::path(get, path = "/v1/audit/verify", responses((status = 200, body = AuditVerification)))]
async fn verify_audit(State(state): State<ApiState>) -> Result<Json<AuditVerification>, Failure> {
    let chain = state
        .party
        .audit
        .verify()
        .map_err(|crate::audit::AuditError::Store(error)| Failure::from(error))?;
    let peers = state.publisher.check_peer_checkpoints().await;
    Ok(Json(AuditVerification { chain, peers }))
}

/// `GET /v1/audit/export` query.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
struct ExportQuery {
    /// Entries at or after this instant (RFC 3339); default all.
    since: Option<String>,
}

#[utoipa::path(get, path = "/v1/audit/export", params(ExportQuery), responses((status = 200, description = "One JSON entry per line", content_type = "application/x-ndjson"), (status = 422, body = ApiError)))]
async fn export_audit(
    State(state): State<ApiState>,
    axum::extract::Query(query): axum::extract::Query<ExportQuery>,
) -> Result<Response, Failure> {
    let since_ms = match &query.since {
        None => 0,
        Some(text) => crate::credential::parse_rfc3339(text)
            .map(|secs| secs.saturating_mul(1000))
            .ok_or_else(|| {
                Failure::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "bad_instant",
                    format!("{text:?} is not an RFC 3339 instant such as 2026-11-22T00:00:00Z"),
                )
            })?,
    };
    let entries = state
        .party
        .audit
        .since(since_ms)
        .map_err(|crate::audit::AuditError::Store(error)| Failure::from(error))?;
    let mut body = String::new();
    for entry in entries {
        body.push_str(&serde_json::to_string(&entry).unwrap_or_default());
        body.push('\n');
    }
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        body,
    )
        .into_response())
}

#[utoipa::path(post, path = "/v1/audit/checkpoint", responses((status = 200, description = "The head published ({seq, head}), or null for an empty log")))]
async fn publish_checkpoint(
    State(state): State<ApiState>,
) -> Result<Json<serde_json::Value>, Failure> {
    let checkpoint = state
        .publisher
        .publish_checkpoint()
        .await
        .map_err(|error| {
            Failure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "sign_failed",
                error.to_string(),
            )
        })?;
    Ok(Json(
        serde_json::to_value(checkpoint).unwrap_or(serde_json::Value::Null),
    ))
}

impl From<DataError> for Failure {
    fn from(error: DataError) -> Self {
        let status = match error.code {
            DataCode::NotFound => StatusCode::NOT_FOUND,
            DataCode::Tampered => StatusCode::CONFLICT,
            DataCode::Malformed => StatusCode::UNPROCESSABLE_ENTITY,
            DataCode::Denied | DataCode::BulkGuard | DataCode::Quarantined => StatusCode::FORBIDDEN,
            DataCode::Store => StatusCode::INTERNAL_SERVER_ERROR,
            DataCode::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
        };
        Failure::new(status, error.code.as_str(), error.message)
    }
}

/// Raises the bulk-change guard's alert in the audit log and metrics.
fn bulk_alert(state: &ApiState, actor: &str, field: &str, tier: u8, error: &DataError) {
    if error.code == DataCode::BulkGuard {
        state
            .party
            .metrics
            .count(crate::metrics::DECISIONS, "data:bulk_guard");
        state.party.audit.record(Event {
            actor: actor.to_owned(),
            action: "data.bulk_guard".into(),
            object: format!("{field}/{tier}"),
            decision: "alert".into(),
            reason: error.code.as_str().into(),
            ..Event::default()
        });
    }
}

/// The actor of a session, for the bulk-change guard.
fn actor(session: &Option<axum::Extension<AdminSession>>) -> String {
    session
        .as_ref()
        .map_or_else(|| "admin:unknown".into(), |session| session.actor.clone())
}

#[utoipa::path(post, path = "/v1/data/{field}/{tier}", request_body = PutRecord, responses((status = 200, body = crate::spaces::Record), (status = 403, body = ApiError), (status = 422, body = ApiError)))]
async fn put_record(
    State(state): State<ApiState>,
    session: Option<axum::Extension<AdminSession>>,
    axum::extract::Path((field, tier)): axum::extract::Path<(String, u8)>,
    Json(request): Json<PutRecord>,
) -> Result<Json<crate::spaces::Record>, Failure> {
    let field = resolve_field(&state, &field)?.charter.field_id();
    let owner = state.party.key.did();
    let attachments = request
        .attachments
        .into_iter()
        .map(|attachment| crate::spaces::AttachmentRef {
            name: attachment.name,
            sha256: attachment.sha256,
            size: 0,
        })
        .collect();
    let actor = actor(&session);
    let record = state.spaces.put(
        &actor,
        &state.party.key,
        &owner,
        &field,
        tier,
        request.id.as_deref(),
        request.labels,
        request.body,
        attachments,
    );
    if let Err(error) = &record {
        bulk_alert(&state, &actor, &field, tier, error);
    }
    Ok(Json(record?))
}

#[utoipa::path(get, path = "/v1/data/{field}/{tier}", params(crate::spaces::LabelFilter), responses((status = 200, body = Vec<RecordSummary>)))]
async fn list_records(
    State(state): State<ApiState>,
    axum::extract::Path((field, tier)): axum::extract::Path<(String, u8)>,
    axum::extract::Query(filter): axum::extract::Query<crate::spaces::LabelFilter>,
) -> Result<Json<Vec<RecordSummary>>, Failure> {
    let field = resolve_field(&state, &field)?.charter.field_id();
    let summaries = state
        .spaces
        .ids(&field, tier)?
        .into_iter()
        .filter_map(|id| match state.spaces.get(&field, tier, &id) {
            Ok(record) if !filter.matches(&record.labels) => None,
            Ok(record) => Some(RecordSummary {
                id,
                status: "ok".into(),
                version: Some(record.version),
                owner: Some(record.owner),
                labels: Some(record.labels),
            }),
            // A record that no longer opens is listed as such, never served.
            Err(error) => Some(RecordSummary {
                id,
                status: error.code.as_str().into(),
                version: None,
                owner: None,
                labels: None,
            }),
        })
        .collect();
    Ok(Json(summaries))
}

#[utoipa::path(get, path = "/v1/data/{field}/{tier}/{id}", responses((status = 200, body = crate::spaces::Record), (status = 404, body = ApiError), (status = 409, description = "Tampered at rest", body = ApiError)))]
async fn get_record(
    State(state): State<ApiState>,
    axum::extract::Path((field, tier, id)): axum::extract::Path<(String, u8, String)>,
) -> Result<Json<crate::spaces::Record>, Failure> {
    let field = resolve_field(&state, &field)?.charter.field_id();
    Ok(Json(state.spaces.get(&field, tier, &id)?))
}

#[utoipa::path(delete, path = "/v1/data/{field}/{tier}/{id}", responses((status = 200, description = "Deleted"), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
async fn delete_record(
    State(state): State<ApiState>,
    session: Option<axum::Extension<AdminSession>>,
    axum::extract::Path((field, tier, id)): axum::extract::Path<(String, u8, String)>,
) -> Result<Json<serde_json::Value>, Failure> {
    let field = resolve_field(&state, &field)?.charter.field_id();
    let actor = actor(&session);
    if let Err(error) = state.spaces.delete(&actor, &field, tier, &id) {
        bulk_alert(&state, &actor, &field, tier, &error);
        return Err(error.into());
    }
    Ok(Json(serde_json::json!({"deleted": id})))
}

fn peer_of(did: &str) -> Result<PeerId, Failure> {
    crate::identity::PublicKey::peer_id_of(did).ok_or_else(|| {
        Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_did",
            format!("{did} is not an organisation DID"),
        )
    })
}

async fn ask(
    state: &ApiState,
    did: &str,
    request: crate::net::DataRequest,
) -> Result<Json<DataAnswer>, Failure> {
    let peer = peer_of(did)?;
    let response = state
        .publisher
        .request_data(peer, request)
        .await
        .map_err(|reason| {
            Failure::new(
                StatusCode::BAD_GATEWAY,
                "unreachable",
                format!("{did} did not answer: {reason} (is it connected? see tfcctl peers)"),
            )
        })?;
    Ok(Json(response.into()))
}

#[utoipa::path(post, path = "/v1/data/{field}/{tier}/{id}/submit", request_body = SubmitRecord, responses((status = 200, body = DataAnswer), (status = 502, body = ApiError)))]
async fn submit_record(
    State(state): State<ApiState>,
    axum::extract::Path((field, tier, id)): axum::extract::Path<(String, u8, String)>,
    Json(request): Json<SubmitRecord>,
) -> Result<Json<DataAnswer>, Failure> {
    let field = resolve_field(&state, &field)?.charter.field_id();
    let record = state.spaces.get(&field, tier, &id)?;
    ask(
        &state,
        &request.to,
        crate::net::DataRequest::Submit {
            record: Box::new(record),
            purpose: request.purpose,
        },
    )
    .await
}

#[utoipa::path(post, path = "/v1/data/ask", request_body = AskData, responses((status = 200, body = DataAnswer, description = "The decision (for `attachment`: the file, application/octet-stream)"), (status = 403, description = "An attachment transfer was refused or stopped", body = ApiError), (status = 502, body = ApiError)))]
async fn ask_data(
    State(state): State<ApiState>,
    Json(request): Json<AskData>,
) -> Result<Response, Failure> {
    let field = resolve_field(&state, &request.field)?.charter.field_id();
    if request.kind == "attachment" {
        let (Some(id), Some(sha256)) = (request.id, request.sha256) else {
            return Err(Failure::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "data_malformed",
                "attachment needs id and sha256",
            ));
        };
        let bytes = fetch_attachment(
            &state,
            &request.from,
            field,
            request.tier,
            id,
            sha256,
            request.purpose,
        )
        .await?;
        return Ok((
            [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
            bytes,
        )
            .into_response());
    }
    let data_request = match (request.kind.as_str(), request.id) {
        ("get", Some(id)) => crate::net::DataRequest::Get {
            field,
            tier: request.tier,
            id,
            purpose: request.purpose,
        },
        ("list", None) => crate::net::DataRequest::List {
            field,
            tier: request.tier,
            purpose: request.purpose,
            filter: request.filter,
        },
        _ => {
            return Err(Failure::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "data_malformed",
                "kind is get (with id), list (without), or attachment (with id and sha256)",
            ));
        }
    };
    Ok(ask(&state, &request.from, data_request)
        .await?
        .into_response())
}

/// Pulls an attachment chunk by chunk from its holder, each chunk decided anew, and checks
/// the whole against its hash.
#[allow(clippy::too_many_arguments)]
async fn fetch_attachment(
    state: &ApiState,
    from: &str,
    field: String,
    tier: u8,
    id: String,
    sha256: String,
    purpose: String,
) -> Result<Vec<u8>, Failure> {
    use base64::Engine;
    use sha2::Digest;
    let peer = peer_of(from)?;
    let mut content = Vec::new();
    for index in 0u32.. {
        let request = crate::net::DataRequest::Chunk {
            field: field.clone(),
            tier,
            id: id.clone(),
            sha256: sha256.clone(),
            index,
            purpose: purpose.clone(),
        };
        let response = state
            .publisher
            .request_data(peer, request)
            .await
            .map_err(|reason| {
                Failure::new(
                    StatusCode::BAD_GATEWAY,
                    "unreachable",
                    format!("{from} stopped answering at chunk {index}: {reason}"),
                )
            })?;
        match response {
            crate::net::DataResponse::Chunk { data, last, .. } => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .map_err(|_| {
                        Failure::new(
                            StatusCode::BAD_GATEWAY,
                            "data_malformed",
                            format!("chunk {index} is not base64"),
                        )
                    })?;
                content.extend_from_slice(&bytes);
                if content.len() as u64 > crate::spaces::MAX_ATTACHMENT_BYTES {
                    return Err(Failure::new(
                        StatusCode::BAD_GATEWAY,
                        "data_malformed",
                        "the attachment is larger than allowed",
                    ));
                }
                if last {
                    break;
                }
            }
            crate::net::DataResponse::Refused { code, reason } => {
                return Err(Failure::new(
                    StatusCode::FORBIDDEN,
                    &code,
                    format!("transfer stopped at chunk {index}: {reason}"),
                ));
            }
            crate::net::DataResponse::Allowed { .. } => {
                return Err(Failure::new(
                    StatusCode::BAD_GATEWAY,
                    "protocol",
                    "the holder answered a chunk request with records",
                ));
            }
        }
    }
    let digest: String = sha2::Sha256::digest(&content)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    if digest != sha256 {
        return Err(Failure::new(
            StatusCode::BAD_GATEWAY,
            "record_tampered",
            "the attachment received does not match the record's hash",
        ));
    }
    Ok(content)
}

#[utoipa::path(post, path = "/v1/attachments", request_body(content = Vec<u8>, content_type = "application/octet-stream"), responses((status = 200, body = crate::spaces::AttachmentRef), (status = 422, body = ApiError)))]
async fn upload_attachment(
    State(state): State<ApiState>,
    body: axum::body::Body,
) -> Result<Json<crate::spaces::AttachmentRef>, Failure> {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut upload = state.spaces.upload();
    while let Some(chunk) = stream.next().await {
        let written = chunk
            .map_err(|error| {
                Failure::new(
                    StatusCode::BAD_REQUEST,
                    "data_malformed",
                    format!("the upload broke off: {error}"),
                )
            })
            .and_then(|bytes| upload.write(&bytes).map_err(Failure::from));
        if let Err(failure) = written {
            upload.discard();
            return Err(failure);
        }
    }
    Ok(Json(upload.finish()?))
}

#[utoipa::path(get, path = "/v1/attachments/{sha256}", responses((status = 200, description = "The file", content_type = "application/octet-stream"), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
async fn download_attachment(
    State(state): State<ApiState>,
    axum::extract::Path(sha256): axum::extract::Path<String>,
) -> Result<Response, Failure> {
    let spaces = std::sync::Arc::clone(&state.spaces);
    let bytes = tokio::task::spawn_blocking(move || spaces.attachment(&sha256))
        .await
        .map_err(|_| {
            Failure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "reading the attachment failed",
            )
        })??;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        bytes,
    )
        .into_response())
}
