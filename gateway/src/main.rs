//! `tfc-gateway`: the TFC gateway daemon.

use clap::{Parser, Subcommand};

/// The TFC gateway daemon.
#[derive(Parser)]
#[command(name = "tfc-gateway", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the version and the credential types this build understands.
    Info,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Info => {
            println!("tfc-gateway {}", env!("CARGO_PKG_VERSION"));
            for info in tfc_schemas::CREDENTIAL_TYPES {
                println!("  {:<40} {}", info.name, info.schema_id());
            }
        }
    }
    Ok(())
}
