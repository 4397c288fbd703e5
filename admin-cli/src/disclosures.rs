//! `tfcctl disclosures`: who has seen which of our credentials, and whose we received, from
//! the gateway's disclosure log; `--export` writes the entries as JSON lines.

use std::path::PathBuf;

use clap::Args;
use tfc_gateway::disclosure::DisclosureEntry;

use crate::Outcome;
use crate::client::{Client, GatewayArgs, refused};
use crate::output::{print_json, write_or_print};

/// `tfcctl disclosures …`.
#[derive(Args)]
pub(crate) struct DisclosuresArgs {
    /// Only presentations to or from this DID.
    #[arg(long)]
    to: Option<String>,
    /// Only presentations that requested or carried this credential type.
    #[arg(long = "type")]
    type_name: Option<String>,
    /// Only presentations at or after this instant (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Only presentations in this field (id or prefix).
    #[arg(long)]
    field: Option<String>,
    /// Only `sent` or only `received` presentations.
    #[arg(long, value_parser = ["sent", "received"])]
    direction: Option<String>,
    /// Write the entries as JSON lines to this file (`-` for stdout).
    #[arg(long)]
    export: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(gateway: &GatewayArgs, args: DisclosuresArgs) -> anyhow::Result<Outcome> {
    let client = Client::connect(gateway)?;
    let mut query: Vec<String> = Vec::new();
    for (name, value) in [
        ("to", &args.to),
        ("type", &args.type_name),
        ("since", &args.since),
        ("field", &args.field),
        ("direction", &args.direction),
    ] {
        if let Some(value) = value {
            query.push(format!("{name}={}", encode(value)));
        }
    }
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{}", query.join("&"))
    };
    if let Some(out) = &args.export {
        let body = match client.get_text(&format!("/v1/disclosures/export{query}"))? {
            Ok(body) => body,
            Err(error) => return Ok(refused(&error, args.json)),
        };
        let out = (out.as_os_str() != "-").then_some(out.as_path());
        write_or_print(out, &body)?;
        return Ok(Outcome::Success);
    }
    let entries: Vec<DisclosureEntry> = match client.get(&format!("/v1/disclosures{query}"))? {
        Ok(entries) => entries,
        Err(error) => return Ok(refused(&error, args.json)),
    };
    if args.json {
        print_json(&serde_json::to_value(&entries)?);
        return Ok(Outcome::Success);
    }
    print_table(&entries);
    Ok(Outcome::Success)
}

fn print_table(entries: &[DisclosureEntry]) {
    if entries.is_empty() {
        println!("no presentation matches");
        return;
    }
    println!(
        "{:<20} {:<8} {:<28} {:<12} {:<9} types",
        "when (UTC)", "way", "peer", "field", "outcome"
    );
    for entry in entries {
        let when = tfc_gateway::credential::format_rfc3339(entry.at_ms / 1000);
        let way = match entry.direction {
            tfc_gateway::negotiation::Direction::Sent => "sent to",
            tfc_gateway::negotiation::Direction::Received => "from",
        };
        let peer = entry
            .peer_name
            .clone()
            .unwrap_or_else(|| abbreviate(&entry.peer));
        let outcome = match (&entry.outcome, &entry.reason) {
            (_, Some(reason)) => reason.clone(),
            (outcome, None) => format!("{outcome:?}").to_lowercase(),
        };
        let types: Vec<String> = if entry.presented.is_empty() {
            entry
                .requested
                .iter()
                .map(|kind| format!("({})", short(kind)))
                .collect()
        } else {
            entry.presented.iter().map(|kind| short(kind)).collect()
        };
        println!(
            "{:<20} {:<8} {:<28} {:<12} {:<9} {}",
            when,
            way,
            peer,
            &entry.field[..entry.field.len().min(12)],
            outcome,
            types.join(", ")
        );
    }
    println!("(types in parentheses were asked for and not presented)");
}

/// `CreditRatingCredential` → `CreditRating`.
fn short(type_name: &str) -> String {
    type_name.trim_end_matches("Credential").to_owned()
}

/// `did:key:z6Mk…` shortened for a table.
fn abbreviate(did: &str) -> String {
    if did.len() > 28 {
        format!("{}…{}", &did[..18], &did[did.len() - 6..])
    } else {
        did.to_owned()
    }
}

fn encode(text: &str) -> String {
    text.replace('%', "%25")
        .replace('+', "%2B")
        .replace(':', "%3A")
        .replace('&', "%26")
        .replace('#', "%23")
        .replace(' ', "%20")
}
