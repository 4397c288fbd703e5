//! JWS compact serialisation: parsing with precise error codes, and signing.
//!
//! Verification is done here rather than by `jsonwebtoken::decode`: that call re-parses the
//! key on every call and parses the claims twice (about 10 µs per token, as measured),
//! and it cannot report the contract's error codes in the contract's order. Signing is done
//! here too, with the key already held: `jsonwebtoken::encode` takes the key as PKCS#8 DER
//! and parses it (deriving the public key again) on every call, which made each signature
//! cost about four times the raw one, and a handshake signs six.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{ErrorCode, VerificationError, fail};
use crate::identity::{KeyAlgorithm, KeyPair};

/// The JWS algorithms the gateway accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JwsAlgorithm {
    /// Ed25519.
    EdDsa,
    /// ECDSA P-256 SHA-256.
    Es256,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    typ: Option<String>,
    kid: Option<String>,
    crit: Option<Value>,
}

/// A parsed, not yet verified, JWS.
#[derive(Debug)]
pub(crate) struct ParsedJws<'a> {
    /// The signature algorithm.
    pub(crate) alg: JwsAlgorithm,
    /// The `kid` header, if any.
    pub(crate) kid: Option<String>,
    /// The payload, parsed as a JSON object.
    pub(crate) payload: serde_json::Map<String, Value>,
    /// `BASE64URL(header) "." BASE64URL(payload)`: the bytes that were signed.
    pub(crate) signing_input: &'a str,
    /// The decoded signature.
    pub(crate) signature: Vec<u8>,
}

/// Parses a compact JWS, checking size, shape, `alg` and `typ` in the contract's order.
pub(crate) fn parse<'a>(
    token: &'a str,
    max_len: usize,
    expected_typ: &str,
) -> Result<ParsedJws<'a>, VerificationError> {
    if token.len() > max_len {
        return fail(
            ErrorCode::TooLarge,
            format!("token is {} bytes; the limit is {max_len}", token.len()),
        );
    }
    let token = token.trim_ascii();
    let (signing_input, signature) = token
        .rsplit_once('.')
        .ok_or_else(|| malformed("not a JWS compact token (expected three dot-separated parts)"))?;
    let (header, payload) = signing_input
        .split_once('.')
        .filter(|(_, payload)| !payload.contains('.'))
        .ok_or_else(|| malformed("not a JWS compact token (expected three dot-separated parts)"))?;
    let header: RawHeader = decode_json(header, "header")?;
    let payload: serde_json::Map<String, Value> = decode_json(payload, "payload")?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| malformed("signature is not base64url"))?;
    if header.crit.is_some() {
        return fail(
            ErrorCode::Malformed,
            "header has critical extensions this verifier does not understand",
        );
    }
    let alg = match header.alg.as_deref() {
        Some("EdDSA") => JwsAlgorithm::EdDsa,
        Some("ES256") => JwsAlgorithm::Es256,
        Some(other) => {
            return fail(
                ErrorCode::UnsupportedAlg,
                format!(
                    "alg {} is not accepted (use EdDSA or ES256)",
                    truncate(other)
                ),
            );
        }
        None => return fail(ErrorCode::UnsupportedAlg, "header has no alg"),
    };
    let typ = header.typ.unwrap_or_default();
    if typ != expected_typ {
        return fail(
            ErrorCode::WrongTyp,
            format!("typ is {:?}; expected {expected_typ:?}", truncate(&typ)),
        );
    }
    Ok(ParsedJws {
        alg,
        kid: header.kid,
        payload,
        signing_input,
        signature,
    })
}

fn decode_json<T: serde::de::DeserializeOwned>(
    part: &str,
    what: &str,
) -> Result<T, VerificationError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| malformed(format!("{what} is not base64url")))?;
    serde_json::from_slice(&bytes).map_err(|_| malformed(format!("{what} is not a JSON object")))
}

fn malformed(message: impl Into<String>) -> VerificationError {
    VerificationError::new(ErrorCode::Malformed, message)
}

/// Shortens attacker-controlled text before it goes into a message.
pub(crate) fn truncate(text: &str) -> String {
    const MAX: usize = 80;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(MAX).collect();
        short.push('…');
        short
    }
}

/// Signing failed: the payload could not be serialised or the key was refused.
#[derive(Debug, thiserror::Error)]
#[error("cannot sign token: {0}")]
pub struct SignError(String);

/// Signs `payload` as a compact JWS with header `{alg, typ, kid}`; `kid` is the key's
/// verification method id.
pub(crate) fn sign<T: Serialize>(
    key: &KeyPair,
    typ: &str,
    payload: &T,
) -> Result<String, SignError> {
    let header = SignedHeader {
        alg: match key.algorithm() {
            KeyAlgorithm::Ed25519 => "EdDSA",
            KeyAlgorithm::P256 => "ES256",
        },
        typ,
        kid: key.public_key().key_id(),
    };
    let mut token = URL_SAFE_NO_PAD.encode(to_json(&header)?);
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(to_json(payload)?));
    // Ed25519 signs the signing input itself; ES256 its SHA-256, as the raw 64-byte r‖s.
    let signature = key.sign(token.as_bytes());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    Ok(token)
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, SignError> {
    serde_json::to_vec(value).map_err(|error| SignError(error.to_string()))
}

