//! Data spaces across real gateways: the holder decides every request with the field's
//! Cedar policy from facts it verified itself, answers with the decision's reason, audits it
//! with its purpose, and a revocation takes effect on the next request. Submissions are kept
//! by the recipient as custodian.

use std::sync::Arc;

use tfc_gateway::api::types::DataAnswer;
use tfc_gateway::exchange::OpDraft;
use tfc_gateway::governance::{OpKind, StandingKind};
use tfc_gateway::net::DataRequest;
use tfc_gateway::policy::{Category, ValueLevel};
use tfc_gateway::spaces::Labels;
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
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../config/policies/housing-subsidy.cedar"
        ),
        authorities.dir.path().join("policy.cedar"),
    )
    .unwrap();
    let city_key = city.org_key();
    let charter = authorities.write_governed_charter(
        "field",
        &[&city_key],
        std::slice::from_ref(&city.did),
        "1",
        &format!(
            "policy = \"policy.cedar\"\n{}",
            Authorities::bootstrap_line(std::slice::from_ref(&city.address))
        ),
    );
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
    let disclosed = spaces
        .put(
            "admin",
            &city_key,
            &city.did,
            &field,
            1,
            None,
            labels(Category::NonPersonal, &[&reader.did]),
            serde_json::json!({"notice": "審査基準"}),
            vec![],
        )
        .unwrap();
    let secret = spaces
        .put(
            "admin",
            &city_key,
            &city.did,
            &field,
            1,
            None,
            labels(Category::TradeSecret, &[]),
            serde_json::json!({"budget": 1}),
            vec![],
        )
        .unwrap();

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
    let reader_key = reader.org_key();
    let application = reader
        .gateway
        .spaces()
        .put(
            "admin",
            &reader_key,
            &reader.did,
            &field,
            1,
            None,
            labels(Category::PersonalRelated, &[&city.did]),
            serde_json::json!({"applicationId": "A-1"}),
            vec![],
        )
        .unwrap();
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
    city.gateway
        .publisher()
        .propose(
            &field,
            OpDraft {
                kind: OpKind::Revoke,
                target: reader.did.clone(),
                reason: "test".into(),
                types: vec![],
                policy: None,
            },
        )
        .await
        .unwrap();
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
