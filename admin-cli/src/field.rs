//! `tfcctl field charter hash|sign|verify`, `tfcctl tier evaluate`, `tfcctl policy check`:
//! offline work on a field's charter.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tfc_gateway::charter::{Charter, CharterError};
use tfc_gateway::credential::{
    CredentialVerifier, VP_TYP, format_rfc3339, unverified_header, unverified_payload,
};
use tfc_gateway::field::{Field, FieldError};
use tfc_gateway::identity::KeyPair;
use tfc_gateway::policy::AccessRequest;
use tfc_gateway::tier::{TierContext, evaluate};

use crate::Outcome;
use crate::input::{TrustSettings, read_json_object, read_token};
use crate::output::print_json;

/// `tfcctl field charter …`.
#[derive(Subcommand)]
pub(crate) enum CharterCommand {
    /// Print the field id: SHA-256 of the charter's canonical JSON.
    Hash {
        /// The charter file.
        file: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Append a founder's signature to the charter file.
    Sign {
        /// The charter file (a signature block is appended).
        file: PathBuf,
        /// The founder's key file.
        #[arg(long)]
        key: PathBuf,
    },
    /// Check that every founder has signed this exact charter.
    Verify {
        /// The charter file.
        file: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Show who receives each credential type and the field's gossip: the effective
    /// `[disclosure]` matrix, by recipient class.
    Disclosure {
        /// The charter file.
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Arguments of `tfcctl tier evaluate`.
#[derive(Args)]
pub(crate) struct TierArgs {
    /// Credential or presentation files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The holder to judge (default: the presentation's holder, or the subject of the first
    /// credential that verifies).
    #[arg(long)]
    holder: Option<String>,
    #[command(flatten)]
    trust: crate::TrustArgs,
}

/// Arguments of `tfcctl policy check`.
#[derive(Args)]
pub(crate) struct PolicyCheckArgs {
    /// The field charter (its policy file is used).
    #[arg(long)]
    charter: PathBuf,
    /// A JSON file with the request: principal facts, action, resource, purpose, threatLevel.
    #[arg(long)]
    request: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub(crate) fn charter(command: CharterCommand) -> anyhow::Result<Outcome> {
    match command {
        CharterCommand::Hash { file, json } => {
            let charter = match Charter::load_unsigned(&file) {
                Ok(charter) => charter,
                Err(error) => return charter_failure(&error, json),
            };
            if json {
                print_json(
                    &json!({"fieldId": charter.field_id(), "name": charter.name, "signedBy": charter.signed_by(), "unsigned": charter.unsigned_founders()}),
                );
            } else {
                println!("{}", charter.field_id());
            }
            Ok(Outcome::Success)
        }
        CharterCommand::Sign { file, key } => {
            let founder = KeyPair::load(&key)?;
            let charter = match Charter::load_unsigned(&file) {
                Ok(charter) => charter,
                Err(error) => return charter_failure(&error, false),
            };
            let block = match charter.sign(&founder) {
                Ok(block) => block,
                Err(error) => return charter_failure(&error, false),
            };
            OpenOptions::new()
                .append(true)
                .open(&file)
                .and_then(|mut handle| handle.write_all(block.as_bytes()))
                .with_context(|| format!("cannot append the signature to {}", file.display()))?;
            let signed = charter.signed_by().len() + 1;
            println!("signed field {} as {}", charter.field_id(), founder.did());
            println!(
                "{signed} of {} founders have signed",
                charter.founders.len()
            );
            Ok(Outcome::Success)
        }
        CharterCommand::Disclosure { file, json } => {
            let charter = match Charter::load_unsigned(&file) {
                Ok(charter) => charter,
                Err(error) => return charter_failure(&error, json),
            };
            print_matrix(&charter, json);
            Ok(Outcome::Success)
        }
        CharterCommand::Verify { file, json } => match Field::load(&file) {
            Ok(Field { charter, .. }) => {
                if json {
                    print_json(
                        &json!({"valid": true, "fieldId": charter.field_id(), "name": charter.name, "signedBy": charter.signed_by()}),
                    );
                } else {
                    println!(
                        "{}  {} ({})",
                        crate::output::painted("VALID", true, false),
                        charter.name,
                        charter.field_id()
                    );
                    println!("  signed by all {} founders", charter.founders.len());
                }
                Ok(Outcome::Success)
            }
            Err(FieldError::Charter(error)) => charter_failure(&error, json),
            Err(error) => Ok(report_invalid(error.code(), &error.to_string(), json)),
        },
    }
}

/// Prints who receives what: a row per credential type (and one for the gossip), a column
/// per recipient class.
fn print_matrix(charter: &Charter, json: bool) {
    use tfc_gateway::charter::disclosure::RecipientClass;
    let rows = charter.disclosure_matrix();
    if json {
        let columns: Vec<&str> = RecipientClass::ALL
            .iter()
            .map(|class| class.label())
            .collect();
        print_json(&json!({
            "fieldId": charter.field_id(),
            "applications": charter.applications,
            "columns": columns,
            "rows": rows,
        }));
        return;
    }
    let applications = match charter.applications {
        tfc_gateway::charter::Applications::Open => {
            "open: its founders and admins screen any applicant"
        }
        tfc_gateway::charter::Applications::Closed => {
            "closed: only organisations an admission op names"
        }
    };
    println!("{} ({})", charter.name, &charter.field_id()[..16]);
    println!("applications  {applications}");
    let width = rows
        .iter()
        .map(|row| row.subject.len())
        .max()
        .unwrap_or(8)
        .max(8);
    print!("{:<width$}", "");
    for class in RecipientClass::ALL {
        print!(" {:>9}", class.label());
    }
    println!("   rule");
    for row in &rows {
        print!("{:<width$}", row.subject);
        for receives in &row.receives {
            print!(" {:>9}", if *receives { "yes" } else { "-" });
        }
        let rule: Vec<String> = row.audiences.iter().map(ToString::to_string).collect();
        let origin = if row.default { " (default)" } else { "" };
        println!("   {}{origin}", rule.join(", "));
    }
    println!("member: in the registry, judged at tier 0; tier N: a member or applicant judged at");
    println!("tier N; applicant: not judged yet, or no tier. A barred member receives nothing.");
}

/// A charter that does not load is invalid input (exit 1), unless it could not be read.
fn charter_failure(error: &CharterError, json: bool) -> anyhow::Result<Outcome> {
    if matches!(error, CharterError::Io { .. }) {
        anyhow::bail!("{error}");
    }
    Ok(report_invalid(error.code(), &error.to_string(), json))
}

fn report_invalid(code: &str, message: &str, json: bool) -> Outcome {
    if json {
        print_json(&json!({"valid": false, "code": code, "message": message}));
    } else {
        eprintln!(
            "{}  {code}: {message}",
            crate::output::painted("INVALID", false, true)
        );
    }
    Outcome::Invalid
}

fn load_field(path: &Path) -> anyhow::Result<Field> {
    Field::load(path).with_context(|| format!("field charter {}", path.display()))
}

pub(crate) fn tier(args: TierArgs) -> anyhow::Result<Outcome> {
    let charter_path = args
        .trust
        .charter
        .clone()
        .context("--charter is required: tiers are defined by a field's charter")?;
    let charter = load_field(&charter_path)?.charter;
    let verifier = CredentialVerifier::new();
    let settings = TrustSettings::load(&args.trust, &verifier)?;
    let (tokens, presented_holder) = collect_credentials(&args.files)?;
    let holder = args.holder.or(presented_holder);
    let context = TierContext {
        at: settings.now,
        status_lists: &settings.status_lists,
        holder: holder.as_deref(),
    };
    let report = evaluate(&charter, &verifier, &tokens, context);
    if args.trust.json {
        print_json(&json!({"fieldId": charter.field_id(), "report": report}));
    } else {
        print_tier_report(&charter.name, &serde_json::to_value(&report)?);
    }
    Ok(if report.tier >= 1 {
        Outcome::Success
    } else {
        Outcome::Invalid
    })
}

/// Credentials from credential files and from presentations' `vp.verifiableCredential`.
/// A presentation's holder signature is not checked offline (there is no challenge); each
/// credential is verified, and must belong to the holder.
fn collect_credentials(files: &[PathBuf]) -> anyhow::Result<(Vec<String>, Option<String>)> {
    let mut tokens = Vec::new();
    let mut holder = None;
    for path in files {
        let token = read_token(path)?;
        let payload = unverified_payload(&token);
        let is_presentation = unverified_header(&token)
            .and_then(|header| header.get("typ").cloned())
            == Some(Value::from(VP_TYP));
        match payload.filter(|_| is_presentation) {
            Some(payload) => {
                holder = holder.or_else(|| {
                    payload
                        .get("iss")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                });
                let carried = payload
                    .get("vp")
                    .and_then(|vp| vp.get("verifiableCredential"))
                    .and_then(Value::as_array);
                tokens.extend(
                    carried
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_owned),
                );
            }
            None => tokens.push(token.trim().to_owned()),
        }
    }
    Ok((tokens, holder))
}

/// Prints a tier report (as the offline evaluation and the gateway's explanation both
/// serialise it) under the field's name.
pub(crate) fn print_tier_report(field_name: &str, report: &Value) {
    let tier_title = |tier: u64| match tier {
        1 => "pre-screening (事前審査)",
        2 => "certification (認定)",
        3 => "transaction (取引・監査)",
        _ => "none",
    };
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    println!("{field_name}");
    println!(
        "  holder   {}",
        report["holder"]
            .as_str()
            .unwrap_or("(no credential verified)")
    );
    println!(
        "  as of    {}",
        format_rfc3339(report["at"].as_i64().unwrap_or_default())
    );
    let reached = report["tier"].as_u64().unwrap_or_default();
    println!("  TIER {reached}: {}\n", tier_title(reached));
    for tier in report["tiers"].as_array().into_iter().flatten() {
        let number = tier["tier"].as_u64().unwrap_or_default();
        let verdict = if tier["satisfied"] == true {
            "met"
        } else {
            "not met"
        };
        println!("Tier {number} {}: {verdict}", tier_title(number));
        let requirements = tier["requirements"].as_array().cloned().unwrap_or_default();
        if requirements.is_empty() {
            println!(
                "    (this field defines no requirements for this tier, so it cannot be reached)"
            );
        }
        for outcome in &requirements {
            let mark = if outcome["status"] == "satisfied" {
                "✓"
            } else {
                "✗"
            };
            let code = outcome["code"]
                .as_str()
                .map(|code| format!(" [{code}]"))
                .unwrap_or_default();
            println!(
                "  {mark} {}: {}{code}",
                text(&outcome["requirement"]),
                text(&outcome["explanation"])
            );
        }
    }
    match (
        report["nextChange"].as_i64(),
        report["nextChangeReason"].as_str(),
    ) {
        (Some(instant), Some(reason)) => println!(
            "\nThis may change at {} ({reason}).",
            format_rfc3339(instant)
        ),
        _ => println!("\nNothing scheduled will change this result."),
    }
}

pub(crate) fn policy_check(args: PolicyCheckArgs) -> anyhow::Result<Outcome> {
    let engine = load_field(&args.charter)?
        .policy
        .context("the charter names no policy file, so every access is denied")?;
    let request: AccessRequest =
        serde_json::from_value(Value::Object(read_json_object(&args.request)?))
            .with_context(|| format!("{} is not an access request", args.request.display()))?;
    anyhow::ensure!(
        !request.principal.did.is_empty(),
        "the request's principal needs a did"
    );
    engine
        .check_request_shape(&request)
        .map_err(|error| anyhow::anyhow!("the request does not fit the schema: {error}"))?;
    let decision = engine.decide(&request);
    if args.json {
        print_json(&json!(decision));
    } else {
        let verdict = if decision.allowed {
            crate::output::painted("ALLOW", true, false)
        } else {
            crate::output::painted("DENY ", false, false)
        };
        println!(
            "{verdict}  {} {} for {:?}",
            request.principal.did,
            request.action.as_str(),
            request.purpose
        );
        println!("  reason    {}", decision.reason);
        if !decision.policies.is_empty() {
            println!("  policies  {}", decision.policies.join(", "));
        }
    }
    Ok(if decision.allowed {
        Outcome::Success
    } else {
        Outcome::Invalid
    })
}
