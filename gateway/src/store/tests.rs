use serde::Deserialize;

use super::*;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Nonce {
    expires_at: i64,
}

impl Stored for Nonce {
    const VERSION: u8 = 2;

    /// Version 1 stored the expiry as a bare number.
    fn upgrade(version: u8, body: &[u8]) -> Result<Self, String> {
        match version {
            1 => serde_json::from_slice(body)
                .map(|expires_at| Nonce { expires_at })
                .map_err(|error| error.to_string()),
            other => Err(format!("unknown version {other}")),
        }
    }
}

#[test]
fn values_round_trip_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        let replay = store.tree(Tree::Replay).unwrap();
        replay.put(b"n1", &Nonce { expires_at: 10 }).unwrap();
        replay.put(b"n2", &Nonce { expires_at: 20 }).unwrap();
        store.commit_blocking().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let replay = store.tree(Tree::Replay).unwrap();
    assert_eq!(
        replay.get::<Nonce>(b"n1").unwrap(),
        Some(Nonce { expires_at: 10 })
    );
    assert_eq!(replay.entries::<Nonce>().unwrap().len(), 2);
    replay.remove(b"n1").unwrap();
    assert_eq!(replay.get::<Nonce>(b"n1").unwrap(), None);
    assert_eq!(replay.len(), 1);
}

#[test]
fn trees_are_separate() {
    let store = Store::temporary().unwrap();
    store
        .tree(Tree::Peers)
        .unwrap()
        .put(b"k", &Nonce { expires_at: 1 })
        .unwrap();
    assert!(store.tree(Tree::Wallet).unwrap().is_empty());
}

#[test]
fn older_encodings_are_upgraded_on_read() {
    let store = Store::temporary().unwrap();
    let tree = store.tree(Tree::Replay).unwrap();
    tree.tree.insert(b"old", b"\x0142".to_vec()).unwrap();
    assert_eq!(
        tree.get::<Nonce>(b"old").unwrap(),
        Some(Nonce { expires_at: 42 })
    );
    tree.tree.insert(b"bad", b"\x09{}".to_vec()).unwrap();
    assert_eq!(
        tree.get::<Nonce>(b"bad").unwrap_err().code(),
        "store_corrupt"
    );
    tree.tree.insert(b"empty", Vec::new()).unwrap();
    assert_eq!(
        tree.get::<Nonce>(b"empty").unwrap_err().code(),
        "store_corrupt"
    );
}

#[test]
fn a_store_from_a_newer_gateway_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let meta = store.db.open_tree(Tree::Meta.name()).unwrap();
        meta.insert(SCHEMA_KEY, &(SCHEMA_VERSION + 1).to_be_bytes())
            .unwrap();
        store.commit_blocking().unwrap();
    }
    assert_eq!(
        Store::open(dir.path()).err().unwrap().code(),
        "store_too_new"
    );
}

#[test]
fn backup_and_restore_carry_every_tree() {
    let dir = tempfile::tempdir().unwrap();
    let source = Store::temporary().unwrap();
    for (tree, key) in [(Tree::Replay, "a"), (Tree::Peers, "b"), (Tree::Wallet, "c")] {
        source
            .tree(tree)
            .unwrap()
            .put(key.as_bytes(), &Nonce { expires_at: 7 })
            .unwrap();
    }
    let file = dir.path().join("backup.txt");
    assert_eq!(
        source.backup(&file).unwrap(),
        4,
        "three values and the schema version"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "a backup is the operator's alone");
    assert_eq!(
        source.backup(&file).unwrap_err().code(),
        "backup_failed",
        "never overwrites"
    );
    let target = Store::open(&dir.path().join("restored")).unwrap();
    assert_eq!(target.restore(&file).unwrap(), 4);
    assert_eq!(
        target
            .tree(Tree::Peers)
            .unwrap()
            .get::<Nonce>(b"b")
            .unwrap(),
        Some(Nonce { expires_at: 7 })
    );
    // A second restore would mix two stores.
    assert_eq!(target.restore(&file).unwrap_err().code(), "backup_failed");
}

#[test]
fn a_damaged_backup_restores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let source = Store::temporary().unwrap();
    source
        .tree(Tree::Wallet)
        .unwrap()
        .put(b"c", &Nonce { expires_at: 7 })
        .unwrap();
    let file = dir.path().join("backup.txt");
    source.backup(&file).unwrap();
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("wallet !!! ???\n");
    std::fs::write(&file, text).unwrap();
    let target = Store::temporary().unwrap();
    let error = target.restore(&file).unwrap_err();
    assert!(error.to_string().contains("damaged"), "{error}");
    assert!(target.tree(Tree::Wallet).unwrap().is_empty());
    std::fs::write(&file, "something else\n").unwrap();
    assert!(
        target
            .restore(&file)
            .unwrap_err()
            .to_string()
            .contains("not a tfc-gateway backup")
    );
}

#[test]
fn a_store_held_open_is_reported_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let _held = Store::open(dir.path()).unwrap();
    assert_eq!(
        Store::open(dir.path()).err().unwrap().code(),
        "store_in_use"
    );
}

#[test]
fn commits_asked_while_the_writer_is_busy_share_one_flush() {
    const WRITERS: u8 = 32;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let held = store.writer.hold.lock().unwrap();
    let waiters: Vec<_> = (0..WRITERS)
        .map(|n| {
            let store = store.clone();
            std::thread::spawn(move || {
                let nonce = Nonce {
                    expires_at: i64::from(n),
                };
                store.tree(Tree::Replay)?.put(&[n], &nonce)?;
                store.commit_blocking()
            })
        })
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while store.writer_counts().asked() < u64::from(WRITERS) {
        assert!(
            std::time::Instant::now() < deadline,
            "every writer asks for a commit"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    drop(held);
    for waiter in waiters {
        waiter.join().unwrap().unwrap();
    }
    let counts = store.writer_counts();
    assert_eq!(counts.commits(), u64::from(WRITERS));
    assert_eq!(
        counts.batches(),
        1,
        "one flush answers every waiting commit"
    );
    drop(store);
    let reopened = Store::open(dir.path()).unwrap();
    assert_eq!(
        reopened.tree(Tree::Replay).unwrap().len(),
        usize::from(WRITERS)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_commits_are_answered_once_durable() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..100u8 {
        let tree = store.tree(Tree::Replay).unwrap();
        tasks.spawn(async move {
            let nonce = Nonce {
                expires_at: i64::from(n),
            };
            tree.put_durable(&[n], &nonce).await
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap().unwrap();
    }
    let counts = store.writer_counts();
    assert_eq!(counts.commits(), 100);
    assert!(counts.batches() >= 1 && counts.batches() <= 100);
    drop(store);
    let reopened = Store::open(dir.path()).unwrap();
    assert_eq!(reopened.tree(Tree::Replay).unwrap().len(), 100);
}
