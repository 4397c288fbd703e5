//! One test per error code a credential can earn, each building the bad token on purpose.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use super::*;
use crate::credential::test_support::*;
use crate::credential::{StatusList, StatusPurpose};
use crate::identity::KeyAlgorithm;

fn verify(token: &str) -> Result<VerifiedCredential, VerificationError> {
    let lists = StatusLists::new();
    CredentialVerifier::new().verify_credential(token, &context(&lists))
}

fn code_of(token: &str) -> ErrorCode {
    match verify(token) {
        Ok(credential) => panic!("accepted: {credential:?}"),
        Err(error) => error.code,
    }
}

/// Re-signs `token`'s payload after `edit`, with `key` and the standard header.
fn edited(key: &KeyPair, token: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut payload = payload_of(token);
    edit(&mut payload);
    sign_raw(key, &header(key, VC_TYP), &payload)
}

#[test]
fn issued_credentials_verify_with_both_algorithms() {
    for algorithm in [KeyAlgorithm::Ed25519, KeyAlgorithm::P256] {
        let issuer = KeyPair::generate(algorithm);
        let holder = ed25519();
        let token = issue(&issuer, &draft("CreditRatingCredential", &holder));
        let credential = verify(&token).unwrap();
        assert_eq!(credential.issuer, issuer.did());
        assert_eq!(credential.subject, holder.did());
        assert_eq!(credential.type_name, "CreditRatingCredential");
        assert_eq!(credential.claims["score"], 72);
        assert!(!credential.self_declared);
        assert!(!credential.trust_checked);
        assert!(credential.id.starts_with("urn:uuid:"));
    }
}

#[test]
fn issued_payload_carries_consistent_vc_and_jwt_fields() {
    let (issuer, holder) = (ed25519(), ed25519());
    let payload = payload_of(&issue(&issuer, &draft("CreditRatingCredential", &holder)));
    assert_eq!(payload["@context"][0], VCDM_V2_CONTEXT);
    assert_eq!(payload["iss"], payload["issuer"]);
    assert_eq!(payload["sub"], payload["credentialSubject"]["id"]);
    assert_eq!(payload["jti"], payload["id"]);
    assert_eq!(payload["nbf"], NOW - 30 * DAY);
    assert_eq!(payload["validFrom"], format_rfc3339(NOW - 30 * DAY));
    assert_eq!(
        payload["credentialSchema"]["id"],
        "https://schemas.tfc.example/credit-rating-credential/v1"
    );
}

#[test]
fn too_large() {
    let (issuer, holder) = (ed25519(), ed25519());
    let token = issue(&issuer, &draft("CreditRatingCredential", &holder));
    let token = edited(&issuer, &token, |payload| {
        payload["padding"] = "x".repeat(MAX_CREDENTIAL_LEN).into();
    });
    assert_eq!(code_of(&token), ErrorCode::TooLarge);
}

#[test]
fn malformed() {
    let (issuer, holder) = (ed25519(), ed25519());
    let token = issue(&issuer, &draft("CreditRatingCredential", &holder));
    assert_eq!(code_of("not a token"), ErrorCode::Malformed);
    assert_eq!(code_of(&token[..token.len() / 2]), ErrorCode::Malformed);
    let no_issuer = edited(&issuer, &token, |payload| {
        payload.as_object_mut().unwrap().remove("issuer");
    });
    assert_eq!(code_of(&no_issuer), ErrorCode::Malformed);
    let object_issuer = edited(&issuer, &token, |payload| {
        payload["issuer"] = json!({"id": issuer.did()});
    });
    assert_eq!(code_of(&object_issuer), ErrorCode::Malformed);
    let bad_date = edited(&issuer, &token, |payload| {
        payload["validFrom"] = "yesterday".into()
    });
    assert_eq!(code_of(&bad_date), ErrorCode::Malformed);
}

#[test]
fn unsupported_alg() {
    let (issuer, holder) = (ed25519(), ed25519());
    let payload = payload_of(&issue(&issuer, &draft("CreditRatingCredential", &holder)));
    for alg in ["HS256", "RS256", "none", "ES384", "Ed25519"] {
        let mut header = header(&issuer, VC_TYP);
        header["alg"] = alg.into();
        assert_eq!(
            code_of(&sign_raw(&issuer, &header, &payload)),
            ErrorCode::UnsupportedAlg,
            "{alg}"
        );
    }
}

