//! Verifiable presentations secured as `vp+jwt`: a holder's signed answer to a verifier's
//! challenge, carrying the holder's credentials.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::error::{ErrorCode, VerificationError, fail};
use super::jws::{self, SignError, truncate};
use super::replay::ReplayCache;
use super::vc::{CredentialVerifier, VerifiedCredential, VerifyContext};
use super::{
    CLOCK_SKEW_SECS, MAX_PRESENTATION_CREDENTIALS, MAX_PRESENTATION_LEN,
    MAX_PRESENTATION_LIFETIME_SECS, VCDM_V2_CONTEXT, VP_TYP,
};
use crate::identity::KeyPair;

/// The credential type that binds a corporate number to a DID.
const IDENTITY_CREDENTIAL_TYPE: &str = "OrganizationIdentityCredential";

/// The verifier's side of the exchange: who it is and the nonce it issued.
#[derive(Debug, Clone, Copy)]
pub struct Challenge<'a> {
    /// The verifier's DID, which must be the presentation's `aud`.
    pub audience: &'a str,
    /// The nonce the verifier issued for this exchange.
    pub nonce: &'a str,
}

/// Which DID each corporate number is already bound to, as the verifier knows it.
pub trait IdentityBindings {
    /// The DID bound to `corporate_number`, if any.
    fn bound_did(&self, corporate_number: &str) -> Option<String>;
}

impl IdentityBindings for HashMap<String, String> {
    fn bound_did(&self, corporate_number: &str) -> Option<String> {
        self.get(corporate_number).cloned()
    }
}

/// A presentation whose signature, challenge, freshness and every credential checked out.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedPresentation {
    /// The holder DID.
    pub holder: String,
    /// `iat`, Unix seconds.
    pub issued_at: i64,
    /// `exp`, Unix seconds.
    pub expires_at: i64,
    /// The verified credentials, in presentation order.
    pub credentials: Vec<VerifiedCredential>,
}

/// The `id` prefix of an enveloped credential (VCDM 2.0 "Enveloped Verifiable Credentials",
/// VC-JOSE-COSE).
const ENVELOPED_PREFIX: &str = "data:application/vc+jwt,";
/// The `type` of an enveloped credential.
const ENVELOPED_TYPE: &str = "EnvelopedVerifiableCredential";

/// Creates a `vp+jwt` answering `challenge`, valid for `lifetime_secs` (at most 300): a VCDM
/// 2.0 `VerifiablePresentation` secured as VC-JOSE-COSE, whose credentials are
/// `EnvelopedVerifiableCredential`s, with the JWT claims `aud`, `nonce`, `iat` and `exp`.
pub fn create_presentation(
    holder: &KeyPair,
    challenge: Challenge<'_>,
    credentials: &[String],
    issued_at: i64,
    lifetime_secs: i64,
) -> Result<String, SignError> {
    let lifetime = lifetime_secs.clamp(1, MAX_PRESENTATION_LIFETIME_SECS);
    let enveloped: Vec<Value> = credentials
        .iter()
        .map(|token| {
            json!({
                "@context": VCDM_V2_CONTEXT,
                "id": format!("{ENVELOPED_PREFIX}{}", token.trim()),
                "type": ENVELOPED_TYPE,
            })
        })
        .collect();
    let payload = json!({
        "@context": [VCDM_V2_CONTEXT],
        "type": ["VerifiablePresentation"],
        "holder": holder.did(),
        "verifiableCredential": enveloped,
        "aud": challenge.audience,
        "nonce": challenge.nonce,
        "iat": issued_at,
        "exp": issued_at + lifetime,
    });
    jws::sign(holder, VP_TYP, &payload)
}

/// A presentation whose envelope checked out; its credentials are not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedPresentation {
    /// The holder DID (`iss`).
    pub holder: String,
    /// The compact vc+jwt credentials it carries.
    pub credentials: Vec<String>,
}

/// The claims that must be readable before anything is checked.
struct PresentationClaims {
    holder: String,
    audiences: Vec<String>,
    nonce: Option<String>,
    issued_at: i64,
    expires_at: i64,
    credentials: Vec<String>,
    signer_agrees: bool,
}

