//! `tfcctl --gateway URL data …`: the organisation's own records, and requests to the
//! gateways that hold other organisations' spaces.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use tfc_gateway::api::types::{AskData, DataAnswer, PutRecord, RecordSummary, SubmitRecord};
use tfc_gateway::spaces::{Labels, Record};

use crate::Outcome;
use crate::client::{Client, GatewayArgs, refused};
use crate::input::read_json_object;
use crate::output::print_json;

/// A space: a field and a tier.
#[derive(Args)]
pub(crate) struct SpaceArgs {
    /// The field id (a prefix is enough).
    #[arg(long)]
    field: String,
    /// The space's tier (1, 2 or 3).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=3))]
    tier: u8,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Where a read goes: this gateway, or another organisation's.
#[derive(Args)]
pub(crate) struct RemoteArgs {
    /// Ask the gateway of this organisation (its DID) instead of reading our own records.
    #[arg(long, requires = "purpose")]
    from: Option<String>,
    /// The declared purpose of the request (required with --from).
    #[arg(long)]
    purpose: Option<String>,
}

/// `tfcctl --gateway URL data …`.
#[derive(Subcommand)]
pub(crate) enum DataCommand {
    /// Write one of our records (a new one, or the next version of --id).
    Put {
        #[command(flatten)]
        space: SpaceArgs,
        /// The labels (JSON: category, valueLevel, rightsHolders, allowedPurposes, disclosure).
        #[arg(long)]
        labels: PathBuf,
        /// The document (JSON object).
        #[arg(long)]
        body: PathBuf,
        /// Overwrite this record.
        #[arg(long)]
        id: Option<String>,
    },
    /// Read a record.
    Get {
        /// The record id.
        id: String,
        #[command(flatten)]
        space: SpaceArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// List a space.
    List {
        #[command(flatten)]
        space: SpaceArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Delete one of our records.
    Delete {
        /// The record id.
        id: String,
        #[command(flatten)]
        space: SpaceArgs,
    },
    /// Hand a copy of one of our records to another organisation, which keeps it as
    /// custodian.
    Submit {
        /// The record id.
        id: String,
        #[command(flatten)]
        space: SpaceArgs,
        /// The recipient's DID.
        #[arg(long)]
        to: String,
        /// The declared purpose.
        #[arg(long)]
        purpose: String,
    },
}

pub(crate) fn run(gateway: &GatewayArgs, command: DataCommand) -> anyhow::Result<Outcome> {
    let client = Client::connect(gateway)?;
    let base = |space: &SpaceArgs| format!("/v1/data/{}/{}", space.field, space.tier);
    match command {
        DataCommand::Put {
            space,
            labels,
            body,
            id,
        } => {
            let labels: Labels =
                serde_json::from_value(serde_json::Value::Object(read_json_object(&labels)?))?;
            let request = PutRecord {
                id,
                labels,
                body: serde_json::Value::Object(read_json_object(&body)?),
            };
            match client.post::<_, Record>(&base(&space), &request)? {
                Ok(record) if space.json => print_json(&serde_json::to_value(&record)?),
                Ok(record) => println!("wrote {} version {}", record.id, record.version),
                Err(error) => return Ok(refused(&error, space.json)),
            }
            Ok(Outcome::Success)
        }
        DataCommand::Get { id, space, remote } => match remote.from {
            Some(from) => ask(&client, &space, from, "get", Some(id), remote.purpose),
            None => match client.get::<Record>(&format!("{}/{id}", base(&space)))? {
                Ok(record) => {
                    print_json(&serde_json::to_value(&record)?);
                    Ok(Outcome::Success)
                }
                Err(error) => Ok(refused(&error, space.json)),
            },
        },
        DataCommand::List { space, remote } => match remote.from {
            Some(from) => ask(&client, &space, from, "list", None, remote.purpose),
            None => {
                let records: Vec<RecordSummary> = match client.get(&base(&space))? {
                    Ok(records) => records,
                    Err(error) => return Ok(refused(&error, space.json)),
                };
                if space.json {
                    print_json(&serde_json::to_value(&records)?);
                } else {
                    for record in &records {
                        println!(
                            "{:<38} {:<16} v{}",
                            record.id,
                            record.status,
                            record.version.unwrap_or(0)
                        );
                    }
                }
                Ok(Outcome::Success)
            }
        },
        DataCommand::Delete { id, space } => {
            match client.delete::<serde_json::Value>(&format!("{}/{id}", base(&space)))? {
                Ok(_) => println!("deleted {id}"),
                Err(error) => return Ok(refused(&error, space.json)),
            }
            Ok(Outcome::Success)
        }
        DataCommand::Submit {
            id,
            space,
            to,
            purpose,
        } => {
            let request = SubmitRecord { to, purpose };
            let answer =
                client.post::<_, DataAnswer>(&format!("{}/{id}/submit", base(&space)), &request)?;
            print_answer(answer, space.json)
        }
    }
}

fn ask(
    client: &Client,
    space: &SpaceArgs,
    from: String,
    kind: &str,
    id: Option<String>,
    purpose: Option<String>,
) -> anyhow::Result<Outcome> {
    let request = AskData {
        from,
        kind: kind.into(),
        field: space.field.clone(),
        tier: space.tier,
        id,
        purpose: purpose.unwrap_or_default(),
    };
    print_answer(client.post("/v1/data/ask", &request)?, space.json)
}

fn print_answer(
    answer: Result<DataAnswer, tfc_gateway::api::types::ApiError>,
    json: bool,
) -> anyhow::Result<Outcome> {
    let answer = match answer {
        Ok(answer) => answer,
        Err(error) => return Ok(refused(&error, json)),
    };
    if json {
        print_json(&serde_json::to_value(&answer)?);
    } else if answer.allowed {
        println!("ALLOWED  {}", answer.reason);
        for record in &answer.records {
            println!("{}", serde_json::to_string(record)?);
        }
    } else {
        eprintln!("DENIED   {}: {}", answer.code, answer.reason);
    }
    Ok(if answer.allowed {
        Outcome::Success
    } else {
        Outcome::Invalid
    })
}
