//! Signed messages between gateways (gossip envelopes, indicators): a compact JWS with
//! `typ` [`MESSAGE_TYP`], signed by the organisation key named in its `iss` claim.

use serde::Serialize;
use serde_json::{Map, Value};

use super::error::{ErrorCode, VerificationError, fail};
use super::jws::{self, SignError};
use super::vc::CredentialVerifier;
use crate::identity::KeyPair;

/// The `typ` of a signed message.
pub const MESSAGE_TYP: &str = "tfc-msg+jwt";

/// Signs `payload`, which must carry `iss` = the key's DID for [`CredentialVerifier::open_message`]
/// to accept it.
pub fn sign_message<T: Serialize>(key: &KeyPair, payload: &T) -> Result<String, SignError> {
    jws::sign(key, MESSAGE_TYP, payload)
}

impl CredentialVerifier {
    /// Checks a signed message's size, shape and signature against the key of its `iss`;
    /// returns the signer's DID and the payload.
    pub fn open_message(
        &self,
        token: &str,
        max_len: usize,
    ) -> Result<(String, Map<String, Value>), VerificationError> {
        let jws = jws::parse(token, max_len, MESSAGE_TYP)?;
        let Some(signer) = jws.payload.get("iss").and_then(Value::as_str) else {
            return fail(ErrorCode::Malformed, "message has no iss");
        };
        let signer = signer.to_owned();
        self.authenticate(&jws, &signer, ErrorCode::BadSignature)?;
        Ok((signer, jws.payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::KeyAlgorithm;

    #[test]
    fn a_message_opens_with_its_signer() {
        let key = KeyPair::generate(KeyAlgorithm::Ed25519);
        let token = sign_message(&key, &serde_json::json!({"iss": key.did(), "x": 1})).unwrap();
        let (signer, payload) = CredentialVerifier::new()
            .open_message(&token, 4096)
            .unwrap();
        assert_eq!(signer, key.did());
        assert_eq!(payload["x"], 1);
    }

    #[test]
    fn a_message_claiming_another_signer_is_refused() {
        let key = KeyPair::generate(KeyAlgorithm::Ed25519);
        let other = KeyPair::generate(KeyAlgorithm::Ed25519);
        let verifier = CredentialVerifier::new();
        let forged = sign_message(&key, &serde_json::json!({"iss": other.did()})).unwrap();
        let code = |token: &str| verifier.open_message(token, 4096).unwrap_err().code;
        assert_eq!(code(&forged), ErrorCode::IssuerKeyMismatch);
        let unsigned = sign_message(&key, &serde_json::json!({"x": 1})).unwrap();
        assert_eq!(code(&unsigned), ErrorCode::Malformed);
        assert_eq!(code(&"x".repeat(5000)), ErrorCode::TooLarge);
        assert_eq!(code("a.b.c"), ErrorCode::Malformed);
    }
}
