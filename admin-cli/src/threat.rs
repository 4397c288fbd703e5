//! `tfcctl threat …`: compose indicators offline; publish, import and list reports, and
//! apply or reject the countermeasures that wait, through the gateway.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tfc_gateway::exchange::ThreatPublication;
use tfc_gateway::services::threats::{ActionView, ReportOutcome};
use tfc_gateway::threats::engine::State;
use tfc_gateway::threats::{ActionKind, Countermeasure, IndicatorDraft, Severity, Tlp, compose};

use crate::Outcome;
use crate::client::{Client, GatewayArgs, refused};
use crate::input::{read_json_object, read_token};
use crate::output::{print_json, write_or_print};

/// The field and output of a command.
#[derive(Args)]
pub(crate) struct FieldArgs {
    /// The field id (a prefix is enough).
    #[arg(long)]
    field: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `tfcctl threat …`.
#[derive(Subcommand)]
pub(crate) enum ThreatCommand {
    /// Compose a STIX 2.1 bundle holding one indicator (offline).
    Indicator(IndicatorArgs),
    /// Report a STIX bundle to the field as this gateway: gossiped, or for TLP:RED sent
    /// only to the members named with --to (needs --gateway).
    Publish {
        /// The bundle (JSON).
        file: PathBuf,
        /// A recipient's DID (TLP:RED only); repeat for several.
        #[arg(long = "to")]
        recipients: Vec<String>,
        #[command(flatten)]
        field: FieldArgs,
    },
    /// Take a report from a file without sharing it: a STIX bundle from an outside feed
    /// (this gateway becomes its reporter), or a member's signed threat envelope (needs
    /// --gateway).
    Import {
        /// The bundle (JSON) or the envelope (compact JWS).
        file: PathBuf,
        #[command(flatten)]
        field: FieldArgs,
    },
    /// The indicators the gateway holds in a field (needs --gateway).
    List(FieldArgs),
    /// Countermeasures, with their state (needs --gateway).
    Actions {
        /// Only those in this state: applied, awaiting_corroboration, awaiting_operator,
        /// rejected, inactive.
        #[arg(long)]
        state: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Countermeasures waiting for the operator or for a second report (needs --gateway).
    Pending {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Apply a waiting countermeasure (needs --gateway).
    Apply {
        /// The action id (a prefix is enough).
        action: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Refuse a countermeasure until it expires (needs --gateway).
    Reject {
        /// The action id (a prefix is enough).
        action: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `tfcctl threat indicator`.
#[derive(Args)]
pub(crate) struct IndicatorArgs {
    /// A STIX pattern, e.g. "[ipv4-addr:value = '198.51.100.0/24']".
    #[arg(long)]
    pattern: String,
    /// low, medium, high or critical (the 危険度).
    #[arg(long)]
    severity: Severity,
    /// block-peer, block-address, suspend-credential, cap-tier, quarantine, mark-vulnerable.
    #[arg(long, value_parser = parse_action)]
    action: ActionKind,
    /// For cap-tier: the highest tier left.
    #[arg(long)]
    tier: Option<u8>,
    /// For suspend-credential: the credential id.
    #[arg(long)]
    credential: Option<String>,
    /// clear, green, amber, amber+strict or red.
    #[arg(long, default_value = "amber", value_parser = parse_tlp)]
    tlp: Tlp,
    /// How long it lasts, e.g. 12h or 7d.
    #[arg(long, default_value = "7d")]
    valid_for: String,
    /// A short name.
    #[arg(long, default_value = "reported by tfcctl")]
    name: String,
    /// What was seen.
    #[arg(long, default_value = "")]
    description: String,
    /// 0 to 100.
    #[arg(long)]
    confidence: Option<u8>,
    /// Write the bundle here instead of printing it.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn parse_action(text: &str) -> Result<ActionKind, String> {
    serde_json::from_value(Value::String(text.to_owned())).map_err(|_| {
        let names: Vec<&str> = ActionKind::ALL.iter().map(|kind| kind.as_str()).collect();
        format!("{text:?} is not one of {}", names.join(", "))
    })
}

fn parse_tlp(text: &str) -> Result<Tlp, String> {
    serde_json::from_value(Value::String(text.to_ascii_lowercase()))
        .map_err(|_| format!("{text:?} is not clear, green, amber, amber+strict or red"))
}

pub(crate) fn run(gateway: &GatewayArgs, command: ThreatCommand) -> anyhow::Result<Outcome> {
    match command {
        ThreatCommand::Indicator(args) => indicator(args),
        ThreatCommand::Publish {
            file,
            recipients,
            field,
        } => publish(gateway, &file, recipients, &field),
        ThreatCommand::Import { file, field } => import(gateway, &file, &field),
        ThreatCommand::List(field) => list(gateway, &field),
        ThreatCommand::Actions { state, json } => actions(gateway, state.as_deref(), json, false),
        ThreatCommand::Pending { json } => actions(gateway, None, json, true),
        ThreatCommand::Apply { action, json } => decide(gateway, &action, "apply", json),
        ThreatCommand::Reject { action, json } => decide(gateway, &action, "reject", json),
    }
}

fn indicator(args: IndicatorArgs) -> anyhow::Result<Outcome> {
    let lifetime =
        tfc_gateway::charter::parse_duration_secs(&args.valid_for).with_context(|| {
            format!(
                "--valid-for {:?} is not a duration like 12h or 7d",
                args.valid_for
            )
        })?;
    let now = tfc_gateway::credential::now_unix();
    let draft = IndicatorDraft {
        name: args.name,
        description: args.description,
        pattern: args.pattern,
        severity: args.severity,
        countermeasure: Countermeasure {
            action: args.action,
            tier: args.tier,
            credential: args.credential,
        },
        tlp: args.tlp,
        confidence: args.confidence,
        valid_from: now,
        valid_until: now.saturating_add(lifetime),
    };
    match compose(&draft, now) {
        Ok(bundle) => {
            let text = serde_json::to_string_pretty(&bundle)?;
            write_or_print(args.out.as_deref(), &format!("{text}\n"))?;
            Ok(Outcome::Success)
        }
        Err(error) => {
            eprintln!("{}: {}", error.code.as_str(), error.message);
            Ok(Outcome::Invalid)
        }
    }
}

fn publish(
    gateway: &GatewayArgs,
    file: &Path,
    recipients: Vec<String>,
    field: &FieldArgs,
) -> anyhow::Result<Outcome> {
    let bundle = Value::Object(read_json_object(file)?);
    let body = json!({ "bundle": bundle, "recipients": recipients });
    let path = format!("/v1/fields/{}/threats", field.field);
    let publication: ThreatPublication = match Client::connect(gateway)?.post(&path, &body)? {
        Ok(publication) => publication,
        Err(error) => return Ok(refused(&error, field.json)),
    };
    if field.json {
        print_json(&serde_json::to_value(&publication)?);
        return Ok(Outcome::Success);
    }
    print_outcome(&publication.outcome);
    for delivery in &publication.deliveries {
        println!("sent to {}: {}", delivery.recipient, delivery.result);
    }
    if publication.deliveries.is_empty() {
        println!("gossiped to the field");
    }
    Ok(Outcome::Success)
}

fn import(gateway: &GatewayArgs, file: &Path, field: &FieldArgs) -> anyhow::Result<Outcome> {
    let text = read_token(file)?;
    let report = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(bundle)) => Value::Object(bundle),
        Ok(_) => bail!("{} holds JSON that is not a bundle", file.display()),
        Err(_) => Value::String(text.trim().to_owned()),
    };
    let path = format!("/v1/fields/{}/threats/import", field.field);
    let outcome: ReportOutcome =
        match Client::connect(gateway)?.post(&path, &json!({ "report": report }))? {
            Ok(outcome) => outcome,
            Err(error) => return Ok(refused(&error, field.json)),
        };
    if field.json {
        print_json(&serde_json::to_value(&outcome)?);
    } else {
        print_outcome(&outcome);
    }
    Ok(Outcome::Success)
}

fn print_outcome(outcome: &ReportOutcome) {
    println!(
        "{} indicators taken, {} already held",
        outcome.taken, outcome.unchanged
    );
    print_actions(&outcome.actions);
}

fn list(gateway: &GatewayArgs, field: &FieldArgs) -> anyhow::Result<Outcome> {
    let path = format!("/v1/fields/{}/threats", field.field);
    let held: Vec<Value> = match Client::connect(gateway)?.get(&path)? {
        Ok(held) => held,
        Err(error) => return Ok(refused(&error, field.json)),
    };
    if field.json {
        print_json(&Value::Array(held));
        return Ok(Outcome::Success);
    }
    println!(
        "{:<46} {:<9} {:<19} {:<8} PATTERN",
        "INDICATOR", "SEVERITY", "ACTION", "ORIGIN"
    );
    for view in &held {
        let object = &view["object"];
        println!(
            "{:<46} {:<9} {:<19} {:<8} {}",
            object["id"].as_str().unwrap_or("?"),
            object["x_tfc_severity"].as_str().unwrap_or("?"),
            object["x_tfc_countermeasure"]["action"]
                .as_str()
                .unwrap_or("?"),
            view["origin"].as_str().unwrap_or("?"),
            object["pattern"].as_str().unwrap_or("?"),
        );
    }
    println!("{} indicators", held.len());
    Ok(Outcome::Success)
}

fn actions(
    gateway: &GatewayArgs,
    state: Option<&str>,
    json: bool,
    pending_only: bool,
) -> anyhow::Result<Outcome> {
    let path = match state {
        Some(state) => format!("/v1/threats/actions?state={state}"),
        None => "/v1/threats/actions".to_owned(),
    };
    let mut views: Vec<ActionView> = match Client::connect(gateway)?.get(&path)? {
        Ok(views) => views,
        Err(error) => return Ok(refused(&error, json)),
    };
    if pending_only {
        views.retain(|view| {
            matches!(
                view.state,
                State::AwaitingOperator | State::AwaitingCorroboration
            )
        });
    }
    if json {
        print_json(&serde_json::to_value(&views)?);
    } else {
        print_actions(&views);
        if pending_only && !views.is_empty() {
            println!("apply with: tfcctl --gateway URL threat apply <ACTION>  (or reject)");
        }
    }
    Ok(Outcome::Success)
}

fn print_actions(views: &[ActionView]) {
    if views.is_empty() {
        println!("no countermeasures");
        return;
    }
    println!(
        "{:<16} {:<19} {:<23} {:<9} {:<9} TARGET",
        "ACTION", "KIND", "STATE", "SEVERITY", "REPORTERS"
    );
    for view in views {
        let target = view
            .target
            .as_object()
            .map(|target| {
                target
                    .iter()
                    .filter(|(key, _)| key.as_str() != "kind")
                    .map(|(_, value)| {
                        value
                            .as_str()
                            .map_or_else(|| value.to_string(), str::to_owned)
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        println!(
            "{:<16} {:<19} {:<23} {:<9} {:<9} {target}",
            view.id.get(..16).unwrap_or(&view.id),
            view.action.as_str(),
            serde_json::to_value(view.state)
                .ok()
                .and_then(|state| state.as_str().map(str::to_owned))
                .unwrap_or_default(),
            view.severity
                .map(|severity| format!("{severity:?}").to_lowercase())
                .unwrap_or_else(|| "-".into()),
            format!(
                "{}{}",
                view.reporters,
                if view.admin_reported { " +admin" } else { "" }
            ),
        );
    }
}

fn decide(
    gateway: &GatewayArgs,
    action: &str,
    verdict: &str,
    json: bool,
) -> anyhow::Result<Outcome> {
    let path = format!("/v1/threats/actions/{action}/{verdict}");
    let view: ActionView = match Client::connect(gateway)?.post(&path, &json!({}))? {
        Ok(view) => view,
        Err(error) => return Ok(refused(&error, json)),
    };
    if json {
        print_json(&serde_json::to_value(&view)?);
    } else {
        print_actions(std::slice::from_ref(&view));
    }
    Ok(Outcome::Success)
}
