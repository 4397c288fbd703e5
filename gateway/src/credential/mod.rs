//! Verifiable credentials and presentations as JWTs (docs/FORMATS.md), status lists, replay
//! protection, and the error codes of docs/ERRORS.md.
//!
//! Checks run in the contract's order and stop at the first failure, so every rejection
//! carries exactly one stable code.

mod error;
mod jws;
mod keys;
mod message;
mod presentation;
mod replay;
mod status_list;
mod trust;
mod vc;

#[cfg(test)]
pub(crate) mod test_support;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub use error::{ErrorCode, VerificationError};
pub use jws::SignError;
pub use message::{MESSAGE_TYP, Opened, sign_message};
pub use presentation::{
    Challenge, IdentityBindings, OpenedPresentation, VerifiedPresentation, create_presentation,
};
pub use replay::ReplayCache;
pub use status_list::{
    IndexOutOfRange, MAX_STATUS_LIST_ENTRIES, MIN_STATUS_LIST_ENTRIES, STATUS_LIST_CREDENTIAL_TYPE,
    StatusEntry, StatusList, StatusLists, StatusPurpose,
};
pub use trust::IssuerTrust;
pub use vc::{
    CredentialDraft, CredentialVerifier, IssueError, VerifiedCredential, VerifyContext,
    issue_credential,
};

/// The JWS `typ` of a credential.
pub const VC_TYP: &str = "vc+jwt";
/// The JWS `typ` of a presentation.
pub const VP_TYP: &str = "vp+jwt";
/// The first `@context` entry of every VCDM 2.0 document.
pub const VCDM_V2_CONTEXT: &str = "https://www.w3.org/ns/credentials/v2";
/// Largest credential accepted, in bytes.
pub const MAX_CREDENTIAL_LEN: usize = 64 * 1024;
/// Largest status list credential accepted, in bytes (a busy list compresses less well).
pub const MAX_STATUS_LIST_CREDENTIAL_LEN: usize = 1024 * 1024;
/// Most credentials one presentation may carry.
pub const MAX_PRESENTATION_CREDENTIALS: usize = 32;
/// Largest presentation accepted, in bytes.
pub const MAX_PRESENTATION_LEN: usize = 4 * MAX_CREDENTIAL_LEN + 16 * 1024;
/// Longest presentation lifetime (`exp - iat`), in seconds.
pub const MAX_PRESENTATION_LIFETIME_SECS: i64 = 300;
/// Clock skew tolerated on every time check, in seconds.
pub const CLOCK_SKEW_SECS: i64 = 60;
/// Status list freshness when no charter sets one: a day.
pub const DEFAULT_STATUS_MAX_AGE_SECS: i64 = 24 * 3600;

/// Parses an RFC 3339 date-time into Unix seconds.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
}

/// Formats Unix seconds as an RFC 3339 UTC date-time (`2026-01-01T00:00:00Z`).
pub fn format_rfc3339(unix_secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix_secs)
        .ok()
        .and_then(|instant| instant.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("@{unix_secs}"))
}

/// The current time in Unix seconds.
pub fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Decodes a token's payload without verifying anything, to say what a rejected token
/// claimed to be (its type, its validFrom). Never base a decision on it.
pub fn unverified_payload(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    unverified_part(token, 1)
}

/// The credential type a vc+jwt claims (the second entry of `type`), unverified: to sort a
/// wallet's own credentials, never to judge someone else's.
pub fn credential_type(token: &str) -> Option<String> {
    unverified_payload(token)?
        .get("type")?
        .as_array()?
        .get(1)?
        .as_str()
        .map(str::to_owned)
}

/// Decodes a token's JOSE header without verifying anything (to tell a presentation from a
/// credential before choosing how to verify it).
pub fn unverified_header(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    unverified_part(token, 0)
}

fn unverified_part(
    token: &str,
    index: usize,
) -> Option<serde_json::Map<String, serde_json::Value>> {
    use base64::Engine;
    let part = token.trim_ascii().split('.').nth(index)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}
