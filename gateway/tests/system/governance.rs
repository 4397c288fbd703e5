//! Governance across real gateways on loopback: quorum admission, automatic endorsement,
//! an admin's emergency revoke enforced at every gateway, a gateway that was offline
//! converging on reconnection, a partition whose two sides merge into one state, and bad
//! ops and non-members refused, and a suspended member reinstated: verified again, and told.
//! Every wait has a timeout.

use std::sync::Arc;

use tfc_gateway::exchange::OpDraft;
use tfc_gateway::governance::{GovCode, OpKind, SignedOp, StandingKind};
use tfc_gateway::handshake::GatewayEvent;
use tfc_gateway::metrics;
use tfc_gateway::net::Command;
use tfc_gateway::services::{PeerRecord, Services};
use tfc_testkit::{
    Authorities, Node, connected_peers, top_tier, until_verified, wait_event, wait_until,
};

fn manual(text: String) -> String {
    text.replace("endorse = \"auto\"", "endorse = \"manual\"")
}

fn no_discovery(text: String) -> String {
    manual(text).replace("discovery = true", "discovery = false")
}

fn draft(kind: OpKind, target: &str) -> OpDraft {
    OpDraft {
        kind,
        target: target.to_owned(),
        reason: "system test".into(),
        types: vec![],
        policy: None,
    }
}

/// Waits until `did` has `standing` at `party`.
async fn until_standing(services: &Arc<Services>, did: &str, standing: Option<StandingKind>) {
    let field = services.fields.all()[0].charter.field_id();
    wait_until(&format!("{did} is {standing:?}"), || {
        let now = services.governance.standing(&field, did);
        async move { now == standing }
    })
    .await;
}

/// Waits until `party` holds op `id`.
async fn until_holds(services: &Arc<Services>, field: &str, id: &str) {
    wait_until(&format!("op {id} arrives"), || {
        let held = services.governance.op(field, id).is_some();
        async move { held }
    })
    .await;
}

/// Starts `count` gateways with tier-2 wallets and `configure`d configs.
async fn start(
    authorities: &Authorities,
    count: usize,
    configure: fn(String) -> String,
) -> Vec<Node> {
    let mut nodes = Vec::new();
    for _ in 0..count {
        let node = Node::start(configure).await;
        node.import_wallet(&authorities.tier2_wallet(&node.did))
            .await;
        nodes.push(node);
    }
    nodes
}

/// A charter founded by the first three nodes, the first one admin, quorum 2, with the first
/// node as bootstrap.
fn charter(authorities: &Authorities, nodes: &[Node]) -> std::path::PathBuf {
    let keys: Vec<_> = nodes[..3].iter().map(Node::org_key).collect();
    authorities.write_governed_charter(
        "field",
        &keys.iter().collect::<Vec<_>>(),
        &[nodes[0].did.clone()],
        "2",
        &Authorities::bootstrap_line(std::slice::from_ref(&nodes[0].address)),
    )
}

