//! Reading inputs: bounded files, instants, trust settings.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, bail};
use tfc_gateway::charter::{IssuerTrust, parse_duration_secs};
use tfc_gateway::credential::{
    CredentialVerifier, DEFAULT_STATUS_MAX_AGE_SECS, StatusLists, now_unix, parse_rfc3339,
};
use tfc_gateway::field::Field;

use crate::TrustArgs;

/// Token files are read up to this many bytes; the verifier's own limits are far lower, so
/// a longer file is still judged (`too_large`) without reading all of it.
const MAX_TOKEN_FILE_LEN: u64 = 8 * 1024 * 1024;
/// JSON inputs (claims) larger than this are refused.
const MAX_JSON_FILE_LEN: u64 = 1024 * 1024;

/// Reads a token file. Bytes that are not UTF-8 are kept as replacement characters, so that
/// the verifier reports them as `malformed` rather than the CLI failing on I/O.
pub(crate) fn read_token(path: &Path) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|file| file.take(MAX_TOKEN_FILE_LEN).read_to_end(&mut bytes))
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Reads a JSON object from a file.
pub(crate) fn read_json_object(
    path: &Path,
) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    let mut text = String::new();
    File::open(path)
        .and_then(|file| file.take(MAX_JSON_FILE_LEN + 1).read_to_string(&mut text))
        .with_context(|| format!("cannot read {}", path.display()))?;
    if text.len() as u64 > MAX_JSON_FILE_LEN {
        bail!(
            "{} is larger than {MAX_JSON_FILE_LEN} bytes",
            path.display()
        );
    }
    match serde_json::from_str(&text) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => bail!("{} must hold a JSON object", path.display()),
        Err(error) => bail!("{} is not valid JSON: {error}", path.display()),
    }
}

/// Parses `--at`, defaulting to now.
pub(crate) fn instant(at: Option<&str>) -> anyhow::Result<i64> {
    match at {
        None => Ok(now_unix()),
        Some(text) => parse_rfc3339(text).with_context(|| {
            format!("--at {text:?} is not an RFC 3339 date-time such as 2026-04-01T09:00:00Z")
        }),
    }
}

/// Everything a verification needs besides the token.
pub(crate) struct TrustSettings {
    pub(crate) now: i64,
    pub(crate) trust: Option<IssuerTrust>,
    pub(crate) status_lists: StatusLists,
    pub(crate) status_max_age_secs: i64,
}

impl TrustSettings {
    /// Loads the charter and status lists named on the command line.
    pub(crate) fn load(args: &TrustArgs, verifier: &CredentialVerifier) -> anyhow::Result<Self> {
        let now = instant(args.at.as_deref())?;
        let charter = args
            .charter
            .as_deref()
            .map(|path| {
                Field::load(path).with_context(|| format!("field charter {}", path.display()))
            })
            .transpose()?
            .map(|field| field.charter);
        let status_max_age_secs = match (&args.status_max_age, &charter) {
            (Some(text), _) => parse_duration_secs(text)
                .with_context(|| format!("--status-max-age {text:?} is not a duration like 24h"))?,
            (None, Some(charter)) => charter.status_max_age_secs,
            (None, None) => DEFAULT_STATUS_MAX_AGE_SECS,
        };
        let mut status_lists = StatusLists::new();
        for path in &args.status_lists {
            let token = read_token(path)?;
            let list = verifier.verify_status_list(&token, now).map_err(|error| {
                anyhow::anyhow!("status list {} is not usable: {error}", path.display())
            })?;
            status_lists.insert(list);
        }
        Ok(Self {
            now,
            trust: charter.map(|charter| charter.issuer_trust()),
            status_lists,
            status_max_age_secs,
        })
    }
}