impl PresentationClaims {
    fn extract(payload: &Map<String, Value>) -> Result<Self, VerificationError> {
        let malformed = |message: &str| VerificationError::new(ErrorCode::Malformed, message);
        // VC-JOSE-COSE puts the presentation itself in the payload; the older form (read
        // during the transition, never written) wraps it in a `vp` claim beside `iss`.
        let (presentation, legacy) = match payload.get("vp") {
            Some(vp) => (
                vp.as_object()
                    .ok_or_else(|| malformed("presentation's vp claim is not an object"))?,
                true,
            ),
            None => (payload, false),
        };
        let holder = presentation
            .get("holder")
            .and_then(Value::as_str)
            .or_else(|| payload.get("iss").and_then(Value::as_str))
            .ok_or_else(|| malformed("presentation has no holder DID"))?;
        let signer_agrees = payload
            .get("iss")
            .is_none_or(|iss| iss.as_str() == Some(holder));
        if !legacy
            && presentation
                .get("type")
                .and_then(Value::as_array)
                .is_none_or(|types| {
                    !types
                        .iter()
                        .any(|kind| kind.as_str() == Some("VerifiablePresentation"))
                })
        {
            return Err(malformed(
                "presentation's type lacks VerifiablePresentation",
            ));
        }
        let audiences = match payload.get("aud") {
            Some(Value::String(audience)) => vec![audience.clone()],
            Some(Value::Array(audiences)) => audiences
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        let number = |name| payload.get(name).and_then(Value::as_i64);
        let (Some(issued_at), Some(expires_at)) = (number("iat"), number("exp")) else {
            return Err(malformed("presentation needs numeric iat and exp"));
        };
        let entries = presentation
            .get("verifiableCredential")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed("verifiableCredential must be an array"))?;
        if entries.len() > MAX_PRESENTATION_CREDENTIALS {
            return fail(
                ErrorCode::TooLarge,
                format!("at most {MAX_PRESENTATION_CREDENTIALS} credentials per presentation"),
            );
        }
        let credentials = entries
            .iter()
            .map(|entry| credential_token(entry, legacy))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                malformed(if legacy {
                    "vp.verifiableCredential must hold vc+jwt strings"
                } else {
                    "verifiableCredential must hold EnvelopedVerifiableCredentials of vc+jwt"
                })
            })?;
        Ok(Self {
            holder: holder.to_owned(),
            audiences,
            nonce: payload
                .get("nonce")
                .and_then(Value::as_str)
                .map(str::to_owned),
            issued_at,
            expires_at,
            credentials,
            signer_agrees,
        })
    }

    fn check_freshness(&self, now: i64) -> Result<(), VerificationError> {
        let expired = |message: String| fail(ErrorCode::PresentationExpired, message);
        if self.expires_at.saturating_sub(self.issued_at) > MAX_PRESENTATION_LIFETIME_SECS {
            return expired(format!(
                "presentation lives longer than {MAX_PRESENTATION_LIFETIME_SECS} s"
            ));
        }
        if self.issued_at > now.saturating_add(CLOCK_SKEW_SECS) {
            return expired(
                "presentation was issued in the future (check the holder's clock)".into(),
            );
        }
        if now.saturating_sub(CLOCK_SKEW_SECS) >= self.expires_at {
            return expired(
                "presentation has expired; ask the holder for a new one (if it was fresh, one of the two clocks is off)"
                    .into(),
            );
        }
        Ok(())
    }
}

/// The compact vc+jwt an entry of `verifiableCredential` carries: an
/// `EnvelopedVerifiableCredential` whose `id` is a `data:application/vc+jwt,` URL, or, in the
/// legacy form, the bare token.
fn credential_token(entry: &Value, legacy: bool) -> Option<String> {
    if legacy {
        return entry.as_str().map(str::to_owned);
    }
    let entry = entry.as_object()?;
    let enveloped = match entry.get("type")? {
        Value::String(kind) => kind == ENVELOPED_TYPE,
        Value::Array(kinds) => kinds
            .iter()
            .any(|kind| kind.as_str() == Some(ENVELOPED_TYPE)),
        _ => false,
    };
    let token = entry.get("id")?.as_str()?.strip_prefix(ENVELOPED_PREFIX)?;
    enveloped.then(|| token.to_owned())
}

