//! One test per error code a presentation can earn.

use serde_json::json;

use super::*;
use crate::credential::test_support::*;
use crate::credential::{StatusLists, VC_TYP};

const NONCE: &str = "n-0f3c9a";

struct Exchange {
    verifier: KeyPair,
    holder: KeyPair,
    credentials: Vec<String>,
}

impl Exchange {
    /// A holder with four credentials from two issuers.
    fn new() -> Self {
        let (registrar, bureau, holder) = (ed25519(), ed25519(), ed25519());
        let credentials = [
            (&registrar, "OrganizationIdentityCredential"),
            (&bureau, "CreditRatingCredential"),
            (&bureau, "AntisocialForcesScreeningCredential"),
            (&registrar, "TaxComplianceCredential"),
        ]
        .into_iter()
        .map(|(issuer, type_name)| issue(issuer, &draft(type_name, &holder)))
        .collect();
        Self {
            verifier: ed25519(),
            holder,
            credentials,
        }
    }

    fn challenge(&self) -> Challenge<'_> {
        Challenge {
            audience: self.verifier_did(),
            nonce: NONCE,
        }
    }

    fn verifier_did(&self) -> &'static str {
        // Leaked once per test so that challenges can borrow it freely.
        Box::leak(self.verifier.did().into_boxed_str())
    }

    fn present(&self) -> String {
        create_presentation(&self.holder, self.challenge(), &self.credentials, NOW, 120).unwrap()
    }

    fn verify_with(
        &self,
        token: &str,
        challenge: Challenge<'_>,
        replay: &ReplayCache,
        bindings: &HashMap<String, String>,
    ) -> Result<VerifiedPresentation, VerificationError> {
        let lists = StatusLists::new();
        CredentialVerifier::new().verify_presentation(
            token,
            challenge,
            &context(&lists),
            replay,
            bindings,
        )
    }

    fn code_of(&self, token: &str) -> ErrorCode {
        self.verify_with(
            token,
            self.challenge(),
            &ReplayCache::default(),
            &HashMap::new(),
        )
        .unwrap_err()
        .code
    }

    /// Re-signs an edited copy of a good presentation's payload with the holder's key.
    fn edited(&self, edit: impl FnOnce(&mut Value)) -> String {
        let mut payload = payload_of(&self.present());
        edit(&mut payload);
        sign_raw(&self.holder, &header(&self.holder, VP_TYP), &payload)
    }
}

#[test]
fn a_presentation_with_four_credentials_verifies() {
    let exchange = Exchange::new();
    let verified = exchange
        .verify_with(
            &exchange.present(),
            exchange.challenge(),
            &ReplayCache::default(),
            &HashMap::new(),
        )
        .unwrap();
    assert_eq!(verified.holder, exchange.holder.did());
    assert_eq!(verified.credentials.len(), 4);
    assert_eq!(verified.expires_at - verified.issued_at, 120);
}

#[test]
fn a_presentation_is_a_vcdm_2_presentation_of_enveloped_credentials() {
    let exchange = Exchange::new();
    let token = exchange.present();
    assert_eq!(
        crate::credential::unverified_header(&token).unwrap()["typ"],
        VP_TYP
    );
    let payload = payload_of(&token);
    assert_eq!(payload["@context"], json!([VCDM_V2_CONTEXT]));
    assert_eq!(payload["type"], json!(["VerifiablePresentation"]));
    assert_eq!(payload["holder"], exchange.holder.did());
    assert_eq!(payload["aud"], exchange.verifier_did());
    assert_eq!(payload["nonce"], NONCE);
    assert!(payload.get("vp").is_none(), "no VC 1.1-style vp claim");
    let entries = payload["verifiableCredential"].as_array().unwrap();
    assert_eq!(entries.len(), exchange.credentials.len());
    for (entry, token) in entries.iter().zip(&exchange.credentials) {
        assert_eq!(entry["type"], "EnvelopedVerifiableCredential");
        assert_eq!(entry["@context"], VCDM_V2_CONTEXT);
        assert_eq!(entry["id"], format!("data:application/vc+jwt,{token}"));
    }
}

