//! `tfcctl --gateway URL data …`: the organisation's own records, and requests to the
//! gateways that hold other organisations' spaces.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use tfc_gateway::api::types::{
    AskData, AttachmentInput, DataAnswer, PutRecord, RecordSummary, SubmitRecord, WhyRequest,
};
use tfc_gateway::spaces::{AttachmentRef, LabelFilter, Labels, MAX_ATTACHMENT_BYTES, Record};

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

/// Label filters for listings.
#[derive(Args)]
pub(crate) struct FilterArgs {
    /// Only this category (personal, personal-related, non-personal, trade-secret).
    #[arg(long)]
    category: Option<String>,
    /// Only records of at least this value level (low, medium, high, very-high).
    #[arg(long)]
    min_value_level: Option<String>,
    /// Only records that allow this purpose.
    #[arg(long)]
    allowed_purpose: Option<String>,
}

impl FilterArgs {
    fn filter(&self) -> anyhow::Result<LabelFilter> {
        let value = serde_json::json!({
            "category": self.category,
            "minValueLevel": self.min_value_level,
            "purpose": self.allowed_purpose,
        });
        serde_json::from_value(value).context("unknown category or value level")
    }

    fn query(&self) -> anyhow::Result<String> {
        self.filter()?;
        let pairs: Vec<String> = [
            ("category", &self.category),
            ("minValueLevel", &self.min_value_level),
            ("purpose", &self.allowed_purpose),
        ]
        .into_iter()
        .filter_map(|(name, value)| {
            value
                .as_ref()
                .map(|value| format!("{name}={}", encode(value)))
        })
        .collect();
        Ok(if pairs.is_empty() {
            String::new()
        } else {
            format!("?{}", pairs.join("&"))
        })
    }
}

/// Percent-encodes a query value.
pub(crate) fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
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
        /// A file to attach (repeatable; up to 64 MiB each).
        #[arg(long = "attach")]
        attachments: Vec<PathBuf>,
    },
    /// Download an attachment of a record: ours, or (with --from) from its holder, chunk by
    /// chunk, each decided by the holder's policy.
    Fetch {
        /// The record id.
        id: String,
        /// The attachment's SHA-256.
        #[arg(long)]
        sha256: String,
        /// Where to write the file.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        space: SpaceArgs,
        #[command(flatten)]
        remote: RemoteArgs,
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
        #[command(flatten)]
        filter: FilterArgs,
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
    /// Why this gateway decides another organisation's request for our data as it does:
    /// the policies that decide, and the facts, labels and purpose they were judged on.
    /// Exit 1 when it would be refused.
    Why {
        #[command(flatten)]
        space: SpaceArgs,
        /// The asking organisation's DID.
        #[arg(long)]
        peer: String,
        /// A record id; without it, the space.
        #[arg(long)]
        id: Option<String>,
        /// read, list, write, submit or delete.
        #[arg(long, default_value = "read")]
        action: String,
        /// The purpose it declares.
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
            attachments,
        } => {
            let labels: Labels =
                serde_json::from_value(serde_json::Value::Object(read_json_object(&labels)?))?;
            let mut inputs = Vec::new();
            for path in attachments {
                let bytes = read_attachment(&path)?;
                let uploaded: AttachmentRef = match client.post_bytes("/v1/attachments", bytes)? {
                    Ok(uploaded) => uploaded,
                    Err(error) => return Ok(refused(&error, space.json)),
                };
                let name = path
                    .file_name()
                    .map_or_else(String::new, |name| name.to_string_lossy().into_owned());
                inputs.push(AttachmentInput {
                    name,
                    sha256: uploaded.sha256,
                });
            }
            let request = PutRecord {
                id,
                labels,
                body: serde_json::Value::Object(read_json_object(&body)?),
                attachments: inputs,
            };
            match client.post::<_, Record>(&base(&space), &request)? {
                Ok(record) if space.json => print_json(&serde_json::to_value(&record)?),
                Ok(record) => println!("wrote {} version {}", record.id, record.version),
                Err(error) => return Ok(refused(&error, space.json)),
            }
            Ok(Outcome::Success)
        }
        DataCommand::Get { id, space, remote } => match remote.from {
            Some(from) => ask(
                &client,
                &space,
                from,
                "get",
                Some(id),
                remote.purpose,
                LabelFilter::default(),
            ),
            None => match client.get::<Record>(&format!("{}/{id}", base(&space)))? {
                Ok(record) => {
                    print_json(&serde_json::to_value(&record)?);
                    Ok(Outcome::Success)
                }
                Err(error) => Ok(refused(&error, space.json)),
            },
        },
        DataCommand::List {
            space,
            remote,
            filter,
        } => match remote.from {
            Some(from) => ask(
                &client,
                &space,
                from,
                "list",
                None,
                remote.purpose,
                filter.filter()?,
            ),
            None => {
                let path = format!("{}{}", base(&space), filter.query()?);
                let records: Vec<RecordSummary> = match client.get(&path)? {
                    Ok(records) => records,
                    Err(error) => return Ok(refused(&error, space.json)),
                };
                if space.json {
                    print_json(&serde_json::to_value(&records)?);
                } else {
                    for record in &records {
                        println!(
                            "{:<38} {:<16} v{:<4} owner {}",
                            record.id,
                            record.status,
                            record.version.unwrap_or(0),
                            record.owner.as_deref().unwrap_or("-")
                        );
                    }
                }
                Ok(Outcome::Success)
            }
        },
        DataCommand::Fetch {
            id,
            sha256,
            out,
            space,
            remote,
        } => {
            let bytes = match remote.from {
                Some(from) => {
                    let request = AskData {
                        from,
                        kind: "attachment".into(),
                        field: space.field.clone(),
                        tier: space.tier,
                        id: Some(id),
                        sha256: Some(sha256.clone()),
                        filter: LabelFilter::default(),
                        purpose: remote.purpose.unwrap_or_default(),
                    };
                    client.fetch_bytes("/v1/data/ask", Some(&request))?
                }
                None => client.fetch_bytes::<()>(&format!("/v1/attachments/{sha256}"), None)?,
            };
            match bytes {
                Ok(bytes) => {
                    std::fs::write(&out, &bytes)
                        .with_context(|| format!("cannot write {}", out.display()))?;
                    println!(
                        "wrote {} bytes to {} (SHA-256 {sha256} checked)",
                        bytes.len(),
                        out.display()
                    );
                    Ok(Outcome::Success)
                }
                Err(error) => Ok(refused(&error, space.json)),
            }
        }
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
        DataCommand::Why {
            space,
            peer,
            id,
            action,
            purpose,
        } => {
            let request = WhyRequest {
                peer,
                field: space.field.clone(),
                tier: space.tier,
                id,
                action,
                purpose,
            };
            let answer: serde_json::Value = match client.post("/v1/data/why", &request)? {
                Ok(answer) => answer,
                Err(error) => return Ok(refused(&error, space.json)),
            };
            print_why(&answer, space.json)
        }
    }
}

