//! Verifiable credentials secured as `vc+jwt`: issuing and verifying.

use serde::Serialize;
use serde_json::{Map, Value, json};
use tfc_schemas::SchemaSet;

use super::IssuerTrust;
use super::error::{ErrorCode, VerificationError, fail};
use super::jws::{self, ParsedJws, SignError, truncate};
use super::keys::KeyResolver;
use super::status_list::{
    STATUS_LIST_CREDENTIAL_TYPE, StatusEntry, StatusList, StatusLists, StatusPurpose,
};
use super::{
    CLOCK_SKEW_SECS, MAX_CREDENTIAL_LEN, MAX_STATUS_LIST_CREDENTIAL_LEN, VC_TYP, VCDM_V2_CONTEXT,
    format_rfc3339, parse_rfc3339,
};
use crate::identity::KeyPair;

/// What a verification is measured against: the instant, the trust policy and the known
/// status lists.
#[derive(Clone, Copy)]
pub struct VerifyContext<'a> {
    /// The instant of judgement, in Unix seconds.
    pub now: i64,
    /// The trusted issuers; `None` skips the issuer-trust check (and says so in reports).
    pub trust: Option<&'a IssuerTrust>,
    /// The status lists known to the verifier.
    pub status_lists: &'a StatusLists,
    /// Status lists issued longer ago than this many seconds do not count.
    pub status_max_age_secs: i64,
}

/// A credential whose signature, validity, schema, claims, trust and status all checked out.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedCredential {
    /// The credential id (`urn:uuid:…`).
    pub id: String,
    /// The credential type, e.g. `CreditRatingCredential`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The issuer DID.
    pub issuer: String,
    /// The subject (holder) DID.
    pub subject: String,
    /// `validFrom`, Unix seconds.
    pub valid_from: i64,
    /// `validUntil`, Unix seconds, if the credential expires.
    pub valid_until: Option<i64>,
    /// The subject's claims (without `id`).
    pub claims: Map<String, Value>,
    /// Whether the issuer is the subject.
    pub self_declared: bool,
    /// Its status list entries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub status: Vec<StatusEntry>,
    /// Whether issuer trust was checked against a charter.
    pub trust_checked: bool,
}

/// The fields that must be readable before anything else can be checked.
struct Envelope {
    issuer: String,
    valid_from: i64,
    valid_until: Option<i64>,
}

impl Envelope {
    fn extract(payload: &Map<String, Value>) -> Result<Self, VerificationError> {
        let issuer = match payload.get("issuer") {
            Some(Value::String(issuer)) => issuer.clone(),
            Some(Value::Object(_)) => {
                return fail(
                    ErrorCode::Malformed,
                    "issuer must be a DID string, not an object",
                );
            }
            _ => return fail(ErrorCode::Malformed, "credential has no issuer"),
        };
        let valid_from = instant(payload, "validFrom")?.ok_or_else(|| {
            VerificationError::new(ErrorCode::Malformed, "credential has no validFrom")
        })?;
        let valid_until = instant(payload, "validUntil")?;
        Ok(Self {
            issuer,
            valid_from,
            valid_until,
        })
    }
}

fn instant(payload: &Map<String, Value>, name: &str) -> Result<Option<i64>, VerificationError> {
    match payload.get(name) {
        None => Ok(None),
        Some(Value::String(text)) => parse_rfc3339(text).map(Some).ok_or_else(|| {
            VerificationError::new(
                ErrorCode::Malformed,
                format!("{name} {} is not an RFC 3339 date-time", truncate(text)),
            )
        }),
        Some(_) => fail(ErrorCode::Malformed, format!("{name} must be a string")),
    }
}

/// Checks `validFrom`/`validUntil` against `now` with the contract's clock-skew tolerance.
pub(crate) fn check_window(
    valid_from: i64,
    valid_until: Option<i64>,
    now: i64,
) -> Result<(), VerificationError> {
    if now.saturating_add(CLOCK_SKEW_SECS) < valid_from {
        return fail(
            ErrorCode::NotYetValid,
            format!("valid from {}", format_rfc3339(valid_from)),
        );
    }
    if let Some(until) = valid_until
        && now.saturating_sub(CLOCK_SKEW_SECS) >= until
    {
        return fail(
            ErrorCode::Expired,
            format!("expired at {}", format_rfc3339(until)),
        );
    }
    Ok(())
}

/// Verifies credentials and presentations; holds the key cache and the compiled schemas.
pub struct CredentialVerifier {
    pub(crate) keys: KeyResolver,
    schemas: &'static SchemaSet,
}

