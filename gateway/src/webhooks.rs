//! Webhooks: audit events sent as they happen to the receivers `[[webhooks]]` names. Each
//! delivery is a JSON POST signed with HMAC-SHA256 (`X-TFC-Signature: sha256=<hex>` over
//! `<timestamp>.<body>`, the timestamp in `X-TFC-Timestamp`), retried with exponential
//! backoff, and counted where the API shows it (`GET /v1/webhooks`).
//!
//! Which entries go out: `revocation` (a revoke or suspend committed), `countermeasure` (a
//! countermeasure applied or lifted) and `refused_access` (a data request denied).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::audit::{AuditEntry, AuditLog, query::entry_json};
use crate::config::{GatewayConfig, WebhookConfig};
use crate::lifecycle::ServiceTask;

/// The system CA bundle on Debian and Ubuntu, the default `ca_file`.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Deliveries waiting per receiver; more are counted as dropped (the audit log keeps them).
const QUEUE: usize = 10_000;
/// Attempts per delivery before it is given up.
const ATTEMPTS: u32 = 6;
/// The first retry's delay; each next one doubles, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Recent deliveries shown per receiver.
const RECENT: usize = 50;

/// A webhook could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The secret or CA file is missing, exposed or unusable.
    #[error("webhook {url}: {reason}")]
    Setup {
        /// The receiver.
        url: String,
        /// Why.
        reason: String,
    },
}

/// The kind of audit event an entry is, for webhooks; `None` for the rest.
pub fn event_kind(entry: &AuditEntry) -> Option<&'static str> {
    let committed = entry.decision.starts_with("commit");
    match entry.action.as_str() {
        "governance.revoke" | "governance.suspend" if committed => Some("revocation"),
        "threat.apply" | "threat.lift" => Some("countermeasure"),
        action if action.starts_with("data.") && entry.decision == "deny" => Some("refused_access"),
        _ => None,
    }
}

/// One delivery as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    /// The delivery id (`X-TFC-Delivery`).
    pub id: String,
    /// The event kind.
    pub kind: String,
    /// The audit entry's position.
    pub seq: u64,
    /// Attempts made.
    pub attempts: u32,
    /// `delivered`, `retrying` or `failed` (given up).
    pub status: String,
    /// The last attempt's error, if it failed.
    pub last_error: Option<String>,
}

/// One receiver's deliveries as the API shows them. The secret is never shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    /// The receiver's origin (scheme, host, port): its path may hold a token.
    pub url: String,
    /// The events it takes.
    pub events: Vec<String>,
    /// Deliveries the receiver accepted.
    pub delivered: u64,
    /// Deliveries given up after every attempt.
    pub failed: u64,
    /// Deliveries waiting or being retried.
    pub pending: u64,
    /// Events not queued because the queue was full or the log ran ahead.
    pub dropped: u64,
    /// The latest deliveries, newest last.
    pub recent: Vec<DeliveryView>,
}

/// What the API reads of every receiver.
#[derive(Default)]
pub struct WebhookStatus {
    receivers: Vec<Arc<Mutex<WebhookView>>>,
}

impl WebhookStatus {
    /// Every receiver's counts, as of now.
    pub fn views(&self) -> Vec<WebhookView> {
        self.receivers
            .iter()
            .filter_map(|view| view.lock().ok().map(|view| view.clone()))
            .collect()
    }
}

/// The running webhook senders.
pub struct Webhooks {
    status: Arc<WebhookStatus>,
    task: Option<ServiceTask>,
}

/// One receiver, ready to send.
struct Receiver {
    config: WebhookConfig,
    secret: Vec<u8>,
    http: reqwest::Client,
    view: Arc<Mutex<WebhookView>>,
}

impl Webhooks {
    /// Starts a sender per configured receiver, fed by `audit`.
    pub fn start(config: &GatewayConfig, audit: &AuditLog) -> Result<Self, WebhookError> {
        let receivers = config
            .webhooks
            .iter()
            .map(|webhook| Receiver::new(config, webhook))
            .collect::<Result<Vec<_>, _>>()?;
        let status = Arc::new(WebhookStatus {
            receivers: receivers
                .iter()
                .map(|receiver| Arc::clone(&receiver.view))
                .collect(),
        });
        if receivers.is_empty() {
            return Ok(Self { status, task: None });
        }
        let entries = audit.subscribe();
        let task = ServiceTask::spawn("webhooks", move |cancel| run(entries, receivers, cancel));
        Ok(Self {
            status,
            task: Some(task),
        })
    }

