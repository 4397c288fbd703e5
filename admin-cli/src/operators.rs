//! Operators: `tfcctl admin-cert issue` makes a named operator's client certificate with a
//! role, and `tfcctl approvals` lists and decides the actions held for a second operator.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::Value;
use tfc_gateway::api::approvals::PendingApproval;
use tfc_gateway::roles::Role;
use tfc_gateway::tls::{TlsFiles, issue_operator};

use crate::Outcome;
use crate::client::{Client, GatewayArgs, refused};
use crate::output::print_json;

/// `tfcctl admin-cert …`.
#[derive(Subcommand)]
pub(crate) enum AdminCertCommand {
    /// Issue a client certificate for a named operator with one role, signed by the
    /// gateway's admin CA (read from --data-dir). Writes OUT.pem and OUT-key.pem (0600).
    Issue {
        /// viewer, clerk, operator, admin, auditor or siem.
        #[arg(long)]
        role: Role,
        /// The operator's name, as the audit will record it.
        #[arg(long)]
        name: String,
        /// Where to write: OUT.pem and OUT-key.pem (never overwritten).
        #[arg(long)]
        out: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// `tfcctl approvals …`.
#[derive(Subcommand)]
pub(crate) enum ApprovalsCommand {
    /// The actions waiting for a second operator, oldest first.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve an action another operator filed; it is carried out now.
    Approve {
        /// The approval id (a prefix is enough).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Drop an action another operator filed.
    Reject {
        /// The approval id (a prefix is enough).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn admin_cert(
    gateway: &GatewayArgs,
    command: AdminCertCommand,
) -> anyhow::Result<Outcome> {
    let AdminCertCommand::Issue {
        role,
        name,
        out,
        json,
    } = command;
    let name = name.trim();
    if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        bail!("--name must be 1 to 128 printable characters: the audit records it");
    }
    let dir = gateway
        .data_dir()
        .context("pass --data-dir DIR: the gateway's admin CA signs the certificate")?;
    let certificate_path = with_suffix(&out, ".pem");
    let key_path = with_suffix(&out, "-key.pem");
    for path in [&certificate_path, &key_path] {
        if path.exists() {
            bail!("{} exists; choose another --out", path.display());
        }
    }
    let issued = issue_operator(&TlsFiles::under(dir), role, name)
        .with_context(|| format!("cannot issue with the admin CA in {}", dir.display()))?;
    tfc_gateway::secret_file::create_private(&key_path, issued.key.as_bytes())
        .with_context(|| format!("cannot write {}", key_path.display()))?;
    std::fs::write(&certificate_path, issued.certificate)
        .with_context(|| format!("cannot write {}", certificate_path.display()))?;
    if json {
        print_json(&serde_json::json!({
            "ok": true, "name": name, "role": role.as_str(),
            "certificate": certificate_path, "key": key_path,
        }));
        return Ok(Outcome::Success);
    }
    println!(
        "issued   {name} ({role}): {} and {}",
        certificate_path.display(),
        key_path.display()
    );
    println!(
        "use      tfcctl --cert {} --key {} --ca {} …",
        certificate_path.display(),
        key_path.display(),
        TlsFiles::under(dir).ca_cert.display()
    );
    Ok(Outcome::Success)
}

fn with_suffix(out: &std::path::Path, suffix: &str) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

pub(crate) fn approvals(
    gateway: &GatewayArgs,
    command: ApprovalsCommand,
) -> anyhow::Result<Outcome> {
    let client = Client::connect(gateway)?;
    match command {
        ApprovalsCommand::List { json } => {
            let waiting: Vec<PendingApproval> = match client.get("/v1/approvals")? {
                Ok(waiting) => waiting,
                Err(error) => return Ok(refused(&error, json)),
            };
            if json {
                print_json(&serde_json::to_value(&waiting)?);
            } else if waiting.is_empty() {
                println!("no action waits for a second operator");
            } else {
                for pending in &waiting {
                    println!(
                        "{}  {}  {:<14} filed by {}  (approver needs {})",
                        pending.id.get(..12).unwrap_or(&pending.id),
                        pending.filed,
                        pending.kind,
                        pending.proposer,
                        pending.approver_role
                    );
                }
            }
            Ok(Outcome::Success)
        }
        ApprovalsCommand::Approve { id, json } => {
            let answer: Value =
                match client.post(&format!("/v1/approvals/{id}/approve"), &Value::Null)? {
                    Ok(answer) => answer,
                    Err(error) => return Ok(refused(&error, json)),
                };
            if json {
                print_json(&answer);
            } else {
                println!("APPROVED {id}: carried out");
            }
            Ok(Outcome::Success)
        }
        ApprovalsCommand::Reject { id, json } => {
            let answer: PendingApproval =
                match client.post(&format!("/v1/approvals/{id}/reject"), &Value::Null)? {
                    Ok(answer) => answer,
                    Err(error) => return Ok(refused(&error, json)),
                };
            if json {
                print_json(&serde_json::to_value(&answer)?);
            } else {
                println!(
                    "REJECTED {}: {} filed by {}",
                    answer.id, answer.kind, answer.proposer
                );
            }
            Ok(Outcome::Success)
        }
    }
}
