//! `gateway.toml`: one struct, defaults that trust nothing, and validation on load.
//!
//! Unknown keys are errors, so that a typo is reported rather than silently ignored. Relative
//! paths are resolved against `data_dir`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::charter::parse_duration_secs;
use crate::threats::ActionKind;
use crate::threats::engine::{Mode, default_mode};

/// Config files larger than this are refused.
const MAX_CONFIG_LEN: u64 = 256 * 1024;
/// The largest message any protocol may be configured to accept.
const MAX_MESSAGE_BYTES_LIMIT: usize = 16 * 1024 * 1024;

/// A config that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid config TOML (unknown keys included).
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is out of range.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
}

impl ConfigError {
    /// A stable machine code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            ConfigError::Io { .. } => "io",
            ConfigError::Syntax { .. } => "config_syntax",
            ConfigError::Invalid { .. } => "config_invalid",
        }
    }
}

/// The gateway's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Directory of the key, the TLS files and the store; relative paths below are resolved
    /// against it.
    pub data_dir: PathBuf,
    /// The organisation's identity.
    #[serde(default)]
    pub identity: IdentityConfig,
    /// Peer-to-peer networking.
    #[serde(default)]
    pub network: NetworkConfig,
    /// The local HTTPS admin and application API.
    #[serde(default)]
    pub api: ApiConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Taking part in governance.
    #[serde(default)]
    pub governance: GovernanceConfig,
    /// Data spaces.
    #[serde(default)]
    pub spaces: SpacesConfig,
    /// Threat countermeasures.
    #[serde(default)]
    pub threats: ThreatsConfig,
    /// Where to send audit events as they happen (`[[webhooks]]`, any number).
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
}

/// The audit events a webhook may ask for.
pub const WEBHOOK_EVENTS: [&str; 3] = ["revocation", "countermeasure", "refused_access"];

/// `[[webhooks]]`: one receiver of audit events, signed with HMAC-SHA256 and retried with
/// backoff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The receiver: `https://…`, or `http://` to a loopback address only.
    pub url: String,
    /// A file (mode 0600) holding the HMAC key, at least 16 bytes.
    pub secret_file: PathBuf,
    /// The CA certificates (PEM) that may vouch for the receiver. Default: the system
    /// bundle `/etc/ssl/certs/ca-certificates.crt`.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Which events: `revocation`, `countermeasure`, `refused_access`. Default: all.
    #[serde(default = "all_webhook_events")]
    pub events: Vec<String>,
}

fn all_webhook_events() -> Vec<String> {
    WEBHOOK_EVENTS
        .iter()
        .map(|event| (*event).to_owned())
        .collect()
}

impl WebhookConfig {
    /// Checks the URL and the events.
    fn check(&self) -> Result<(), String> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|error| format!("webhooks.url {:?}: {error}", self.url))?;
        let loopback = match url.host_str() {
            Some("localhost") => true,
            Some(host) => host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|address| address.is_loopback()),
            None => false,
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => {
                return Err(format!(
                    "webhooks.url {:?}: use https (plain http only to a loopback address): the \
                     events name members and decisions",
                    self.url
                ));
            }
        }
        if let Some(unknown) = self
            .events
            .iter()
            .find(|event| !WEBHOOK_EVENTS.contains(&event.as_str()))
        {
            return Err(format!(
                "webhooks.events: unknown event {unknown:?}; allowed: {}",
                WEBHOOK_EVENTS.join(", ")
            ));
        }
        Ok(())
    }
}

/// `[threats]`: how this organisation applies the countermeasures members propose, and how
/// much it takes from one reporter. Modes are `"auto"`, `"manual"` or
/// `{ auto_at_or_above = "low|medium|high|critical" }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThreatsConfig {
    /// Blocking a member in the field. Default `"manual"`.
    pub block_peer: Mode,
    /// Blocking an address, network or domain at the connection gate. Default
    /// `{ auto_at_or_above = "high" }`.
    pub block_address: Mode,
    /// Suspending one of a member's credentials. Default `"manual"`.
    pub suspend_credential: Mode,
    /// Capping a member's tier. Default `"manual"`.
    pub cap_tier: Mode,
    /// Quarantining records by attachment hash. Default `{ auto_at_or_above = "high" }`.
    pub quarantine: Mode,
    /// Marking members that run named software vulnerable. Default
    /// `{ auto_at_or_above = "high" }`.
    pub mark_vulnerable: Mode,
    /// Indicators one reporter may send at once. Default 100.
    pub reporter_burst: u32,
    /// Indicators per second one reporter may send after its burst. Default 10.
    pub reporter_rate: f64,
    /// Indicators one reporter may have held in one field at a time. Default 1000.
    pub max_indicators_per_reporter: usize,
}

