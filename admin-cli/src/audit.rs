//! `tfcctl audit verify|export`: through the gateway, or offline on a stopped gateway's
//! data directory.

use anyhow::Context;
use clap::Subcommand;
use tfc_gateway::api::types::AuditVerification;
use tfc_gateway::audit::{AuditLog, ChainReport};
use tfc_gateway::store::Store;

use crate::Outcome;
use crate::client::{Client, GatewayArgs, refused};
use crate::output::print_json;

/// `tfcctl audit …`.
#[derive(Subcommand)]
pub(crate) enum AuditCommand {
    /// Verify the audit chain: with --gateway, also against the checkpoints the field's
    /// members keep; with only --data-dir, offline (the gateway must be stopped).
    Verify {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print audit entries for a SIEM (needs --gateway).
    Export {
        /// Entries at or after this instant (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Output format; `jsonl` (one JSON entry per line) is the only one.
        #[arg(long, default_value = "jsonl", value_parser = ["jsonl"])]
        format: String,
    },
}

pub(crate) fn run(gateway: &GatewayArgs, command: AuditCommand) -> anyhow::Result<Outcome> {
    match command {
        AuditCommand::Verify { json } if gateway.url().is_some() => online(gateway, json),
        AuditCommand::Verify { json } => offline(gateway, json),
        AuditCommand::Export { since, .. } => {
            let client = Client::connect(gateway)?;
            let path = match since {
                Some(since) => format!("/v1/audit/export?since={}", encode(&since)),
                None => "/v1/audit/export".to_owned(),
            };
            match client.get_text(&path)? {
                Ok(body) => print!("{body}"),
                Err(error) => return Ok(refused(&error, false)),
            }
            Ok(Outcome::Success)
        }
    }
}

fn encode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

fn online(gateway: &GatewayArgs, json: bool) -> anyhow::Result<Outcome> {
    let report: AuditVerification = match Client::connect(gateway)?.get("/v1/audit/verify")? {
        Ok(report) => report,
        Err(error) => return Ok(refused(&error, json)),
    };
    let intact = report.chain.broken.is_none() && report.peers.mismatches.is_empty();
    if json {
        print_json(
            &serde_json::json!({"ok": intact, "chain": report.chain, "peers": report.peers}),
        );
    } else {
        print_chain(&report.chain);
        println!(
            "members     {} answered, {} checkpoints compared, {} no longer match",
            report.peers.peers,
            report.peers.checked,
            report.peers.mismatches.len()
        );
        for mismatch in &report.peers.mismatches {
            println!(
                "REWRITTEN   entry {} differs from the checkpoint {} keeps",
                mismatch.seq, mismatch.peer
            );
        }
    }
    Ok(if intact {
        Outcome::Success
    } else {
        Outcome::Invalid
    })
}

fn offline(gateway: &GatewayArgs, json: bool) -> anyhow::Result<Outcome> {
    let dir = gateway
        .data_dir()
        .context("pass --gateway URL, or --data-dir DIR to verify a stopped gateway's log")?;
    let store = Store::open(&dir.join(tfc_gateway::init::STORE_DIR)).with_context(|| {
        format!(
            "cannot open the store in {} (stop the gateway first, or use --gateway)",
            dir.display()
        )
    })?;
    let report = AuditLog::open(&store)?.verify()?;
    let intact = report.broken.is_none();
    if json {
        print_json(&serde_json::json!({"ok": intact, "chain": report, "peers": null}));
    } else {
        print_chain(&report);
        println!(
            "members     not asked (offline); run with --gateway to compare with their checkpoints"
        );
    }
    Ok(if intact {
        Outcome::Success
    } else {
        Outcome::Invalid
    })
}

fn print_chain(report: &ChainReport) {
    match (&report.broken, &report.head) {
        (Some(broken), _) => println!(
            "BROKEN      at entry {} ({}): {}",
            broken.position, broken.kind, broken.message
        ),
        (None, Some(head)) => {
            println!("chain       {} entries intact, head {head}", report.entries)
        }
        (None, None) => println!("chain       empty"),
    }
}
