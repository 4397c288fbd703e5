//! Serving the API: mutual TLS, one task per connection, the admin session audit, a drain on shutdown.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use libp2p::PeerId;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::error::Failure;
use super::session::{AdminSession, RequestCounts};
use super::{ApiState, router};
use crate::audit::Event;
use crate::config::GatewayConfig;
use crate::exchange::Publisher;
use crate::lifecycle::ServiceTask;
use crate::net::Command;
use crate::secret_file::check_private;
use crate::services::Services;
use crate::spaces::Spaces;

/// How long a client may take to finish the TLS handshake.
pub(super) const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// The four-eyes queue cannot be opened.
    #[error("the approvals queue: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The listen address cannot be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A running API server.
pub struct ApiServer {
    address: SocketAddr,
    task: ServiceTask,
}

impl ApiServer {
    /// Starts the API for `services`, with TLS material from `config`.
    pub async fn start(
        config: &GatewayConfig,
        services: Arc<Services>,
        commands: mpsc::Sender<Command>,
        peer_id: PeerId,
        publisher: Publisher,
        spaces: Arc<Spaces>,
        webhooks: Arc<crate::webhooks::WebhookStatus>,
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
        let approvals = super::approvals::Approvals::open(services.store(), &config.api.four_eyes)?;
        let state = ApiState {
            approvals: Arc::new(approvals),
            taxii_statuses: Arc::default(),
            sessions: Arc::default(),
            webhooks,
            services,
            commands,
            peer_id,
            publisher,
            spaces,
        };
        let router = router(state.clone());
        let task = ServiceTask::spawn("api", |cancel| {
            serve(listener, acceptor, router, Arc::new(state), cancel)
        });
        tracing::info!(%address, "admin API listening (mutual TLS)");
        Ok(Self { address, task })
    }

    /// Stops accepting and waits (at most [`crate::lifecycle::DRAIN`]) for open connections
    /// to end, so that none writes to the store after the gateway has stopped.
    pub async fn shutdown(self) {
        self.task.stop().await;
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

pub(super) fn tls_config(config: &GatewayConfig) -> Result<rustls::ServerConfig, ApiStartError> {
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
    // A client may show no certificate: it then reaches the probes alone
    // (`require_certificate`). One it shows must chain to the admin CA.
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .allow_unauthenticated()
            .build()
            .map_err(|error| failure(&ca_path, error.to_string()))?;
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| failure(&cert_path, error.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certificates, key)
        .map_err(|error| failure(&cert_path, error.to_string()))
}

pub(super) async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    state: std::sync::Arc<ApiState>,
    cancel: CancellationToken,
) {
    let mut connections = tokio::task::JoinSet::new();
    // Flips to true at shutdown: each connection then finishes its request and closes.
    let (closing, closing_seen) = tokio::sync::watch::channel(false);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = cancel.cancelled() => break,
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
            // A probe without a certificate can do nothing worth an audit entry.
            if session.authenticated {
                state.sessions.connected(&session, &state.services.audit);
            }
            let service = TowerToHyperService::new(router.layer(axum::Extension(session.clone())));
            let counts = std::sync::Arc::clone(&session.counts);
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
            if session.authenticated {
                state.sessions.ended(&session.actor, &counts);
            }
        });
    }
    drop(listener);
    let _ = closing.send(true);
    crate::lifecycle::drain(&mut connections).await;
    state.sessions.flush_all(&state.services.audit);
}

/// The paths a client without a certificate may reach: the probes, which say nothing
/// sensitive.
const PROBES: [&str; 2] = ["/healthz", "/readyz"];

/// Every route but the probes needs the admin CA's client certificate. TLS refuses one that
/// does not chain to the CA; here a client that showed none is refused everything else.
pub(super) async fn require_certificate(
    session: Option<axum::Extension<AdminSession>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let authenticated = session.is_some_and(|session| session.authenticated);
    if authenticated || PROBES.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    Failure::new(
        axum::http::StatusCode::UNAUTHORIZED,
        "client_certificate_required",
        "this route needs a client certificate of the gateway's admin CA",
    )
    .into_response()
}

