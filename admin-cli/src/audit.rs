//! `tfcctl audit verify|export`: through the gateway, or offline on a stopped gateway's
//! data directory.

use anyhow::Context;
use clap::Subcommand;
use tfc_gateway::api::types::{AuditEntries, AuditVerification};
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
    /// Audit entries that match, oldest first, under the chain's verification status
    /// (needs --gateway).
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// Print one JSON object (entries keep `timeMs` beside `time`).
        #[arg(long)]
        json: bool,
    },
    /// Audit entries for a SIEM, one per line: JSON lines or CEF (needs --gateway).
    Export {
        #[command(flatten)]
        filter: FilterArgs,
        /// `jsonl` (JSON with `time` in RFC 3339 beside `timeMs`) or `cef` (ArcSight).
        #[arg(long, default_value = "jsonl", value_parser = ["jsonl", "cef"])]
        format: String,
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

/// Which entries: every criterion given must match.
#[derive(clap::Args)]
pub(crate) struct FilterArgs {
    /// Entries at or after this instant (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Entries before this instant (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// The actor's DID, operator or name contains this.
    #[arg(long)]
    actor: Option<String>,
    /// The subject's DID or name, or the object, contains this.
    #[arg(long)]
    subject: Option<String>,
    /// The action starts with this (e.g. governance., data.get).
    #[arg(long)]
    action: Option<String>,
    /// The decision is this (allow, deny, commit, …).
    #[arg(long)]
    decision: Option<String>,
    /// The field id starts with this.
    #[arg(long)]
    field: Option<String>,
    /// At most this many, the latest.
    #[arg(long)]
    limit: Option<usize>,
}

impl FilterArgs {
    /// The query string, with `extra` pairs.
    fn query(&self, extra: &[(&str, &str)]) -> String {
        let limit = self.limit.map(|limit| limit.to_string());
        let pairs = [
            ("since", self.since.as_deref()),
            ("until", self.until.as_deref()),
            ("actor", self.actor.as_deref()),
            ("subject", self.subject.as_deref()),
            ("action", self.action.as_deref()),
            ("decision", self.decision.as_deref()),
            ("field", self.field.as_deref()),
            ("limit", limit.as_deref()),
        ];
        let mut url = reqwest::Url::parse("https://query.invalid/").expect("a fixed URL");
        {
            let mut query = url.query_pairs_mut();
            for (key, value) in pairs {
                if let Some(value) = value {
                    query.append_pair(key, value);
                }
            }
            for (key, value) in extra {
                query.append_pair(key, value);
            }
        }
        url.query()
            .map(|query| format!("?{query}"))
            .unwrap_or_default()
    }
}

pub(crate) fn run(gateway: &GatewayArgs, command: AuditCommand) -> anyhow::Result<Outcome> {
    match command {
        AuditCommand::Verify { json } if gateway.url().is_some() => online(gateway, json),
        AuditCommand::Verify { json } => offline(gateway, json),
        AuditCommand::Export {
            filter,
            format,
            out,
        } => {
            let client = Client::connect(gateway)?;
            let path = format!("/v1/audit/export{}", filter.query(&[("format", &format)]));
            match client.get_text(&path)? {
                Ok(body) => match out {
                    Some(out) => std::fs::write(&out, body)
                        .with_context(|| format!("cannot write {}", out.display()))?,
                    None => print!("{body}"),
                },
                Err(error) => return Ok(refused(&error, false)),
            }
            Ok(Outcome::Success)
        }
        AuditCommand::List { filter, json } => list(gateway, &filter, json),
    }
}

fn list(gateway: &GatewayArgs, filter: &FilterArgs, json: bool) -> anyhow::Result<Outcome> {
    let client = Client::connect(gateway)?;
    let answer: AuditEntries =
        match client.get(&format!("/v1/audit/entries{}", filter.query(&[])))? {
            Ok(answer) => answer,
            Err(error) => return Ok(refused(&error, json)),
        };
    if json {
        print_json(&serde_json::to_value(&answer)?);
    } else {
        print_chain(&answer.chain);
        println!("matching    {} entries", answer.entries.len());
        for entry in &answer.entries {
            let text = |key: &str| entry[key].as_str().unwrap_or("").to_owned();
            let named = |name: &str, id: &str| match (entry[name].as_str(), entry[id].as_str()) {
                (Some(name), _) => name.to_owned(),
                (None, Some(id)) => short(id),
                (None, None) => "-".to_owned(),
            };
            println!(
                "{}  {:<24} {:<26} {:<24} {:<10} {}",
                text("time"),
                named("actorName", "actor"),
                text("action"),
                named("subjectName", "subject"),
                text("decision"),
                text("reason")
            );
        }
    }
    Ok(if answer.chain.broken.is_none() {
        Outcome::Success
    } else {
        Outcome::Invalid
    })
}

/// A DID or long id cut for a table; `--json` keeps it whole.
fn short(id: &str) -> String {
    if id.chars().count() <= 24 {
        return id.to_owned();
    }
    let head: String = id.chars().take(20).collect();
    format!("{head}…")
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
