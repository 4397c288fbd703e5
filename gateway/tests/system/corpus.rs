//! The adversarial corpus in `tests/corpus/`: bad credentials and presentations, governance
//! ops, threat indicators and gossip messages, each with the code it must be refused with.
//!
//! This file generates the corpus (`TFC_REGENERATE_CORPUS=1 cargo test -p tfc-gateway --test
//! corpus` rewrites it); it is committed so that fuzzers and other implementations can use
//! it. Tokens carry random ids, so the check is on outcomes, not bytes: every committed case
//! is refused with its code at the fixed instant `NOW`, and the generator still makes the
//! same cases with the same codes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tfc_gateway::charter::Charter;
use tfc_gateway::credential::{
    Challenge, CredentialDraft, CredentialVerifier, ReplayCache, StatusEntry, StatusList,
    StatusLists, StatusPurpose, VerifyContext, create_presentation, issue_credential, sign_message,
};
use tfc_gateway::exchange::open_envelope;
use tfc_gateway::governance::{Governance, Op, OpKind, SignedOp};
use tfc_gateway::identity::KeyPair;
use tfc_gateway::net::{TopicKind, parse_topic, topic_name};
use tfc_gateway::store::Store;
use tfc_gateway::threats::{
    ActionKind, Countermeasure, IndicatorDraft, Severity, Tlp, compose, parse_bundle,
};

/// 2026-06-01T00:00:00Z: every case is judged at this instant.
const NOW: i64 = 1_780_272_000;
const DAY: i64 = 86_400;
const REVOCATIONS: &str = "https://issuer.example/status/revocation";
const SUSPENSIONS: &str = "https://issuer.example/status/suspension";
const AUDIENCE: &str = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK";
const NONCE: &str = "corpus-nonce-1";
/// The largest gossip message the runner accepts (a gateway's `max_message_bytes`, whose
/// default is 1 MiB; smaller here to keep the corpus small).
const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// One bad input and the code it must be refused with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Case {
    name: String,
    expected: String,
    input: Value,
}

fn key(seed: u8) -> KeyPair {
    KeyPair::ed25519_from_seed(&[seed; 32])
}

fn issuer() -> KeyPair {
    key(1)
}
fn holder() -> KeyPair {
    key(2)
}
fn stranger() -> KeyPair {
    key(3)
}

fn case(name: &str, expected: &str, input: impl Into<Value>) -> Case {
    Case {
        name: name.into(),
        expected: expected.into(),
        input: input.into(),
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs any header and payload, to make tokens the issuing API refuses to make.
fn sign_raw(key: &KeyPair, header: &Value, payload: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    );
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64(&signature))
}

fn header(key: &KeyPair, typ: &str) -> Value {
    json!({"alg": "EdDSA", "typ": typ, "kid": key.public_key().key_id()})
}

