use super::*;
use crate::identity::KeyAlgorithm;

fn labels() -> Labels {
    Labels {
        category: Category::NonPersonal,
        value_level: ValueLevel::High,
        rights_holders: BTreeSet::new(),
        allowed_purposes: ["screening".to_owned()].into(),
        disclosure: BTreeSet::new(),
    }
}

fn spaces(limit: usize) -> (Store, tempfile::TempDir, Spaces) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::temporary().unwrap();
    let spaces = Spaces::open(&store, &dir.path().join(DATA_KEY_FILE), limit).unwrap();
    (store, dir, spaces)
}

#[test]
fn a_record_round_trips_signed_and_versioned() {
    let (_store, dir, spaces) = spaces(10);
    let owner = KeyPair::generate(KeyAlgorithm::Ed25519);
    let body = serde_json::json!({"application": "耐震改修", "amount": 1_200_000});
    let record = spaces
        .put(
            "admin",
            &owner,
            &owner.did(),
            "f",
            2,
            None,
            labels(),
            body.clone(),
            vec![],
        )
        .unwrap();
    assert_eq!(record.version, 1);
    let read = spaces.get("f", 2, &record.id).unwrap();
    assert_eq!(read, record);
    assert!(read.signature_holds());
    let again = spaces
        .put(
            "admin",
            &owner,
            &owner.did(),
            "f",
            2,
            Some(&record.id),
            labels(),
            body,
            vec![],
        )
        .unwrap();
    assert_eq!(again.version, 2);
    assert_eq!(
        spaces.ids("f", 2).unwrap(),
        std::slice::from_ref(&record.id)
    );
    let mode = std::fs::metadata(dir.path().join(DATA_KEY_FILE))
        .unwrap()
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
}

#[test]
fn records_are_encrypted_at_rest_and_tampering_is_caught() {
    let (store, _dir, spaces) = spaces(10);
    let owner = KeyPair::generate(KeyAlgorithm::Ed25519);
    let record = spaces
        .put(
            "admin",
            &owner,
            &owner.did(),
            "f",
            1,
            None,
            labels(),
            serde_json::json!({"secret": "設計図"}),
            vec![],
        )
        .unwrap();
    let tree = store.tree(Tree::Records).unwrap();
    let storage_key = key("f", 1, &record.id);
    let sealed: Sealed = tree.get(&storage_key).unwrap().unwrap();
    let raw = STANDARD.decode(&sealed.ciphertext).unwrap();
    assert!(
        !String::from_utf8_lossy(&raw).contains("secret"),
        "stored in clear"
    );
    // A flipped bit in the ciphertext.
    let mut flipped = raw.clone();
    flipped[0] ^= 1;
    tree.put(
        &storage_key,
        &Sealed {
            nonce: sealed.nonce.clone(),
            ciphertext: STANDARD.encode(&flipped),
        },
    )
    .unwrap();
    assert_eq!(
        spaces.get("f", 1, &record.id).unwrap_err().code,
        DataCode::Tampered
    );
    // A sealed record moved to another key does not open there.
    tree.put(&storage_key, &sealed).unwrap();
    tree.put(&key("f", 1, "elsewhere"), &sealed).unwrap();
    assert_eq!(
        spaces.get("f", 1, "elsewhere").unwrap_err().code,
        DataCode::Tampered
    );
    assert!(spaces.get("f", 1, &record.id).is_ok());
}

#[test]
fn a_record_edited_and_resealed_without_the_writers_key_is_refused() {
    let (_store, _dir, spaces) = spaces(10);
    let owner = KeyPair::generate(KeyAlgorithm::Ed25519);
    let mut record = spaces
        .put(
            "admin",
            &owner,
            &owner.did(),
            "f",
            1,
            None,
            labels(),
            serde_json::json!({"amount": 1}),
            vec![],
        )
        .unwrap();
    record.body = serde_json::json!({"amount": 1_000_000});
    // Someone with the data key but not the writer's key re-seals the edit.
    spaces.store(&record).unwrap();
    assert_eq!(
        spaces.get("f", 1, &record.id).unwrap_err().code,
        DataCode::Tampered
    );
    assert_eq!(spaces.keep(&record).unwrap_err().code, DataCode::Tampered);
}

#[test]
fn the_bulk_change_guard_bars_a_mass_deleter() {
    let (_store, _dir, spaces) = spaces(3);
    let owner = KeyPair::generate(KeyAlgorithm::Ed25519);
    let ids: Vec<String> = (0..6)
        .map(|index| {
            spaces
                .put(
                    "admin",
                    &owner,
                    &owner.did(),
                    "f",
                    1,
                    None,
                    labels(),
                    serde_json::json!({"n": index}),
                    vec![],
                )
                .unwrap()
                .id
        })
        .collect();
    for id in &ids[..3] {
        spaces.delete("ransomware", "f", 1, id).unwrap();
    }
    assert_eq!(
        spaces
            .delete("ransomware", "f", 1, &ids[3])
            .unwrap_err()
            .code,
        DataCode::BulkGuard
    );
    assert_eq!(
        spaces
            .delete("ransomware", "f", 1, &ids[4])
            .unwrap_err()
            .code,
        DataCode::Denied
    );
    assert!(
        spaces.get("f", 1, &ids[3]).is_ok(),
        "the refused deletion changed nothing"
    );
    // Another actor, or another space, is not affected.
    spaces.delete("admin", "f", 1, &ids[5]).unwrap();
}

