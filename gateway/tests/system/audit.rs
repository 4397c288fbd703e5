//! The audit log across real gateways: decisions, governance ops and admin sessions are
//! chained; a gateway that rewrites its whole history consistently passes its own check but
//! not the checkpoints its peers keep. The store is tampered with through sled directly.

use std::path::Path;
use std::sync::Arc;

use tfc_gateway::audit::AuditEntry;
use tfc_gateway::exchange::OpDraft;
use tfc_gateway::governance::OpKind;
use tfc_gateway::store::Store;
use tfc_testkit::{Authorities, Node, top_tier, wait_until};

/// Rewrites every entry of a stopped gateway's chain: `edit` changes entry 0, then every hash
/// and link is recomputed, as someone holding the store could.
fn rewrite_history(data_dir: &Path, edit: impl Fn(&mut AuditEntry)) {
    let db = tfc_gateway::store::open_database(&data_dir.join("store")).unwrap();
    let tree = db.open_tree("audit").unwrap();
    let mut prev = tfc_gateway::audit::GENESIS.to_owned();
    for item in tree.iter() {
        let (key, bytes) = item.unwrap();
        let mut entry: AuditEntry = serde_json::from_slice(&bytes[1..]).unwrap();
        if entry.seq == 0 {
            edit(&mut entry);
        }
        entry.prev = prev;
        entry.hash = entry.compute_hash();
        prev = entry.hash.clone();
        let mut value = vec![bytes[0]];
        value.extend(serde_json::to_vec(&entry).unwrap());
        tree.insert(key, value).unwrap();
    }
    db.flush().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_keep_checkpoints_that_catch_a_rewritten_history() {
    let authorities = Authorities::new();
    let a = Node::start_default().await;
    let b = Node::start_default().await;
    a.import_wallet(&authorities.tier2_wallet(&a.did)).await;
    b.import_wallet(&authorities.tier2_wallet(&b.did)).await;
    let keys = [a.org_key(), b.org_key()];
    let charter = authorities.write_governed_charter(
        "field",
        &[&keys[0], &keys[1]],
        std::slice::from_ref(&a.did),
        "2",
        &Authorities::bootstrap_line(std::slice::from_ref(&a.address)),
    );
    a.join(&charter).await;
    b.join(&charter).await;
    a.verdict_where(b.peer_id(), |record| top_tier(record) == 2)
        .await;
    // B takes A's gossip only once it has verified A too; whichever opened the handshake
    // judged first.
    tfc_testkit::until_verified(&b, a.peer_id()).await;
    let field = a.field_id();
    let stranger =
        tfc_gateway::identity::KeyPair::generate(tfc_gateway::identity::KeyAlgorithm::Ed25519)
            .did();
    a.gateway
        .publisher()
        .propose(
            &field,
            OpDraft {
                kind: OpKind::Admit,
                target: stranger,
                reason: "audit test".into(),
                types: vec![],
                policy: None,
            },
        )
        .await
        .unwrap();
    // The chain holds the handshake and the governance op, and verifies.
    let entries = a.gateway.services().audit.since(0).unwrap();
    assert!(
        entries
            .iter()
            .any(|entry| entry.action == "handshake" && entry.decision == "allow")
    );
    assert!(
        entries
            .iter()
            .any(|entry| entry.action == "governance.admit" && entry.decision == "pending")
    );
    assert!(
        a.gateway
            .services()
            .audit
            .verify()
            .unwrap()
            .broken
            .is_none()
    );

    // A publishes its head; B keeps it.
    let checkpoint = a
        .gateway
        .publisher()
        .publish_checkpoint()
        .await
        .unwrap()
        .unwrap();
    let kept_at_b = Arc::clone(b.gateway.services());
    wait_until("B keeps A's checkpoint", || {
        let kept = !tfc_gateway::exchange::kept_checkpoints(&kept_at_b, &a.did).is_empty();
        async move { kept }
    })
    .await;
    let clean = a.gateway.publisher().check_peer_checkpoints().await;
    assert_eq!(
        (clean.peers, clean.checked, clean.mismatches.len()),
        (1, 1, 0)
    );

    // A's operator rewrites history consistently while A is stopped: A's own check passes,
    // B's checkpoint does not.
    let dir = a.stop().await;
    rewrite_history(dir.path(), |entry| entry.decision = "deny".into());
    {
        let store = Store::open(&dir.path().join("store")).unwrap();
        let report = tfc_gateway::audit::AuditLog::open(&store)
            .unwrap()
            .verify()
            .unwrap();
        assert!(
            report.broken.is_none(),
            "a consistent rewrite fools the local check"
        );
    }
    let a = Node::resume(dir).await;
    a.gateway
        .network()
        .send(tfc_gateway::net::Command::Dial(b.address.clone()))
        .await
        .unwrap();
    a.verdict_where(b.peer_id(), |record| top_tier(record) == 2)
        .await;
    let report = a.gateway.publisher().check_peer_checkpoints().await;
    assert_eq!(report.checked, 1);
    assert_eq!(report.mismatches.len(), 1, "{report:?}");
    assert_eq!(report.mismatches[0].seq, checkpoint.seq);
    assert_eq!(report.mismatches[0].peer, b.did);
    a.gateway.shutdown().await.unwrap();
    b.gateway.shutdown().await.unwrap();
}
