//! Signed messages between gateways (gossip envelopes, indicators): a compact JWS with
//! `typ` [`MESSAGE_TYP`], signed by the organisation key named in its `iss` claim.

use serde::Serialize;
use serde_json::{Map, Value};

use super::error::{ErrorCode, VerificationError, fail};
use super::jws::{self, SignError};
use super::vc::CredentialVerifier;
use crate::identity::{KeyPair, PublicKey};

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

    /// Opens several messages, each as [`CredentialVerifier::open_message`] would, in
    /// `tokens`' order. Ed25519 signatures are checked together in one batch equation, about
    /// half the work of checking each; if the batch fails, each is checked on its own, so a
    /// forgery refuses only itself.
    pub fn open_messages(&self, tokens: &[&str], max_len: usize) -> Vec<Opened> {
        let mut opened = Vec::with_capacity(tokens.len());
        let mut batch = Ed25519Batch::default();
        for token in tokens {
            opened.push(self.open_deferring(token, max_len, &mut batch, opened.len()));
        }
        for index in batch.failures() {
            opened[index] = fail(
                ErrorCode::BadSignature,
                "signature does not verify with the signer's key",
            );
        }
        opened
    }

    /// Everything [`CredentialVerifier::open_message`] checks, except that an Ed25519
    /// signature joins `batch` instead of being checked here.
    fn open_deferring<'a>(
        &self,
        token: &'a str,
        max_len: usize,
        batch: &mut Ed25519Batch<'a>,
        index: usize,
    ) -> Opened {
        let jws = jws::parse(token, max_len, MESSAGE_TYP)?;
        let Some(signer) = jws.payload.get("iss").and_then(Value::as_str) else {
            return fail(ErrorCode::Malformed, "message has no iss");
        };
        let signer = signer.to_owned();
        match self.keys.key_for(&jws, &signer)? {
            PublicKey::Ed25519(key) => {
                let Ok(signature) = ed25519_dalek::Signature::from_slice(&jws.signature) else {
                    return fail(ErrorCode::BadSignature, "an Ed25519 signature is 64 bytes");
                };
                batch.push(index, key, jws.signing_input.as_bytes(), signature);
            }
            key if key.verify(jws.signing_input.as_bytes(), &jws.signature) => {}
            _ => {
                return fail(
                    ErrorCode::BadSignature,
                    "signature does not verify with the signer's key",
                );
            }
        }
        Ok((signer, jws.payload))
    }
}

/// A message opened: its signer's DID and its payload, or why it was refused.
pub type Opened = Result<(String, Map<String, Value>), VerificationError>;

/// Ed25519 signatures waiting to be checked together.
#[derive(Default)]
struct Ed25519Batch<'a> {
    indexes: Vec<usize>,
    keys: Vec<ed25519_dalek::VerifyingKey>,
    messages: Vec<&'a [u8]>,
    signatures: Vec<ed25519_dalek::Signature>,
}

impl<'a> Ed25519Batch<'a> {
    fn push(
        &mut self,
        index: usize,
        key: ed25519_dalek::VerifyingKey,
        message: &'a [u8],
        signature: ed25519_dalek::Signature,
    ) {
        self.indexes.push(index);
        self.keys.push(key);
        self.messages.push(message);
        self.signatures.push(signature);
    }

    /// The indexes whose signature does not verify.
    fn failures(&self) -> Vec<usize> {
        if self.indexes.is_empty()
            || ed25519_dalek::verify_batch(&self.messages, &self.signatures, &self.keys).is_ok()
        {
            return Vec::new();
        }
        (0..self.indexes.len())
            .filter(|&at| {
                ed25519_dalek::Verifier::verify(
                    &self.keys[at],
                    self.messages[at],
                    &self.signatures[at],
                )
                .is_err()
            })
            .map(|at| self.indexes[at])
            .collect()
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

    #[test]
    fn a_batch_refuses_only_its_forgeries_and_keeps_the_order() {
        let keys: Vec<KeyPair> = (0..5)
            .map(|_| KeyPair::generate(KeyAlgorithm::Ed25519))
            .collect();
        let issuer = KeyPair::generate(KeyAlgorithm::P256);
        let mut tokens: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(n, key)| sign_message(key, &serde_json::json!({"iss": key.did(), "n": n})))
            .collect::<Result<_, _>>()
            .unwrap();
        // A signature over another payload, an ES256 message, and a broken token.
        let (input, _) = tokens[1].rsplit_once('.').unwrap();
        let (_, signature) = tokens[3].rsplit_once('.').unwrap();
        tokens[1] = format!("{input}.{signature}");
        tokens.push(
            sign_message(&issuer, &serde_json::json!({"iss": issuer.did(), "n": 5})).unwrap(),
        );
        tokens.push("a.b.c".into());
        let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
        let verifier = CredentialVerifier::new();
        let opened = verifier.open_messages(&refs, 4096);
        assert_eq!(opened.len(), 7);
        for (n, result) in opened.iter().enumerate() {
            let single = verifier.open_message(refs[n], 4096);
            match (result, single) {
                (Ok((signer, payload)), Ok((single_signer, _))) => {
                    assert_eq!(*signer, single_signer);
                    assert_eq!(payload["n"], n);
                }
                (Err(batch), Err(single)) => assert_eq!(batch.code, single.code, "token {n}"),
                (batch, single) => panic!("token {n}: batch {batch:?}, alone {single:?}"),
            }
        }
        assert_eq!(
            opened[1].as_ref().unwrap_err().code,
            ErrorCode::BadSignature
        );
        assert!(opened[5].is_ok(), "an ES256 message is checked on its own");
        assert!(verifier.open_messages(&[], 4096).is_empty());
    }
}