impl ThreatsConfig {
    /// The mode for one kind of action.
    pub fn mode(&self, kind: ActionKind) -> Mode {
        match kind {
            ActionKind::BlockPeer => self.block_peer,
            ActionKind::BlockAddress => self.block_address,
            ActionKind::SuspendCredential => self.suspend_credential,
            ActionKind::CapTier => self.cap_tier,
            ActionKind::Quarantine => self.quarantine,
            ActionKind::MarkVulnerable => self.mark_vulnerable,
        }
    }

    /// The same policy for every kind (tests, benchmarks).
    pub fn uniform(mode: Mode) -> Self {
        Self {
            block_peer: mode,
            block_address: mode,
            suspend_credential: mode,
            cap_tier: mode,
            quarantine: mode,
            mark_vulnerable: mode,
            ..Self::default()
        }
    }
}

impl Default for ThreatsConfig {
    fn default() -> Self {
        Self {
            block_peer: default_mode(ActionKind::BlockPeer),
            block_address: default_mode(ActionKind::BlockAddress),
            suspend_credential: default_mode(ActionKind::SuspendCredential),
            cap_tier: default_mode(ActionKind::CapTier),
            quarantine: default_mode(ActionKind::Quarantine),
            mark_vulnerable: default_mode(ActionKind::MarkVulnerable),
            reporter_burst: 100,
            reporter_rate: 10.0,
            max_indicators_per_reporter: 1000,
        }
    }
}

/// `[spaces]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpacesConfig {
    /// Deletions or overwrites one actor may make in one space per minute before it is
    /// barred from changing that space. Default 60.
    pub bulk_change_limit: usize,
}

impl Default for SpacesConfig {
    fn default() -> Self {
        Self {
            bulk_change_limit: 60,
        }
    }
}

/// Whether this gateway endorses admissions by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndorseMode {
    /// Endorse a proposed admission when this gateway's own verification of the newcomer
    /// gives it a tier in the field.
    Auto,
    /// Only when an admin runs `tfcctl member endorse`.
    Manual,
}

/// `[governance]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GovernanceConfig {
    /// `auto` or `manual`. Default `auto`.
    pub endorse: EndorseMode,
}

impl Default for GovernanceConfig {
    fn default() -> Self {
        Self {
            endorse: EndorseMode::Auto,
        }
    }
}

/// `[identity]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// The organisation's Ed25519 key (PKCS#8 PEM, mode 0600). Default `org-key.pem`.
    pub key_file: PathBuf,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            key_file: "org-key.pem".into(),
        }
    }
}

/// `[network]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// libp2p listen addresses. Default `["/ip4/0.0.0.0/tcp/7400"]`.
    pub listen: Vec<String>,
    /// Peers to dial at start (`/ip4/…/tcp/…/p2p/<peer id>`), in addition to the charters'.
    /// Default none.
    pub bootstrap: Vec<String>,
    /// How long an unknown peer may take to complete the handshake. Default `"10s"`; at most
    /// `"5m"`.
    pub handshake_grace: String,
    /// Largest message accepted on any protocol, in bytes. Default 1 MiB; at most 16 MiB.
    pub max_message_bytes: usize,
    /// Find the other members of joined fields by asking the members already verified where
    /// they listen (only peers verified in a field are told of its members). Default
    /// `true`; with `false`, only bootstrap peers and explicit dials are connected.
    pub discovery: bool,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            listen: vec!["/ip4/0.0.0.0/tcp/7400".into()],
            bootstrap: Vec::new(),
            handshake_grace: "10s".into(),
            max_message_bytes: 1024 * 1024,
            discovery: true,
        }
    }
}

/// The actions `api.four_eyes` may name: every governance op kind, and applying a manual
/// countermeasure.
pub const FOUR_EYES_ACTIONS: [&str; 9] = [
    "admit",
    "revoke",
    "suspend",
    "reinstate",
    "trust-issuer",
    "distrust-issuer",
    "set-quorum",
    "amend-policy",
    "countermeasure",
];

