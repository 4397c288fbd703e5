//! Fixtures for credential tests: keys, drafts, and raw signing for deliberately bad tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use super::{CredentialDraft, StatusLists, VerifyContext, issue_credential};
use crate::identity::{KeyAlgorithm, KeyPair};

/// 2026-06-01T00:00:00Z: the "now" of every test.
pub(crate) const NOW: i64 = 1_780_272_000;
pub(crate) const DAY: i64 = 86_400;

pub(crate) fn ed25519() -> KeyPair {
    KeyPair::generate(KeyAlgorithm::Ed25519)
}

pub(crate) fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// Valid subject claims for every credential type.
pub(crate) fn sample_claims(type_name: &str) -> Map<String, Value> {
    object(match type_name {
        "OrganizationIdentityCredential" => json!({
            "corporateNumber": "7000012050002",
            "legalName": "株式会社テスト建設",
            "address": "東京都千代田区霞が関3-1-1",
            "representative": "山田 太郎",
        }),
        "CreditRatingCredential" => json!({"grade": "B", "score": 72, "assessedOn": "2026-04-01"}),
        "AntisocialForcesScreeningCredential" => {
            json!({"result": "clear", "screenedOn": "2026-04-02", "method": "database and interview"})
        }
        "TaxComplianceCredential" => json!({"noArrears": true, "period": "2025"}),
        "BusinessLicenseCredential" => json!({
            "licenseNumber": "国土交通大臣許可(般-5)第12345号",
            "authority": "国土交通省",
            "kind": "建設業許可 (一般)",
            "trades": ["建築工事業", "内装仕上工事業"],
            "validUntil": "2029-03-31",
        }),
        other => panic!("no sample claims for {other}"),
    })
}

pub(crate) fn draft(type_name: &str, subject: &KeyPair) -> CredentialDraft {
    CredentialDraft {
        type_name: type_name.into(),
        subject: subject.did(),
        claims: sample_claims(type_name),
        valid_from: NOW - 30 * DAY,
        valid_until: Some(NOW + 365 * DAY),
        status: vec![],
    }
}

pub(crate) fn issue(issuer: &KeyPair, draft: &CredentialDraft) -> String {
    issue_credential(issuer, draft, NOW - 30 * DAY).unwrap()
}

pub(crate) fn context(lists: &StatusLists) -> VerifyContext<'_> {
    VerifyContext {
        now: NOW,
        trust: None,
        status_lists: lists,
        status_max_age_secs: DAY,
    }
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs arbitrary header and payload JSON, to build tokens the issuing API refuses to make.
pub(crate) fn sign_raw(key: &KeyPair, header: &Value, payload: &Value) -> String {
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    );
    let signature = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", b64(&signature))
}

/// The standard header for `key` and `typ`.
pub(crate) fn header(key: &KeyPair, typ: &str) -> Value {
    json!({"alg": key.algorithm().jws_alg(), "typ": typ, "kid": key.public_key().key_id()})
}

/// Decodes the payload of a token, to re-sign an edited copy.
pub(crate) fn payload_of(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}
