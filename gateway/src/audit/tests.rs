use super::*;

fn event(index: usize) -> Event {
    Event {
        actor: "did:key:z6Mkactor".into(),
        action: "data.get".into(),
        object: format!("record-{index}"),
        decision: "allow".into(),
        reason: "policy:read-own".into(),
        purpose: Some("screening".into()),
        field: Some("f00d".into()),
        ..Event::default()
    }
}

fn log_with(entries: usize) -> (Store, AuditLog) {
    let store = Store::temporary().unwrap();
    let log = AuditLog::open(&store).unwrap();
    for index in 0..entries {
        log.append(event(index)).unwrap();
    }
    (store, log)
}

fn key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

#[test]
fn an_untouched_chain_verifies_and_resumes_after_reopening() {
    let (store, log) = log_with(10);
    let report = log.verify().unwrap();
    assert_eq!(report.entries, 10);
    assert!(report.broken.is_none());
    assert_eq!(report.head, log.head().map(|(_, hash)| hash));
    drop(log);
    let reopened = AuditLog::open(&store).unwrap();
    let next = reopened.append(event(10)).unwrap();
    assert_eq!(next.seq, 10);
    assert!(reopened.verify().unwrap().broken.is_none());
}

#[test]
fn an_edited_entry_is_named() {
    let (store, log) = log_with(10);
    let tree = store.tree(Tree::Audit).unwrap();
    let mut entry: AuditEntry = tree.get(&key(4)).unwrap().unwrap();
    entry.decision = "deny".into();
    tree.put(&key(4), &entry).unwrap();
    let broken = log.verify().unwrap().broken.unwrap();
    assert_eq!((broken.position, broken.kind.as_str()), (4, "edited"));
}

#[test]
fn a_deleted_entry_is_named() {
    let (store, log) = log_with(10);
    store.tree(Tree::Audit).unwrap().remove(&key(6)).unwrap();
    let broken = log.verify().unwrap().broken.unwrap();
    assert_eq!((broken.position, broken.kind.as_str()), (6, "deleted"));
}

#[test]
fn a_replaced_entry_with_a_fresh_hash_breaks_the_next_link() {
    let (store, log) = log_with(10);
    let tree = store.tree(Tree::Audit).unwrap();
    let mut forged: AuditEntry = tree.get(&key(3)).unwrap().unwrap();
    forged.object = "a record never read".into();
    forged.hash = forged.compute_hash();
    tree.put(&key(3), &forged).unwrap();
    let broken = log.verify().unwrap().broken.unwrap();
    assert_eq!((broken.position, broken.kind.as_str()), (4, "inserted"));
}

#[test]
fn an_unreadable_entry_is_named() {
    let (store, log) = log_with(5);
    store
        .tree(Tree::Audit)
        .unwrap()
        .put_raw(&key(2), b"\x01{not json")
        .unwrap();
    let broken = log.verify().unwrap().broken.unwrap();
    assert_eq!((broken.position, broken.kind.as_str()), (2, "unreadable"));
}

#[test]
fn a_moved_entry_is_named() {
    let (store, log) = log_with(5);
    let tree = store.tree(Tree::Audit).unwrap();
    let entry: AuditEntry = tree.get(&key(4)).unwrap().unwrap();
    tree.put(&key(3), &entry).unwrap();
    let broken = log.verify().unwrap().broken.unwrap();
    assert_eq!(broken.position, 3);
}

#[test]
fn export_filters_by_time() {
    let (_store, log) = log_with(3);
    let all = log.since(0).unwrap();
    assert_eq!(all.len(), 3);
    assert!(log.since(all[2].time_ms + 1).unwrap().is_empty());
}

#[test]
fn a_follower_reads_only_the_entries_after_the_one_it_saw() {
    let (_store, log) = log_with(5);
    let seqs = |entries: Vec<AuditEntry>| entries.iter().map(|entry| entry.seq).collect::<Vec<_>>();
    assert_eq!(seqs(log.after(1, 10).unwrap()), [2, 3, 4]);
    assert_eq!(seqs(log.after(0, 2).unwrap()), [1, 2]);
    assert!(log.after(4, 10).unwrap().is_empty());
}

fn text() -> impl proptest::strategy::Strategy<Value = String> {
    // Any characters, control characters, quotes and non-ASCII among them.
    proptest::prop_oneof![
        proptest::string::string_regex("[\\x00-\\x7f]{0,12}").unwrap(),
        proptest::prelude::any::<String>(),
    ]
}

fn entries() -> impl proptest::strategy::Strategy<Value = AuditEntry> {
    use proptest::prelude::*;
    // Mostly within 2^53 (written directly), sometimes past it (through serde_jcs).
    let integer = prop_oneof![4 => -(1i64 << 53)..=1 << 53, 1 => any::<i64>()];
    let sequence = prop_oneof![4 => 0u64..=1 << 53, 1 => any::<u64>()];
    (
        (
            sequence,
            integer.clone(),
            text(),
            text(),
            text(),
            text(),
            text(),
        ),
        (
            proptest::option::of(text()),
            proptest::option::of(integer),
            proptest::option::of(any::<u64>()),
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::option::of(text()),
            text(),
        ),
    )
        .prop_map(
            |(
                (seq, time_ms, actor, action, object, decision, reason),
                (
                    purpose,
                    session_start_ms,
                    duration_ms,
                    actor_name,
                    subject,
                    subject_name,
                    field,
                    prev,
                ),
            )| AuditEntry {
                seq,
                time_ms,
                actor,
                action,
                object,
                decision,
                reason,
                purpose,
                session_start_ms,
                duration_ms,
                actor_name,
                subject,
                subject_name,
                field,
                prev,
                hash: "ignored".into(),
            },
        )
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, ..Default::default() })]

    /// The hash written straight from the entry is the hash of its RFC 8785 form, as
    /// `serde_jcs` writes it: chains written before verify, and other tools agree.
    #[test]
    fn the_direct_hash_is_the_hash_of_the_canonical_json(entry in entries()) {
        proptest::prop_assert_eq!(entry.compute_hash(), entry.compute_hash_jcs());
    }
}
