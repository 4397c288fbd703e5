//! An embedded local network: real gateways (`init`, then [`Gateway::start`]) on 127.0.0.1
//! with ephemeral ports, each with its own data directory and sled store. The demo plays its
//! scenarios on it, and the system tests and benchmarks build their fields with it.
//!
//! Every wait is on state, bounded by a timeout: a peer record, a standing, or the gateway's
//! [`Journal`], which keeps every handshake event since the gateway started, so that no
//! wait can miss an event another wait consumed first.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{Notify, broadcast};

use crate::config::GatewayConfig;
use crate::daemon::{DaemonError, Gateway};
use crate::handshake::GatewayEvent;
use crate::identity::KeyPair;
use crate::init::{CONFIG_FILE, KEY_FILE, init};
use crate::services::PeerRecord;

/// Starting, driving or waiting on a local gateway failed.
#[derive(Debug, thiserror::Error)]
pub enum LocalNetError {
    /// The data directory could not be initialised or configured.
    #[error("setting up {path}: {message}")]
    Setup {
        /// The data directory.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The gateway refused an operation.
    #[error(transparent)]
    Gateway(#[from] DaemonError),
    /// A wait ran out of time.
    #[error("timed out after {seconds} s waiting until {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The timeout.
        seconds: u64,
    },
    /// The gateway stopped while a wait was on.
    #[error("the gateway stopped while waiting until {0}")]
    Stopped(String),
}

impl LocalNetError {
    /// The stable code: `setup_failed`, the gateway's own code, `timeout` or `stopped`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Setup { .. } => "setup_failed",
            Self::Gateway(error) => error.code(),
            Self::Timeout { .. } => "timeout",
            Self::Stopped(_) => "stopped",
        }
    }
}

/// A real gateway on loopback.
pub struct LocalGateway {
    /// Its data directory (keys, TLS, config, store).
    pub dir: PathBuf,
    /// Its DID.
    pub did: String,
    /// The running gateway.
    pub gateway: Gateway,
    /// Its handshake events since it started.
    pub journal: Journal,
    /// Its libp2p listen address (with `/p2p/<PeerId>`).
    pub address: Multiaddr,
}

impl LocalGateway {
    /// `init`s `dir`, points it at ephemeral loopback ports, lets `configure` edit the config
    /// text, and starts the gateway once it listens.
    pub async fn start(
        dir: &Path,
        configure: impl FnOnce(String) -> String,
    ) -> Result<Self, LocalNetError> {
        let setup = |message: String| LocalNetError::Setup {
            path: dir.to_owned(),
            message,
        };
        init(dir, None).map_err(|error| setup(error.to_string()))?;
        let config_path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&config_path)
            .map_err(|error| setup(error.to_string()))?
            .replace("/ip4/0.0.0.0/tcp/7400", "/ip4/127.0.0.1/tcp/0")
            .replace("127.0.0.1:7443", "127.0.0.1:0");
        std::fs::write(&config_path, configure(text)).map_err(|error| setup(error.to_string()))?;
        Self::resume(dir).await
    }

    /// Starts the gateway of a data directory `start` set up before (on new ports).
    pub async fn resume(dir: &Path) -> Result<Self, LocalNetError> {
        let config =
            GatewayConfig::load(&dir.join(CONFIG_FILE)).map_err(|error| LocalNetError::Setup {
                path: dir.to_owned(),
                message: error.to_string(),
            })?;
        let (gateway, events) = Gateway::start(&config).await?;
        let journal = Journal::follow(events);
        let (_, listening) = journal
            .wait_from(0, "the gateway listens", |event| match event {
                GatewayEvent::Listening(address) => Some(address.clone()),
                _ => None,
            })
            .await?;
        Ok(Self {
            dir: dir.to_owned(),
            did: gateway.did(),
            address: listening.with(Protocol::P2p(gateway.network().peer_id())),
            gateway,
            journal,
        })
    }

    /// The organisation key, as `init` wrote it.
    pub fn org_key(&self) -> Result<KeyPair, LocalNetError> {
        KeyPair::load(&self.dir.join(KEY_FILE)).map_err(|error| LocalNetError::Setup {
            path: self.dir.clone(),
            message: error.to_string(),
        })
    }

    /// Its PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.gateway.network().peer_id()
    }

    /// The id of the first field it joined, if any.
    pub fn field_id(&self) -> Option<String> {
        let fields = self.gateway.services().fields.all();
        fields.first().map(|field| field.charter.field_id())
    }

    /// Imports credentials into its wallet (as `tfcctl wallet import` does): each must
    /// verify and name this gateway's DID.
    pub async fn import_wallet(&self, tokens: &[String]) -> Result<(), LocalNetError> {
        for token in tokens {
            self.gateway
                .services()
                .import_credential(token)
                .await
                .map_err(crate::daemon::DaemonError::from)?;
        }
        Ok(())
    }

    /// Joins the field whose charter is at `charter` (as `tfcctl field join` does).
    pub async fn join(&self, charter: &Path) -> Result<(), LocalNetError> {
        self.gateway.join_field(charter).await?;
        Ok(())
    }

    /// Its record of `peer`: the tiers the handshake gave it, if the peer ever completed one.
    pub fn peer_record(&self, peer: PeerId) -> Option<PeerRecord> {
        self.gateway.services().peers.get(peer)
    }

    /// Stops the gateway cleanly.
    pub async fn shutdown(self) -> Result<(), LocalNetError> {
        self.gateway.shutdown().await?;
        Ok(())
    }
}