#[test]
fn the_older_vp_claim_form_is_still_read() {
    let exchange = Exchange::new();
    let legacy = json!({
        "iss": exchange.holder.did(),
        "aud": exchange.verifier_did(),
        "nonce": NONCE,
        "iat": NOW,
        "exp": NOW + 60,
        "vp": {
            "@context": [VCDM_V2_CONTEXT],
            "type": ["VerifiablePresentation"],
            "holder": exchange.holder.did(),
            "verifiableCredential": exchange.credentials,
        },
    });
    let token = sign_raw(&exchange.holder, &header(&exchange.holder, VP_TYP), &legacy);
    let verified = exchange
        .verify_with(
            &token,
            exchange.challenge(),
            &ReplayCache::default(),
            &HashMap::new(),
        )
        .unwrap();
    assert_eq!(verified.credentials.len(), 4);
}

#[test]
fn presentation_bad_signature() {
    let exchange = Exchange::new();
    let forger = ed25519();
    let forged = sign_raw(
        &forger,
        &header(&exchange.holder, VP_TYP),
        &payload_of(&exchange.present()),
    );
    assert_eq!(
        exchange.code_of(&forged),
        ErrorCode::PresentationBadSignature
    );
}

#[test]
fn presentation_envelope_errors_use_the_shared_codes() {
    let exchange = Exchange::new();
    let payload = payload_of(&exchange.present());
    let as_vc = sign_raw(
        &exchange.holder,
        &header(&exchange.holder, VC_TYP),
        &payload,
    );
    assert_eq!(exchange.code_of(&as_vc), ErrorCode::WrongTyp);
    assert_eq!(exchange.code_of("%%%"), ErrorCode::Malformed);
    assert_eq!(
        exchange.code_of(&"a".repeat(MAX_PRESENTATION_LEN + 1)),
        ErrorCode::TooLarge
    );
    for field in ["holder", "verifiableCredential", "type"] {
        let without = exchange.edited(|payload| {
            payload.as_object_mut().unwrap().remove(field);
        });
        assert_eq!(exchange.code_of(&without), ErrorCode::Malformed, "{field}");
    }
    let bare_tokens = exchange.edited(|payload| {
        payload["verifiableCredential"] = json!([exchange.credentials[0]]);
    });
    assert_eq!(exchange.code_of(&bare_tokens), ErrorCode::Malformed);
    let other_media_type = exchange.edited(|payload| {
        let id = payload["verifiableCredential"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        payload["verifiableCredential"][0]["id"] = id.replace("vc+jwt", "vc+sd-jwt").into();
    });
    assert_eq!(exchange.code_of(&other_media_type), ErrorCode::Malformed);
    let web_holder = exchange.edited(|payload| payload["holder"] = "did:web:holder.example".into());
    assert_eq!(exchange.code_of(&web_holder), ErrorCode::UnresolvableIssuer);
    let too_many = exchange.edited(|payload| {
        let entry = payload["verifiableCredential"][0].clone();
        payload["verifiableCredential"] = json!(vec![entry; MAX_PRESENTATION_CREDENTIALS + 1]);
    });
    assert_eq!(exchange.code_of(&too_many), ErrorCode::TooLarge);
}

#[test]
fn wrong_audience() {
    let exchange = Exchange::new();
    let other = ed25519().did();
    let challenge = Challenge {
        audience: &other,
        nonce: NONCE,
    };
    let error = exchange
        .verify_with(
            &exchange.present(),
            challenge,
            &ReplayCache::default(),
            &HashMap::new(),
        )
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::WrongAudience);
    // An audience array must contain the verifier.
    let listed = exchange
        .edited(|payload| payload["aud"] = json!(["did:key:zOther", payload["aud"].clone()]));
    assert!(
        exchange
            .verify_with(
                &listed,
                exchange.challenge(),
                &ReplayCache::default(),
                &HashMap::new()
            )
            .is_ok()
    );
}

