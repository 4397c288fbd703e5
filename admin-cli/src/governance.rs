//! `tfcctl --gateway URL member …` and the governance commands of `field`: each proposes,
//! endorses or lists ops through the gateway, and prints the op id with its progress.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use tfc_gateway::api::types::{IssuerView, MemberView, OpView, ProposeOp};

use crate::Outcome;
use crate::client::{Client, GatewayArgs, refused};
use crate::output::print_json;

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
    /// Revoke a member (an admin's signature alone commits it).
    Revoke(MemberOpArgs),
    /// Suspend a member (an admin's signature alone commits it).
    Suspend(MemberOpArgs),
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
        MemberCommand::Revoke(args) => member_op("revoke", args),
        MemberCommand::Suspend(args) => member_op("suspend", args),
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
        println!("op {}  {} {}", op.id, op.kind, op.target);
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
    format!("{}/{} signatures, {state}", op.signatures, op.required)
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
            "{:<58} {:<13} {:>5} {:>4}",
            "did", "admission", "epoch", "tier"
        );
        for member in &selected {
            let tier = member.tier.map_or("-".to_owned(), |tier| tier.to_string());
            println!(
                "{:<58} {:<13} {:>5} {:>4}",
                member.did, member.admission, member.epoch, tier
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
            op.target,
            progress(op)
        );
    }
    Ok(Outcome::Success)
}