#[test]
fn wrong_typ() {
    let (issuer, holder) = (ed25519(), ed25519());
    let payload = payload_of(&issue(&issuer, &draft("CreditRatingCredential", &holder)));
    for typ in [json!("JWT"), json!("vp+jwt"), json!(null), json!(7)] {
        let mut header = header(&issuer, VC_TYP);
        header["typ"] = typ.clone();
        let code = code_of(&sign_raw(&issuer, &header, &payload));
        // A non-string typ makes the header unreadable as a JOSE header.
        let expected = if typ.is_number() {
            ErrorCode::Malformed
        } else {
            ErrorCode::WrongTyp
        };
        assert_eq!(code, expected, "{typ}");
    }
}

#[test]
fn unresolvable_issuer() {
    let (issuer, holder) = (ed25519(), ed25519());
    let token = issue(&issuer, &draft("CreditRatingCredential", &holder));
    for did in [
        "did:web:bureau.example",
        "did:key:zNotBase58",
        "did:key:z6Mk",
    ] {
        let token = edited(&issuer, &token, |payload| {
            payload["issuer"] = did.into();
            payload["iss"] = did.into();
        });
        assert_eq!(code_of(&token), ErrorCode::UnresolvableIssuer, "{did}");
    }
}

#[test]
fn issuer_key_mismatch() {
    let (issuer, holder, other) = (ed25519(), ed25519(), ed25519());
    let token = issue(&issuer, &draft("CreditRatingCredential", &holder));
    let payload = payload_of(&token);
    // kid names another key.
    let header_other = header(&other, VC_TYP);
    assert_eq!(
        code_of(&sign_raw(&other, &header_other, &payload)),
        ErrorCode::IssuerKeyMismatch
    );
    // No kid.
    let mut no_kid = header(&issuer, VC_TYP);
    no_kid.as_object_mut().unwrap().remove("kid");
    assert_eq!(
        code_of(&sign_raw(&issuer, &no_kid, &payload)),
        ErrorCode::IssuerKeyMismatch
    );
    // Right DID, wrong fragment.
    let mut bad_fragment = header(&issuer, VC_TYP);
    bad_fragment["kid"] = format!("{}#key-1", issuer.did()).into();
    assert_eq!(
        code_of(&sign_raw(&issuer, &bad_fragment, &payload)),
        ErrorCode::IssuerKeyMismatch
    );
    // ES256 claimed for an Ed25519 key.
    let mut wrong_alg = header(&issuer, VC_TYP);
    wrong_alg["alg"] = "ES256".into();
    assert_eq!(
        code_of(&sign_raw(&issuer, &wrong_alg, &payload)),
        ErrorCode::IssuerKeyMismatch
    );
}

#[test]
fn bad_signature() {
    let (issuer, holder, forger) = (ed25519(), ed25519(), ed25519());
    let token = issue(&issuer, &draft("CreditRatingCredential", &holder));
    // One flipped bit in the signature.
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    bytes[10] ^= 1;
    assert_eq!(
        code_of(&format!("{signing_input}.{}", b64(&bytes))),
        ErrorCode::BadSignature
    );
    // A forger signs with its own key but claims the issuer's.
    let forged = sign_raw(&forger, &header(&issuer, VC_TYP), &payload_of(&token));
    assert_eq!(code_of(&forged), ErrorCode::BadSignature);
    // An edited payload under the original signature.
    let mut payload = payload_of(&token);
    payload["credentialSubject"]["score"] = 99.into();
    let header_part = token.split('.').next().unwrap();
    let tampered = format!(
        "{header_part}.{}.{signature}",
        b64(payload.to_string().as_bytes())
    );
    assert_eq!(code_of(&tampered), ErrorCode::BadSignature);
}

#[test]
fn es256_signature_in_der_form_is_rejected() {
    let (issuer, holder) = (KeyPair::generate(KeyAlgorithm::P256), ed25519());
    let token = issue(&issuer, &draft("CreditRatingCredential", &holder));
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let raw = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let der = p256::ecdsa::Signature::from_slice(&raw).unwrap().to_der();
    let token = format!("{signing_input}.{}", b64(der.as_bytes()));
    assert_eq!(code_of(&token), ErrorCode::BadSignature);
}

#[test]
fn not_yet_valid_beyond_the_skew_only() {
    let (issuer, holder) = (ed25519(), ed25519());
    let mut future = draft("CreditRatingCredential", &holder);
    future.valid_from = NOW + CLOCK_SKEW_SECS + 1;
    assert_eq!(code_of(&issue(&issuer, &future)), ErrorCode::NotYetValid);
    future.valid_from = NOW + CLOCK_SKEW_SECS;
    assert!(verify(&issue(&issuer, &future)).is_ok());
}