#[test]
fn nonce_mismatch() {
    let exchange = Exchange::new();
    let challenge = Challenge {
        audience: exchange.verifier_did(),
        nonce: "another",
    };
    let error = exchange
        .verify_with(
            &exchange.present(),
            challenge,
            &ReplayCache::default(),
            &HashMap::new(),
        )
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::NonceMismatch);
    let no_nonce = exchange.edited(|payload| {
        payload.as_object_mut().unwrap().remove("nonce");
    });
    assert_eq!(exchange.code_of(&no_nonce), ErrorCode::NonceMismatch);
}

#[test]
fn replayed() {
    let exchange = Exchange::new();
    let replay = ReplayCache::default();
    let token = exchange.present();
    exchange
        .verify_with(&token, exchange.challenge(), &replay, &HashMap::new())
        .unwrap();
    let error = exchange
        .verify_with(&token, exchange.challenge(), &replay, &HashMap::new())
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::Replayed);
}

#[test]
fn presentation_expired() {
    let exchange = Exchange::new();
    let old = exchange.edited(|payload| {
        payload["iat"] = (NOW - 400).into();
        payload["exp"] = (NOW - 100).into();
    });
    assert_eq!(exchange.code_of(&old), ErrorCode::PresentationExpired);
    let long_lived = exchange.edited(|payload| payload["exp"] = (NOW + 301).into());
    assert_eq!(
        exchange.code_of(&long_lived),
        ErrorCode::PresentationExpired
    );
    let future = exchange.edited(|payload| {
        payload["iat"] = (NOW + 120).into();
        payload["exp"] = (NOW + 240).into();
    });
    assert_eq!(exchange.code_of(&future), ErrorCode::PresentationExpired);
}

#[test]
fn holder_mismatch() {
    let exchange = Exchange::new();
    let (bureau, someone_else) = (ed25519(), ed25519());
    let mut credentials = exchange.credentials.clone();
    credentials.push(issue(
        &bureau,
        &draft("CreditRatingCredential", &someone_else),
    ));
    let token = create_presentation(
        &exchange.holder,
        exchange.challenge(),
        &credentials,
        NOW,
        60,
    )
    .unwrap();
    assert_eq!(exchange.code_of(&token), ErrorCode::HolderMismatch);
    let other_signer = exchange.edited(|payload| payload["iss"] = someone_else.did().into());
    assert_eq!(exchange.code_of(&other_signer), ErrorCode::HolderMismatch);
}

#[test]
fn a_bad_credential_gives_its_own_code() {
    let exchange = Exchange::new();
    let bureau = ed25519();
    let mut expired = draft("CreditRatingCredential", &exchange.holder);
    expired.valid_until = Some(NOW - DAY);
    let mut credentials = exchange.credentials.clone();
    credentials.insert(1, issue(&bureau, &expired));
    let token = create_presentation(
        &exchange.holder,
        exchange.challenge(),
        &credentials,
        NOW,
        60,
    )
    .unwrap();
    let error = exchange
        .verify_with(
            &token,
            exchange.challenge(),
            &ReplayCache::default(),
            &HashMap::new(),
        )
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::Expired);
    assert!(
        error.message.starts_with("credential 2:"),
        "{}",
        error.message
    );
}

#[test]
fn identity_conflict() {
    let exchange = Exchange::new();
    let squatter = ed25519().did();
    let bindings = HashMap::from([("7000012050002".to_owned(), squatter)]);
    let error = exchange
        .verify_with(
            &exchange.present(),
            exchange.challenge(),
            &ReplayCache::default(),
            &bindings,
        )
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::IdentityConflict);
    // The same binding to the holder itself is no conflict.
    let own = HashMap::from([("7000012050002".to_owned(), exchange.holder.did())]);
    assert!(
        exchange
            .verify_with(
                &exchange.present(),
                exchange.challenge(),
                &ReplayCache::default(),
                &own
            )
            .is_ok()
    );
}