#[test]
fn sizes_and_tiers_are_bounded() {
    let (_store, _dir, spaces) = spaces(10);
    let owner = KeyPair::generate(KeyAlgorithm::Ed25519);
    let huge = serde_json::json!({"blob": "x".repeat(MAX_BODY_BYTES)});
    assert_eq!(
        spaces
            .put(
                "admin",
                &owner,
                &owner.did(),
                "f",
                1,
                None,
                labels(),
                huge,
                vec![]
            )
            .unwrap_err()
            .code,
        DataCode::Malformed
    );
    assert_eq!(
        spaces
            .put(
                "admin",
                &owner,
                &owner.did(),
                "f",
                4,
                None,
                labels(),
                serde_json::json!({}),
                vec![]
            )
            .unwrap_err()
            .code,
        DataCode::Malformed
    );
    assert_eq!(
        spaces.get("f", 1, "nothing").unwrap_err().code,
        DataCode::NotFound
    );
}

fn pseudo_random(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

#[test]
fn an_attachment_is_chunked_sealed_and_checked() {
    let (store, _dir, spaces) = spaces(10);
    let content = pseudo_random(ATTACHMENT_CHUNK_BYTES * 2 + 1234);
    let mut upload = spaces.upload();
    for piece in content.chunks(100_000) {
        upload.write(piece).unwrap();
    }
    let attachment = upload.finish().unwrap();
    assert_eq!(attachment.size, content.len() as u64);
    assert_eq!(attachment.sha256, hex(&Sha256::digest(&content)));
    assert_eq!(spaces.attachment(&attachment.sha256).unwrap(), content);
    let (_, last) = spaces.chunk(&attachment.sha256, 2).unwrap();
    assert!(last);
    assert_eq!(
        spaces.chunk(&attachment.sha256, 3).unwrap_err().code,
        DataCode::NotFound
    );

    // The same content again is kept once.
    let before = store.tree(Tree::Attachments).unwrap().len();
    let mut again = spaces.upload();
    again.write(&content).unwrap();
    assert_eq!(again.finish().unwrap().sha256, attachment.sha256);
    assert_eq!(store.tree(Tree::Attachments).unwrap().len(), before);

    // A record refers to it by hash; an unknown hash is refused.
    let owner = KeyPair::generate(KeyAlgorithm::Ed25519);
    let named = AttachmentRef {
        name: "drawing.pdf".into(),
        sha256: attachment.sha256.clone(),
        size: 0,
    };
    let record = spaces
        .put(
            "admin",
            &owner,
            &owner.did(),
            "f",
            1,
            None,
            labels(),
            serde_json::json!({}),
            vec![named],
        )
        .unwrap();
    assert_eq!(record.attachments[0].size, content.len() as u64);
    let unknown = AttachmentRef {
        name: "x".into(),
        sha256: "0".repeat(64),
        size: 0,
    };
    assert_eq!(
        spaces
            .put(
                "admin",
                &owner,
                &owner.did(),
                "f",
                1,
                None,
                labels(),
                serde_json::json!({}),
                vec![unknown]
            )
            .unwrap_err()
            .code,
        DataCode::NotFound
    );

    // A chunk altered at rest is caught.
    let tree = store.tree(Tree::Attachments).unwrap();
    let (chunk_key, sealed) = tree
        .entries_lossy::<Sealed>()
        .unwrap()
        .into_iter()
        .find(|(key, _)| key.starts_with(b"chunk/"))
        .map(|(key, sealed)| (key, sealed.unwrap()))
        .unwrap();
    let mut bytes = STANDARD.decode(&sealed.ciphertext).unwrap();
    bytes[10] ^= 0xff;
    tree.put(
        &chunk_key,
        &Sealed {
            nonce: sealed.nonce,
            ciphertext: STANDARD.encode(bytes),
        },
    )
    .unwrap();
    assert_eq!(
        spaces.attachment(&attachment.sha256).unwrap_err().code,
        DataCode::Tampered
    );
}

#[test]
fn attachments_are_bounded_and_not_empty() {
    let (_store, _dir, spaces) = spaces(10);
    let mut upload = spaces.upload();
    let too_big = vec![0u8; MAX_ATTACHMENT_BYTES as usize + 1];
    assert_eq!(
        upload.write(&too_big).unwrap_err().code,
        DataCode::Malformed
    );
    assert_eq!(
        spaces.upload().finish().unwrap_err().code,
        DataCode::Malformed
    );
}