impl Default for CredentialVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl CredentialVerifier {
    /// A verifier with an empty key cache and the embedded schemas.
    pub fn new() -> Self {
        Self {
            keys: KeyResolver::new(),
            schemas: SchemaSet::global(),
        }
    }

    /// Verifies a `vc+jwt` credential, reporting the first failing check in contract order.
    pub fn verify_credential(
        &self,
        token: &str,
        context: &VerifyContext<'_>,
    ) -> Result<VerifiedCredential, VerificationError> {
        let credential = self.verify_credential_before_status(token, context)?;
        check_status(&credential, context)?;
        Ok(credential)
    }

    /// Every check of [`Self::verify_credential`] but the last, the status: for a holder
    /// taking its own credential before it has the issuer's status list.
    pub fn verify_credential_before_status(
        &self,
        token: &str,
        context: &VerifyContext<'_>,
    ) -> Result<VerifiedCredential, VerificationError> {
        let jws = jws::parse(token, MAX_CREDENTIAL_LEN, VC_TYP)?;
        let envelope = Envelope::extract(&jws.payload)?;
        self.authenticate(&jws, &envelope.issuer, ErrorCode::BadSignature)?;
        check_window(envelope.valid_from, envelope.valid_until, context.now)?;
        let payload = Value::Object(jws.payload);
        let type_name = self.credential_type(&payload)?;
        self.check_schema(&type_name, &payload)?;
        check_claims_agree(&payload, &envelope)?;
        let credential = into_verified(payload, type_name, envelope, context.trust.is_some())?;
        if let Some(trust) = context.trust {
            trust.check(
                &credential.issuer,
                &credential.subject,
                &credential.type_name,
            )?;
        }
        Ok(credential)
    }

    /// The status check alone, on a credential from [`Self::verify_credential_before_status`].
    pub fn check_credential_status(
        &self,
        credential: &VerifiedCredential,
        context: &VerifyContext<'_>,
    ) -> Result<(), VerificationError> {
        check_status(credential, context)
    }

    /// Checks the signature of `jws` against `signer`'s key; a failure gets `bad_signature_code`.
    pub(crate) fn authenticate(
        &self,
        jws: &ParsedJws<'_>,
        signer: &str,
        bad_signature_code: ErrorCode,
    ) -> Result<(), VerificationError> {
        let key = self.keys.key_for(jws, signer)?;
        if key.verify(jws.signing_input.as_bytes(), &jws.signature) {
            Ok(())
        } else {
            fail(
                bad_signature_code,
                "signature does not verify with the signer's key",
            )
        }
    }