/// `[api]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address of the HTTPS API. Default `127.0.0.1:7443` (loopback only).
    pub listen: SocketAddr,
    /// The admin CA certificate: clients must present a certificate it signed. Default
    /// `tls/admin-ca.pem`.
    pub ca_cert: PathBuf,
    /// The server certificate. Default `tls/server.pem`.
    pub server_cert: PathBuf,
    /// The server key (mode 0600). Default `tls/server-key.pem`.
    pub server_key: PathBuf,
    /// Actions one operator proposes and a second, differently named operator approves
    /// (four eyes): governance op kinds (`revoke`, `suspend`, …) and `countermeasure`.
    /// Default: none.
    pub four_eyes: Vec<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7443)),
            ca_cert: "tls/admin-ca.pem".into(),
            server_cert: "tls/server.pem".into(),
            server_key: "tls/server-key.pem".into(),
            four_eyes: Vec::new(),
        }
    }
}

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `human` or `json`. Default `human`.
    pub format: LogFormat,
    /// A tracing filter such as `info` or `tfc_gateway=debug`. Default `info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

impl GatewayConfig {
    /// The defaults for a data directory.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            data_dir: data_dir.to_owned(),
            identity: IdentityConfig::default(),
            network: NetworkConfig::default(),
            api: ApiConfig::default(),
            log: LogConfig::default(),
            governance: GovernanceConfig::default(),
            spaces: SpacesConfig::default(),
            threats: ThreatsConfig::default(),
            webhooks: Vec::new(),
        }
    }

    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let io = |source| ConfigError::Io {
            path: path.to_owned(),
            source,
        };
        if std::fs::metadata(path).map_err(io)?.len() > MAX_CONFIG_LEN {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                message: format!("larger than {MAX_CONFIG_LEN} bytes"),
            });
        }
        Self::parse(&std::fs::read_to_string(path).map_err(io)?, path)
    }

    /// Parses and checks config text; `path` is named in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|error| ConfigError::Syntax {
            path: path.to_owned(),
            message: error.to_string(),
        })?;
        config.check().map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        let grace = parse_duration_secs(&self.network.handshake_grace).ok_or_else(|| {
            format!(
                "network.handshake_grace {:?} is not a duration like \"10s\"",
                self.network.handshake_grace
            )
        })?;
        if grace > 300 {
            return Err(
                "network.handshake_grace must be at most 5m: unknown peers are held only briefly"
                    .into(),
            );
        }
        if !(1024..=MAX_MESSAGE_BYTES_LIMIT).contains(&self.network.max_message_bytes) {
            return Err(format!(
                "network.max_message_bytes must be between 1024 and {MAX_MESSAGE_BYTES_LIMIT}"
            ));
        }
        if self.network.listen.is_empty() {
            return Err("network.listen needs at least one address".into());
        }
        if let Some(unknown) = self
            .api
            .four_eyes
            .iter()
            .find(|action| !FOUR_EYES_ACTIONS.contains(&action.as_str()))
        {
            return Err(format!(
                "api.four_eyes: unknown action {unknown:?}; allowed: {}",
                FOUR_EYES_ACTIONS.join(", ")
            ));
        }
        for webhook in &self.webhooks {
            webhook.check()?;
        }
        let threats = &self.threats;
        if threats.reporter_burst == 0
            || !(threats.reporter_rate > 0.0 && threats.reporter_rate <= 1e6)
            || threats.max_indicators_per_reporter == 0
        {
            return Err("threats.reporter_burst, reporter_rate (≤ 1e6) and \
                 max_indicators_per_reporter must be positive"
                .into());
        }
        Ok(())
    }

    /// The handshake grace window in seconds (checked on load).
    pub fn handshake_grace_secs(&self) -> i64 {
        parse_duration_secs(&self.network.handshake_grace).unwrap_or(10)
    }

    /// A path from the config, resolved against `data_dir`.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.data_dir.join(path)
    }
}