    /// What the API shows.
    pub fn status(&self) -> Arc<WebhookStatus> {
        Arc::clone(&self.status)
    }

    /// Stops sending; what is still queued is not sent (the audit log keeps it).
    pub async fn shutdown(self) {
        if let Some(task) = self.task {
            task.stop().await;
        }
    }
}

impl Receiver {
    fn new(config: &GatewayConfig, webhook: &WebhookConfig) -> Result<Self, WebhookError> {
        let setup = |reason: String| WebhookError::Setup {
            url: origin(&webhook.url),
            reason,
        };
        let secret_path = config.resolve(&webhook.secret_file);
        crate::secret_file::check_private(&secret_path)
            .map_err(|error| setup(format!("{}: {error}", secret_path.display())))?;
        let secret = std::fs::read(&secret_path)
            .map_err(|error| setup(format!("{}: {error}", secret_path.display())))?;
        let secret = secret.trim_ascii().to_vec();
        if secret.len() < 16 {
            return Err(setup(format!(
                "{}: the HMAC key needs at least 16 bytes",
                secret_path.display()
            )));
        }
        let ca = webhook
            .ca_file
            .as_ref()
            .map_or_else(|| SYSTEM_CA_BUNDLE.into(), |path| config.resolve(path));
        let http = client(&ca).map_err(setup)?;
        let view = WebhookView {
            url: origin(&webhook.url),
            events: webhook.events.clone(),
            delivered: 0,
            failed: 0,
            pending: 0,
            dropped: 0,
            recent: Vec::new(),
        };
        Ok(Self {
            config: webhook.clone(),
            secret,
            http,
            view: Arc::new(Mutex::new(view)),
        })
    }

    fn update(&self, change: impl FnOnce(&mut WebhookView)) {
        if let Ok(mut view) = self.view.lock() {
            change(&mut view);
        }
    }

    fn record(&self, delivery: &DeliveryView) {
        self.update(|view| {
            match view.recent.iter_mut().find(|held| held.id == delivery.id) {
                Some(held) => *held = delivery.clone(),
                None => view.recent.push(delivery.clone()),
            }
            let excess = view.recent.len().saturating_sub(RECENT);
            view.recent.drain(..excess);
        });
    }

