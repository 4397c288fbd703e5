//! The signed envelope every gossip message travels in, and the rate each publisher is held to.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use crate::credential::CredentialVerifier;
use crate::net::TopicKind;

/// How far a message's time may stray from ours (seconds): gossip is delivered within
/// seconds, so an old message is a replay.
pub(super) const MAX_MESSAGE_AGE_SECS: i64 = 600;
/// Messages a publisher may send at once, and per second after that.
pub(super) const RATE_BURST: f64 = 200.0;
pub(super) const RATE_PER_SEC: f64 = 50.0;
/// The signed envelope of every gossip message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The publisher's DID (the signer).
    pub iss: String,
    /// The field id.
    pub field: String,
    /// The topic kind: `gov`, `threat`, `status` or `audit`.
    pub kind: String,
    /// When it was published (Unix seconds).
    pub iat: i64,
    /// Makes every publication distinct, so a deliberate re-publication is not a duplicate.
    pub jti: String,
    /// What it carries.
    pub body: Value,
}

/// Why an envelope was not opened: a stable code and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeRejection {
    /// `malformed`, `wrong_topic`, `stale`, or a verification code (`bad_signature`, …).
    pub code: String,
    /// Why.
    pub message: String,
}

/// Opens a signed envelope received for `field` and `kind`, by gossip or by name: the token
/// verifies within `max_bytes`, is an envelope, names that field and kind, and was made
/// within ten minutes of `now`. Returns the signer and the envelope. Membership and rates
/// are the caller's to judge.
pub fn open_envelope(
    verifier: &CredentialVerifier,
    token: &str,
    field: &str,
    kind: TopicKind,
    max_bytes: usize,
    now: i64,
) -> Result<(String, Envelope), EnvelopeRejection> {
    let opened = verifier.open_message(token, max_bytes);
    check_envelope(opened, field, kind, now)
}

/// A gossip message to open: its token and the field and topic it came on.
#[derive(Debug, Clone, Copy)]
pub struct Sealed<'a> {
    /// The compact JWS.
    pub token: &'a str,
    /// The field whose topic carried it.
    pub field: &'a str,
    /// The topic's kind.
    pub kind: TopicKind,
}

/// Opens several envelopes, each as [`open_envelope`] would, in order; their Ed25519
/// signatures are checked in one batch.
pub fn open_envelopes(
    verifier: &CredentialVerifier,
    sealed: &[Sealed<'_>],
    max_bytes: usize,
    now: i64,
) -> Vec<Result<(String, Envelope), EnvelopeRejection>> {
    let tokens: Vec<&str> = sealed.iter().map(|message| message.token).collect();
    verifier
        .open_messages(&tokens, max_bytes)
        .into_iter()
        .zip(sealed)
        .map(|(opened, message)| check_envelope(opened, message.field, message.kind, now))
        .collect()
}

fn check_envelope(
    opened: crate::credential::Opened,
    field: &str,
    kind: TopicKind,
    now: i64,
) -> Result<(String, Envelope), EnvelopeRejection> {
    let reject = |code: &str, message: String| EnvelopeRejection {
        code: code.to_owned(),
        message,
    };
    let (publisher, payload) =
        opened.map_err(|error| reject(error.code.as_str(), error.message.clone()))?;
    let envelope: Envelope = serde_json::from_value(Value::Object(payload))
        .map_err(|error| reject("malformed", format!("not an envelope: {error}")))?;
    if envelope.field != field || envelope.kind != kind.as_str() {
        return Err(reject(
            "wrong_topic",
            format!(
                "an envelope for {}/{} on {field}/{}",
                envelope.field,
                envelope.kind,
                kind.as_str()
            ),
        ));
    }
    if (now - envelope.iat).abs() > MAX_MESSAGE_AGE_SECS {
        return Err(reject(
            "stale",
            "made more than ten minutes from now".into(),
        ));
    }
    Ok((publisher, envelope))
}

/// Why a gossip message was refused (its code is counted in metrics).
#[derive(Debug)]
pub(super) struct Rejection(pub(super) String);

/// Whether a refusal lies in the message itself (its form, signature, marking), so that any
/// gateway, a relay included, would refuse it the same way.
pub(super) fn intrinsic(code: &str) -> bool {
    matches!(
        code,
        "malformed"
            | "gov_malformed"
            | "too_large"
            | "gov_forged"
            | "bad_signature"
            | "unsupported_pattern"
            | "bad_countermeasure"
            | "tlp_violation"
            | "wrong_field"
            | "wrong_topic"
    )
}

/// A token bucket per publisher.
pub(super) struct Bucket {
    pub(super) tokens: f64,
    pub(super) at: Instant,
}

impl Bucket {
    pub(super) fn take(&mut self, now: Instant) -> bool {
        let refill = now.duration_since(self.at).as_secs_f64() * RATE_PER_SEC;
        self.tokens = (self.tokens + refill).min(RATE_BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