#[test]
fn expired_beyond_the_skew_only() {
    let (issuer, holder) = (ed25519(), ed25519());
    let mut old = draft("CreditRatingCredential", &holder);
    old.valid_until = Some(NOW - CLOCK_SKEW_SECS);
    assert_eq!(code_of(&issue(&issuer, &old)), ErrorCode::Expired);
    old.valid_until = Some(NOW - CLOCK_SKEW_SECS + 1);
    assert!(verify(&issue(&issuer, &old)).is_ok());
}

#[test]
fn unknown_type() {
    let (issuer, holder) = (ed25519(), ed25519());
    let token = issue(&issuer, &draft("CreditRatingCredential", &holder));
    for types in [
        json!(["VerifiableCredential", "FavouriteColourCredential"]),
        json!(["VerifiableCredential"]),
        json!(["VerifiableCredential", "CreditRatingCredential", "Extra"]),
        json!("CreditRatingCredential"),
    ] {
        let token = edited(&issuer, &token, |payload| payload["type"] = types.clone());
        assert_eq!(code_of(&token), ErrorCode::UnknownType, "{types}");
    }
}

#[test]
fn schema_violation() {
    let (issuer, holder) = (ed25519(), ed25519());
    let token = issue(&issuer, &draft("CreditRatingCredential", &holder));
    let edits: [fn(&mut Value); 4] = [
        |payload| payload["credentialSubject"]["score"] = 150.into(),
        |payload| payload["credentialSubject"]["grade"] = "AAA".into(),
        |payload| payload["credentialSchema"]["id"] = "https://evil.example/schema".into(),
        |payload| payload["@context"] = json!(["https://www.w3.org/2018/credentials/v1"]),
    ];
    for edit in edits {
        assert_eq!(
            code_of(&edited(&issuer, &token, edit)),
            ErrorCode::SchemaViolation
        );
    }
}

#[test]
fn schema_violation_on_corporate_number_check_digit() {
    let (issuer, holder) = (ed25519(), ed25519());
    let token = issue(&issuer, &draft("OrganizationIdentityCredential", &holder));
    let token = edited(&issuer, &token, |payload| {
        payload["credentialSubject"]["corporateNumber"] = "6000012050002".into();
    });
    let error = verify(&token).unwrap_err();
    assert_eq!(error.code, ErrorCode::SchemaViolation);
    assert!(
        error.message.contains("corporateNumber"),
        "{}",
        error.message
    );
}

#[test]
fn claims_mismatch() {
    let (issuer, holder, other) = (ed25519(), ed25519(), ed25519());
    let token = issue(&issuer, &draft("CreditRatingCredential", &holder));
    let other_did = other.did();
    type Edit<'a> = Box<dyn Fn(&mut Value) + 'a>;
    let edits: Vec<Edit> = vec![
        Box::new(|payload| payload["iss"] = other_did.clone().into()),
        Box::new(|payload| payload["sub"] = other_did.clone().into()),
        Box::new(|payload| payload["jti"] = "urn:uuid:00000000-0000-4000-8000-000000000000".into()),
        Box::new(|payload| payload["nbf"] = (NOW - 31 * DAY).into()),
        Box::new(|payload| payload["exp"] = (NOW + 400 * DAY).into()),
    ];
    for edit in edits {
        assert_eq!(
            code_of(&edited(&issuer, &token, edit)),
            ErrorCode::ClaimsMismatch
        );
    }
    // Absent JWT claims are fine: only present ones must agree.
    let bare = edited(&issuer, &token, |payload| {
        for claim in ["iss", "sub", "jti", "nbf", "exp", "iat"] {
            payload.as_object_mut().unwrap().remove(claim);
        }
    });
    assert!(verify(&bare).is_ok());
}

#[test]
fn untrusted_issuer_and_self_declared_need_a_charter() {
    let (bureau, stranger, holder) = (ed25519(), ed25519(), ed25519());
    let mut trust = IssuerTrust::default();
    trust.trust(&bureau.did(), ["CreditRatingCredential".to_owned()]);
    let lists = StatusLists::new();
    let context = VerifyContext {
        trust: Some(&trust),
        ..context(&lists)
    };
    let verifier = CredentialVerifier::new();
    let trusted = issue(&bureau, &draft("CreditRatingCredential", &holder));
    assert!(
        verifier
            .verify_credential(&trusted, &context)
            .unwrap()
            .trust_checked
    );
    let untrusted = issue(&stranger, &draft("CreditRatingCredential", &holder));
    let error = verifier
        .verify_credential(&untrusted, &context)
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::UntrustedIssuer);
    let self_issued = issue(&holder, &draft("CreditRatingCredential", &holder));
    let error = verifier
        .verify_credential(&self_issued, &context)
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::SelfDeclaredNotAccepted);
}

