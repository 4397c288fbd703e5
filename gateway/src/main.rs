//! `tfc-gateway`: the TFC gateway daemon.

mod demo;

use std::process::ExitCode;

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
    /// Play the walkthrough: issue, present, verify, replay, tamper, revoke.
    Demo {
        /// Print one JSON object with every step's expected and actual outcome.
        #[arg(long)]
        json: bool,
    },
    /// Print the version and the credential types this build understands.
    Info,
}

fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Demo { json } => {
            let all_as_expected = demo::run(json)?;
            return Ok(if all_as_expected {
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