/// The commented `gateway.toml` that `tfc-gateway init` writes.
pub fn default_config_text(data_dir: &Path) -> String {
    let data_dir = data_dir
        .display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    format!(
        r#"# TFC gateway configuration. Unknown keys are errors. Relative paths are resolved
# against data_dir. Every value below is the default except data_dir.

# Where the organisation key, the TLS files and the store live.
data_dir = "{data_dir}"

[identity]
# The organisation's Ed25519 key (PKCS#8 PEM). The gateway refuses it unless its mode is 0600.
key_file = "org-key.pem"

[network]
# libp2p listen addresses.
listen = ["/ip4/0.0.0.0/tcp/7400"]
# Peers to dial at start, e.g. "/ip4/192.0.2.10/tcp/7400/p2p/12D3KooW…".
bootstrap = []
# How long an unknown peer may take to complete the mutual handshake (at most 5m).
handshake_grace = "10s"
# Largest message accepted on any protocol, in bytes (1024 to 16 MiB).
max_message_bytes = 1048576
# Find the other members of joined fields by asking the members already verified where they
# listen (a field's members are told only to peers verified in it). With false, only
# bootstrap peers and explicit dials are connected.
discovery = true

[api]
# The local HTTPS API. Clients must present a certificate signed by the admin CA (mutual TLS).
listen = "127.0.0.1:7443"
ca_cert = "tls/admin-ca.pem"
server_cert = "tls/server.pem"
server_key = "tls/server-key.pem"
# Actions that need a second operator's approval, e.g. ["revoke", "suspend", "countermeasure"].
four_eyes = []

[log]
# "human" or "json".
format = "human"
# A tracing filter, e.g. "info" or "tfc_gateway=debug".
level = "info"

[governance]
# "auto": endorse a proposed admission when this gateway's own verification of the newcomer
# gives it a tier in the field. "manual": only on `tfcctl member endorse`.
endorse = "auto"

[spaces]
# Deletions or overwrites one actor may make in one space per minute; one more bars it from
# changing that space and raises an alert (a defence against mass encryption or wiping).
bulk_change_limit = 60

[threats]
# How members' threat reports are acted on, per kind of countermeasure: "auto", "manual"
# (waits for `tfcctl threat apply`), or {{ auto_at_or_above = "low|medium|high|critical" }}.
# Whatever the mode, an action against a member (block_peer, suspend_credential, cap_tier,
# mark_vulnerable) waits until a charter admin reports it or two organisations do.
block_peer = "manual"
block_address = {{ auto_at_or_above = "high" }}
suspend_credential = "manual"
cap_tier = "manual"
quarantine = {{ auto_at_or_above = "high" }}
mark_vulnerable = {{ auto_at_or_above = "high" }}
# Indicators one reporter may send at once, and per second after that.
reporter_burst = 100
reporter_rate = 10.0
# Indicators one reporter may have held in one field at a time.
max_indicators_per_reporter = 1000
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_text_parses_to_the_defaults() {
        let dir = Path::new("/var/lib/tfc");
        let config =
            GatewayConfig::parse(&default_config_text(dir), Path::new("gateway.toml")).unwrap();
        assert_eq!(config, GatewayConfig::new(dir));
        assert_eq!(config.handshake_grace_secs(), 10);
        assert_eq!(
            config.resolve(&config.api.ca_cert),
            Path::new("/var/lib/tfc/tls/admin-ca.pem")
        );
    }

    #[test]
    fn only_data_dir_is_required() {
        let config = GatewayConfig::parse("data_dir = \"/d\"", Path::new("g.toml")).unwrap();
        assert_eq!(config.network.max_message_bytes, 1024 * 1024);
        assert_eq!(
            GatewayConfig::parse("", Path::new("g.toml"))
                .unwrap_err()
                .code(),
            "config_syntax"
        );
    }

    #[test]
    fn typos_and_bad_values_are_reported() {
        let cases = [
            (
                "data_dir = \"/d\"\n[network]\nlisten_on = []",
                "config_syntax",
                "listen_on",
            ),
            (
                "data_dir = \"/d\"\n[api]\nlisten = \"localhost\"",
                "config_syntax",
                "listen",
            ),
            (
                "data_dir = \"/d\"\n[network]\nhandshake_grace = \"forever\"",
                "config_invalid",
                "handshake_grace",
            ),
            (
                "data_dir = \"/d\"\n[network]\nhandshake_grace = \"1h\"",
                "config_invalid",
                "at most 5m",
            ),
            (
                "data_dir = \"/d\"\n[network]\nmax_message_bytes = 99999999999",
                "config_invalid",
                "max_message_bytes",
            ),
            (
                "data_dir = \"/d\"\n[network]\nlisten = []",
                "config_invalid",
                "at least one",
            ),
            (
                "data_dir = \"/d\"\n[log]\nformat = \"xml\"",
                "config_syntax",
                "format",
            ),
        ];
        for (text, code, mention) in cases {
            let error = GatewayConfig::parse(text, Path::new("g.toml")).unwrap_err();
            assert_eq!(error.code(), code, "{text}: {error}");
            assert!(
                error.to_string().contains(mention),
                "{error} should mention {mention}"
            );
        }
    }

    #[test]
    fn the_example_in_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/gateway.example.toml");
        GatewayConfig::load(&path).unwrap();
    }
}