    fn credential_type(&self, payload: &Value) -> Result<String, VerificationError> {
        let types: Vec<&str> = payload
            .get("type")
            .and_then(Value::as_array)
            .map(|types| types.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        match types.as_slice() {
            ["VerifiableCredential", name] if self.schemas.credential_type(name).is_some() => {
                Ok((*name).to_owned())
            }
            ["VerifiableCredential", name] => fail(
                ErrorCode::UnknownType,
                format!("credential type {} is not known", truncate(name)),
            ),
            _ => fail(
                ErrorCode::UnknownType,
                "type must be [\"VerifiableCredential\", \"<Type>\"]",
            ),
        }
    }

    fn check_schema(&self, type_name: &str, payload: &Value) -> Result<(), VerificationError> {
        match self.schemas.validate(type_name, payload) {
            Some(Ok(())) => Ok(()),
            Some(Err(violation)) => fail(ErrorCode::SchemaViolation, violation.to_string()),
            None => fail(ErrorCode::UnknownType, format!("no schema for {type_name}")),
        }
    }
}

/// Checks every status entry; the first failure in code order (revoked, suspended,
/// unavailable) is reported.
fn check_status(
    credential: &VerifiedCredential,
    context: &VerifyContext<'_>,
) -> Result<(), VerificationError> {
    let failures = credential.status.iter().filter_map(|entry| {
        context
            .status_lists
            .check_entry(
                entry,
                &credential.issuer,
                context.now,
                context.status_max_age_secs,
            )
            .err()
    });
    match failures.min_by_key(|error| error.code) {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// JWT registered claims, where present, must agree with the VC fields they duplicate.
fn check_claims_agree(payload: &Value, envelope: &Envelope) -> Result<(), VerificationError> {
    let mismatch = |claim: &str, field: &str| {
        fail(
            ErrorCode::ClaimsMismatch,
            format!("JWT claim {claim} disagrees with {field}"),
        )
    };
    let text = |name: &str| payload.get(name).and_then(Value::as_str);
    let number = |name: &str| payload.get(name).and_then(Value::as_i64);
    if payload.get("iss").is_some() && text("iss") != Some(envelope.issuer.as_str()) {
        return mismatch("iss", "issuer");
    }
    let subject = payload
        .pointer("/credentialSubject/id")
        .and_then(Value::as_str);
    if payload.get("sub").is_some() && text("sub") != subject {
        return mismatch("sub", "credentialSubject.id");
    }
    if payload.get("jti").is_some() && text("jti") != text("id") {
        return mismatch("jti", "id");
    }
    if payload.get("nbf").is_some() && number("nbf") != Some(envelope.valid_from) {
        return mismatch("nbf", "validFrom");
    }
    if payload.get("exp").is_some() && number("exp") != envelope.valid_until {
        return mismatch("exp", "validUntil");
    }
    Ok(())
}

fn into_verified(
    payload: Value,
    type_name: String,
    envelope: Envelope,
    trust_checked: bool,
) -> Result<VerifiedCredential, VerificationError> {
    let Value::Object(mut payload) = payload else {
        return fail(ErrorCode::Malformed, "payload is not an object");
    };
    // The schema guarantees these shapes; a defect there must still not panic.
    let id = match payload.remove("id") {
        Some(Value::String(id)) => id,
        _ => return fail(ErrorCode::SchemaViolation, "credential has no id"),
    };
    let Some(Value::Object(mut claims)) = payload.remove("credentialSubject") else {
        return fail(
            ErrorCode::SchemaViolation,
            "credentialSubject is not an object",
        );
    };
    let Some(Value::String(subject)) = claims.remove("id") else {
        return fail(ErrorCode::SchemaViolation, "credentialSubject has no id");
    };
    let status = match payload.remove("credentialStatus") {
        None => Vec::new(),
        Some(Value::Array(entries)) => entries,
        Some(entry) => vec![entry],
    };
    let status = status
        .into_iter()
        .map(serde_json::from_value)
        .collect::<Result<Vec<StatusEntry>, _>>()
        .map_err(|error| {
            VerificationError::new(
                ErrorCode::SchemaViolation,
                format!("credentialStatus: {error}"),
            )
        })?;
    Ok(VerifiedCredential {
        id,
        status,
        type_name,
        self_declared: envelope.issuer == subject,
        issuer: envelope.issuer,
        subject,
        valid_from: envelope.valid_from,
        valid_until: envelope.valid_until,
        claims,
        trust_checked,
    })
}

/// What an issuer wants to say about a subject.
#[derive(Debug, Clone)]
pub struct CredentialDraft {
    /// The credential type, e.g. `CreditRatingCredential`.
    pub type_name: String,
    /// The subject (holder) DID.
    pub subject: String,
    /// The subject claims, without `id`.
    pub claims: Map<String, Value>,
    /// Start of validity, Unix seconds.
    pub valid_from: i64,
    /// End of validity, Unix seconds; `None` for a credential that does not expire.
    pub valid_until: Option<i64>,
    /// Status list entries, if the issuer can revoke or suspend it.
    pub status: Vec<StatusEntry>,
}

/// Why a credential could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The type has no schema.
    #[error("unknown credential type {0}; known types: {known}", known = known_types())]
    UnknownType(String),
    /// The credential would not satisfy its schema.
    #[error("the credential would violate its schema at {0}")]
    SchemaViolation(tfc_schemas::SchemaViolation),
    /// `validUntil` is not after `validFrom`.
    #[error("validUntil must be after validFrom")]
    EmptyWindow,
    /// Signing failed.
    #[error(transparent)]
    Sign(#[from] SignError),
}

impl IssueError {
    /// A stable machine code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            IssueError::UnknownType(_) => "unknown_type",
            IssueError::SchemaViolation(_) => "schema_violation",
            IssueError::EmptyWindow => "empty_validity_window",
            IssueError::Sign(_) => "sign_failed",
        }
    }
}

fn known_types() -> String {
    tfc_schemas::CREDENTIAL_TYPES
        .iter()
        .map(|info| info.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Issues a `vc+jwt`, refusing to sign anything its own verifier would reject on schema.
pub fn issue_credential(
    issuer: &KeyPair,
    draft: &CredentialDraft,
    issued_at: i64,
) -> Result<String, IssueError> {
    let schemas = SchemaSet::global();
    let schema_id = schemas
        .schema_id(&draft.type_name)
        .ok_or_else(|| IssueError::UnknownType(draft.type_name.clone()))?;
    if draft
        .valid_until
        .is_some_and(|until| until <= draft.valid_from)
    {
        return Err(IssueError::EmptyWindow);
    }
    let issuer_did = issuer.did();
    let id = format!("urn:uuid:{}", uuid::Uuid::new_v4());
    let mut subject = Map::with_capacity(draft.claims.len() + 1);
    subject.insert("id".into(), draft.subject.clone().into());
    subject.extend(
        draft
            .claims
            .iter()
            .map(|(key, value)| (key.clone(), value.clone())),
    );
    let mut payload = json!({
        "@context": [VCDM_V2_CONTEXT],
        "id": id,
        "type": ["VerifiableCredential", draft.type_name],
        "issuer": issuer_did,
        "validFrom": format_rfc3339(draft.valid_from),
        "credentialSubject": subject,
        "credentialSchema": {"id": schema_id, "type": "JsonSchema"},
        "iss": issuer_did,
        "sub": draft.subject,
        "nbf": draft.valid_from,
        "iat": issued_at,
        "jti": id,
    });
    if let Some(until) = draft.valid_until {
        payload["validUntil"] = format_rfc3339(until).into();
        payload["exp"] = until.into();
    }
    match draft.status.as_slice() {
        [] => {}
        [entry] => payload["credentialStatus"] = json!(entry),
        entries => payload["credentialStatus"] = json!(entries),
    }
    if let Some(Err(violation)) = schemas.validate(&draft.type_name, &payload) {
        return Err(IssueError::SchemaViolation(violation));
    }
    Ok(jws::sign(issuer, VC_TYP, &payload)?)
}

impl CredentialVerifier {
    /// Verifies a status list credential: signature, validity window, shape and list.
    pub fn verify_status_list(
        &self,
        token: &str,
        now: i64,
    ) -> Result<StatusList, VerificationError> {
        let jws = jws::parse(token, MAX_STATUS_LIST_CREDENTIAL_LEN, VC_TYP)?;
        let text = |name: &str| jws.payload.get(name).and_then(Value::as_str);
        let Some(issuer) = text("issuer").map(str::to_owned) else {
            return fail(ErrorCode::Malformed, "status list credential has no issuer");
        };
        self.authenticate(&jws, &issuer, ErrorCode::BadSignature)?;
        let instant = |name: &str| text(name).and_then(parse_rfc3339);
        let Some(issued_at) = instant("validFrom") else {
            return fail(
                ErrorCode::Malformed,
                "status list credential has no valid validFrom",
            );
        };
        let valid_until = instant("validUntil");
        check_window(issued_at, valid_until, now)?;
        let types = jws.payload.get("type").and_then(Value::as_array);
        let is_list = types.is_some_and(|types| {
            types.len() == 2
                && types[0] == "VerifiableCredential"
                && types[1] == STATUS_LIST_CREDENTIAL_TYPE
        });
        if !is_list {
            return fail(
                ErrorCode::UnknownType,
                "not a BitstringStatusListCredential",
            );
        }
        let (Some(id), Some(subject)) = (text("id"), jws.payload.get("credentialSubject")) else {
            return fail(
                ErrorCode::SchemaViolation,
                "status list credential needs id and credentialSubject",
            );
        };
        let purpose = subject
            .get("statusPurpose")
            .cloned()
            .and_then(|purpose| serde_json::from_value::<StatusPurpose>(purpose).ok());
        let encoded = subject.get("encodedList").and_then(Value::as_str);
        let (Some(purpose), Some(encoded), Some("BitstringStatusList")) = (
            purpose,
            encoded,
            subject.get("type").and_then(Value::as_str),
        ) else {
            return fail(
                ErrorCode::SchemaViolation,
                "credentialSubject must be a BitstringStatusList with statusPurpose and encodedList",
            );
        };
        let bits = StatusList::decode_bits(encoded)
            .map_err(|reason| VerificationError::new(ErrorCode::SchemaViolation, reason))?;
        if text("iss").is_some_and(|iss| iss != issuer) {
            return fail(
                ErrorCode::ClaimsMismatch,
                "JWT claim iss disagrees with issuer",
            );
        }
        Ok(StatusList {
            id: id.into(),
            issuer,
            purpose,
            issued_at,
            valid_until,
            bits,
        })
    }
}

#[cfg(test)]
mod tests;
