use std::os::unix::fs::PermissionsExt;

use super::*;

#[test]
fn ed25519_did_round_trips() {
    let key = KeyPair::generate(KeyAlgorithm::Ed25519);
    let did = key.did();
    assert!(did.starts_with("did:key:z6Mk"), "{did}");
    assert_eq!(PublicKey::from_did(&did).unwrap(), key.public_key());
    assert_eq!(key.public_key().key_id(), format!("{did}#{}", &did[8..]));
}

#[test]
fn p256_did_round_trips() {
    let key = KeyPair::generate(KeyAlgorithm::P256);
    let did = key.did();
    assert!(did.starts_with("did:key:zDn"), "{did}");
    assert_eq!(PublicKey::from_did(&did).unwrap(), key.public_key());
}

#[test]
fn did_key_specification_examples_decode_and_re_encode() {
    // Examples from the did:key method specification.
    for did in [
        "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
        "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
        "did:key:zDnaerDaTF5BXEavCrfRZEk316dpbLsfPDZ3WJ5hRTPFU2169",
    ] {
        assert_eq!(PublicKey::from_did(did).unwrap().to_did(), did);
    }
}

#[test]
fn bad_dids_are_rejected_with_a_reason() {
    let cases = [
        ("did:web:example.com", "not the did:key method"),
        ("did:key:u6Mk", "not base58btc multibase"),
        ("did:key:z0OIl", "bad base58btc"),
        // secp256k1 multicodec (0xe7) is not supported.
        (
            "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme",
            "unsupported key type",
        ),
    ];
    for (did, expected) in cases {
        match PublicKey::from_did(did) {
            Err(IdentityError::InvalidDid { reason, .. }) => assert_eq!(reason, expected, "{did}"),
            other => panic!("{did}: {other:?}"),
        }
    }
    let short = format!(
        "did:key:z{}",
        bs58::encode([0xed, 0x01, 1, 2, 3]).into_string()
    );
    assert!(matches!(
        PublicKey::from_did(&short),
        Err(IdentityError::InvalidDid {
            reason: "bad key length",
            ..
        })
    ));
    let too_long = format!("did:key:z{}", "1".repeat(200));
    assert!(PublicKey::from_did(&too_long).is_err());
}

#[test]
fn small_order_ed25519_key_is_refused() {
    // The identity point: every signature "verifies" under it.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut bytes = ED25519_MULTICODEC.to_vec();
    bytes.extend_from_slice(&identity);
    let did = format!("did:key:z{}", bs58::encode(bytes).into_string());
    assert!(matches!(
        PublicKey::from_did(&did),
        Err(IdentityError::InvalidDid {
            reason: "weak Ed25519 key",
            ..
        })
    ));
}

#[test]
fn signatures_verify_only_for_their_message_and_key() {
    for algorithm in [KeyAlgorithm::Ed25519, KeyAlgorithm::P256] {
        let key = KeyPair::generate(algorithm);
        let other = KeyPair::generate(algorithm);
        let signature = key.sign(b"message");
        assert_eq!(signature.len(), 64);
        assert!(key.public_key().verify(b"message", &signature));
        assert!(!key.public_key().verify(b"massage", &signature));
        assert!(!other.public_key().verify(b"message", &signature));
        assert!(!key.public_key().verify(b"message", &signature[..63]));
    }
}

#[test]
fn key_file_is_written_0600_and_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("org.pem");
    let key = KeyPair::generate(KeyAlgorithm::Ed25519);
    key.save(&path).unwrap();
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(KeyPair::load(&path).unwrap().did(), key.did());
    let again = KeyPair::generate(KeyAlgorithm::Ed25519).save(&path);
    assert!(matches!(again, Err(IdentityError::AlreadyExists { .. })));
    assert_eq!(KeyPair::load(&path).unwrap().did(), key.did());
}

#[test]
fn p256_key_file_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("issuer.pem");
    let key = KeyPair::generate(KeyAlgorithm::P256);
    key.save(&path).unwrap();
    let loaded = KeyPair::load(&path).unwrap();
    assert_eq!(loaded.algorithm(), KeyAlgorithm::P256);
    assert_eq!(loaded.did(), key.did());
}

#[test]
fn group_or_world_readable_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("org.pem");
    KeyPair::generate(KeyAlgorithm::Ed25519)
        .save(&path)
        .unwrap();
    for mode in [0o640, 0o604, 0o644] {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        let error = KeyPair::load(&path).unwrap_err();
        assert_eq!(error.code(), "insecure_key_file");
        assert!(error.to_string().contains("chmod 600"), "{error}");
    }
}

#[test]
fn garbage_key_file_is_not_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.pem");
    fs::write(
        &path,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(KeyPair::load(&path).unwrap_err().code(), "not_a_key");
}

#[test]
fn did_and_peer_id_name_the_same_public_key() {
    let key = KeyPair::generate(KeyAlgorithm::Ed25519);
    let peer_id = key.peer_id().unwrap();
    // An Ed25519 PeerId is an identity multihash of the protobuf-encoded public key.
    let multihash = peer_id.as_ref();
    assert_eq!(multihash.code(), 0x00);
    let libp2p_public = libp2p::identity::PublicKey::try_decode_protobuf(multihash.digest())
        .unwrap()
        .try_into_ed25519()
        .unwrap();
    let PublicKey::Ed25519(did_public) = PublicKey::from_did(&key.did()).unwrap() else {
        panic!("org DID must be Ed25519");
    };
    assert_eq!(libp2p_public.to_bytes(), did_public.to_bytes());
}

#[test]
fn the_peer_id_follows_from_the_did_alone() {
    let key = KeyPair::generate(KeyAlgorithm::Ed25519);
    let from_did = PublicKey::from_did(&key.did()).unwrap().peer_id();
    assert_eq!(from_did, Some(key.peer_id().unwrap()));
    assert_eq!(
        KeyPair::generate(KeyAlgorithm::P256).public_key().peer_id(),
        None
    );
}

#[test]
fn the_did_follows_from_the_peer_id_alone() {
    for _ in 0..32 {
        let key = KeyPair::generate(KeyAlgorithm::Ed25519);
        let peer_id = key.peer_id().unwrap();
        assert_eq!(PublicKey::did_of_peer(&peer_id), Some(key.did()));
        assert_eq!(PublicKey::peer_id_named(&key.did()), Some(peer_id));
    }
    let issuer = KeyPair::generate(KeyAlgorithm::P256).did();
    assert_eq!(PublicKey::peer_id_named(&issuer), None);
    assert_eq!(PublicKey::peer_id_named("did:key:z6Mk"), None);
    // A PeerId that is not an Ed25519 key's (here: a hash of 32 random bytes) names no DID.
    assert_eq!(PublicKey::did_of_peer(&libp2p::PeerId::random()), None);
}

#[test]
fn p256_keys_have_no_peer_id() {
    let key = KeyPair::generate(KeyAlgorithm::P256);
    assert!(matches!(key.peer_id(), Err(IdentityError::NotEd25519)));
}

#[test]
fn debug_output_never_shows_the_secret() {
    let key = KeyPair::generate(KeyAlgorithm::Ed25519);
    let debug = format!("{key:?}");
    assert!(debug.starts_with("KeyPair(did:key:"));
    let pem = key.to_pkcs8_pem();
    let body: String = pem.lines().nth(1).unwrap().chars().take(20).collect();
    assert!(!debug.contains(&body));
}
