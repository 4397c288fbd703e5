//! Printing verdicts for people and, with `--json`, for scripts.

use std::fs;
use std::path::Path;

use anyhow::Context;
use serde_json::{Value, json};
use tfc_gateway::credential::{
    VerificationError, VerifiedCredential, VerifiedPresentation, format_rfc3339,
};

use crate::Outcome;
use crate::input::TrustSettings;

const TRUST_NOT_CHECKED: &str = "issuer trust was not checked (no --charter given)";

/// `word` in green (`good`) or red, if the stream it goes to (stderr when `on_stderr`) is a
/// terminal and `NO_COLOR` is unset; plain otherwise, so scripts and files get no escapes.
pub(crate) fn painted(word: &str, good: bool, on_stderr: bool) -> String {
    use std::io::IsTerminal;
    let terminal = if on_stderr {
        std::io::stderr().is_terminal()
    } else {
        std::io::stdout().is_terminal()
    };
    if !terminal || std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty()) {
        return word.to_owned();
    }
    let colour = if good { 32 } else { 31 };
    format!("\x1b[1;{colour}m{word}\x1b[0m")
}

/// Writes `text` to `out`, or prints it on stdout.
pub(crate) fn write_or_print(out: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match out {
        Some(path) => fs::write(path, format!("{text}\n"))
            .with_context(|| format!("cannot write {}", path.display())),
        None => {
            println!("{text}");
            Ok(())
        }
    }
}

pub(crate) fn print_credential_verdict(
    verdict: &Result<VerifiedCredential, VerificationError>,
    settings: &TrustSettings,
    as_json: bool,
) -> Outcome {
    match verdict {
        Ok(credential) if as_json => {
            print_json(&json!({
                "valid": true,
                "trustChecked": settings.trust.is_some(),
                "at": format_rfc3339(settings.now),
                "credential": credential,
            }));
        }
        Ok(credential) => {
            println!(
                "{}  {}",
                painted("VALID", true, false),
                credential.type_name
            );
            print_credential_lines(credential, "  ");
            print_trust_note(settings);
        }
        Err(error) => return print_failure(error, as_json),
    }
    Outcome::Success
}

pub(crate) fn print_presentation_verdict(
    verdict: &Result<VerifiedPresentation, VerificationError>,
    settings: &TrustSettings,
    as_json: bool,
) -> Outcome {
    match verdict {
        Ok(presentation) if as_json => {
            print_json(&json!({
                "valid": true,
                "trustChecked": settings.trust.is_some(),
                "at": format_rfc3339(settings.now),
                "presentation": presentation,
            }));
        }
        Ok(presentation) => {
            println!(
                "{}  presentation by {} ({} credential{})",
                painted("VALID", true, false),
                presentation.holder,
                presentation.credentials.len(),
                if presentation.credentials.len() == 1 {
                    ""
                } else {
                    "s"
                }
            );
            println!("  expires  {}", format_rfc3339(presentation.expires_at));
            for credential in &presentation.credentials {
                println!("  - {}", credential.type_name);
                print_credential_lines(credential, "      ");
            }
            print_trust_note(settings);
        }
        Err(error) => return print_failure(error, as_json),
    }
    Outcome::Success
}

fn print_credential_lines(credential: &VerifiedCredential, indent: &str) {
    println!("{indent}issuer   {}", credential.issuer);
    println!("{indent}subject  {}", credential.subject);
    let until = credential
        .valid_until
        .map_or_else(|| "no expiry".to_owned(), format_rfc3339);
    println!(
        "{indent}valid    {} → {until}",
        format_rfc3339(credential.valid_from)
    );
    for (name, value) in &credential.claims {
        let value = match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        println!("{indent}  {name}: {value}");
    }
    if credential.self_declared {
        println!("{indent}(self-declared: the issuer is the subject)");
    }
}

fn print_trust_note(settings: &TrustSettings) {
    if settings.trust.is_none() {
        println!("note: {TRUST_NOT_CHECKED}");
    }
}

fn print_failure(error: &VerificationError, as_json: bool) -> Outcome {
    if as_json {
        print_json(&json!({"valid": false, "code": error.code, "message": error.message}));
    } else {
        eprintln!(
            "{}  {}: {}",
            painted("INVALID", false, true),
            error.code,
            error.message
        );
    }
    Outcome::Invalid
}

pub(crate) fn print_json(value: &Value) {
    println!("{value}");
}