/// The protected header of a JWS this gateway signs.
#[derive(Serialize)]
struct SignedHeader<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::KeyAlgorithm;

    fn b64(text: &str) -> String {
        URL_SAFE_NO_PAD.encode(text)
    }

    #[test]
    fn signed_token_parses_and_verifies() {
        for algorithm in [KeyAlgorithm::Ed25519, KeyAlgorithm::P256] {
            let key = KeyPair::generate(algorithm);
            let token = sign(&key, "vc+jwt", &serde_json::json!({"a": 1})).unwrap();
            let parsed = parse(&token, 65536, "vc+jwt").unwrap();
            let expected = match algorithm {
                KeyAlgorithm::Ed25519 => JwsAlgorithm::EdDsa,
                KeyAlgorithm::P256 => JwsAlgorithm::Es256,
            };
            assert_eq!(parsed.alg, expected);
            assert_eq!(
                parsed.kid.as_deref(),
                Some(key.public_key().key_id().as_str())
            );
            assert_eq!(parsed.payload["a"], 1);
            assert!(
                key.public_key()
                    .verify(parsed.signing_input.as_bytes(), &parsed.signature)
            );
        }
    }

    #[test]
    fn shape_errors_are_malformed() {
        let header = b64(r#"{"alg":"EdDSA","typ":"vc+jwt"}"#);
        let payload = b64("{}");
        for token in [
            String::new(),
            "a.b".to_owned(),
            "a.b.c.d".to_owned(),
            format!("{header}.!!.sig"),
            format!("{}.{payload}.AAAA", b64("[1]")),
            format!("{header}.{}.AAAA", b64("[]")),
            format!("{header}.{payload}.***"),
            format!(
                "{}.{payload}.AAAA",
                b64(r#"{"alg":"EdDSA","typ":"vc+jwt","crit":["b64"]}"#)
            ),
        ] {
            let error = parse(&token, 65536, "vc+jwt").unwrap_err();
            assert_eq!(error.code, ErrorCode::Malformed, "{token}: {error}");
        }
    }

    #[test]
    fn alg_and_typ_are_checked_in_order() {
        let payload = b64("{}");
        let token = format!("{}.{payload}.AAAA", b64(r#"{"alg":"HS256","typ":"JWT"}"#));
        assert_eq!(
            parse(&token, 65536, "vc+jwt").unwrap_err().code,
            ErrorCode::UnsupportedAlg
        );
        let token = format!("{}.{payload}.AAAA", b64(r#"{"alg":"none"}"#));
        assert_eq!(
            parse(&token, 65536, "vc+jwt").unwrap_err().code,
            ErrorCode::UnsupportedAlg
        );
        let token = format!("{}.{payload}.AAAA", b64(r#"{"alg":"EdDSA","typ":"JWT"}"#));
        assert_eq!(
            parse(&token, 65536, "vc+jwt").unwrap_err().code,
            ErrorCode::WrongTyp
        );
    }

    #[test]
    fn oversized_token_is_too_large_before_anything_else() {
        let token = "x".repeat(65537);
        assert_eq!(
            parse(&token, 65536, "vc+jwt").unwrap_err().code,
            ErrorCode::TooLarge
        );
    }

    /// The product owner's JWT library reads what we sign, and we read what it signs.
    #[test]
    fn jsonwebtoken_and_we_read_each_other() {
        use crate::identity::PublicKey;
        use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
        for algorithm in [KeyAlgorithm::Ed25519, KeyAlgorithm::P256] {
            let key = KeyPair::generate(algorithm);
            let (alg, decoding) = match key.public_key() {
                PublicKey::Ed25519(public) => (
                    Algorithm::EdDSA,
                    DecodingKey::from_ed_components(&URL_SAFE_NO_PAD.encode(public.to_bytes())),
                ),
                PublicKey::P256(public) => {
                    let point = public.to_encoded_point(false);
                    let (x, y) = (point.x().unwrap(), point.y().unwrap());
                    (
                        Algorithm::ES256,
                        DecodingKey::from_ec_components(
                            &URL_SAFE_NO_PAD.encode(x),
                            &URL_SAFE_NO_PAD.encode(y),
                        ),
                    )
                }
            };
            let claims = serde_json::json!({"sub": "did:example:holder", "n": 7});
            let ours = sign(&key, "vc+jwt", &claims).unwrap();
            let mut validation = Validation::new(alg);
            validation.required_spec_claims.clear();
            validation.validate_exp = false;
            let read =
                jsonwebtoken::decode::<Value>(&ours, &decoding.unwrap(), &validation).unwrap();
            assert_eq!(read.claims, claims);
            assert_eq!(read.header.typ.as_deref(), Some("vc+jwt"));
            assert_eq!(read.header.kid, Some(key.public_key().key_id()));

            let der = key.to_pkcs8_der();
            let encoding = match algorithm {
                KeyAlgorithm::Ed25519 => EncodingKey::from_ed_der(&der),
                KeyAlgorithm::P256 => EncodingKey::from_ec_der(&der),
            };
            let mut header = Header::new(alg);
            header.typ = Some("vc+jwt".into());
            let theirs = jsonwebtoken::encode(&header, &claims, &encoding).unwrap();
            let parsed = parse(&theirs, 65536, "vc+jwt").unwrap();
            assert_eq!(Value::Object(parsed.payload), claims);
            assert!(
                key.public_key()
                    .verify(parsed.signing_input.as_bytes(), &parsed.signature)
            );
        }
    }
}
