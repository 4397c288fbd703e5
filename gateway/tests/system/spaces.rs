//! Data spaces across real gateways: the holder decides every request with the field's
//! Cedar policy from facts it verified itself, answers with the decision's reason, audits it
//! with its purpose, and a revocation takes effect on the next request. Submissions are kept
//! by the recipient as custodian. A revocation cuts an attachment transfer between two
//! chunks.

use std::sync::Arc;
use std::time::Instant;

use tfc_gateway::api::types::DataAnswer;
use tfc_gateway::exchange::{AttachmentWanted, OpDraft};
use tfc_gateway::governance::{OpKind, StandingKind};
use tfc_gateway::net::DataRequest;
use tfc_gateway::policy::{Category, ValueLevel};
use tfc_gateway::spaces::{Labels, MAX_ATTACHMENT_BYTES};
use tfc_testkit::{Authorities, Node, top_tier, wait_until};

fn labels(category: Category, disclosure: &[&str]) -> Labels {
    Labels {
        category,
        value_level: ValueLevel::High,
        rights_holders: Default::default(),
        allowed_purposes: ["screening".to_owned()].into(),
        disclosure: disclosure.iter().map(|did| (*did).to_owned()).collect(),
    }
}

/// `node` writes a record to tier 1 of `field` as its own owner and writer.
fn put(
    node: &Node,
    field: &str,
    labels: Labels,
    body: serde_json::Value,
    attachments: Vec<tfc_gateway::spaces::AttachmentRef>,
) -> tfc_gateway::spaces::Record {
    node.gateway
        .spaces()
        .put(
            "admin",
            &node.org_key(),
            &node.did,
            field,
            1,
            None,
            labels,
            body,
            attachments,
        )
        .unwrap()
}

/// The city, the field's admin, revokes `did`.
async fn revoke(city: &Node, field: &str, did: &str) {
    city.gateway
        .publisher()
        .propose(
            field,
            OpDraft {
                kind: OpKind::Revoke,
                target: did.to_owned(),
                reason: "test".into(),
                types: vec![],
                policy: None,
            },
        )
        .await
        .unwrap();
}

