//! `tfcctl credential issue|verify` and `tfcctl presentation create|verify`.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use tfc_gateway::credential::{
    Challenge, CredentialDraft, CredentialVerifier, MAX_PRESENTATION_LIFETIME_SECS, ReplayCache,
    StatusEntry, StatusPurpose, VerifyContext, create_presentation, issue_credential, now_unix,
};
use tfc_gateway::identity::KeyPair;

use crate::input::{TrustSettings, instant, read_json_object, read_token};
use crate::output::{print_credential_verdict, print_presentation_verdict, write_or_print};
use crate::{Outcome, Purpose, TrustArgs};

/// Arguments of `tfcctl credential issue`.
#[derive(Args)]
pub(crate) struct IssueArgs {
    /// The issuer's PKCS#8 PEM key file.
    #[arg(long)]
    issuer_key: PathBuf,
    /// The credential type, e.g. CreditRatingCredential.
    #[arg(long = "type")]
    type_name: String,
    /// The subject (holder) DID.
    #[arg(long)]
    subject: String,
    /// A JSON file with the subject claims (without "id").
    #[arg(long)]
    claims: PathBuf,
    /// Start of validity (RFC 3339). Default: now.
    #[arg(long)]
    valid_from: Option<String>,
    /// Days of validity from validFrom.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    valid_days: u32,
    /// The status list credential id (URL) the credential's status lives in.
    #[arg(long, requires = "status_index")]
    status_list: Option<String>,
    /// The credential's index in that list.
    #[arg(long, requires = "status_list")]
    status_index: Option<usize>,
    /// What the status list's bits mean.
    #[arg(long, value_enum, default_value_t = Purpose::Revocation)]
    status_purpose: Purpose,
    /// Write the credential here instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Arguments of `tfcctl credential verify`.
#[derive(Args)]
pub(crate) struct VerifyArgs {
    /// The credential file (compact vc+jwt).
    file: PathBuf,
    #[command(flatten)]
    trust: TrustArgs,
}

/// Arguments of `tfcctl presentation create`.
#[derive(Args)]
pub(crate) struct PresentArgs {
    /// The holder's PKCS#8 PEM key file.
    #[arg(long)]
    holder_key: PathBuf,
    /// The verifier's DID.
    #[arg(long)]
    audience: String,
    /// The verifier's challenge (may begin with '-').
    #[arg(long, allow_hyphen_values = true)]
    nonce: String,
    /// Seconds until the presentation expires (at most 300).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(i64).range(1..=MAX_PRESENTATION_LIFETIME_SECS))]
    lifetime: i64,
    /// Credential files to present.
    #[arg(required = true)]
    credentials: Vec<PathBuf>,
    /// Write the presentation here instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Arguments of `tfcctl presentation verify`.
#[derive(Args)]
pub(crate) struct VerifyPresentationArgs {
    /// The presentation file (compact vp+jwt).
    file: PathBuf,
    /// The verifier's DID: the presentation must be addressed to it.
    #[arg(long)]
    audience: String,
    /// The challenge the verifier issued (may begin with '-').
    #[arg(long, allow_hyphen_values = true)]
    nonce: String,
    #[command(flatten)]
    trust: TrustArgs,
}

pub(crate) fn issue(args: IssueArgs) -> anyhow::Result<Outcome> {
    let issuer = KeyPair::load(&args.issuer_key)?;
    let claims = read_json_object(&args.claims)?;
    if claims.contains_key("id") {
        bail!(
            "{}: the claims must not contain \"id\"; pass the subject with --subject",
            args.claims.display()
        );
    }
    let valid_from = instant(args.valid_from.as_deref())?;
    let status = match (&args.status_list, args.status_index) {
        (Some(list), Some(index)) => {
            let purpose = match args.status_purpose {
                Purpose::Revocation => StatusPurpose::Revocation,
                Purpose::Suspension => StatusPurpose::Suspension,
            };
            vec![StatusEntry::new(list, purpose, index)]
        }
        _ => Vec::new(),
    };
    let draft = CredentialDraft {
        type_name: args.type_name,
        subject: args.subject,
        claims,
        valid_from,
        valid_until: Some(valid_from + i64::from(args.valid_days) * 86_400),
        status,
    };
    let token = issue_credential(&issuer, &draft, now_unix())?;
    write_or_print(args.out.as_deref(), &token)?;
    Ok(Outcome::Success)
}

pub(crate) fn verify(args: VerifyArgs) -> anyhow::Result<Outcome> {
    let verifier = CredentialVerifier::new();
    let settings = TrustSettings::load(&args.trust, &verifier)?;
    let token = read_token(&args.file)?;
    let verdict = verifier.verify_credential(&token, &context(&settings));
    Ok(print_credential_verdict(
        &verdict,
        &settings,
        args.trust.json,
    ))
}

pub(crate) fn present(args: PresentArgs) -> anyhow::Result<Outcome> {
    let holder = KeyPair::load(&args.holder_key)?;
    let credentials = args
        .credentials
        .iter()
        .map(|path| read_token(path).map(|token| token.trim().to_owned()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let challenge = Challenge {
        audience: &args.audience,
        nonce: &args.nonce,
    };
    let token = create_presentation(&holder, challenge, &credentials, now_unix(), args.lifetime)
        .context("cannot sign the presentation")?;
    write_or_print(args.out.as_deref(), &token)?;
    Ok(Outcome::Success)
}

pub(crate) fn verify_presentation(args: VerifyPresentationArgs) -> anyhow::Result<Outcome> {
    let verifier = CredentialVerifier::new();
    let settings = TrustSettings::load(&args.trust, &verifier)?;
    let token = read_token(&args.file)?;
    let challenge = Challenge {
        audience: &args.audience,
        nonce: &args.nonce,
    };
    // Offline, there is no memory of earlier runs: replay is detected by the gateway, which
    // keeps its cache across restarts.
    let replay = ReplayCache::default();
    let bindings: HashMap<String, String> = HashMap::new();
    let verdict =
        verifier.verify_presentation(&token, challenge, &context(&settings), &replay, &bindings);
    Ok(print_presentation_verdict(
        &verdict,
        &settings,
        args.trust.json,
    ))
}

fn context(settings: &TrustSettings) -> VerifyContext<'_> {
    VerifyContext {
        now: settings.now,
        trust: settings.trust.as_ref(),
        status_lists: &settings.status_lists,
        status_max_age_secs: settings.status_max_age_secs,
    }
}