/// How long [`Journal::wait_from`] and [`wait_until`] wait before giving up.
pub const WAIT: Duration = Duration::from_secs(20);

/// Events a journal keeps; older ones are dropped (a wait from before them fails).
const JOURNAL_DEPTH: usize = 20_000;

/// Every handshake event of a gateway since it started, kept for waits: each wait reads the
/// journal from an index of its choosing, so two waits never compete for one event. Records
/// are kept without the credentials they carry.
#[derive(Clone)]
pub struct Journal {
    inner: Arc<JournalInner>,
}

struct JournalInner {
    /// The events held, and the index of the first of them.
    events: Mutex<(usize, Vec<GatewayEvent>)>,
    grew: Notify,
}

impl Journal {
    /// A journal fed by `events` (a receiver that saw every event from the start) until the
    /// gateway stops.
    pub fn follow(mut events: broadcast::Receiver<GatewayEvent>) -> Self {
        let journal = Self {
            inner: Arc::new(JournalInner {
                events: Mutex::new((0, Vec::new())),
                grew: Notify::new(),
            }),
        };
        let inner = Arc::downgrade(&journal.inner);
        tokio::spawn(async move {
            loop {
                let event = match events.recv().await {
                    Ok(event) => event,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "the journal missed events");
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                let Some(inner) = inner.upgrade() else {
                    break;
                };
                if let Ok(mut held) = inner.events.lock() {
                    held.1.push(slim(event));
                    if held.1.len() > JOURNAL_DEPTH {
                        let drop = held.1.len() - JOURNAL_DEPTH;
                        held.1.drain(..drop);
                        held.0 += drop;
                    }
                }
                inner.grew.notify_waiters();
            }
        });
        journal
    }

    /// The index the next event will have.
    pub fn len(&self) -> usize {
        self.inner
            .events
            .lock()
            .map(|held| held.0 + held.1.len())
            .unwrap_or(0)
    }

    /// Whether no event arrived yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first event at or after index `from` that `pick` maps to a value, waiting for it
    /// for at most [`WAIT`]; returns its index and the value.
    pub async fn wait_from<T>(
        &self,
        from: usize,
        what: &str,
        pick: impl Fn(&GatewayEvent) -> Option<T>,
    ) -> Result<(usize, T), LocalNetError> {
        let wait = async {
            loop {
                // Registered before the look, so that an event landing in between wakes it.
                let grew = self.inner.grew.notified();
                tokio::pin!(grew);
                grew.as_mut().enable();
                if let Some(found) = self.find(from, &pick) {
                    return found;
                }
                grew.await;
            }
        };
        tokio::time::timeout(WAIT, wait)
            .await
            .map_err(|_| timeout(what))
    }

    fn find<T>(
        &self,
        from: usize,
        pick: &impl Fn(&GatewayEvent) -> Option<T>,
    ) -> Option<(usize, T)> {
        let held = self.inner.events.lock().ok()?;
        let (first, events) = (&held.0, &held.1);
        events
            .iter()
            .enumerate()
            .skip(from.saturating_sub(*first))
            .find_map(|(offset, event)| pick(event).map(|value| (first + offset, value)))
    }
}

/// An event without the credentials its record carries.
fn slim(event: GatewayEvent) -> GatewayEvent {
    match event {
        GatewayEvent::PeerVerified { peer, mut record } => {
            for presented in record.presented.values_mut() {
                presented.credentials.clear();
            }
            GatewayEvent::PeerVerified { peer, record }
        }
        other => other,
    }
}

/// The highest tier in a record.
pub fn top_tier(record: &PeerRecord) -> u8 {
    record.tiers.values().copied().max().unwrap_or(0)
}

/// Waits until `condition` holds, checking every `period`, for at most [`WAIT`]: for state
/// with no event of its own (standings, counters, queues).
pub async fn wait_until<F, Fut>(
    what: &str,
    period: Duration,
    mut condition: F,
) -> Result<(), LocalNetError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition().await {
        if tokio::time::Instant::now() >= deadline {
            return Err(timeout(what));
        }
        tokio::time::sleep(period).await;
    }
    Ok(())
}

fn timeout(what: &str) -> LocalNetError {
    LocalNetError::Timeout {
        what: what.to_owned(),
        seconds: WAIT.as_secs(),
    }
}
