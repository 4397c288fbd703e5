//! Verification error codes (the contract: docs/ERRORS.md, "Credentials and presentations").

use std::fmt;

use serde::Serialize;

/// A stable verification failure code. Where several apply, the first in declaration order
/// is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The token exceeds the size limit.
    TooLarge,
    /// The token is not a well-formed JWS carrying a credential.
    Malformed,
    /// The JWS `alg` is neither `EdDSA` nor `ES256`.
    UnsupportedAlg,
    /// The JWS `typ` is not the expected media type.
    WrongTyp,
    /// The issuer (or holder) DID cannot be resolved to a key.
    UnresolvableIssuer,
    /// The `kid` does not name the issuer's key, or the key does not fit `alg`.
    IssuerKeyMismatch,
    /// The credential's signature does not verify.
    BadSignature,
    /// `validFrom` is in the future.
    NotYetValid,
    /// `validUntil` has passed.
    Expired,
    /// The credential type is not one the gateway knows.
    UnknownType,
    /// The credential does not satisfy its type's JSON Schema.
    SchemaViolation,
    /// JWT claims disagree with the VC fields.
    ClaimsMismatch,
    /// The charter does not trust this issuer for this type.
    UntrustedIssuer,
    /// A self-issued credential where the charter needs a third party.
    SelfDeclaredNotAccepted,
    /// The issuer revoked the credential.
    Revoked,
    /// The issuer suspended the credential.
    Suspended,
    /// The credential's status cannot be established (fail closed).
    StatusUnavailable,
    /// The presentation's holder signature does not verify.
    PresentationBadSignature,
    /// The presentation is addressed to another verifier.
    WrongAudience,
    /// The presentation answers another challenge.
    NonceMismatch,
    /// The presentation's nonce was already used.
    Replayed,
    /// The presentation is outside its validity window.
    PresentationExpired,
    /// A credential in the presentation belongs to someone else.
    HolderMismatch,
    /// The corporate number is already bound to another DID.
    IdentityConflict,
}

impl ErrorCode {
    /// Every code, in the order in which checks are made.
    pub const ALL: [ErrorCode; 24] = [
        ErrorCode::TooLarge,
        ErrorCode::Malformed,
        ErrorCode::UnsupportedAlg,
        ErrorCode::WrongTyp,
        ErrorCode::UnresolvableIssuer,
        ErrorCode::IssuerKeyMismatch,
        ErrorCode::BadSignature,
        ErrorCode::NotYetValid,
        ErrorCode::Expired,
        ErrorCode::UnknownType,
        ErrorCode::SchemaViolation,
        ErrorCode::ClaimsMismatch,
        ErrorCode::UntrustedIssuer,
        ErrorCode::SelfDeclaredNotAccepted,
        ErrorCode::Revoked,
        ErrorCode::Suspended,
        ErrorCode::StatusUnavailable,
        ErrorCode::PresentationBadSignature,
        ErrorCode::WrongAudience,
        ErrorCode::NonceMismatch,
        ErrorCode::Replayed,
        ErrorCode::PresentationExpired,
        ErrorCode::HolderMismatch,
        ErrorCode::IdentityConflict,
    ];

    /// The wire form, e.g. `bad_signature`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Malformed => "malformed",
            ErrorCode::UnsupportedAlg => "unsupported_alg",
            ErrorCode::WrongTyp => "wrong_typ",
            ErrorCode::UnresolvableIssuer => "unresolvable_issuer",
            ErrorCode::IssuerKeyMismatch => "issuer_key_mismatch",
            ErrorCode::BadSignature => "bad_signature",
            ErrorCode::NotYetValid => "not_yet_valid",
            ErrorCode::Expired => "expired",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::SchemaViolation => "schema_violation",
            ErrorCode::ClaimsMismatch => "claims_mismatch",
            ErrorCode::UntrustedIssuer => "untrusted_issuer",
            ErrorCode::SelfDeclaredNotAccepted => "self_declared_not_accepted",
            ErrorCode::Revoked => "revoked",
            ErrorCode::Suspended => "suspended",
            ErrorCode::StatusUnavailable => "status_unavailable",
            ErrorCode::PresentationBadSignature => "presentation_bad_signature",
            ErrorCode::WrongAudience => "wrong_audience",
            ErrorCode::NonceMismatch => "nonce_mismatch",
            ErrorCode::Replayed => "replayed",
            ErrorCode::PresentationExpired => "presentation_expired",
            ErrorCode::HolderMismatch => "holder_mismatch",
            ErrorCode::IdentityConflict => "identity_conflict",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verification failure: `{ "code": "<code>", "message": "<human text>" }` on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct VerificationError {
    /// The stable code.
    pub code: ErrorCode,
    /// What went wrong, for a person.
    pub message: String,
}

impl VerificationError {
    /// Builds an error from a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Shorthand for `Err(VerificationError::new(code, message))`.
pub(crate) fn fail<T>(code: ErrorCode, message: impl Into<String>) -> Result<T, VerificationError> {
    Err(VerificationError::new(code, message))
}
