//! `tfcctl status-list create|set|show`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;
use tfc_gateway::credential::{
    CredentialVerifier, MIN_STATUS_LIST_ENTRIES, StatusList, StatusPurpose, format_rfc3339,
    now_unix,
};
use tfc_gateway::identity::KeyPair;

use crate::input::read_token;
use crate::output::write_or_print;
use crate::{Outcome, Purpose};

/// How many set indices `show` lists before summarising.
const SHOWN_INDICES: usize = 50;

/// Arguments of `tfcctl status-list create`.
#[derive(Args)]
pub(crate) struct CreateArgs {
    /// The issuer's PKCS#8 PEM key file (the same issuer as the credentials it covers).
    #[arg(long)]
    issuer_key: PathBuf,
    /// The list's id, a URL that credentials' statusListCredential will name.
    #[arg(long)]
    id: String,
    /// What a set bit means.
    #[arg(long, value_enum, default_value_t = Purpose::Revocation)]
    purpose: Purpose,
    /// Number of entries (at least 131072, the specification's minimum).
    #[arg(long, default_value_t = MIN_STATUS_LIST_ENTRIES)]
    entries: usize,
    /// Where to write the signed list.
    #[arg(long)]
    out: PathBuf,
}

/// Arguments of `tfcctl status-list set`.
#[derive(Args)]
pub(crate) struct SetArgs {
    /// The status list credential file; it is re-signed in place unless --out is given.
    file: PathBuf,
    /// The issuer's key (must match the list's issuer).
    #[arg(long)]
    issuer_key: PathBuf,
    /// The entry to change.
    #[arg(long)]
    index: usize,
    /// Clear the bit instead of setting it (lifts a suspension).
    #[arg(long)]
    clear: bool,
    /// Write the re-signed list here instead.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Arguments of `tfcctl status-list show`.
#[derive(Args)]
pub(crate) struct ShowArgs {
    /// The status list credential file.
    file: PathBuf,
    /// Show only this entry.
    #[arg(long)]
    index: Option<usize>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

pub(crate) fn create(args: CreateArgs) -> anyhow::Result<Outcome> {
    let issuer = KeyPair::load(&args.issuer_key)?;
    let purpose = match args.purpose {
        Purpose::Revocation => StatusPurpose::Revocation,
        Purpose::Suspension => StatusPurpose::Suspension,
    };
    let list = StatusList::new(&args.id, &issuer.did(), purpose, args.entries, now_unix());
    write_or_print(Some(&args.out), &list.issue(&issuer)?)?;
    eprintln!(
        "created {} list {} with {} entries",
        purpose.as_str(),
        args.id,
        list.len()
    );
    Ok(Outcome::Success)
}

/// Reads and verifies a list file.
fn load(path: &Path) -> anyhow::Result<StatusList> {
    let token = read_token(path)?;
    CredentialVerifier::new()
        .verify_status_list(&token, now_unix())
        .with_context(|| format!("{} is not a valid status list", path.display()))
}

pub(crate) fn set(args: SetArgs) -> anyhow::Result<Outcome> {
    let issuer = KeyPair::load(&args.issuer_key)?;
    let mut list = load(&args.file)?;
    if list.issuer != issuer.did() {
        bail!(
            "{} was issued by {}, not by this key",
            args.file.display(),
            list.issuer
        );
    }
    list.set(args.index, !args.clear)?;
    list.issued_at = now_unix();
    let out = args.out.as_ref().unwrap_or(&args.file);
    write_or_print(Some(out), &list.issue(&issuer)?)?;
    let action = if args.clear { "cleared" } else { "set" };
    eprintln!(
        "{action} {} entry {} of {}",
        list.purpose.as_str(),
        args.index,
        list.id
    );
    Ok(Outcome::Success)
}

pub(crate) fn show(args: ShowArgs) -> anyhow::Result<Outcome> {
    let list = load(&args.file)?;
    let set = list.set_indices();
    let entry = args.index.map(|index| list.get(index));
    if args.json {
        let mut value = json!({
            "id": list.id,
            "issuer": list.issuer,
            "purpose": list.purpose,
            "issuedAt": format_rfc3339(list.issued_at),
            "entries": list.len(),
            "set": set,
        });
        if let (Some(index), Some(bit)) = (args.index, entry) {
            value["index"] = index.into();
            value["isSet"] = json!(bit);
        }
        println!("{value}");
    } else {
        println!("status list {}", list.id);
        println!("  issuer   {}", list.issuer);
        println!("  purpose  {}", list.purpose.as_str());
        println!("  issued   {}", format_rfc3339(list.issued_at));
        println!("  entries  {} ({} set)", list.len(), set.len());
        let shown: Vec<String> = set
            .iter()
            .take(SHOWN_INDICES)
            .map(usize::to_string)
            .collect();
        if !shown.is_empty() {
            let more = set.len().saturating_sub(SHOWN_INDICES);
            let suffix = if more > 0 {
                format!(" … and {more} more")
            } else {
                String::new()
            };
            println!("  set      {}{suffix}", shown.join(", "));
        }
        if let (Some(index), Some(bit)) = (args.index, entry) {
            let state = match bit {
                Some(true) => "SET",
                Some(false) => "clear",
                None => "outside the list",
            };
            println!("  entry {index}: {state}");
        }
    }
    Ok(Outcome::Success)
}