impl CredentialVerifier {
    /// Checks a `vp+jwt`'s envelope (signature, audience, nonce, freshness, replay) and
    /// returns the holder and the credentials it carries, unverified: for callers such as
    /// tier evaluation that judge each credential on its own.
    pub fn open_presentation(
        &self,
        token: &str,
        challenge: Challenge<'_>,
        now: i64,
        replay: &ReplayCache,
    ) -> Result<OpenedPresentation, VerificationError> {
        let claims = self.open(token, challenge, now, replay)?;
        Ok(OpenedPresentation {
            holder: claims.holder,
            credentials: claims.credentials,
        })
    }

    fn open(
        &self,
        token: &str,
        challenge: Challenge<'_>,
        now: i64,
        replay: &ReplayCache,
    ) -> Result<PresentationClaims, VerificationError> {
        let jws = jws::parse(token, MAX_PRESENTATION_LEN, VP_TYP)?;
        let claims = PresentationClaims::extract(&jws.payload)?;
        self.authenticate(&jws, &claims.holder, ErrorCode::PresentationBadSignature)?;
        if !claims
            .audiences
            .iter()
            .any(|audience| audience == challenge.audience)
        {
            return fail(
                ErrorCode::WrongAudience,
                "presentation is addressed to another verifier",
            );
        }
        if claims.nonce.as_deref() != Some(challenge.nonce) {
            return fail(
                ErrorCode::NonceMismatch,
                "presentation answers another challenge",
            );
        }
        if replay.contains(challenge.nonce) {
            return fail(ErrorCode::Replayed, "this nonce was already used");
        }
        claims.check_freshness(now)?;
        replay.record(
            challenge.nonce,
            claims.expires_at.saturating_add(CLOCK_SKEW_SECS),
            now,
        )?;
        if !claims.signer_agrees {
            return fail(ErrorCode::HolderMismatch, "holder differs from iss");
        }
        Ok(claims)
    }

    /// Verifies a `vp+jwt` answering `challenge`, and every credential it carries.
    ///
    /// The nonce is consumed once the presentation itself checks out, even if a credential
    /// inside it then fails: the same bytes are never judged twice.
    pub fn verify_presentation(
        &self,
        token: &str,
        challenge: Challenge<'_>,
        context: &VerifyContext<'_>,
        replay: &ReplayCache,
        bindings: &dyn IdentityBindings,
    ) -> Result<VerifiedPresentation, VerificationError> {
        let claims = self.open(token, challenge, context.now, replay)?;
        let mut credentials = Vec::with_capacity(claims.credentials.len());
        for (index, token) in claims.credentials.iter().enumerate() {
            let credential = self.verify_credential(token, context).map_err(|error| {
                VerificationError::new(
                    error.code,
                    format!("credential {}: {}", index + 1, error.message),
                )
            })?;
            if credential.subject != claims.holder {
                return fail(
                    ErrorCode::HolderMismatch,
                    format!(
                        "credential {} ({}) was issued to {}, not to the holder",
                        index + 1,
                        credential.type_name,
                        truncate(&credential.subject)
                    ),
                );
            }
            credentials.push(credential);
        }
        check_identity_bindings(&claims.holder, &credentials, bindings)?;
        Ok(VerifiedPresentation {
            holder: claims.holder,
            issued_at: claims.issued_at,
            expires_at: claims.expires_at,
            credentials,
        })
    }
}

/// A corporate number already bound to another DID is a conflict, never a silent rebind.
fn check_identity_bindings(
    holder: &str,
    credentials: &[VerifiedCredential],
    bindings: &dyn IdentityBindings,
) -> Result<(), VerificationError> {
    for credential in credentials
        .iter()
        .filter(|credential| credential.type_name == IDENTITY_CREDENTIAL_TYPE)
    {
        let Some(number) = credential
            .claims
            .get("corporateNumber")
            .and_then(Value::as_str)
        else {
            continue;
        };
        if let Some(bound) = bindings.bound_did(number)
            && bound != holder
        {
            return fail(
                ErrorCode::IdentityConflict,
                format!("corporate number {number} is already bound to {bound}"),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
