//! `tfcctl --gateway URL member …` and the governance commands of `field`: each proposes,
//! endorses or lists ops through the gateway, and prints the op id with its progress.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use tfc_gateway::api::types::{IssuerView, MemberImpact, MemberView, OpView, ProposeOp};
use tfc_gateway::exchange::Holder;

use crate::Outcome;
use crate::client::{Client, GatewayArgs, UNVERIFIED_NAME, refused};
use crate::output::print_json;
use tfc_gateway::text::fit;

/// The field an op belongs to, and output.
#[derive(Args)]
pub(crate) struct FieldArgs {
    /// The field id (a prefix is enough).
    #[arg(long)]
    field: String,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// A member op: its target and reason.
#[derive(Args)]
pub(crate) struct MemberOpArgs {
    /// The member's DID.
    did: String,
    /// Why (recorded in the op).
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    field: FieldArgs,
}

/// Revoking or suspending: whom, why, and how sure.
#[derive(Args)]
pub(crate) struct BarArgs {
    /// The members' DIDs.
    dids: Vec<String>,
    /// Also every DID in this file, one per line (blank lines and `#` comments skipped).
    #[arg(long)]
    from_file: Option<PathBuf>,
    /// Why (recorded in each op).
    #[arg(long)]
    reason: String,
    /// Show the impact and stop: nothing is proposed.
    #[arg(long)]
    dry_run: bool,
    /// Do not ask for confirmation (for scripts; without a terminal it is required).
    #[arg(long)]
    yes: bool,
    #[command(flatten)]
    field: FieldArgs,
}

/// `tfcctl --gateway URL member …`.
#[derive(Subcommand)]
pub(crate) enum MemberCommand {
    /// Propose admitting an organisation; other members' gateways endorse it when their own
    /// verification agrees.
    ProposeAdmit(MemberOpArgs),
    /// Add this gateway's signature to an op.
    Endorse {
        /// The op id (a prefix is enough).
        op: String,
        #[command(flatten)]
        field: FieldArgs,
    },
    /// Revoke members (an admin's signature alone commits it): shows the impact first, then
    /// asks for confirmation.
    Revoke(BarArgs),
    /// Suspend members (an admin's signature alone commits it): shows the impact first,
    /// then asks for confirmation.
    Suspend(BarArgs),
    /// Which members' gateways hold an op (a revocation, say), asked now.
    RevocationStatus {
        /// The op id (a prefix is enough).
        op: String,
        #[command(flatten)]
        field: FieldArgs,
    },
    /// Lift a revocation or suspension (needs a quorum).
    Reinstate(MemberOpArgs),
    /// Members, candidates and peers of a field, with admission and tier.
    List(FieldArgs),
    /// One member, and the ops about it.
    Show {
        /// The DID.
        did: String,
        #[command(flatten)]
        field: FieldArgs,
    },
    /// Every governance op of a field, with its progress.
    Ops(FieldArgs),
}

/// `tfcctl --gateway URL field trust-issuer …` and friends.
#[derive(Subcommand)]
pub(crate) enum IssuerCommand {
    /// The issuers the field trusts now.
    Issuers(FieldArgs),
    /// Propose trusting an issuer for credential types.
    TrustIssuer {
        /// The issuer's DID.
        did: String,
        /// Credential types, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        types: Vec<String>,
        /// The issuer's name.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        field: FieldArgs,
    },
    /// Propose no longer trusting an issuer.
    DistrustIssuer {
        /// The issuer's DID.
        did: String,
        /// Why.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        field: FieldArgs,
    },
    /// Propose a new quorum (`3` or `2/3`).
    SetQuorum {
        /// The quorum.
        quorum: String,
        /// Why.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        field: FieldArgs,
    },
    /// Propose replacing the field's Cedar policy.
    AmendPolicy {
        /// The new policy file.
        policy: PathBuf,
        /// Why.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        field: FieldArgs,
    },
}

pub(crate) fn member(gateway: &GatewayArgs, command: MemberCommand) -> anyhow::Result<Outcome> {
    let client = Client::connect(gateway)?;
    let member_op = |kind: &str, args: MemberOpArgs| {
        propose(
            &client,
            &args.field,
            kind,
            args.did,
            args.reason,
            vec![],
            None,
        )
    };
    match command {
        MemberCommand::ProposeAdmit(args) => member_op("admit", args),
        MemberCommand::Revoke(args) => bar(&client, "revoke", args),
        MemberCommand::Suspend(args) => bar(&client, "suspend", args),
        MemberCommand::RevocationStatus { op, field } => revocation_status(&client, &op, &field),
        MemberCommand::Reinstate(args) => member_op("reinstate", args),
        MemberCommand::Endorse { op, field } => {
            let path = format!("/v1/fields/{}/ops/{op}/endorse", field.field);
            print_op(client.post(&path, &serde_json::json!({}))?, field.json)
        }
        MemberCommand::List(field) => list_members(&client, &field, None),
        MemberCommand::Show { did, field } => list_members(&client, &field, Some(&did)),
        MemberCommand::Ops(field) => list_ops(&client, &field, None),
    }
}

pub(crate) fn issuers(gateway: &GatewayArgs, command: IssuerCommand) -> anyhow::Result<Outcome> {
    let client = Client::connect(gateway)?;
    match command {
        IssuerCommand::Issuers(field) => {
            let issuers: Vec<IssuerView> =
                match client.get(&format!("/v1/fields/{}/issuers", field.field))? {
                    Ok(issuers) => issuers,
                    Err(error) => return Ok(refused(&error, field.json)),
                };
            if field.json {
                print_json(&serde_json::to_value(&issuers)?);
            } else {
                for issuer in &issuers {
                    println!(
                        "{:<58} {:<24} {}",
                        issuer.did,
                        issuer.name,
                        issuer.types.join(", ")
                    );
                }
            }
            Ok(Outcome::Success)
        }
        IssuerCommand::TrustIssuer {
            did,
            types,
            name,
            field,
        } => propose(&client, &field, "trust-issuer", did, name, types, None),
        IssuerCommand::DistrustIssuer { did, reason, field } => propose(
            &client,
            &field,
            "distrust-issuer",
            did,
            reason,
            vec![],
            None,
        ),
        IssuerCommand::SetQuorum {
            quorum,
            reason,
            field,
        } => propose(&client, &field, "set-quorum", quorum, reason, vec![], None),
        IssuerCommand::AmendPolicy {
            policy,
            reason,
            field,
        } => {
            let text = crate::input::read_token(&policy)?;
            let digest = tfc_gateway::governance::sha256_hex(text.as_bytes());
            propose(
                &client,
                &field,
                "amend-policy",
                digest,
                reason,
                vec![],
                Some(text),
            )
        }
    }
}

fn propose(
    client: &Client,
    field: &FieldArgs,
    kind: &str,
    target: String,
    reason: String,
    types: Vec<String>,
    policy: Option<String>,
) -> anyhow::Result<Outcome> {
    let request = ProposeOp {
        kind: kind.into(),
        target,
        reason,
        types,
        policy,
    };
    let path = format!("/v1/fields/{}/ops", field.field);
    print_op(client.post(&path, &request)?, field.json)
}

fn print_op(
    answer: Result<OpView, tfc_gateway::api::types::ApiError>,
    json: bool,
) -> anyhow::Result<Outcome> {
    let op = match answer {
        Ok(op) => op,
        Err(error) => return Ok(refused(&error, json)),
    };
    if json {
        print_json(&serde_json::to_value(&op)?);
    } else {
        println!("op {}  {} {}", op.id, op.kind, named(&op, &op.target));
        println!("{}", progress(&op));
    }
    Ok(Outcome::Success)
}

fn progress(op: &OpView) -> String {
    let state = match op.committed.as_deref() {
        Some("admin") => "committed (emergency path: one admin's signature)".to_owned(),
        Some(_) => "committed".to_owned(),
        None => "pending".to_owned(),
    };
    let noun = if op.signatures == 1 {
        "signature"
    } else {
        "signatures"
    };
    format!(
        "{} {noun} from members in good standing ({} needed): {state}",
        op.signatures, op.required
    )
}

/// `did` with its verified name, if the op's view knows it.
fn named(op: &OpView, did: &str) -> String {
    match op.names.get(did) {
        Some(name) => format!("{did} ({name})"),
        None => did.to_owned(),
    }
}

fn list_members(client: &Client, field: &FieldArgs, only: Option<&str>) -> anyhow::Result<Outcome> {
    let members: Vec<MemberView> =
        match client.get(&format!("/v1/fields/{}/members", field.field))? {
            Ok(members) => members,
            Err(error) => return Ok(refused(&error, field.json)),
        };
    let selected: Vec<&MemberView> = members
        .iter()
        .filter(|member| only.is_none_or(|did| member.did == did))
        .collect();
    if let Some(did) = only
        && selected.is_empty()
    {
        let error = tfc_gateway::api::types::ApiError {
            code: "unknown_member".into(),
            message: format!("{did} is neither a member, a candidate nor a peer of this field"),
        };
        return Ok(refused(&error, field.json));
    }
    if field.json {
        print_json(&serde_json::to_value(&selected)?);
    } else {
        println!(
            "{} {:<58} {:<13} {:>5} {:>4}",
            fit("organisation", 28),
            "did",
            "admission",
            "epoch",
            "tier"
        );
        for member in &selected {
            let tier = member.tier.map_or("-".to_owned(), |tier| tier.to_string());
            println!(
                "{} {:<58} {:<13} {:>5} {:>4}",
                fit(member.name.as_deref().unwrap_or(UNVERIFIED_NAME), 28),
                member.did,
                member.admission,
                member.epoch,
                tier
            );
        }
    }
    if let Some(did) = only {
        return list_ops(client, field, Some(did));
    }
    Ok(Outcome::Success)
}

fn list_ops(client: &Client, field: &FieldArgs, about: Option<&str>) -> anyhow::Result<Outcome> {
    let ops: Vec<OpView> = match client.get(&format!("/v1/fields/{}/ops", field.field))? {
        Ok(ops) => ops,
        Err(error) => return Ok(refused(&error, field.json)),
    };
    let selected: Vec<&OpView> = ops
        .iter()
        .filter(|op| about.is_none_or(|did| op.target == did))
        .collect();
    if field.json {
        if about.is_none() {
            print_json(&serde_json::to_value(&selected)?);
        }
        return Ok(Outcome::Success);
    }
    for op in selected {
        println!(
            "{:.16}  epoch {:<3} {:<15} {}  {}",
            op.id,
            op.epoch,
            op.kind,
            named(op, &op.target),
            progress(op)
        );
        println!(
            "    proposed by {} at {}: {}",
            named(op, &op.proposer),
            op.created,
            op.reason
        );
    }
    Ok(Outcome::Success)
}

/// Revokes or suspends every DID given, after one preview of the impact and a confirmation.
fn bar(client: &Client, kind: &str, args: BarArgs) -> anyhow::Result<Outcome> {
    let mut dids = args.dids.clone();
    if let Some(file) = &args.from_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        dids.extend(
            text.lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .map(str::to_owned),
        );
    }
    let mut seen = std::collections::HashSet::new();
    dids.retain(|did| seen.insert(did.clone()));
    anyhow::ensure!(
        !dids.is_empty(),
        "name the members: DIDs, or --from-file FILE"
    );
    let json = args.field.json;
    let mut impacts = Vec::new();
    for did in &dids {
        let path = format!(
            "/v1/fields/{}/members/{}/impact",
            args.field.field,
            crate::data::encode(did)
        );
        match client.get::<MemberImpact>(&path)? {
            Ok(impact) => impacts.push(impact),
            Err(error) => return Ok(refused(&error, json)),
        }
    }
    print_impacts(kind, &impacts, json)?;
    if let Some(impact) = impacts.iter().find(|impact| impact.refusal.is_some()) {
        let error = tfc_gateway::api::types::ApiError {
            code: "not_a_member".into(),
            message: format!(
                "{}; nothing was proposed (fix the list and run again)",
                impact.refusal.clone().unwrap_or_default()
            ),
        };
        return Ok(refused(&error, json));
    }
    if args.dry_run {
        if !json {
            println!("dry run: nothing was proposed");
        }
        return Ok(Outcome::Success);
    }
    if !args.yes && !confirmed(kind, impacts.len())? {
        return Ok(Outcome::Held);
    }
    let mut outcome = Outcome::Success;
    for did in dids {
        let done = propose(
            client,
            &args.field,
            kind,
            did,
            args.reason.clone(),
            vec![],
            None,
        )?;
        if !matches!(done, Outcome::Success) {
            outcome = done;
        }
    }
    Ok(outcome)
}