/// Operators' connections and requests, summed per operator: one audit entry per operator
/// and window (or at shutdown) instead of two per TLS connection. What changes something is
/// audited on its own as well ([`audit_and_commit`]).
#[derive(Default)]
pub(super) struct SessionTally {
    open: std::sync::Mutex<std::collections::HashMap<String, Tally>>,
}

/// One operator's use of the API in the current window.
struct Tally {
    name: String,
    connections: u64,
    requests: u64,
    changes: u64,
    first_ms: i64,
    last_ms: i64,
}

/// How long a summary window lasts.
const SESSION_WINDOW_MS: i64 = 15 * 60 * 1000;

impl SessionTally {
    /// Counts a connection; summarises the windows that have ended.
    fn connected(&self, session: &AdminSession, audit: &crate::audit::AuditLog) {
        let now = crate::audit::now_ms();
        let ended = {
            let Ok(mut open) = self.open.lock() else {
                return;
            };
            let tally = open.entry(session.actor.clone()).or_insert_with(|| Tally {
                name: session.name.clone(),
                connections: 0,
                requests: 0,
                changes: 0,
                first_ms: now,
                last_ms: now,
            });
            tally.connections += 1;
            tally.last_ms = now;
            let ended: Vec<String> = open
                .iter()
                .filter(|(_, tally)| now - tally.first_ms >= SESSION_WINDOW_MS)
                .map(|(actor, _)| actor.clone())
                .collect();
            ended
                .into_iter()
                .filter_map(|actor| open.remove_entry(&actor))
                .collect::<Vec<_>>()
        };
        audit.record_all(ended.into_iter().map(summary).collect());
    }

    /// Adds a finished connection's requests (counted on the connection, without a lock).
    fn ended(&self, actor: &str, counts: &RequestCounts) {
        if let Ok(mut open) = self.open.lock()
            && let Some(tally) = open.get_mut(actor)
        {
            tally.requests += counts.requests.load(std::sync::atomic::Ordering::Relaxed);
            tally.changes += counts.changes.load(std::sync::atomic::Ordering::Relaxed);
            tally.last_ms = crate::audit::now_ms();
        }
    }

    /// Summarises every open window (at shutdown).
    fn flush_all(&self, audit: &crate::audit::AuditLog) {
        let all: Vec<(String, Tally)> = match self.open.lock() {
            Ok(mut open) => open.drain().collect(),
            Err(_) => return,
        };
        audit.record_all(all.into_iter().map(summary).collect());
    }
}

fn summary((actor, tally): (String, Tally)) -> Event {
    Event {
        actor,
        actor_name: Some(tally.name),
        action: "api.sessions".into(),
        object: "admin-api".into(),
        decision: "summary".into(),
        reason: format!(
            "{} connections, {} requests ({} changes, each audited)",
            tally.connections, tally.requests, tally.changes
        ),
        session: Some((
            tally.first_ms,
            u64::try_from(tally.last_ms - tally.first_ms).unwrap_or(0),
        )),
        ..Event::default()
    }
}

/// Every request that changes something is an admin action: audited with the session's
/// actor, the method and path, and the outcome. Its answer waits until what it wrote (the
/// change and the audit entry) is on disk: one commit of the store writer, shared with
/// concurrent requests. A change that cannot be made durable is answered as a store error.
pub(super) async fn audit_and_commit(
    State(state): State<ApiState>,
    session: Option<axum::Extension<AdminSession>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let change = request.method() != axum::http::Method::GET;
    if let Some(session) = &session {
        session.counts.count(change);
    }
    if !change {
        return next.run(request).await;
    }
    let action = format!("api.{} {}", request.method(), request.uri().path());
    let response = next.run(request).await;
    let status = response.status();
    state.services.audit.record(Event {
        actor: session
            .as_ref()
            .map_or_else(|| "admin:unknown".into(), |session| session.actor.clone()),
        actor_name: session.map(|session| session.name.clone()),
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
    match state.services.commit().await {
        Ok(()) => response,
        Err(error) => {
            tracing::error!(%error, "an admin action was not committed");
            Failure::from(error).into_response()
        }
    }
}
