use super::*;
use crate::credential::CredentialVerifier;
use crate::credential::test_support::*;
use crate::identity::KeyAlgorithm;

fn list(issuer: &KeyPair) -> StatusList {
    StatusList::new(
        "https://status.example/1",
        &issuer.did(),
        StatusPurpose::Revocation,
        0,
        NOW - 60,
    )
}

#[test]
fn new_lists_meet_the_specification_minimum() {
    let list = list(&ed25519());
    assert_eq!(list.len(), MIN_STATUS_LIST_ENTRIES);
    assert!(list.set_indices().is_empty());
}

#[test]
fn bit_zero_is_the_most_significant_bit_of_the_first_byte() {
    let mut list = list(&ed25519());
    list.set(0, true).unwrap();
    list.set(9, true).unwrap();
    assert_eq!(&list.bits[..2], &[0x80, 0x40]);
    assert_eq!(list.set_indices(), vec![0, 9]);
    list.set(0, false).unwrap();
    assert_eq!(list.get(0), Some(false));
    assert_eq!(list.get(MIN_STATUS_LIST_ENTRIES), None);
    assert!(list.set(MIN_STATUS_LIST_ENTRIES, true).is_err());
}

#[test]
fn encoded_list_round_trips() {
    let mut list = list(&ed25519());
    for index in [1, 77, 131_071] {
        list.set(index, true).unwrap();
    }
    let encoded = list.encode();
    assert!(encoded.starts_with('u'));
    assert_eq!(StatusList::decode_bits(&encoded).unwrap(), list.bits);
}

#[test]
fn decoding_bounds_size_and_shape() {
    let short = StatusList {
        bits: vec![0; 16],
        ..list(&ed25519())
    };
    assert!(
        StatusList::decode_bits(&short.encode())
            .unwrap_err()
            .contains("shorter")
    );
    // A GZIP bomb: far more zeros than any list may hold, compressed to a few KiB.
    let bomb = StatusList {
        bits: vec![0; MAX_STATUS_LIST_ENTRIES / 8 + 1],
        ..list(&ed25519())
    };
    assert!(
        StatusList::decode_bits(&bomb.encode())
            .unwrap_err()
            .contains("longer")
    );
    for bad in ["", "zABC", "u!!!", "uAAAA"] {
        assert!(StatusList::decode_bits(bad).is_err(), "{bad}");
    }
}

#[test]
fn status_list_credentials_verify_for_both_algorithms() {
    for algorithm in [KeyAlgorithm::Ed25519, KeyAlgorithm::P256] {
        let issuer = KeyPair::generate(algorithm);
        let mut list = list(&issuer);
        list.set(3, true).unwrap();
        let token = list.issue(&issuer).unwrap();
        let verified = CredentialVerifier::new()
            .verify_status_list(&token, NOW)
            .unwrap();
        assert_eq!(verified, list);
    }
}

#[test]
fn tampered_or_mistyped_status_lists_are_refused() {
    let (issuer, forger) = (ed25519(), ed25519());
    let token = list(&issuer).issue(&issuer).unwrap();
    let verifier = CredentialVerifier::new();
    let forged = sign_raw(&forger, &header(&issuer, VC_TYP), &payload_of(&token));
    assert_eq!(
        verifier.verify_status_list(&forged, NOW).unwrap_err().code,
        ErrorCode::BadSignature
    );
    let mut payload = payload_of(&token);
    payload["type"] = json!(["VerifiableCredential", "CreditRatingCredential"]);
    let mistyped = sign_raw(&issuer, &header(&issuer, VC_TYP), &payload);
    assert_eq!(
        verifier
            .verify_status_list(&mistyped, NOW)
            .unwrap_err()
            .code,
        ErrorCode::UnknownType
    );
    let mut payload = payload_of(&token);
    payload["credentialSubject"]["encodedList"] = "uAAAA".into();
    let broken = sign_raw(&issuer, &header(&issuer, VC_TYP), &payload);
    assert_eq!(
        verifier.verify_status_list(&broken, NOW).unwrap_err().code,
        ErrorCode::SchemaViolation
    );
    let early = verifier.verify_status_list(&token, NOW - 3600).unwrap_err();
    assert_eq!(early.code, ErrorCode::NotYetValid);
}

#[test]
fn newer_issue_of_a_list_replaces_an_older_one() {
    let issuer = ed25519();
    let mut lists = StatusLists::new();
    let older = list(&issuer);
    let mut newer = StatusList {
        issued_at: NOW,
        ..older.clone()
    };
    newer.set(1, true).unwrap();
    assert!(lists.insert(newer.clone()));
    assert!(!lists.insert(older));
    assert_eq!(lists.get(&newer.id), Some(&newer));
}
