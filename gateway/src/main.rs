//! `tfc-gateway`: the TFC gateway daemon.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tfc_gateway::config::{GatewayConfig, LogFormat};
use tfc_gateway::daemon::Gateway;
use tfc_gateway::demo::{self, Scenario};
use tfc_gateway::init::{STORE_DIR, init};
use tfc_gateway::store::Store;
use tfc_gateway::tls::Provisioned;

/// The TFC gateway daemon.
#[derive(Parser)]
#[command(name = "tfc-gateway", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a data directory: org key, admin TLS certificates, gateway.toml, store.
    /// Running it again keeps what exists.
    Init {
        /// The data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// Import this Ed25519 PKCS#8 PEM key (mode 0600) instead of generating one.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Run the daemon until SIGINT or SIGTERM.
    Run {
        /// The gateway's config.
        #[arg(long)]
        config: PathBuf,
        /// Log format, overriding the config: human or json.
        #[arg(long)]
        log_format: Option<LogFormat>,
    },
    /// Copy the store to a backup file (the gateway must be stopped).
    Backup {
        /// The gateway's config.
        #[arg(long)]
        config: PathBuf,
        /// The backup file to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// Load a backup into an empty store (the gateway must be stopped).
    Restore {
        /// The gateway's config.
        #[arg(long)]
        config: PathBuf,
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
    },
    /// Play a scenario on a real local field: separate gateways on loopback screen each
    /// other, exchange records, share threats and revoke a member, step by step.
    Demo {
        /// The scenario.
        #[arg(value_enum, default_value = "housing-subsidy")]
        scenario: Scenario,
        /// Leave the field up after the last step and print the tfcctl commands to explore it.
        #[arg(long)]
        keep_running: bool,
        /// No narration: print one JSON object with every step's expected and actual outcome.
        #[arg(long)]
        json: bool,
    },
    /// Print the version and the credential types this build understands.
    Info,
}

fn main() -> ExitCode {
    tfc_gateway::allocator::bound_malloc_arenas();
    match run(Cli::parse().command) {
        Ok(code) => code,
        Err(error) => {
            // One line a person can act on, whatever RUST_BACKTRACE says; a cause whose text
            // an outer message already quotes is not repeated.
            let mut message = error.to_string();
            for cause in error.chain().skip(1) {
                let text = cause.to_string();
                if !message.contains(&text) {
                    message = format!("{message}: {text}");
                }
            }
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Init { data_dir, key } => run_init(&data_dir, key.as_deref())?,
        Command::Run { config, log_format } => run_daemon(&config, log_format)?,
        Command::Backup { config, out } => {
            let records = open_store(&config)?.backup(&out)?;
            println!("wrote {records} records to {}", out.display());
        }
        Command::Restore { config, from } => {
            let records = open_store(&config)?.restore(&from)?;
            println!("restored {records} records from {}", from.display());
        }
        Command::Demo {
            scenario,
            keep_running,
            json,
        } => {
            // The gateways' own logs, for whoever asks with RUST_LOG (the narration is quiet).
            if let Ok(level) = std::env::var("RUST_LOG") {
                init_logging(LogFormat::Human, &level)?;
            }
            let options = demo::Options {
                scenario,
                json,
                keep_running,
            };
            let report = tokio::runtime::Runtime::new()?
                .block_on(demo::run(options))
                .context("the demo could not play its field (are loopback sockets and the temporary directory usable?)")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
            return Ok(if report.all_as_expected {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Command::Info => {
            println!("tfc-gateway {}", env!("CARGO_PKG_VERSION"));
            for info in tfc_schemas::CREDENTIAL_TYPES {
                println!("  {:<40} {}", info.name, info.schema_id());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_init(data_dir: &Path, key: Option<&Path>) -> anyhow::Result<()> {
    let report = init(data_dir, key)?;
    let state = |provisioned| match provisioned {
        Provisioned::Created => "created",
        Provisioned::Kept => "kept (already there)",
    };
    println!("organisation  {}", report.did);
    println!("peer id       {}", report.peer_id);
    println!("key           {}", state(report.key));
    println!(
        "tls           {} in {}",
        state(report.tls),
        report
            .tls_files
            .ca_cert
            .parent()
            .unwrap_or(data_dir)
            .display()
    );
    println!(
        "config        {} at {}",
        state(report.config),
        report.config_path.display()
    );
    println!(
        "admin client  {} / {}",
        report.tls_files.client_cert.display(),
        report.tls_files.client_key.display()
    );
    Ok(())
}

fn run_daemon(config: &Path, log_format: Option<LogFormat>) -> anyhow::Result<()> {
    let config = load_config(config)?;
    init_logging(log_format.unwrap_or(config.log.format), &config.log.level)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Listen before "gateway started" is logged: a SIGTERM sent as soon as that line is
        // out must stop the gateway cleanly, not kill it with the default action.
        let stop = StopSignals::listen()?;
        let (gateway, _events) = Gateway::start(&config).await?;
        stop.wait().await;
        tracing::info!("stop signal received; shutting down");
        gateway.shutdown().await?;
        Ok(())
    })
}

fn init_logging(format: LogFormat, level: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .with_context(|| format!("log level {level:?} is not a tracing filter"))?;
    // Colour codes only where a terminal shows them, never in a redirected log.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|error| anyhow::anyhow!("cannot set up logging: {error}"))
}

/// SIGTERM and SIGINT, caught from the moment they are listened to.
struct StopSignals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn listen() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            terminate: signal(SignalKind::terminate()).context("cannot catch SIGTERM")?,
            interrupt: signal(SignalKind::interrupt()).context("cannot catch SIGINT")?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}

fn load_config(path: &Path) -> anyhow::Result<GatewayConfig> {
    GatewayConfig::load(path).with_context(|| {
        format!(
            "{} is not a usable gateway config (`tfc-gateway init --data-dir DIR` writes one; \
             config/gateway.example.toml explains every key)",
            path.display()
        )
    })
}

/// Opens the store named by a config; sled's lock refuses a store the daemon holds.
fn open_store(config: &Path) -> anyhow::Result<Store> {
    let config = load_config(config)?;
    let dir = config.resolve(Path::new(STORE_DIR));
    Store::open(&dir).with_context(|| {
        format!(
            "cannot open the store in {} (is the gateway running? stop it first)",
            dir.display()
        )
    })
}