fn print_impacts(kind: &str, impacts: &[MemberImpact], json: bool) -> anyhow::Result<()> {
    if json {
        eprintln!("{}", serde_json::to_string(impacts)?);
        return Ok(());
    }
    let plural = if impacts.len() == 1 { "" } else { "s" };
    println!("{kind}: {} organisation{plural}", impacts.len());
    for impact in impacts {
        let tiers: Vec<String> = impact
            .tiers
            .iter()
            .map(|(field, tier)| format!("tier {tier} in {:.12}", field))
            .collect();
        println!(
            "  {}  {}",
            impact.name.as_deref().unwrap_or(UNVERIFIED_NAME),
            impact.did
        );
        println!(
            "    standing {}; {}; {}",
            impact.standing,
            if tiers.is_empty() {
                "no tier judged here".to_owned()
            } else {
                tiers.join(", ")
            },
            if impact.connected {
                "connected now (the session closes)"
            } else {
                "not connected"
            }
        );
        println!(
            "    records in this field: {} owned, {} disclosed to it, {} with its rights",
            impact.records.owned, impact.records.disclosed, impact.records.rights
        );
        let list = |items: &[String]| {
            if items.is_empty() {
                "none".to_owned()
            } else {
                items.join("; ")
            }
        };
        println!(
            "    countermeasures: {}; pending ops: {}",
            list(&impact.countermeasures),
            list(&impact.pending_ops)
        );
        if !impact.other_fields.is_empty() {
            println!(
                "    still a member of {} other field(s) here (not affected)",
                impact.other_fields.len()
            );
        }
        if let Some(refusal) = &impact.refusal {
            println!("    CANNOT {kind}: {refusal}");
        }
    }
    Ok(())
}

