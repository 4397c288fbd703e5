//! Need to know, from outside: a stranger on the wire (a fresh key, no credentials, but the
//! field id in hand) probes every gateway of both demo scenarios, as the side that opens
//! the handshake and as the side that answers, while members gossip TLP:AMBER intel. It must
//! learn nothing: no credential beyond the proof of key, no field id, no gossip, no sync or
//! data answer. A member of another field gets nothing of this field, even from a gateway in
//! both; and an address that keeps sending fresh identities is throttled.

use std::time::Duration;

use serde_json::Value;
use tfc_gateway::demo::{Scenario, play_quietly};
use tfc_gateway::localnet::LocalGateway;
use tfc_gateway::net::{
    Command, DataRequest, DataResponse, STRANGER_BURST, SyncRequest, SyncResponse, mesh_protocol,
};
use tfc_gateway::services::REFUSED;
use tfc_gateway::threats::{ActionKind, Countermeasure, IndicatorDraft, Severity, Tlp, compose};
use tfc_testkit::wire::{Side, Stranger, every_type};
use tfc_testkit::{Authorities, Node, top_tier, wait_until};

/// An AMBER indicator about an address, distinct per `n`.
fn amber(n: u32) -> Value {
    let now = tfc_gateway::credential::now_unix();
    let draft = IndicatorDraft {
        name: format!("amber {n}"),
        description: "TLP:AMBER intel for the field's members only".into(),
        pattern: format!("[ipv4-addr:value = '198.51.100.{}']", n % 250 + 1),
        severity: Severity::Low,
        countermeasure: Countermeasure {
            action: ActionKind::BlockAddress,
            tier: None,
            credential: None,
        },
        tlp: Tlp::Amber,
        confidence: None,
        valid_from: now - 5,
        valid_until: now + 3600,
    };
    compose(&draft, now).expect("a valid indicator")
}

/// Every request a stranger may try on sync and data, about `field`.
fn probes(field: &str, stranger: &str) -> (Vec<SyncRequest>, Vec<DataRequest>) {
    let sync = vec![
        SyncRequest::StatusLists {
            field: field.into(),
            have: Default::default(),
        },
        SyncRequest::Ops {
            field: field.into(),
            have: Default::default(),
        },
        SyncRequest::Checkpoints {
            field: field.into(),
            of: stranger.into(),
        },
        SyncRequest::Members {
            field: field.into(),
        },
        SyncRequest::StatusLists {
            field: "0".repeat(64),
            have: Default::default(),
        },
    ];
    let data = vec![
        DataRequest::List {
            field: field.into(),
            tier: 3,
            purpose: "subsidy-review".into(),
            filter: Default::default(),
        },
        DataRequest::Get {
            field: field.into(),
            tier: 2,
            id: "00000000-0000-0000-0000-000000000000".into(),
            purpose: "manufacturing".into(),
        },
    ];
    (sync, data)
}

/// A stranger's probe of one gateway from one side; panics naming what leaked. A gateway
/// that `screens` applicants (a founder or admin of a field open to applications, as its
/// charter says publicly) may answer the stranger about the field the stranger named: it
/// takes it for an applicant, and refuses it once it has judged it.
async fn probe(
    name: &str,
    gateway: &LocalGateway,
    side: Side,
    field: &str,
    reporter: &LocalGateway,
    n: u32,
) {
    let target = gateway.peer_id();
    let mut stranger = Stranger::new(target, side, &[field.to_owned()]);
    let case = format!("{name} ({side:?})");
    stranger
        .connect(&gateway.address)
        .await
        .unwrap_or_else(|error| panic!("{case}: cannot connect: {error}"));
    // Members gossip TLP:AMBER intel while the stranger is connected.
    reporter
        .gateway
        .publisher()
        .publish_threat(field, amber(n), Vec::new())
        .await
        .expect("a member publishes");
    let (sync, data) = probes(field, &stranger.did());
    for request in sync {
        let _ = stranger.sync(request).await;
    }
    for request in data {
        let _ = stranger.data(request).await;
    }
    if side == Side::Opener {
        let _ = stranger.open(&every_type()).await;
    }
    stranger.listen(Duration::from_millis(700)).await;
    let heard = &stranger.heard;
    for (token, credentials) in heard.presentations() {
        assert_eq!(
            credentials, 0,
            "{case}: a credential reached the stranger: {token}"
        );
    }
    let screens = gateway
        .gateway
        .services()
        .fields
        .get(field)
        .is_some_and(|joined| gateway.gateway.services().screens_applicants(&joined));
    let text = heard.text();
    assert!(
        screens || !text.contains(field),
        "{case}: the field id reached the stranger: {text}"
    );
    let tag = mesh_protocol(field);
    assert!(
        !heard
            .protocols
            .iter()
            .any(|protocol| protocol.contains("/tfc/mesh/")),
        "{case}: a field's gossip protocol was offered: {:?} ({tag})",
        heard.protocols
    );
    assert!(
        heard.gossip.is_empty(),
        "{case}: gossip reached the stranger"
    );
    assert!(
        heard.subscriptions.is_empty(),
        "{case}: subscriptions reached the stranger"
    );
    for answer in &heard.sync {
        assert!(
            matches!(answer, SyncResponse::Refused { code, message } if code == REFUSED && message == REFUSED),
            "{case}: a sync answer: {answer:?}"
        );
    }
    for answer in &heard.data {
        assert!(
            matches!(answer, DataResponse::Refused { code, reason } if code == REFUSED && reason == REFUSED),
            "{case}: a data answer: {answer:?}"
        );
    }
    for message in &heard.handshake {
        let value: Value = serde_json::from_str(message).unwrap_or_default();
        if value["kind"] == "refused" {
            assert_eq!(value["code"], REFUSED, "{case}: {message}");
        }
        // What the gateway says in a hello: its DID, a nonce, a proof, and nothing to answer.
        if value["kind"] == "hello" && !screens {
            assert!(
                value["asks"].as_array().is_none_or(Vec::is_empty)
                    && value["turn"]["answers"]
                        .as_array()
                        .is_none_or(Vec::is_empty)
                    && value["turn"]["asks"].as_array().is_none_or(Vec::is_empty),
                "{case}: the gateway's hello named something: {message}"
            );
        }
    }
}