fn payload_of(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn claims(type_name: &str) -> Value {
    match type_name {
        "OrganizationIdentityCredential" => json!({
            "corporateNumber": "7000012050002", "legalName": "株式会社コーパス",
            "address": "東京都千代田区霞が関3-1-1", "representative": "山田 太郎"}),
        _ => json!({"grade": "B", "score": 72, "assessedOn": "2026-04-01"}),
    }
}

fn credential_with(
    issuer: &KeyPair,
    subject: &str,
    type_name: &str,
    claims: Value,
    valid: (i64, i64),
    status: Vec<StatusEntry>,
) -> String {
    let draft = CredentialDraft {
        type_name: type_name.into(),
        subject: subject.into(),
        claims: claims.as_object().cloned().unwrap(),
        valid_from: valid.0,
        valid_until: Some(valid.1),
        status,
    };
    issue_credential(issuer, &draft, valid.0).unwrap()
}

/// A credit rating from the trusted issuer to the holder, valid now.
fn good_credit() -> String {
    credential_with(
        &issuer(),
        &holder().did(),
        "CreditRatingCredential",
        claims("CreditRatingCredential"),
        (NOW - 30 * DAY, NOW + 365 * DAY),
        vec![],
    )
}

/// Re-signs `token` by `key` after `edit` changes its payload.
fn edited(key: &KeyPair, token: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut payload = payload_of(token);
    edit(&mut payload);
    sign_raw(key, &header(key, "vc+jwt"), &payload)
}

fn credentials() -> Vec<Case> {
    let good = good_credit();
    let (issuer, holder, stranger) = (issuer(), holder(), stranger());
    let mut parts = good.split('.');
    let (h, p, s) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let mut flipped = URL_SAFE_NO_PAD.decode(s).unwrap();
    flipped[0] ^= 1;
    let status = |list: &str, purpose, index: usize| vec![StatusEntry::new(list, purpose, index)];
    let with_status = |entries| {
        credential_with(
            &issuer,
            &holder.did(),
            "CreditRatingCredential",
            claims("CreditRatingCredential"),
            (NOW - DAY, NOW + DAY),
            entries,
        )
    };
    let valid = (NOW - DAY, NOW + DAY);
    // The issuing API refuses claims its schema rejects: sign edited ones directly.
    let credit = |claims: Value| {
        edited(&issuer, &good, |payload| {
            let subject = &mut payload["credentialSubject"];
            let id = subject["id"].clone();
            *subject = claims;
            subject["id"] = id;
        })
    };
    let identity = credential_with(
        &issuer,
        &holder.did(),
        "OrganizationIdentityCredential",
        claims("OrganizationIdentityCredential"),
        valid,
        vec![],
    );
    vec![
        case(
            "oversized",
            "too_large",
            "a".repeat(tfc_gateway::credential::MAX_CREDENTIAL_LEN + 1),
        ),
        case("empty", "malformed", ""),
        case("one part", "malformed", "abc"),
        case("two parts", "malformed", format!("{h}.{p}")),
        case("four parts", "malformed", format!("{good}.x")),
        case("header not base64", "malformed", format!("!!.{p}.{s}")),
        case(
            "header not json",
            "malformed",
            format!("{}.{p}.{s}", b64(b"nope")),
        ),
        case("signature not base64", "malformed", format!("{h}.{p}.@@")),
        case(
            "payload an array",
            "malformed",
            sign_raw(&issuer, &header(&issuer, "vc+jwt"), &json!([1, 2])),
        ),
        case(
            "payload lacks the credential",
            "malformed",
            sign_raw(
                &issuer,
                &header(&issuer, "vc+jwt"),
                &json!({"iss": issuer.did()}),
            ),
        ),
        case(
            "alg none",
            "unsupported_alg",
            sign_raw(
                &issuer,
                &json!({"alg": "none", "typ": "vc+jwt", "kid": issuer.public_key().key_id()}),
                &payload_of(&good),
            ),
        ),
        case(
            "alg HS256",
            "unsupported_alg",
            sign_raw(
                &issuer,
                &json!({"alg": "HS256", "typ": "vc+jwt", "kid": issuer.public_key().key_id()}),
                &payload_of(&good),
            ),
        ),
        case(
            "alg RS256",
            "unsupported_alg",
            sign_raw(
                &issuer,
                &json!({"alg": "RS256", "typ": "vc+jwt", "kid": issuer.public_key().key_id()}),
                &payload_of(&good),
            ),
        ),
        case(
            "typ JWT",
            "wrong_typ",
            sign_raw(&issuer, &header(&issuer, "JWT"), &payload_of(&good)),
        ),
        case(
            "typ vp+jwt",
            "wrong_typ",
            sign_raw(&issuer, &header(&issuer, "vp+jwt"), &payload_of(&good)),
        ),
        case(
            "typ missing",
            "wrong_typ",
            sign_raw(
                &issuer,
                &json!({"alg": "EdDSA", "kid": issuer.public_key().key_id()}),
                &payload_of(&good),
            ),
        ),
        case(
            "issuer did:web",
            "unresolvable_issuer",
            edited(&issuer, &good, |payload| {
                payload["iss"] = json!("did:web:issuer.example");
                payload["issuer"] = json!("did:web:issuer.example");
            }),
        ),
        case(
            "issuer did:key garbage",
            "unresolvable_issuer",
            edited(&issuer, &good, |payload| {
                payload["iss"] = json!("did:key:zNotAKey");
                payload["issuer"] = json!("did:key:zNotAKey");
            }),
        ),
        case(
            "kid of another key",
            "issuer_key_mismatch",
            sign_raw(&issuer, &header(&stranger, "vc+jwt"), &payload_of(&good)),
        ),
        case(
            "signature bit flipped",
            "bad_signature",
            format!("{h}.{p}.{}", b64(&flipped)),
        ),
        case("payload edited after signing", "bad_signature", {
            let mut payload = payload_of(&good);
            payload["credentialSubject"]["score"] = json!(99);
            format!("{h}.{}.{s}", b64(payload.to_string().as_bytes()))
        }),
        case(
            "signed by a stranger under the issuer's kid",
            "bad_signature",
            sign_raw(&stranger, &header(&issuer, "vc+jwt"), &payload_of(&good)),
        ),
        case(
            "not yet valid",
            "not_yet_valid",
            credential_with(
                &issuer,
                &holder.did(),
                "CreditRatingCredential",
                claims("CreditRatingCredential"),
                (NOW + DAY, NOW + 2 * DAY),
                vec![],
            ),
        ),
        case(
            "expired",
            "expired",
            credential_with(
                &issuer,
                &holder.did(),
                "CreditRatingCredential",
                claims("CreditRatingCredential"),
                (NOW - 2 * DAY, NOW - DAY),
                vec![],
            ),
        ),
        case(
            "unknown type",
            "unknown_type",
            edited(&issuer, &good, |payload| {
                payload["type"] = json!(["VerifiableCredential", "FavouriteColourCredential"]);
            }),
        ),
        case(
            "score is text",
            "schema_violation",
            credit(json!({"grade": "B", "score": "high", "assessedOn": "2026-04-01"})),
        ),
        case(
            "grade missing",
            "schema_violation",
            credit(json!({"score": 72, "assessedOn": "2026-04-01"})),
        ),
        case(
            "score above 100",
            "schema_violation",
            credit(json!({"grade": "B", "score": 101, "assessedOn": "2026-04-01"})),
        ),
        case(
            "extra claim",
            "schema_violation",
            credit(json!({"grade": "B", "score": 72, "assessedOn": "2026-04-01", "bribe": true})),
        ),
        case(
            "corporate number check digit",
            "schema_violation",
            edited(&issuer, &identity, |payload| {
                payload["credentialSubject"]["corporateNumber"] = json!("1000012050002");
            }),
        ),
        case(
            "sub differs from the subject",
            "claims_mismatch",
            edited(&issuer, &good, |payload| {
                payload["sub"] = json!(stranger.did());
            }),
        ),
        case(
            "iss claim differs from the issuer",
            "claims_mismatch",
            edited(&issuer, &good, |payload| {
                payload["iss"] = json!(stranger.did());
            }),
        ),
        case(
            "jti differs from the id",
            "claims_mismatch",
            edited(&issuer, &good, |payload| {
                payload["jti"] = json!("urn:uuid:00000000-0000-4000-8000-000000000000");
            }),
        ),
        case(
            "issuer the charter does not trust",
            "untrusted_issuer",
            credential_with(
                &stranger,
                &holder.did(),
                "CreditRatingCredential",
                claims("CreditRatingCredential"),
                valid,
                vec![],
            ),
        ),
        case(
            "self-declared credit",
            "self_declared_not_accepted",
            credential_with(
                &holder,
                &holder.did(),
                "CreditRatingCredential",
                claims("CreditRatingCredential"),
                valid,
                vec![],
            ),
        ),
        case(
            "revoked",
            "revoked",
            with_status(status(REVOCATIONS, StatusPurpose::Revocation, 3)),
        ),
        case(
            "suspended",
            "suspended",
            with_status(status(SUSPENSIONS, StatusPurpose::Suspension, 4)),
        ),
        case(
            "unknown status list",
            "status_unavailable",
            with_status(status(
                "https://issuer.example/status/unknown",
                StatusPurpose::Revocation,
                1,
            )),
        ),
        case(
            "index beyond the list",
            "status_unavailable",
            with_status(status(REVOCATIONS, StatusPurpose::Revocation, 10_000_000)),
        ),
    ]
}

/// The charter the credential and presentation cases are judged against: it trusts the
/// issuer for identities and credit ratings.
fn trust_charter() -> Charter {
    let text = format!(
        "name = \"corpus\"\nfounders = [\"{issuer}\"]\nquorum = 1\n\
         [[issuers]]\ndid = \"{issuer}\"\nname = \"Issuer\"\ntypes = [\"CreditRatingCredential\", \"OrganizationIdentityCredential\"]\n\
         [tiers.prescreening]\nrequire = [\"CreditRatingCredential\"]\n",
        issuer = issuer().did()
    );
    Charter::parse(&text, Path::new(".")).unwrap()
}

fn status_lists() -> StatusLists {
    let mut lists = StatusLists::new();
    for (id, purpose, bit) in [
        (REVOCATIONS, StatusPurpose::Revocation, 3),
        (SUSPENSIONS, StatusPurpose::Suspension, 4),
    ] {
        let mut list = StatusList::new(id, &issuer().did(), purpose, 0, NOW - 3600);
        list.set(bit, true).unwrap();
        lists.insert(list);
    }
    lists
}

fn presentation(
    holder: &KeyPair,
    audience: &str,
    nonce: &str,
    credentials: &[String],
    at: i64,
) -> String {
    create_presentation(holder, Challenge { audience, nonce }, credentials, at, 300).unwrap()
}

fn presentations() -> Vec<Case> {
    let (holder, stranger) = (holder(), stranger());
    let good = good_credit();
    let token = |token: String| json!({"token": token});
    let ok = presentation(
        &holder,
        AUDIENCE,
        NONCE,
        std::slice::from_ref(&good),
        NOW - 10,
    );
    let mut parts = ok.split('.');
    let (h, p, s) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let mut flipped = URL_SAFE_NO_PAD.decode(s).unwrap();
    flipped[5] ^= 0x40;
    let resign = |edit: &dyn Fn(&mut Value)| {
        let mut payload = payload_of(&ok);
        edit(&mut payload);
        sign_raw(&holder, &header(&holder, "vp+jwt"), &payload)
    };
    let expired_credential = credential_with(
        &issuer(),
        &holder.did(),
        "CreditRatingCredential",
        claims("CreditRatingCredential"),
        (NOW - 2 * DAY, NOW - DAY),
        vec![],
    );
    vec![
        case(
            "presentation signature flipped",
            "presentation_bad_signature",
            token(format!("{h}.{p}.{}", b64(&flipped))),
        ),
        case(
            "presentation signed by a stranger",
            "presentation_bad_signature",
            token(sign_raw(
                &stranger,
                &header(&holder, "vp+jwt"),
                &payload_of(&ok),
            )),
        ),
        case(
            "another audience",
            "wrong_audience",
            token(presentation(
                &holder,
                "did:key:z6MkOther",
                NONCE,
                std::slice::from_ref(&good),
                NOW - 10,
            )),
        ),
        case(
            "another nonce",
            "nonce_mismatch",
            token(presentation(
                &holder,
                AUDIENCE,
                "stale-nonce",
                std::slice::from_ref(&good),
                NOW - 10,
            )),
        ),
        case("replayed", "replayed", json!({"token": ok, "replay": true})),
        case(
            "expired presentation",
            "presentation_expired",
            token(presentation(
                &holder,
                AUDIENCE,
                NONCE,
                std::slice::from_ref(&good),
                NOW - 3600,
            )),
        ),
        case(
            "lifetime beyond five minutes",
            "presentation_expired",
            token(resign(&|payload| {
                payload["exp"] = json!(NOW + 3600);
            })),
        ),
        case(
            "someone else's credential",
            "holder_mismatch",
            token(presentation(
                &stranger,
                AUDIENCE,
                NONCE,
                std::slice::from_ref(&good),
                NOW - 10,
            )),
        ),
        case(
            "carries an expired credential",
            "expired",
            token(presentation(
                &holder,
                AUDIENCE,
                NONCE,
                &[expired_credential],
                NOW - 10,
            )),
        ),
        case(
            "carries a forged credential",
            "bad_signature",
            token(presentation(
                &holder,
                AUDIENCE,
                NONCE,
                &[{
                    let mut payload = payload_of(&good);
                    payload["credentialSubject"]["score"] = json!(100);
                    let mut parts = good.split('.');
                    let h = parts.next().unwrap();
                    let s = parts.nth(1).unwrap();
                    format!("{h}.{}.{s}", b64(payload.to_string().as_bytes()))
                }],
                NOW - 10,
            )),
        ),
        case(
            "presentation typ vc+jwt",
            "wrong_typ",
            token(sign_raw(
                &holder,
                &header(&holder, "vc+jwt"),
                &payload_of(&ok),
            )),
        ),
        case(
            "presentation alg none",
            "unsupported_alg",
            token(sign_raw(
                &holder,
                &json!({"alg": "none", "typ": "vp+jwt", "kid": holder.public_key().key_id()}),
                &payload_of(&ok),
            )),
        ),
        case(
            "presentation not a jws",
            "malformed",
            token("not.a.jws".into()),
        ),
        case(
            "presentation oversized",
            "too_large",
            token("a".repeat(tfc_gateway::credential::MAX_PRESENTATION_LEN + 1)),
        ),
        case(
            "presentation without credentials",
            "malformed",
            token(resign(&|payload| {
                payload["vp"]["verifiableCredential"] = json!("not a list");
            })),
        ),
    ]
}

fn judge_credential(input: &Value) -> String {
    let token = input.as_str().unwrap_or_default();
    let (charter, lists) = (trust_charter(), status_lists());
    let trust = charter.issuer_trust();
    let context = VerifyContext {
        now: NOW,
        trust: Some(&trust),
        status_lists: &lists,
        status_max_age_secs: DAY,
    };
    match CredentialVerifier::new().verify_credential(token, &context) {
        Ok(_) => "accepted".into(),
        Err(error) => error.code.to_string(),
    }
}

fn judge_presentation(input: &Value) -> String {
    let token = input["token"].as_str().unwrap_or_default();
    let (charter, lists) = (trust_charter(), status_lists());
    let trust = charter.issuer_trust();
    let context = VerifyContext {
        now: NOW,
        trust: Some(&trust),
        status_lists: &lists,
        status_max_age_secs: DAY,
    };
    let replay = ReplayCache::new(16);
    let bindings: HashMap<String, String> = HashMap::new();
    let challenge = || Challenge {
        audience: AUDIENCE,
        nonce: NONCE,
    };
    let verifier = CredentialVerifier::new();
    if input["replay"] == json!(true) {
        let first = verifier.verify_presentation(token, challenge(), &context, &replay, &bindings);
        assert!(
            first.is_ok(),
            "a replay case is valid the first time: {first:?}"
        );
    }
    match verifier.verify_presentation(token, challenge(), &context, &replay, &bindings) {
        Ok(_) => "accepted".into(),
        Err(error) => error.code.to_string(),
    }
}

/// Three founders (quorum 2) and an admin.
fn governance_charter() -> Charter {
    let dids: Vec<String> = (10..13)
        .map(|seed| format!("\"{}\"", key(seed).did()))
        .collect();
    let text = format!(
        "name = \"corpus governance\"\nfounders = [{}]\nadmins = [\"{}\"]\nquorum = 2\n",
        dids.join(", "),
        key(13).did()
    );
    Charter::parse(&text, Path::new(".")).unwrap()
}

fn op(kind: OpKind, target: &str, proposer: &KeyPair) -> Op {
    Op {
        kind,
        field: governance_charter().field_id(),
        target: target.into(),
        reason: "corpus".into(),
        epoch: 1,
        proposer: proposer.did(),
        created: NOW - 60,
        types: vec![],
        policy: None,
    }
}

fn signed(op: Op, by: &KeyPair) -> Value {
    serde_json::to_value(SignedOp::propose(op, by).unwrap()).unwrap()
}

fn governance_ops() -> Vec<Case> {
    let founder = key(10);
    let outsider = key(20);
    let newcomer = key(21).did();
    let admit = || op(OpKind::Admit, &newcomer, &founder);
    let good = signed(admit(), &founder);
    let with = |edit: &dyn Fn(&mut Op)| {
        let mut op = admit();
        edit(&mut op);
        signed(op, &founder)
    };
    let mut tampered = good.clone();
    tampered["op"]["reason"] = json!("changed after signing");
    let mut unsigned = good.clone();
    unsigned["signatures"] = json!({});
    let mut stranger_signature = good.clone();
    stranger_signature["signatures"] = json!({founder.did(): b64(&outsider.sign(b"tfc/gov/v1:0"))});
    let mut too_many = good.clone();
    too_many["signatures"] = Value::Object(
        (0..=tfc_gateway::governance::MAX_SIGNATURES)
            .map(|n| (format!("did:key:z{n}"), json!("AA")))
            .collect(),
    );
    vec![
        case("not an object", "gov_malformed", json!("admit everyone")),
        case("unknown field in the op", "gov_malformed", {
            let mut value = good.clone();
            value["op"]["extra"] = json!(1);
            value
        }),
        case("unknown kind", "gov_malformed", {
            let mut value = good.clone();
            value["op"]["kind"] = json!("crown");
            value
        }),
        case("epoch zero", "gov_malformed", with(&|op| op.epoch = 0)),
        case(
            "target not a DID",
            "gov_malformed",
            with(&|op| op.target = "everyone".into()),
        ),
        case(
            "reason over 4 KiB",
            "gov_malformed",
            with(&|op| op.reason = "x".repeat(5000)),
        ),
        case(
            "trust-issuer without types",
            "gov_malformed",
            signed(op(OpKind::TrustIssuer, &newcomer, &founder), &founder),
        ),
        case(
            "set-quorum zero",
            "gov_malformed",
            signed(op(OpKind::SetQuorum, "0", &founder), &founder),
        ),
        case(
            "set-quorum above one",
            "gov_malformed",
            signed(op(OpKind::SetQuorum, "5/3", &founder), &founder),
        ),
        case(
            "set-quorum over zero",
            "gov_malformed",
            signed(op(OpKind::SetQuorum, "1/0", &founder), &founder),
        ),
        case(
            "set-quorum words",
            "gov_malformed",
            signed(op(OpKind::SetQuorum, "most", &founder), &founder),
        ),
        case("amend-policy hash mismatch", "gov_malformed", {
            let mut op = op(OpKind::AmendPolicy, &"0".repeat(64), &founder);
            op.policy = Some("permit (principal, action, resource);".into());
            signed(op, &founder)
        }),
        case("amend-policy that does not compile", "gov_malformed", {
            let policy = "permit (principal, action, resource) when { nonsense };".to_owned();
            let mut op = op(
                OpKind::AmendPolicy,
                &tfc_gateway::governance::sha256_hex(policy.as_bytes()),
                &founder,
            );
            op.policy = Some(policy);
            signed(op, &founder)
        }),
        case("signatures over the limit", "too_large", too_many),
        case("edited after signing", "gov_forged", tampered),
        case("no signatures", "gov_forged", unsigned),
        case(
            "proposer's signature made by another key",
            "gov_forged",
            stranger_signature,
        ),
        case(
            "older than seven days",
            "gov_stale",
            with(&|op| op.created = NOW - 8 * 86_400),
        ),
        case(
            "dated in the future",
            "gov_stale",
            with(&|op| op.created = NOW + 3600),
        ),
        case(
            "for another field",
            "wrong_field",
            with(&|op| op.field = "0".repeat(64)),
        ),
        case(
            "replayed",
            "gov_replayed",
            json!({"op": good, "replay": true}),
        ),
    ]
}

fn judge_governance(input: &Value) -> String {
    let charter = governance_charter();
    let governance = Governance::load(Store::temporary().unwrap(), &[&charter]).unwrap();
    let (value, replay) = match input.get("replay") {
        Some(_) => (&input["op"], true),
        None => (input, false),
    };
    let Ok(op) = serde_json::from_value::<SignedOp>(value.clone()) else {
        return "gov_malformed".into();
    };
    if replay {
        governance
            .intake(&charter, op.clone(), NOW)
            .expect("a replay case is taken the first time");
    }
    match governance.intake(&charter, op, NOW) {
        Ok(_) => "accepted".into(),
        Err(error) => error.code.as_str().into(),
    }
}

fn indicator_draft() -> IndicatorDraft {
    IndicatorDraft {
        name: "corpus".into(),
        description: "an indicator to break".into(),
        pattern: "[ipv4-addr:value = '198.51.100.7']".into(),
        severity: Severity::High,
        countermeasure: Countermeasure {
            action: ActionKind::BlockAddress,
            tier: None,
            credential: None,
        },
        tlp: Tlp::Amber,
        confidence: Some(80),
        valid_from: NOW - 60,
        valid_until: NOW + DAY,
    }
}

fn indicators() -> Vec<Case> {
    let good = compose(&indicator_draft(), NOW).unwrap();
    let with_pattern = |pattern: &str| {
        let mut draft = indicator_draft();
        draft.pattern = pattern.into();
        let mut bundle = compose(&indicator_draft(), NOW).unwrap();
        // compose checks the pattern; put the bad one in afterwards.
        bundle["objects"][0]["pattern"] = json!(draft.pattern);
        bundle
    };
    let edit = |path: &[&str], value: Value| {
        let mut bundle = good.clone();
        let mut slot = &mut bundle["objects"][0];
        for key in &path[..path.len() - 1] {
            slot = &mut slot[*key];
        }
        slot[path[path.len() - 1]] = value;
        bundle
    };
    let remove = |key: &str| {
        let mut bundle = good.clone();
        bundle["objects"][0].as_object_mut().unwrap().remove(key);
        bundle
    };
    let many = {
        let mut bundle = good.clone();
        let first = bundle["objects"][0].clone();
        bundle["objects"] = Value::Array(vec![first; 101]);
        bundle
    };
    vec![
        case("not an object", "malformed", json!([1, 2, 3])),
        case("not a bundle", "malformed", json!({"type": "indicator"})),
        case(
            "objects not a list",
            "malformed",
            json!({"type": "bundle", "id": "bundle--x", "objects": {}}),
        ),
        case(
            "over 64 KiB",
            "too_large",
            edit(&["description"], json!("x".repeat(70 * 1024))),
        ),
        case("over 100 objects", "too_large", many),
        case("pattern missing", "unsupported_pattern", remove("pattern")),
        case(
            "pattern type sigma",
            "unsupported_pattern",
            edit(&["pattern_type"], json!("sigma")),
        ),
        case(
            "pattern OR",
            "unsupported_pattern",
            with_pattern(
                "[ipv4-addr:value = '198.51.100.7'] OR [ipv4-addr:value = '198.51.100.8']",
            ),
        ),
        case(
            "pattern unknown object",
            "unsupported_pattern",
            with_pattern("[x-unknown:value = 'a']"),
        ),
        case(
            "pattern address out of range",
            "unsupported_pattern",
            with_pattern("[ipv4-addr:value = '300.1.1.1']"),
        ),
        case(
            "pattern network too wide",
            "unsupported_pattern",
            with_pattern("[ipv4-addr:value = '0.0.0.0/0']"),
        ),
        case(
            "pattern hash not sha256",
            "unsupported_pattern",
            with_pattern("[file:hashes.'SHA-256' = 'abc']"),
        ),
        case(
            "pattern member not a DID",
            "unsupported_pattern",
            with_pattern("[x-tfc-member:did = 'everyone']"),
        ),
        case(
            "pattern unterminated",
            "unsupported_pattern",
            with_pattern("[ipv4-addr:value = '198.51.100.7'"),
        ),
        case(
            "severity unknown",
            "malformed",
            edit(&["x_tfc_severity"], json!("apocalyptic")),
        ),
        case(
            "countermeasure unknown",
            "bad_countermeasure",
            edit(&["x_tfc_countermeasure", "action"], json!("nuke")),
        ),
        case(
            "cap-tier above three",
            "bad_countermeasure",
            edit(
                &["x_tfc_countermeasure"],
                json!({"action": "cap-tier", "tier": 9}),
            ),
        ),
        case(
            "block-peer on an address",
            "bad_countermeasure",
            edit(&["x_tfc_countermeasure"], json!({"action": "block-peer"})),
        ),
        case("already expired", "expired", {
            let mut bundle = edit(&["valid_from"], json!("2026-04-01T00:00:00Z"));
            bundle["objects"][0]["valid_until"] = json!("2026-05-01T00:00:00Z");
            bundle
        }),
        case(
            "id of another type",
            "malformed",
            edit(
                &["id"],
                json!("malware--0b3e6b5e-53c5-4d1c-a3c4-1f2d5b7c8e9f"),
            ),
        ),
        case(
            "spec_version 2.0",
            "malformed",
            edit(&["spec_version"], json!("2.0")),
        ),
        case(
            "valid_from not a timestamp",
            "malformed",
            edit(&["valid_from"], json!("yesterday")),
        ),
        case(
            "confidence above 100",
            "malformed",
            edit(&["confidence"], json!(101)),
        ),
    ]
}

fn judge_indicator(input: &Value) -> String {
    match parse_bundle(input, NOW) {
        Ok(_) => "accepted".into(),
        Err(error) => error.code.as_str().into(),
    }
}

const FIELD: &str = "1111111111111111111111111111111111111111111111111111111111111111";

fn envelope(key: &KeyPair, field: &str, kind: &str, iat: i64) -> String {
    sign_message(key, &json!({"iss": key.did(), "field": field, "kind": kind, "iat": iat, "jti": "corpus", "body": {}})).unwrap()
}

fn wire_messages() -> Vec<Case> {
    let publisher = key(30);
    let threat_topic = topic_name(FIELD, TopicKind::Threat);
    let message = |topic: &str, data: String| json!({"topic": topic, "data": data});
    let good = envelope(&publisher, FIELD, "threat", NOW);
    let mut parts = good.split('.');
    let (h, p, s) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let mut flipped = URL_SAFE_NO_PAD.decode(s).unwrap();
    flipped[9] ^= 2;
    let message_header =
        |typ: &str| json!({"alg": "EdDSA", "typ": typ, "kid": publisher.public_key().key_id()});
    let payload = payload_of(&good);
    let signed_payload =
        |payload: Value| sign_raw(&publisher, &message_header("tfc-msg+jwt"), &payload);
    let typ = tfc_gateway::credential::unverified_header(&good)
        .and_then(|header| header.get("typ").cloned())
        .unwrap_or(json!(""));
    assert_eq!(
        typ,
        json!("tfc-msg+jwt"),
        "the corpus signs with the message typ"
    );
    vec![
        case(
            "topic outside tfc",
            "unknown_topic",
            message("news/today", good.clone()),
        ),
        case(
            "topic without a kind",
            "unknown_topic",
            message(&format!("tfc/{FIELD}"), good.clone()),
        ),
        case(
            "topic with an unknown kind",
            "unknown_topic",
            message(&format!("tfc/{FIELD}/chat"), good.clone()),
        ),
        case("empty", "malformed", message(&threat_topic, String::new())),
        case(
            "not a jws",
            "malformed",
            message(&threat_topic, "hello".into()),
        ),
        case(
            "oversized",
            "too_large",
            message(&threat_topic, "a".repeat(MAX_MESSAGE_BYTES + 1)),
        ),
        case(
            "alg none",
            "unsupported_alg",
            message(
                &threat_topic,
                sign_raw(
                    &publisher,
                    &json!({"alg": "none", "typ": "tfc-msg+jwt", "kid": publisher.public_key().key_id()}),
                    &payload,
                ),
            ),
        ),
        case(
            "typ of a credential",
            "wrong_typ",
            message(
                &threat_topic,
                sign_raw(&publisher, &message_header("vc+jwt"), &payload),
            ),
        ),
        case(
            "signature flipped",
            "bad_signature",
            message(&threat_topic, format!("{h}.{p}.{}", b64(&flipped))),
        ),
        case(
            "body edited after signing",
            "bad_signature",
            message(&threat_topic, {
                let mut edited = payload.clone();
                edited["body"] = json!({"bundle": "swapped"});
                format!("{h}.{}.{s}", b64(edited.to_string().as_bytes()))
            }),
        ),
        case(
            "signed by another key under the kid",
            "bad_signature",
            message(
                &threat_topic,
                sign_raw(&key(31), &message_header("tfc-msg+jwt"), &payload),
            ),
        ),
        case(
            "issuer not a did:key",
            "unresolvable_issuer",
            message(
                &threat_topic,
                signed_payload({
                    let mut edited = payload.clone();
                    edited["iss"] = json!("did:web:evil.example");
                    edited
                }),
            ),
        ),
        case(
            "issuer is another key",
            "issuer_key_mismatch",
            message(
                &threat_topic,
                signed_payload({
                    let mut edited = payload.clone();
                    edited["iss"] = json!(key(32).did());
                    edited
                }),
            ),
        ),
        case(
            "payload not an envelope",
            "malformed",
            message(
                &threat_topic,
                signed_payload(json!({"iss": publisher.did(), "hello": "world"})),
            ),
        ),
        case(
            "envelope without a body",
            "malformed",
            message(
                &threat_topic,
                signed_payload({
                    let mut edited = payload.clone();
                    edited.as_object_mut().unwrap().remove("body");
                    edited
                }),
            ),
        ),
        case(
            "envelope for another field",
            "wrong_topic",
            message(
                &threat_topic,
                envelope(&publisher, &"2".repeat(64), "threat", NOW),
            ),
        ),
        case(
            "envelope for another kind",
            "wrong_topic",
            message(&threat_topic, envelope(&publisher, FIELD, "gov", NOW)),
        ),
        case(
            "eleven minutes old",
            "stale",
            message(
                &threat_topic,
                envelope(&publisher, FIELD, "threat", NOW - 660),
            ),
        ),
        case(
            "eleven minutes ahead",
            "stale",
            message(
                &threat_topic,
                envelope(&publisher, FIELD, "threat", NOW + 660),
            ),
        ),
        case(
            "iat not a number",
            "malformed",
            message(
                &threat_topic,
                signed_payload({
                    let mut edited = payload.clone();
                    edited["iat"] = json!("now");
                    edited
                }),
            ),
        ),
    ]
}

fn judge_wire(input: &Value) -> String {
    let (topic, data) = (
        input["topic"].as_str().unwrap_or_default(),
        input["data"].as_str().unwrap_or_default(),
    );
    let Some((field, kind)) = parse_topic(topic) else {
        return "unknown_topic".into();
    };
    match open_envelope(
        &CredentialVerifier::new(),
        data,
        &field,
        kind,
        MAX_MESSAGE_BYTES,
        NOW,
    ) {
        Ok(_) => "accepted".into(),
        Err(rejection) => rejection.code,
    }
}

type Judge = fn(&Value) -> String;
type Generate = fn() -> Vec<Case>;

/// Every corpus file: its name, its generator, its judge and the fewest cases it must hold.
fn sets() -> [(&'static str, Generate, Judge, usize); 5] {
    [
        ("credentials", credentials, judge_credential, 35),
        ("presentations", presentations, judge_presentation, 15),
        ("governance", governance_ops, judge_governance, 20),
        ("indicators", indicators, judge_indicator, 20),
        ("wire", wire_messages, judge_wire, 20),
    ]
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus")
}

fn check(set: &str, cases: &[Case], judge: Judge) {
    let wrong: Vec<String> = cases
        .iter()
        .map(|case| (case, judge(&case.input)))
        .filter(|(case, actual)| *actual != case.expected)
        .map(|(case, actual)| {
            format!(
                "{set}/{}: expected {}, got {actual}",
                case.name, case.expected
            )
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_committed_case_is_refused_with_its_code() {
    if std::env::var_os("TFC_REGENERATE_CORPUS").is_some() {
        std::fs::create_dir_all(corpus_dir()).unwrap();
        for (set, generate, _, _) in sets() {
            let text = serde_json::to_string_pretty(&generate()).unwrap();
            std::fs::write(corpus_dir().join(format!("{set}.json")), text + "\n").unwrap();
        }
    }
    let mut total = 0;
    for (set, _, judge, fewest) in sets() {
        let path = corpus_dir().join(format!("{set}.json"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|error| {
            panic!(
                "{}: {error} (TFC_REGENERATE_CORPUS=1 makes it)",
                path.display()
            )
        });
        let cases: Vec<Case> = serde_json::from_str(&text).unwrap();
        assert!(
            cases.len() >= fewest,
            "{set} holds {} cases, fewer than {fewest}",
            cases.len()
        );
        check(set, &cases, judge);
        total += cases.len();
    }
    assert!(total >= 110);
}

#[test]
fn the_generator_still_makes_the_committed_cases() {
    for (set, generate, judge, _) in sets() {
        let generated = generate();
        check(set, &generated, judge);
        let text = std::fs::read_to_string(corpus_dir().join(format!("{set}.json"))).unwrap();
        let committed: Vec<Case> = serde_json::from_str(&text).unwrap();
        let outline = |cases: &[Case]| -> Vec<(String, String)> {
            cases
                .iter()
                .map(|case| (case.name.clone(), case.expected.clone()))
                .collect()
        };
        assert_eq!(
            outline(&committed),
            outline(&generated),
            "{set}: regenerate the corpus"
        );
    }
}