/// Asks on the terminal; without one, refuses (scripts pass --yes).
fn confirmed(kind: &str, count: usize) -> anyhow::Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        eprintln!(
            "HELD     confirmation_required: no terminal to confirm on; pass --yes to {kind} \
             from a script, or --dry-run to preview"
        );
        return Ok(false);
    }
    print!("Type {kind} to {kind} {count} organisation(s), anything else to stop: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() == kind {
        Ok(true)
    } else {
        eprintln!("HELD     not confirmed: nothing was proposed");
        Ok(false)
    }
}

fn revocation_status(client: &Client, op: &str, field: &FieldArgs) -> anyhow::Result<Outcome> {
    let holders: Vec<Holder> =
        match client.get(&format!("/v1/fields/{}/ops/{op}/holders", field.field))? {
            Ok(holders) => holders,
            Err(error) => return Ok(refused(&error, field.json)),
        };
    if field.json {
        print_json(&serde_json::to_value(&holders)?);
        return Ok(Outcome::Success);
    }
    let held = holders
        .iter()
        .filter(|holder| holder.status == "holds")
        .count();
    println!(
        "{held} of {} members' gateways confirm they hold op {op}",
        holders.len()
    );
    for holder in &holders {
        println!(
            "  {:<13} {} {}{}",
            holder.status,
            fit(holder.name.as_deref().unwrap_or(UNVERIFIED_NAME), 28),
            holder.did,
            holder
                .detail
                .as_deref()
                .map(|detail| format!(" ({detail})"))
                .unwrap_or_default()
        );
    }
    Ok(Outcome::Success)
}