async fn strangers_learn_nothing(scenario: Scenario) {
    tfc_testkit::init_logs();
    let root = tempfile::tempdir().unwrap();
    let played = play_quietly(scenario, root.path())
        .await
        .expect("the scenario plays");
    assert!(played.report.all_as_expected, "{:?}", played.report.steps);
    let field = played.field.clone();
    let mut n = 0;
    for (index, (name, gateway)) in played.gateways.iter().enumerate() {
        // The first gateway of the cast reports, except when it is the one probed.
        let reporter = &played.gateways[usize::from(index == 0)].1;
        for side in [Side::Opener, Side::Responder] {
            n += 1;
            probe(name, gateway, side, &field, reporter, n).await;
        }
    }
    // The members themselves heard the AMBER intel: the gossip did run.
    let (_, member) = &played.gateways[2];
    let threats = std::sync::Arc::clone(member.gateway.publisher().threats());
    wait_until("a member holds the AMBER intel", || {
        let held = threats.actions(None).len();
        async move { held > 0 }
    })
    .await;
    for (_, gateway) in played.gateways {
        gateway.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_learns_nothing_from_any_gateway_of_the_housing_field() {
    strangers_learn_nothing(Scenario::HousingSubsidy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_learns_nothing_from_any_gateway_of_the_supply_chain() {
    strangers_learn_nothing(Scenario::SupplyChain).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_of_another_field_gets_nothing_of_this_one_even_from_a_gateway_in_both() {
    tfc_testkit::init_logs();
    let authorities = Authorities::new();
    let both = Node::start_default().await;
    let only_a = Node::start_default().await;
    let only_b = Node::start_default().await;
    for node in [&both, &only_a, &only_b] {
        node.import_wallet(&authorities.tier2_wallet(&node.did))
            .await;
    }
    let field_a = authorities.write_governed_charter(
        "a",
        &[&both.org_key(), &only_a.org_key()],
        std::slice::from_ref(&both.did),
        "1",
        "",
    );
    let field_b = authorities.write_governed_charter(
        "b",
        &[&both.org_key(), &only_b.org_key()],
        std::slice::from_ref(&both.did),
        "1",
        "",
    );
    both.join(&field_a).await;
    both.join(&field_b).await;
    only_a.join(&field_a).await;
    only_b.join(&field_b).await;
    let id_of = |path: &std::path::Path| {
        tfc_gateway::charter::Charter::load(path)
            .unwrap()
            .field_id()
    };
    let (a, b) = (id_of(&field_a), id_of(&field_b));
    for member in [&only_a, &only_b] {
        member
            .gateway
            .network()
            .send(Command::Dial(both.address.clone()))
            .await
            .unwrap();
        both.verdict_where(member.peer_id(), |record| top_tier(record) == 2)
            .await;
        member
            .verdict_where(both.peer_id(), |record| top_tier(record) == 2)
            .await;
    }
    // The gateway in both runs each field's gossip with that field's member only, and each
    // member with it in its own field alone.
    wait_until("both fields' gossip runs", || {
        let (both, only_a, only_b) = (&both, &only_a, &only_b);
        let (a, b) = (a.clone(), b.clone());
        async move {
            both.mesh_fields(only_a.peer_id()).await == [a.clone()].into()
                && both.mesh_fields(only_b.peer_id()).await == [b.clone()].into()
                && only_a.mesh_fields(both.peer_id()).await == [a].into()
                && only_b.mesh_fields(both.peer_id()).await == [b].into()
        }
    })
    .await;
    // The member of A alone was told nothing of B: no tier, no record, no disclosure.
    let record = only_a.gateway.services().peers.get(both.peer_id()).unwrap();
    assert_eq!(record.tiers.keys().collect::<Vec<_>>(), [&a]);
    let logged = only_a
        .gateway
        .services()
        .disclosures
        .query(&Default::default(), 1000)
        .unwrap();
    assert!(!logged.is_empty() && logged.iter().all(|entry| entry.field == a));
    let at_both = both
        .gateway
        .services()
        .disclosures
        .query(&Default::default(), 1000)
        .unwrap();
    assert!(
        at_both
            .iter()
            .all(|entry| (entry.peer == only_a.did) == (entry.field == a))
    );
    // B's intel, published by B's member, reaches the gateway in both, and never A's member.
    only_b
        .gateway
        .publisher()
        .publish_threat(&b, amber(1), Vec::new())
        .await
        .unwrap();
    let at_both_threats = std::sync::Arc::clone(both.gateway.publisher().threats());
    wait_until("B's intel reaches the gateway in both", || {
        let held = at_both_threats.actions(None).len();
        async move { held == 1 }
    })
    .await;
    // A's member gossips in A meanwhile: what it heard since is A's alone.
    only_a
        .gateway
        .publisher()
        .publish_threat(&a, amber(2), Vec::new())
        .await
        .unwrap();
    wait_until("A's intel reaches the gateway in both", || {
        let held = at_both_threats.actions(None).len();
        async move { held == 2 }
    })
    .await;
    assert_eq!(
        only_a.gateway.publisher().threats().actions(None).len(),
        1,
        "A's member holds A's intel and nothing of B's"
    );
    assert!(
        only_a.gateway.services().governance.state(&b).is_none(),
        "no governance of B reached A's member"
    );
    // And asking the gateway in both about B directly gets the stranger's refusal.
    let refused = tfc_gateway::net::call(&only_a.gateway.network().commands(), |reply| {
        Command::Sync {
            peer: both.peer_id(),
            request: SyncRequest::Members { field: b.clone() },
            reply,
        }
    })
    .await
    .unwrap();
    assert!(matches!(refused, SyncResponse::Refused { code, .. } if code == REFUSED));
    for node in [both, only_a, only_b] {
        node.gateway.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_cycling_fresh_keys_is_throttled_but_members_still_get_in() {
    tfc_testkit::init_logs();
    let authorities = Authorities::new();
    let gateway =
        Node::start(|text| text.replace("handshake_grace = \"10s\"", "handshake_grace = \"1s\""))
            .await;
    let member = Node::start_default().await;
    for node in [&gateway, &member] {
        node.import_wallet(&authorities.tier2_wallet(&node.did))
            .await;
    }
    let charter = authorities.write_governed_charter(
        "field",
        &[&gateway.org_key(), &member.org_key()],
        std::slice::from_ref(&gateway.did),
        "1",
        "",
    );
    gateway.join(&charter).await;
    member.join(&charter).await;
    let field = gateway.field_id();
    // Fresh identities from 127.0.0.1, each asking, then hanging up (or left to time
    // out): the burst, then the door shuts.
    let mut strangers = Vec::new();
    for _ in 0..STRANGER_BURST as usize {
        let mut stranger = Stranger::new(
            gateway.peer_id(),
            Side::Opener,
            std::slice::from_ref(&field),
        );
        stranger.connect(&gateway.address).await.unwrap();
        stranger.open(&every_type()).await;
        strangers.push(stranger);
    }
    // Each is refused: taken for an applicant that never presents, it runs out of time.
    for stranger in &strangers {
        gateway.refusal_of(stranger.peer_id()).await;
    }
    drop(strangers);
    let mut late = Stranger::new(
        gateway.peer_id(),
        Side::Opener,
        std::slice::from_ref(&field),
    );
    let throttled = match late.connect(&gateway.address).await {
        Err(_) => true,
        // The transport handshake completes; the gate closes the connection right after.
        Ok(()) => late
            .handshake(tfc_gateway::net::HandshakeRequest::Hello {
                did: late.did(),
                nonce: "n".into(),
                asks: vec![],
            })
            .await
            .is_err(),
    };
    assert!(
        throttled,
        "a fresh identity past the burst got through from the same address"
    );
    // A member behind the same address is never throttled.
    member
        .gateway
        .network()
        .send(Command::Dial(gateway.address.clone()))
        .await
        .unwrap();
    gateway
        .verdict_where(member.peer_id(), |record| top_tier(record) == 2)
        .await;
    for node in [gateway, member] {
        node.gateway.shutdown().await.unwrap();
    }
}