/// Joins every node and waits until the first has verified all the others, in whatever
/// order their handshakes finish.
async fn form(nodes: &[Node], charter: &std::path::Path) {
    for node in nodes {
        node.join(charter).await;
    }
    for other in &nodes[1..] {
        nodes[0]
            .verdict_where(other.peer_id(), |record| top_tier(record) == 2)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_takes_two_of_three_and_an_admin_revoke_is_enforced_everywhere() {
    let authorities = Authorities::new();
    let nodes = start(&authorities, 5, manual).await;
    let charter = charter(&authorities, &nodes);
    form(&nodes, &charter).await;
    let field = nodes[0].field_id();
    let newcomer = nodes[3].did.clone();

    // One founder's proposal is 1 of the 2 signatures needed: it stays pending everywhere.
    let proposed = nodes[0]
        .gateway
        .publisher()
        .propose(&field, draft(OpKind::Admit, &newcomer))
        .await
        .unwrap();
    assert_eq!(
        (proposed.progress.signatures, proposed.progress.required),
        (1, 2)
    );
    assert_eq!(proposed.progress.committed, None);
    until_holds(nodes[2].gateway.services(), &field, &proposed.id).await;
    until_holds(nodes[1].gateway.services(), &field, &proposed.id).await;
    assert_eq!(
        nodes[2].standing(&newcomer),
        None,
        "1 of 3 is not admission"
    );

    // A second founder endorses: committed at every gateway.
    let endorsed = nodes[1]
        .gateway
        .publisher()
        .endorse(&field, &proposed.id)
        .await
        .unwrap();
    assert!(endorsed.progress.committed.is_some());
    for node in &nodes {
        until_standing(
            node.gateway.services(),
            &newcomer,
            Some(StandingKind::Member),
        )
        .await;
    }

    // A non-member (a peer with a tier, never admitted) cannot publish on the gov topic.
    let outsider = &nodes[4];
    let forged_by_outsider = outsider
        .gateway
        .publisher()
        .propose(&field, draft(OpKind::Revoke, &nodes[1].did))
        .await;
    assert!(forged_by_outsider.is_ok(), "it can write its own log");
    let first = Arc::clone(nodes[0].gateway.services());
    wait_until("the outsider's gossip is rejected", || {
        let rejected = first.metrics.get(metrics::GOSSIP, "not_member");
        async move { rejected >= 1 }
    })
    .await;
    assert_eq!(
        nodes[0].standing(&nodes[1].did),
        Some(StandingKind::Founder)
    );

    // The admin revokes the new member alone (emergency path): every founder refuses it and
    // drops its connections. Each has met it first: a founder learns a member's address only
    // once it is admitted, and one that never met it has nothing to refuse.
    let revoked_peer = nodes[3].peer_id();
    for index in [0, 1, 2] {
        until_verified(&nodes[index], revoked_peer).await;
    }
    let revoked = nodes[0]
        .gateway
        .publisher()
        .propose(&field, draft(OpKind::Revoke, &newcomer))
        .await
        .unwrap();
    assert_eq!(
        revoked.progress.committed,
        Some(tfc_gateway::governance::state::Via::Admin)
    );
    for index in [0, 1, 2, 4] {
        let services = nodes[index].gateway.services();
        until_standing(services, &newcomer, Some(StandingKind::Revoked)).await;
    }
    for node in &nodes[..3] {
        let code = wait_event(&node.journal, |event| match event {
            GatewayEvent::PeerRefused { peer, code, .. } if *peer == revoked_peer => {
                Some(code.clone())
            }
            _ => None,
        })
        .await;
        assert_eq!(code, "member_barred");
        wait_until("the revoked member's connections are dropped", || async {
            !connected_peers(node).await.contains(&revoked_peer)
        })
        .await;
    }

    // A replayed op and a forged one are refused with their codes and change nothing.
    let charter_loaded = nodes[1].gateway.services().fields.all()[0].charter.clone();
    let held = nodes[1]
        .gateway
        .services()
        .governance
        .op(&field, &revoked.id)
        .unwrap();
    let replay = nodes[1]
        .gateway
        .services()
        .governance
        .intake(
            &charter_loaded,
            held.clone(),
            tfc_gateway::credential::now_unix(),
        )
        .unwrap_err();
    assert_eq!(replay.code, GovCode::Replayed);
    let mut forged: SignedOp = held;
    forged.op.target = nodes[2].did.clone();
    let refused = nodes[1]
        .gateway
        .services()
        .governance
        .intake(&charter_loaded, forged, tfc_gateway::credential::now_unix())
        .unwrap_err();
    assert_eq!(refused.code, GovCode::Forged);
    assert_eq!(
        nodes[1].standing(&nodes[2].did),
        Some(StandingKind::Founder)
    );
    for node in nodes {
        node.gateway.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_endorse_by_themselves_and_an_offline_gateway_catches_up() {
    let authorities = Authorities::new();
    let mut nodes = start(&authorities, 5, |text| text).await;
    let charter = charter(&authorities, &nodes);
    form(&nodes, &charter).await;
    let field = nodes[0].field_id();
    let newcomer = nodes[3].did.clone();
    // The other founders verify the newcomer themselves and endorse on their own.
    nodes[0]
        .gateway
        .publisher()
        .propose(&field, draft(OpKind::Admit, &newcomer))
        .await
        .unwrap();
    for node in &nodes {
        until_standing(
            node.gateway.services(),
            &newcomer,
            Some(StandingKind::Member),
        )
        .await;
    }

    // The third founder goes offline; the admin suspends the newcomer meanwhile. Back on
    // line, the third founder converges through anti-entropy with the bootstrap gateway.
    let offline = nodes.remove(2).stop().await;
    nodes[0]
        .gateway
        .publisher()
        .propose(&field, draft(OpKind::Suspend, &newcomer))
        .await
        .unwrap();
    until_standing(
        nodes[1].gateway.services(),
        &newcomer,
        Some(StandingKind::Suspended),
    )
    .await;
    let back = Node::resume(offline).await;
    assert_eq!(
        back.standing(&newcomer),
        Some(StandingKind::Member),
        "it missed the op"
    );
    until_standing(
        back.gateway.services(),
        &newcomer,
        Some(StandingKind::Suspended),
    )
    .await;
    nodes.push(back);
    for node in nodes {
        node.gateway.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_two_sides_of_a_partition_merge_into_one_state() {
    let authorities = Authorities::new();
    // Four founders (quorum 2, two admins) and two candidates; member discovery is off, so the
    // sides stay apart until one dial heals them.
    let mut nodes = start(&authorities, 6, no_discovery).await;
    let keys: Vec<_> = nodes[..4].iter().map(Node::org_key).collect();
    let charter = authorities.write_governed_charter(
        "field",
        &keys.iter().collect::<Vec<_>>(),
        &[nodes[0].did.clone(), nodes[2].did.clone()],
        "2",
        "",
    );
    for node in &nodes {
        node.join(&charter).await;
    }
    // Side A: founders 0 and 1 with candidate 4. Side B: founders 2 and 3 with candidate 5.
    for (dialer, listener) in [(1, 0), (4, 0), (4, 1), (3, 2), (5, 2), (5, 3)] {
        let address = nodes[listener].address.clone();
        let peer = nodes[dialer].peer_id();
        nodes[dialer]
            .gateway
            .network()
            .send(Command::Dial(address))
            .await
            .unwrap();
        nodes[listener]
            .verdict_where(peer, |record| top_tier(record) == 2)
            .await;
        tfc_testkit::until_verified(&nodes[dialer], nodes[listener].peer_id()).await;
    }
    let field = nodes[0].field_id();
    let (x, y) = (nodes[4].did.clone(), nodes[5].did.clone());
    // Side B judged X as an applicant once (so it may bar X; a stranger it could not).
    let judged_x = PeerRecord {
        did: x.clone(),
        tiers: [(field.clone(), 2)].into(),
        presented: Default::default(),
        evaluated_at: tfc_gateway::credential::now_unix(),
        next_change: None,
        corporate_number: None,
        name: None,
    };
    nodes[2]
        .gateway
        .services()
        .peers
        .put(nodes[4].peer_id(), &judged_x)
        .unwrap();
    // Side A admits X; side B, unaware, revokes X at the same epoch and admits Y.
    let admit_x = nodes[0]
        .gateway
        .publisher()
        .propose(&field, draft(OpKind::Admit, &x))
        .await
        .unwrap();
    until_holds(nodes[1].gateway.services(), &field, &admit_x.id).await;
    nodes[1]
        .gateway
        .publisher()
        .endorse(&field, &admit_x.id)
        .await
        .unwrap();
    let revoke_x = nodes[2]
        .gateway
        .publisher()
        .propose(&field, draft(OpKind::Revoke, &x))
        .await
        .unwrap();
    assert!(revoke_x.progress.committed.is_some());
    let admit_y = nodes[2]
        .gateway
        .publisher()
        .propose(&field, draft(OpKind::Admit, &y))
        .await
        .unwrap();
    until_holds(nodes[3].gateway.services(), &field, &admit_y.id).await;
    nodes[3]
        .gateway
        .publisher()
        .endorse(&field, &admit_y.id)
        .await
        .unwrap();
    until_standing(nodes[1].gateway.services(), &x, Some(StandingKind::Member)).await;
    until_standing(nodes[3].gateway.services(), &x, Some(StandingKind::Revoked)).await;
    until_standing(nodes[3].gateway.services(), &y, Some(StandingKind::Member)).await;

    // Heal: one connection between the sides. Revoke wins at equal epochs; every gateway
    // ends in the same state.
    let address = nodes[2].address.clone();
    nodes[0]
        .gateway
        .network()
        .send(Command::Dial(address))
        .await
        .unwrap();
    // X itself is cut off by the first gateway that learns of its revocation, so only the
    // others are compared.
    let revoked_x = nodes.remove(4);
    for node in &nodes {
        until_standing(node.gateway.services(), &x, Some(StandingKind::Revoked)).await;
        until_standing(node.gateway.services(), &y, Some(StandingKind::Member)).await;
    }
    // Compared afresh on each look: an op still travelling changes every state in turn.
    let parties: Vec<_> = nodes
        .iter()
        .map(|node| Arc::clone(node.gateway.services()))
        .collect();
    wait_until("every gateway holds the same state", || {
        let states: Vec<_> = parties
            .iter()
            .map(|services| services.governance.state(&field))
            .collect();
        let same = states[0].is_some() && states.iter().all(|state| *state == states[0]);
        async move { same }
    })
    .await;
    revoked_x.gateway.shutdown().await.unwrap();
    for node in nodes {
        node.gateway.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reinstated_member_is_verified_again_and_learns_of_it() {
    let authorities = Authorities::new();
    let nodes = start(&authorities, 4, |text| text).await;
    let charter = charter(&authorities, &nodes);
    form(&nodes, &charter).await;
    let field = nodes[0].field_id();
    let member = nodes[3].did.clone();
    nodes[0]
        .gateway
        .publisher()
        .propose(&field, draft(OpKind::Admit, &member))
        .await
        .unwrap();
    for node in &nodes {
        until_standing(node.gateway.services(), &member, Some(StandingKind::Member)).await;
    }
    // Suspended, and the member itself learns of it: from then on it held itself barred and
    // named the field to nobody, so a reinstatement could never reach it.
    nodes[0]
        .gateway
        .publisher()
        .propose(&field, draft(OpKind::Suspend, &member))
        .await
        .unwrap();
    for node in &nodes {
        until_standing(
            node.gateway.services(),
            &member,
            Some(StandingKind::Suspended),
        )
        .await;
    }
    let reinstatement = nodes[0]
        .gateway
        .publisher()
        .propose(&field, draft(OpKind::Reinstate, &member))
        .await
        .unwrap();
    until_holds(nodes[1].gateway.services(), &field, &reinstatement.id).await;
    nodes[1]
        .gateway
        .publisher()
        .endorse(&field, &reinstatement.id)
        .await
        .unwrap();
    until_standing(
        nodes[0].gateway.services(),
        &member,
        Some(StandingKind::Member),
    )
    .await;
    // Verified again by the admin's gateway, and the reinstatement reaches the member.
    nodes[0]
        .verdict_where(nodes[3].peer_id(), |record| top_tier(record) == 2)
        .await;
    until_standing(
        nodes[3].gateway.services(),
        &member,
        Some(StandingKind::Member),
    )
    .await;
    for node in nodes {
        node.gateway.shutdown().await.unwrap();
    }
}