    /// Sends one entry until the receiver takes it or the attempts run out.
    async fn deliver(&self, kind: &'static str, entry: &AuditEntry, cancel: &CancellationToken) {
        let body = serde_json::json!({ "kind": kind, "entry": entry_json(entry) }).to_string();
        let mut delivery = DeliveryView {
            id: uuid::Uuid::new_v4().simple().to_string(),
            kind: kind.to_owned(),
            seq: entry.seq,
            attempts: 0,
            status: "retrying".into(),
            last_error: None,
        };
        let mut backoff = FIRST_BACKOFF;
        while delivery.attempts < ATTEMPTS {
            delivery.attempts += 1;
            match self.attempt(&delivery.id, kind, &body).await {
                Ok(()) => {
                    delivery.status = "delivered".into();
                    delivery.last_error = None;
                    self.record(&delivery);
                    self.update(|view| {
                        view.delivered += 1;
                        view.pending = view.pending.saturating_sub(1);
                    });
                    return;
                }
                Err(error) => {
                    tracing::info!(url = %origin(&self.config.url), attempt = delivery.attempts, %error, "webhook delivery failed");
                    delivery.last_error = Some(error);
                    self.record(&delivery);
                }
            }
            if delivery.attempts < ATTEMPTS {
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = cancel.cancelled() => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
        tracing::warn!(url = %origin(&self.config.url), seq = entry.seq, "webhook delivery given up");
        delivery.status = "failed".into();
        self.record(&delivery);
        self.update(|view| {
            view.failed += 1;
            view.pending = view.pending.saturating_sub(1);
        });
    }

    async fn attempt(&self, id: &str, kind: &str, body: &str) -> Result<(), String> {
        let timestamp = crate::audit::now_ms().to_string();
        let signature = sign(&self.secret, &timestamp, body);
        let response = self
            .http
            .post(&self.config.url)
            .header("content-type", "application/json")
            .header("x-tfc-event", kind)
            .header("x-tfc-delivery", id)
            .header("x-tfc-timestamp", &timestamp)
            .header("x-tfc-signature", format!("sha256={signature}"))
            .body(body.to_owned())
            .send()
            .await
            .map_err(|error| error.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", response.status()))
        }
    }
}

/// The receiver as logs and the API show it: scheme, host and port. A webhook's path or
/// query often holds a token of its own (`https://hooks.example/T0/B1/secret`).
fn origin(url: &str) -> String {
    reqwest::Url::parse(url).map_or_else(
        |_| "(unparsable webhook URL)".to_owned(),
        |url| url.origin().ascii_serialization(),
    )
}

/// The hex HMAC-SHA256 of `<timestamp>.<body>` under `secret`: what a receiver recomputes.
pub fn sign(secret: &[u8], timestamp: &str, body: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    crate::hex::encode(&mac.finalize().into_bytes())
}

/// An HTTPS client that trusts the CAs in `ca` alone.
fn client(ca: &Path) -> Result<reqwest::Client, String> {
    let mut roots = rustls::RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(ca)
        .map_err(|error| format!("CA file {}: {error}", ca.display()))?;
    for certificate in certificates.flatten() {
        // A bundle may hold certificates rustls cannot use; the rest still count.
        let _ = roots.add(certificate);
    }
    if roots.is_empty() {
        return Err(format!(
            "CA file {} holds no usable certificate",
            ca.display()
        ));
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|error| error.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(ATTEMPT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|error| error.to_string())
}

/// Routes each new audit entry to the receivers that take its kind; each receiver sends in
/// order, on its own task.
async fn run(
    mut entries: broadcast::Receiver<AuditEntry>,
    receivers: Vec<Receiver>,
    cancel: CancellationToken,
) {
    let mut queues = Vec::new();
    let mut senders = tokio::task::JoinSet::new();
    for receiver in receivers {
        let (queue, mut waiting) = mpsc::channel::<(&'static str, AuditEntry)>(QUEUE);
        let receiver = Arc::new(receiver);
        queues.push((Arc::clone(&receiver), queue));
        let cancel = cancel.clone();
        senders.spawn(async move {
            while let Some((kind, entry)) = tokio::select! {
                next = waiting.recv() => next,
                () = cancel.cancelled() => None,
            } {
                receiver.deliver(kind, &entry, &cancel).await;
            }
        });
    }
    loop {
        let entry = tokio::select! {
            entry = entries.recv() => entry,
            () = cancel.cancelled() => break,
        };
        let entry = match entry {
            Ok(entry) => entry,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                for (receiver, _) in &queues {
                    receiver.update(|view| view.dropped += missed);
                }
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => break,
        };
        let Some(kind) = event_kind(&entry) else {
            continue;
        };
        for (receiver, queue) in &queues {
            if !receiver.config.events.iter().any(|event| event == kind) {
                continue;
            }
            if queue.try_send((kind, entry.clone())).is_ok() {
                receiver.update(|view| view.pending += 1);
            } else {
                receiver.update(|view| view.dropped += 1);
            }
        }
    }
    drop(queues);
    senders.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently: Python's hmac.new(b"key", b"1.{}", sha256).hexdigest().
        assert_eq!(
            sign(b"key", "1", "{}"),
            "1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
    }

    #[test]
    fn only_committed_revocations_applied_countermeasures_and_denied_data_are_sent() {
        let entry = |action: &str, decision: &str| AuditEntry {
            seq: 1,
            time_ms: 0,
            actor: "did:key:z".into(),
            action: action.into(),
            object: String::new(),
            decision: decision.into(),
            reason: String::new(),
            purpose: None,
            session_start_ms: None,
            duration_ms: None,
            actor_name: None,
            subject: None,
            subject_name: None,
            field: None,
            prev: String::new(),
            hash: String::new(),
        };
        assert_eq!(
            event_kind(&entry("governance.revoke", "commit-emergency")),
            Some("revocation")
        );
        assert_eq!(
            event_kind(&entry("governance.suspend", "commit")),
            Some("revocation")
        );
        assert_eq!(event_kind(&entry("governance.revoke", "pending")), None);
        assert_eq!(event_kind(&entry("governance.admit", "commit")), None);
        assert_eq!(
            event_kind(&entry("threat.apply", "applied")),
            Some("countermeasure")
        );
        assert_eq!(
            event_kind(&entry("data.get", "deny")),
            Some("refused_access")
        );
        assert_eq!(event_kind(&entry("data.get", "allow")), None);
        assert_eq!(event_kind(&entry("api.sessions", "summary")), None);
    }
}
