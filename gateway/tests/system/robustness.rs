//! Property tests: no byte string panics the credential and presentation decoders, and no
//! mutation of a valid token is accepted.

use std::collections::HashMap;

use proptest::prelude::*;
use tfc_gateway::credential::{
    Challenge, CredentialDraft, CredentialVerifier, ReplayCache, StatusLists, VerificationError,
    VerifyContext, create_presentation, issue_credential,
};
use tfc_gateway::identity::{KeyAlgorithm, KeyPair};

const NOW: i64 = 1_780_272_000;

struct Fixture {
    verifier: CredentialVerifier,
    lists: StatusLists,
    audience: String,
    credential: String,
    presentation: String,
}

impl Fixture {
    fn new() -> Self {
        let (issuer, holder, verifier_key) = (
            KeyPair::generate(KeyAlgorithm::P256),
            KeyPair::generate(KeyAlgorithm::Ed25519),
            KeyPair::generate(KeyAlgorithm::Ed25519),
        );
        let claims = serde_json::json!({"grade": "C", "score": 61, "assessedOn": "2026-01-10"});
        let draft = CredentialDraft {
            type_name: "CreditRatingCredential".into(),
            subject: holder.did(),
            claims: claims.as_object().cloned().unwrap_or_default(),
            valid_from: NOW - 86_400,
            valid_until: Some(NOW + 86_400),
            status: vec![],
        };
        let credential = issue_credential(&issuer, &draft, NOW).unwrap();
        let audience = verifier_key.did();
        let challenge = Challenge {
            audience: &audience,
            nonce: "nonce",
        };
        let presentation = create_presentation(
            &holder,
            challenge,
            std::slice::from_ref(&credential),
            NOW,
            60,
        )
        .unwrap();
        Self {
            verifier: CredentialVerifier::new(),
            lists: StatusLists::new(),
            audience,
            credential,
            presentation,
        }
    }

    fn context(&self) -> VerifyContext<'_> {
        VerifyContext {
            now: NOW,
            trust: None,
            status_lists: &self.lists,
            status_max_age_secs: 86_400,
        }
    }

    fn credential(&self, token: &str) -> Result<(), VerificationError> {
        self.verifier
            .verify_credential(token, &self.context())
            .map(drop)
    }

    fn presentation(&self, token: &str) -> Result<(), VerificationError> {
        let challenge = Challenge {
            audience: &self.audience,
            nonce: "nonce",
        };
        let bindings: HashMap<String, String> = HashMap::new();
        self.verifier
            .verify_presentation(
                token,
                challenge,
                &self.context(),
                &ReplayCache::default(),
                &bindings,
            )
            .map(drop)
    }
}

/// A mutation of a token: overwrite, delete or insert one byte, or cut the token short.
#[derive(Debug, Clone)]
enum Mutation {
    Overwrite(usize, u8),
    Delete(usize),
    Insert(usize, u8),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let printable = 0x21u8..0x7f;
    prop_oneof![
        (any::<usize>(), printable.clone()).prop_map(|(at, byte)| Mutation::Overwrite(at, byte)),
        any::<usize>().prop_map(Mutation::Delete),
        (any::<usize>(), printable).prop_map(|(at, byte)| Mutation::Insert(at, byte)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(token: &str, mutations: &[Mutation]) -> String {
    let mut bytes = token.as_bytes().to_vec();
    for mutation in mutations {
        let len = bytes.len().max(1);
        match *mutation {
            Mutation::Overwrite(at, byte) if !bytes.is_empty() => bytes[at % len] = byte,
            Mutation::Delete(at) if !bytes.is_empty() => {
                bytes.remove(at % len);
            }
            Mutation::Insert(at, byte) => bytes.insert(at % (bytes.len() + 1), byte),
            Mutation::Truncate(at) => bytes.truncate(at % len),
            _ => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_and_never_verify(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let fixture = fixture();
        let text = String::from_utf8_lossy(&bytes);
        prop_assert!(fixture.credential(&text).is_err());
        prop_assert!(fixture.presentation(&text).is_err());
    }

    #[test]
    fn random_dotted_base64_never_panics(parts in proptest::collection::vec("[A-Za-z0-9_-]{0,200}", 0..5)) {
        let fixture = fixture();
        let token = parts.join(".");
        prop_assert!(fixture.credential(&token).is_err());
        prop_assert!(fixture.presentation(&token).is_err());
    }

    #[test]
    fn no_mutation_of_a_credential_is_accepted(mutations in proptest::collection::vec(mutation(), 1..4)) {
        let fixture = fixture();
        let mutated = mutate(&fixture.credential, &mutations);
        if mutated.trim() != fixture.credential {
            prop_assert!(fixture.credential(&mutated).is_err(), "accepted {mutated}");
        }
    }

    #[test]
    fn no_mutation_of_a_presentation_is_accepted(mutations in proptest::collection::vec(mutation(), 1..4)) {
        let fixture = fixture();
        let mutated = mutate(&fixture.presentation, &mutations);
        if mutated.trim() != fixture.presentation {
            prop_assert!(fixture.presentation(&mutated).is_err(), "accepted {mutated}");
        }
    }
}

fn fixture() -> &'static Fixture {
    static FIXTURE: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(Fixture::new)
}

#[test]
fn the_unmutated_tokens_verify() {
    let fixture = fixture();
    assert_eq!(fixture.credential(&fixture.credential), Ok(()));
    assert_eq!(fixture.presentation(&fixture.presentation), Ok(()));
}
