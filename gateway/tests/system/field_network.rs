//! Real gateways (`init` + `Gateway::start`) on loopback forming a field over the network:
//! members found through the members they verified, from one bootstrap address in the
//! charter, status lists spread by gossip and by `/tfc/sync/2` anti-entropy, tiers re-judged
//! when a list changes, and a member sending invalid gossip scored down. Every wait has a
//! timeout.

use tfc_gateway::credential::{StatusEntry, StatusPurpose, now_unix};
use tfc_gateway::metrics;
use tfc_gateway::net::{Command, TopicKind, topic_name};
use tfc_gateway::services::status::Intake;
use tfc_testkit::{Authorities, Node, next_corporate_number, top_tier, wait_until};

const LIST_ID: &str = "https://registrar.example/status/1";
const LICENCE_INDEX: usize = 7;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_find_each_other_and_status_lists_reach_everyone() {
    let authorities = Authorities::new();
    let mut nodes = Vec::new();
    for _ in 0..4 {
        nodes.push(Node::start_default().await);
    }
    let year = now_unix() + 365 * 86_400;
    let watched = StatusEntry::new(LIST_ID, StatusPurpose::Revocation, LICENCE_INDEX);
    for (index, node) in nodes.iter().enumerate() {
        let status = if index == 1 {
            vec![watched.clone()]
        } else {
            vec![]
        };
        let wallet = authorities.wallet(
            &node.did,
            &next_corporate_number(),
            80,
            Some((year, status)),
        );
        node.import_wallet(&wallet).await;
    }
    // Only the first gateway is named in the charter; the others find each other through
    // the members they verified.
    let keys: Vec<_> = nodes.iter().map(Node::org_key).collect();
    let charter = authorities.write_governed_charter(
        "field",
        &keys.iter().collect::<Vec<_>>(),
        std::slice::from_ref(&nodes[0].did),
        "1",
        &Authorities::bootstrap_line(std::slice::from_ref(&nodes[0].address)),
    );
    let [hub, watched_member, observer, late] = &nodes[..] else {
        unreachable!()
    };
    eprintln!(
        "roles: hub {} watched {} observer {} late {}",
        hub.did, watched_member.did, observer.did, late.did
    );
    hub.join(&charter).await;
    let clean = authorities.revocation_list(LIST_ID, now_unix() - 60, &[]);
    assert!(matches!(
        hub.gateway.import_status_list(&clean).await.unwrap(),
        Intake::Taken(_)
    ));
    watched_member.join(&charter).await;
    observer.join(&charter).await;

    // The observer learns of the watched member only from the hub, gets the list from a
    // peer by anti-entropy, and then sees the licence count.
    let member = watched_member.peer_id();
    let record = observer
        .verdict_where(member, |record| top_tier(record) == 2)
        .await;
    assert_eq!(record.did, watched_member.did);

    // The registrar revokes the licence; the new list is imported at one gateway and spreads
    // by gossip; every member re-judges the licence holder without a new handshake.
    let revoked = authorities.revocation_list(LIST_ID, now_unix(), &[LICENCE_INDEX]);
    hub.gateway.import_status_list(&revoked).await.unwrap();
    observer
        .verdict_where(member, |record| top_tier(record) == 1)
        .await;
    assert!(
        observer
            .gateway
            .services()
            .metrics
            .get(metrics::GOSSIP, "accept")
            >= 1,
        "the revocation reached the observer by gossip"
    );

    // A gateway joining later gets the current list from its peers and finds the licence
    // holder through them.
    late.join(&charter).await;
    let services = std::sync::Arc::clone(late.gateway.services());
    wait_until("the late gateway holds the revoked list", || {
        let held = services
            .status_list_summaries()
            .iter()
            .any(|list| list.id == LIST_ID && list.set_entries == 1);
        async move { held }
    })
    .await;
    late.verdict_where(member, |record| top_tier(record) == 1)
        .await;
    for node in nodes {
        node.gateway.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_sending_invalid_gossip_is_rejected_and_scored_down() {
    let authorities = Authorities::new();
    let honest = Node::start_default().await;
    let noisy = Node::start_default().await;
    honest
        .import_wallet(&authorities.tier2_wallet(&honest.did))
        .await;
    noisy
        .import_wallet(&authorities.tier2_wallet(&noisy.did))
        .await;
    let charter = authorities.write_governed_charter(
        "field",
        &[&honest.org_key(), &noisy.org_key()],
        std::slice::from_ref(&honest.did),
        "1",
        &Authorities::bootstrap_line(std::slice::from_ref(&honest.address)),
    );
    honest.join(&charter).await;
    noisy.join(&charter).await;
    honest
        .verdict_where(noisy.peer_id(), |record| top_tier(record) == 2)
        .await;

    let field = honest.gateway.services().fields.all()[0].charter.field_id();
    let topic = topic_name(&field, TopicKind::Status);
    let rejected = || {
        let services = honest.gateway.services();
        services.metrics.get(metrics::GOSSIP, "malformed")
            + services.metrics.get(metrics::GOSSIP, "too_large")
    };
    // Published until the honest gateway has judged three: the first may go out before the
    // noisy gateway has seen the honest one subscribe.
    let mut sent = 0u32;
    wait_until("three invalid messages were rejected", || {
        sent += 1;
        let data = format!("not an envelope #{sent}").into_bytes();
        let commands = noisy.gateway.network().commands();
        let topic = topic.clone();
        let count = rejected();
        async move {
            let _ = commands
                .send(Command::Publish {
                    topic,
                    data,
                    reply: None,
                })
                .await;
            count >= 3
        }
    })
    .await;
    let (reply, score) = tokio::sync::oneshot::channel();
    honest
        .gateway
        .network()
        .send(Command::PeerScore(noisy.peer_id(), reply))
        .await
        .unwrap();
    let score = score.await.unwrap().expect("the noisy peer has a score");
    assert!(
        score < -80.0,
        "score {score} is past the graylist threshold"
    );
    honest.gateway.shutdown().await.unwrap();
    noisy.gateway.shutdown().await.unwrap();
}