async fn ask(node: &Node, holder: &Node, request: DataRequest) -> DataAnswer {
    node.gateway
        .publisher()
        .request_data(holder.peer_id(), request)
        .await
        .unwrap()
        .into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_holder_decides_each_request_by_policy_and_revocation_applies_at_once() {
    let authorities = Authorities::new();
    let city = Node::start_default().await;
    let reader = Node::start_default().await;
    let outsider = Node::start_default().await;
    city.import_wallet(&authorities.tier2_wallet(&city.did))
        .await;
    reader
        .import_wallet(&authorities.tier2_wallet(&reader.did))
        .await;
    // The outsider has identity and credit (tier 1) but no licence.
    outsider
        .import_wallet(&authorities.wallet(
            &outsider.did,
            &tfc_testkit::next_corporate_number(),
            80,
            None,
        ))
        .await;
    let charter = authorities.write_city_charter(&city);
    for node in [&city, &reader, &outsider] {
        node.join(&charter).await;
    }
    for peer in [reader.peer_id(), outsider.peer_id()] {
        city.verdict_where(peer, |record| top_tier(record) >= 1)
            .await;
    }
    // And the other way: whichever side opened a handshake judged first.
    for node in [&reader, &outsider] {
        tfc_testkit::until_verified(node, city.peer_id()).await;
    }
    let field = city.field_id();
    let spaces = city.gateway.spaces();
    let disclosed = put(
        &city,
        &field,
        labels(Category::NonPersonal, &[&reader.did]),
        serde_json::json!({"notice": "審査基準"}),
        vec![],
    );
    let secret = put(
        &city,
        &field,
        labels(Category::TradeSecret, &[]),
        serde_json::json!({"budget": 1}),
        vec![],
    );

    let get = |id: &str, purpose: &str| DataRequest::Get {
        field: field.clone(),
        tier: 1,
        id: id.to_owned(),
        purpose: purpose.to_owned(),
    };
    let answer = ask(&reader, &city, get(&disclosed.id, "screening")).await;
    assert!(answer.allowed, "{answer:?}");
    assert_eq!(answer.records, std::slice::from_ref(&disclosed));
    assert!(answer.records[0].signature_holds());
    assert!(!answer.reason.is_empty());

    let wrong_purpose = ask(&reader, &city, get(&disclosed.id, "marketing")).await;
    assert_eq!(
        (wrong_purpose.allowed, wrong_purpose.code.as_str()),
        (false, "access_denied")
    );
    let not_disclosed = ask(&reader, &city, get(&secret.id, "screening")).await;
    assert!(!not_disclosed.allowed);
    let outsider_answer = ask(&outsider, &city, get(&disclosed.id, "screening")).await;
    assert!(!outsider_answer.allowed, "{outsider_answer:?}");
    let listed = ask(
        &reader,
        &city,
        DataRequest::List {
            field: field.clone(),
            tier: 1,
            purpose: "screening".into(),
            filter: Default::default(),
        },
    )
    .await;
    assert!(listed.allowed, "{listed:?}");
    assert_eq!(
        listed.records,
        std::slice::from_ref(&disclosed),
        "only what the reader may read is listed"
    );

    // Governance amends the policy: disclosed records may now be read for any purpose. The
    // holder decides the next request by the amended policy.
    let amended = std::fs::read_to_string(authorities.dir.path().join("policy.cedar"))
        .unwrap()
        .replacen(
            "  resource.allowedPurposes.contains(context.purpose)\n};",
            "  true\n};",
            1,
        );
    assert_ne!(
        amended,
        std::fs::read_to_string(authorities.dir.path().join("policy.cedar")).unwrap()
    );
    city.gateway
        .publisher()
        .propose(
            &field,
            OpDraft {
                kind: OpKind::AmendPolicy,
                target: tfc_gateway::governance::sha256_hex(amended.as_bytes()),
                reason: "any purpose for disclosed records".into(),
                types: vec![],
                policy: Some(amended),
            },
        )
        .await
        .unwrap();
    let now_allowed = ask(&reader, &city, get(&disclosed.id, "marketing")).await;
    assert!(now_allowed.allowed, "{now_allowed:?}");

    // A submission: the reader writes its own application and hands it to the city.
    let application = put(
        &reader,
        &field,
        labels(Category::PersonalRelated, &[&city.did]),
        serde_json::json!({"applicationId": "A-1"}),
        vec![],
    );
    let submitted = ask(
        &reader,
        &city,
        DataRequest::Submit {
            record: Box::new(application.clone()),
            purpose: "screening".into(),
        },
    )
    .await;
    assert!(submitted.allowed, "{submitted:?}");
    let custody = spaces.get(&field, 1, &application.id).unwrap();
    assert_eq!(
        (custody.owner.as_str(), custody.writer.as_str()),
        (reader.did.as_str(), reader.did.as_str())
    );

    // The admin revokes the reader: its very next request is refused.
    revoke(&city, &field, &reader.did).await;
    assert_eq!(city.standing(&reader.did), Some(StandingKind::Revoked));
    let after = reader
        .gateway
        .publisher()
        .request_data(city.peer_id(), get(&disclosed.id, "screening"))
        .await;
    // The city may already have closed the connection: refused just the same.
    if let Ok(response) = after {
        let answer: DataAnswer = response.into();
        assert!(!answer.allowed, "{answer:?}");
    }

    // Every decision is in the holder's audit log, with its purpose.
    let services = Arc::clone(city.gateway.services());
    wait_until("the decisions are audited", || {
        let entries = services.audit.since(0).unwrap();
        let allowed = entries.iter().any(|entry| {
            entry.action == "data.read"
                && entry.decision == "allow"
                && entry.purpose.as_deref() == Some("screening")
        });
        let denied = entries.iter().any(|entry| {
            entry.action == "data.read"
                && entry.decision == "deny"
                && entry.purpose.as_deref() == Some("marketing")
        });
        async move { allowed && denied }
    })
    .await;
    for node in [city, reader, outsider] {
        node.gateway.shutdown().await.unwrap();
    }
}

/// The chunk decisions the holder allowed `reader`, after audit entry `after`.
fn chunks_allowed(city: &Node, reader: &str, after: u64) -> usize {
    city.gateway
        .services()
        .audit
        .since(0)
        .unwrap()
        .iter()
        .filter(|entry| {
            entry.seq > after
                && entry.actor == reader
                && entry.action.starts_with("data.")
                && entry.decision == "allow"
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_cuts_an_attachment_transfer_between_two_chunks() {
    let authorities = Authorities::new();
    let city = Node::start_default().await;
    let reader = Node::start_default().await;
    for node in [&city, &reader] {
        node.import_wallet(&authorities.tier2_wallet(&node.did))
            .await;
    }
    let charter = authorities.write_city_charter(&city);
    for node in [&city, &reader] {
        node.join(&charter).await;
    }
    city.verdict_where(reader.peer_id(), |record| top_tier(record) >= 1)
        .await;
    tfc_testkit::until_verified(&reader, city.peer_id()).await;
    let field = city.field_id();
    // 64 MiB: 128 chunks, each decided anew by the holder.
    let content: Vec<u8> = (0..MAX_ATTACHMENT_BYTES).map(|n| (n % 251) as u8).collect();
    let spaces = city.gateway.spaces();
    let mut upload = spaces.upload();
    upload.write(&content).unwrap();
    let attachment = upload.finish().unwrap();
    let record = put(
        &city,
        &field,
        labels(Category::NonPersonal, &[&reader.did]),
        serde_json::json!({"drawing": "site plan"}),
        vec![attachment.clone()],
    );
    let wanted = AttachmentWanted {
        field: field.clone(),
        tier: 1,
        id: record.id,
        sha256: attachment.sha256,
        purpose: "screening".into(),
    };
    let (publisher, holder) = (reader.gateway.publisher(), city.peer_id());
    let transfer = tokio::spawn(async move {
        let fetched = publisher.fetch_attachment(holder, wanted).await;
        (fetched, Instant::now())
    });
    // Mid-transfer: a few chunks served, most of them still to come.
    wait_until("four chunks served", || {
        let served = chunks_allowed(&city, &reader.did, 0);
        async move { served >= 4 }
    })
    .await;
    revoke(&city, &field, &reader.did).await;
    // Held here once the op is taken: its audit entry orders what came before and after.
    let held = Instant::now();
    let revoked_at = city
        .gateway
        .services()
        .audit
        .since(0)
        .unwrap()
        .iter()
        .rev()
        .find(|entry| entry.action == "governance.revoke")
        .map(|entry| entry.seq)
        .expect("the revocation is audited");
    let (fetched, ended) = transfer.await.unwrap();
    let failure = fetched.expect_err("the transfer is cut");
    let served_before =
        chunks_allowed(&city, &reader.did, 0) - chunks_allowed(&city, &reader.did, revoked_at);
    // A chunk whose decision was under way when the op was taken may still be answered;
    // no decision begun after it allows one.
    let served_after = chunks_allowed(&city, &reader.did, revoked_at);
    assert!(
        served_after <= 1,
        "{served_after} chunks allowed after the revocation"
    );
    assert!(
        served_before < 127,
        "the transfer was nearly over before the revocation ({served_before} chunks)"
    );
    assert!(
        failure.refused || failure.code == "unreachable",
        "{failure:?}"
    );
    println!(
        "revocation held → transfer cut: {:.1} ms ({}: {}); {served_before} chunks served before, {served_after} in flight",
        ended.saturating_duration_since(held).as_secs_f64() * 1e3,
        failure.code,
        failure.message
    );
    for node in [city, reader] {
        node.gateway.shutdown().await.unwrap();
    }
}