/// A credential with a status entry at `index` of `list_id`, and the verifier's list.
fn with_status(issuer: &KeyPair, purpose: StatusPurpose, index: usize) -> (String, StatusList) {
    let holder = ed25519();
    let list_id = format!("https://status.example/{}", purpose.as_str());
    let mut credential = draft("CreditRatingCredential", &holder);
    credential.status = vec![StatusEntry::new(&list_id, purpose, index)];
    let list = StatusList::new(&list_id, &issuer.did(), purpose, 0, NOW - 3600);
    (issue(issuer, &credential), list)
}

fn verify_with(token: &str, list: StatusList) -> Result<VerifiedCredential, VerificationError> {
    let mut lists = StatusLists::new();
    lists.insert(list);
    CredentialVerifier::new().verify_credential(token, &context(&lists))
}

#[test]
fn revoked_and_suspended_follow_the_bit() {
    let issuer = ed25519();
    for (purpose, code) in [
        (StatusPurpose::Revocation, ErrorCode::Revoked),
        (StatusPurpose::Suspension, ErrorCode::Suspended),
    ] {
        let (token, mut list) = with_status(&issuer, purpose, 4242);
        assert_eq!(verify_with(&token, list.clone()).unwrap().status.len(), 1);
        list.set(4242, true).unwrap();
        assert_eq!(verify_with(&token, list.clone()).unwrap_err().code, code);
        list.set(4242, false).unwrap();
        assert!(verify_with(&token, list).is_ok());
    }
}

#[test]
fn status_unavailable_fails_closed() {
    let (issuer, other) = (ed25519(), ed25519());
    let (token, list) = with_status(&issuer, StatusPurpose::Revocation, 7);
    // No list at all.
    assert_eq!(
        verify(&token).unwrap_err().code,
        ErrorCode::StatusUnavailable
    );
    // A list older than the freshness limit.
    let mut stale = list.clone();
    stale.issued_at = NOW - DAY - 1;
    assert_eq!(
        verify_with(&token, stale).unwrap_err().code,
        ErrorCode::StatusUnavailable
    );
    // A list from someone else cannot speak for this issuer.
    let mut foreign = list.clone();
    foreign.issuer = other.did();
    assert_eq!(
        verify_with(&token, foreign).unwrap_err().code,
        ErrorCode::StatusUnavailable
    );
    // A suspension list cannot answer a revocation entry.
    let mut wrong_purpose = list.clone();
    wrong_purpose.purpose = StatusPurpose::Suspension;
    assert_eq!(
        verify_with(&token, wrong_purpose).unwrap_err().code,
        ErrorCode::StatusUnavailable
    );
    // An index outside the list.
    let (far, list) = with_status(&issuer, StatusPurpose::Revocation, 500_000);
    assert_eq!(
        verify_with(&far, list).unwrap_err().code,
        ErrorCode::StatusUnavailable
    );
}

#[test]
fn earlier_checks_win_when_several_fail() {
    let (issuer, holder, forger) = (ed25519(), ed25519(), ed25519());
    let mut both = draft("CreditRatingCredential", &holder);
    both.valid_until = Some(NOW - DAY);
    both.claims["score"] = 50.into();
    // Expired and forged: the signature is judged first.
    let forged = sign_raw(
        &forger,
        &header(&issuer, VC_TYP),
        &payload_of(&issue(&issuer, &both)),
    );
    assert_eq!(code_of(&forged), ErrorCode::BadSignature);
    // Expired and schema-violating: time is judged before the schema.
    let token = edited(&issuer, &issue(&issuer, &both), |payload| {
        payload["credentialSubject"]["score"] = 500.into();
    });
    assert_eq!(code_of(&token), ErrorCode::Expired);
}

#[test]
fn issuing_refuses_what_verifying_would_reject() {
    let (issuer, holder) = (ed25519(), ed25519());
    let mut bad = draft("CreditRatingCredential", &holder);
    bad.claims["score"] = 101.into();
    assert_eq!(
        issue_credential(&issuer, &bad, NOW).unwrap_err().code(),
        "schema_violation"
    );
    bad.type_name = "NoSuchCredential".into();
    assert_eq!(
        issue_credential(&issuer, &bad, NOW).unwrap_err().code(),
        "unknown_type"
    );
    let mut empty = draft("CreditRatingCredential", &holder);
    empty.valid_until = Some(empty.valid_from);
    assert_eq!(
        issue_credential(&issuer, &empty, NOW).unwrap_err().code(),
        "empty_validity_window"
    );
}