fn print_why(answer: &serde_json::Value, json: bool) -> anyhow::Result<Outcome> {
    let allowed = answer["allowed"] == true;
    if json {
        print_json(answer);
    } else {
        let verdict = if allowed { "ALLOWED" } else { "DENIED " };
        println!(
            "{verdict}  {}: {}",
            answer["code"].as_str().unwrap_or_default(),
            answer["reason"].as_str().unwrap_or_default()
        );
        let request = &answer["request"];
        if request.is_object() {
            let policies: Vec<&str> = answer["policies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(serde_json::Value::as_str)
                .collect();
            println!(
                "policies that decided: {}",
                if policies.is_empty() {
                    "none (no policy permits it)".to_owned()
                } else {
                    policies.join(", ")
                }
            );
            println!("decided on:");
            println!("  principal  {}", request["principal"]);
            println!("  action     {}", request["action"]);
            println!("  resource   {}", request["resource"]);
            println!("  purpose    {}", request["purpose"]);
            println!("  threat     level {}", request["threatLevel"]);
        }
    }
    Ok(if allowed {
        Outcome::Success
    } else {
        Outcome::Invalid
    })
}

#[allow(clippy::too_many_arguments)]
fn ask(
    client: &Client,
    space: &SpaceArgs,
    from: String,
    kind: &str,
    id: Option<String>,
    purpose: Option<String>,
    filter: LabelFilter,
) -> anyhow::Result<Outcome> {
    let request = AskData {
        from,
        kind: kind.into(),
        field: space.field.clone(),
        tier: space.tier,
        id,
        sha256: None,
        filter,
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
        println!(
            "{}  {}",
            crate::output::painted("ALLOWED", true, false),
            answer.reason
        );
        for record in &answer.records {
            println!("{}", serde_json::to_string(record)?);
        }
    } else {
        eprintln!(
            "{}   {}: {}",
            crate::output::painted("DENIED", false, true),
            answer.code,
            answer.reason
        );
    }
    Ok(if answer.allowed {
        Outcome::Success
    } else {
        Outcome::Invalid
    })
}

/// Reads a file to attach, refusing one larger than the gateway accepts before sending it.
fn read_attachment(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    anyhow::ensure!(
        size <= MAX_ATTACHMENT_BYTES,
        "{} is {size} bytes; attachments may hold at most {MAX_ATTACHMENT_BYTES}",
        path.display()
    );
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}
