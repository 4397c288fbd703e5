use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::charter::Charter;
use crate::credential::now_unix;
use crate::field::Field;
use crate::identity::KeyPair;
use crate::services::{PeerRecord, Services};
use crate::store::{Store, Tree};
use crate::threats::engine::{Mode, SimpleMode, State, Verdict};
use crate::threats::*;

fn draft(pattern: &str, action: ActionKind, severity: Severity) -> IndicatorDraft {
    let now = now_unix();
    IndicatorDraft {
        name: "seen probing".into(),
        description: "test".into(),
        pattern: pattern.into(),
        severity,
        countermeasure: Countermeasure {
            action,
            tier: (action == ActionKind::CapTier).then_some(1),
            credential: (action == ActionKind::SuspendCredential).then(|| "urn:uuid:c".into()),
        },
        tlp: Tlp::Amber,
        confidence: Some(80),
        valid_from: now - 60,
        valid_until: now + 3600,
    }
}

fn bundle(pattern: &str, action: ActionKind, severity: Severity) -> Value {
    compose(&draft(pattern, action, severity), now_unix()).unwrap()
}

fn code(result: Result<Bundle, ThreatError>) -> ThreatCode {
    result.unwrap_err().code
}

#[test]
fn a_composed_bundle_parses_with_its_marking_and_countermeasure() {
    let bundle = bundle(
        "[ipv4-addr:value = '192.0.2.0/24']",
        ActionKind::BlockAddress,
        Severity::High,
    );
    let parsed = parse_bundle(&bundle, now_unix()).unwrap();
    assert_eq!(parsed.indicators.len(), 1);
    assert_eq!(parsed.others.len(), 2, "course-of-action and relationship");
    let indicator = &parsed.indicators[0];
    assert_eq!(indicator.tlp, Tlp::Amber);
    assert_eq!(indicator.severity, Severity::High);
    assert_eq!(indicator.countermeasure.action, ActionKind::BlockAddress);
    assert!(
        indicator
            .pattern
            .matches_address("192.0.2.9".parse().unwrap())
    );
}

#[test]
fn bad_bundles_are_refused_with_their_codes() {
    let now = now_unix();
    let good = bundle(
        "[ipv4-addr:value = '192.0.2.1']",
        ActionKind::BlockAddress,
        Severity::High,
    );
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut bundle = good.clone();
        edit(&mut bundle);
        parse_bundle(&bundle, now)
    };
    let indicator = |edit: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        with(&|bundle: &mut Value| {
            if let Some(object) = bundle["objects"][0].as_object_mut() {
                edit(object);
            }
        })
    };
    assert_eq!(
        code(with(&|b| b["type"] = "report".into())),
        ThreatCode::Malformed
    );
    assert_eq!(
        code(with(&|b| b["id"] = "bundle--nope".into())),
        ThreatCode::Malformed
    );
    assert_eq!(
        code(with(
            &|b| b["objects"] = Value::Array(vec![json!({"type": "note"}); 101])
        )),
        ThreatCode::TooLarge
    );
    assert_eq!(
        code(with(
            &|b| b["objects"][1]["name"] = "x".repeat(MAX_BUNDLE_BYTES).into()
        )),
        ThreatCode::TooLarge
    );
    assert_eq!(
        code(with(&|b| b["objects"][1]["type"] = "malware".into())),
        ThreatCode::Malformed
    );
    assert_eq!(
        code(indicator(&|o| {
            o.insert("pattern".into(), "[url:value = 'http://x.example/']".into());
        })),
        ThreatCode::UnsupportedPattern
    );
    assert_eq!(
        code(indicator(&|o| {
            o.insert(
                "x_tfc_countermeasure".into(),
                json!({"action": "block-peer"}),
            );
        })),
        ThreatCode::BadCountermeasure
    );
    assert_eq!(
        code(indicator(&|o| {
            o.insert(
                "x_tfc_countermeasure".into(),
                json!({"action": "block-address", "tier": 1}),
            );
        })),
        ThreatCode::BadCountermeasure
    );
    assert_eq!(
        code(indicator(&|o| {
            o.insert("x_tfc_severity".into(), "apocalyptic".into());
        })),
        ThreatCode::Malformed
    );
    assert_eq!(
        code(indicator(&|o| {
            o.insert("valid_until".into(), "2001-01-01T00:00:00Z".into());
            o.insert("valid_from".into(), "2000-01-01T00:00:00Z".into());
        })),
        ThreatCode::Expired
    );
    assert_eq!(
        code(indicator(&|o| {
            o.insert("modified".into(), "2000-01-01T00:00:00Z".into());
        })),
        ThreatCode::Malformed,
        "modified before created"
    );
    assert_eq!(
        code(indicator(&|o| {
            o.insert(
                "object_marking_refs".into(),
                json!([Tlp::Red.marking_id(), Tlp::Green.marking_id()]),
            );
        })),
        ThreatCode::Malformed
    );
    assert_eq!(
        code(indicator(&|o| {
            o.insert("confidence".into(), 101.into());
        })),
        ThreatCode::Malformed
    );
}

#[test]
fn a_missing_valid_until_is_bounded_and_tlp_1_markings_are_read() {
    let now = now_unix();
    let mut bundle = bundle(
        "[domain-name:value = 'evil.example']",
        ActionKind::BlockAddress,
        Severity::Low,
    );
    let object = bundle["objects"][0].as_object_mut().unwrap();
    object.remove("valid_until");
    object.insert(
        "object_marking_refs".into(),
        json!(["marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed"]),
    );
    let parsed = parse_bundle(&bundle, now).unwrap();
    let indicator = &parsed.indicators[0];
    assert_eq!(indicator.tlp, Tlp::Red);
    assert_eq!(
        indicator.expires,
        indicator.valid_from + DEFAULT_LIFETIME_SECS
    );
}

/// A gateway in one field with an admin and two verified members from different companies.
struct Book {
    services: Arc<Services>,
    field: String,
    admin: KeyPair,
    members: [KeyPair; 3],
    _dir: tempfile::TempDir,
}

fn book_fixture(store: Option<Store>, dir: Option<tempfile::TempDir>) -> Book {
    let dir = dir.unwrap_or_else(|| tempfile::tempdir().unwrap());
    let admin = KeyPair::ed25519_from_seed(&[1; 32]);
    let text = format!(
        "name = \"f\"\nfounders = [\"{did}\"]\nadmins = [\"{did}\"]\nquorum = 1\n[[issuers]]\ndid = \"{did}\"\nname = \"I\"\ntypes = [\"CreditRatingCredential\"]\n[tiers.prescreening]\nrequire = [\"CreditRatingCredential\"]\n",
        did = admin.did()
    );
    let signature = Charter::parse(&text, dir.path())
        .unwrap()
        .sign(&admin)
        .unwrap();
    let path = dir.path().join("f.toml");
    std::fs::write(&path, format!("{text}{signature}")).unwrap();
    let field = Field::load(&path).unwrap();
    let field_id = field.charter.field_id();
    let store = store.unwrap_or_else(|| Store::temporary().unwrap());
    let members = [2u8, 3, 4].map(|seed| KeyPair::ed25519_from_seed(&[seed; 32]));
    for (n, member) in members.iter().chain([&admin]).enumerate() {
        let record = PeerRecord {
            did: member.did(),
            tiers: [(field_id.clone(), 2)].into(),
            presented: Default::default(),
            evaluated_at: now_unix(),
            next_change: None,
            // The first two members are one company.
            corporate_number: Some(format!("corp-{}", n.max(1))),
            name: None,
        };
        store
            .tree(Tree::Peers)
            .unwrap()
            .put(member.peer_id().unwrap().to_bytes().as_slice(), &record)
            .unwrap();
    }
    let me = KeyPair::ed25519_from_seed(&[9; 32]);
    let services = Services::new(me, vec![field], vec![], store, 10).unwrap();
    Book {
        services: Arc::new(services),
        field: field_id,
        admin,
        members,
        _dir: dir,
    }
}

fn threats(book: &Book, mode: Mode) -> Threats {
    Threats::load(Arc::clone(&book.services), ThreatsConfig::uniform(mode)).unwrap()
}

const AUTO: Mode = Mode::Simple(SimpleMode::Auto);

fn report(bundle: &Value) -> Value {
    json!({ "bundle": bundle })
}

#[test]
fn an_address_report_blocks_at_once_and_a_replay_changes_nothing() {
    let book = book_fixture(None, None);
    let threats = threats(&book, AUTO);
    let member = book.members[0].did();
    let body = report(&bundle(
        "[ipv4-addr:value = '198.51.100.0/24']",
        ActionKind::BlockAddress,
        Severity::High,
    ));
    let outcome = threats
        .receive(&book.field, &member, &body, Origin::Gossip)
        .unwrap();
    assert_eq!(
        (outcome.taken, outcome.actions[0].state),
        (1, State::Applied)
    );
    let blocks = threats.address_blocks();
    assert_eq!(blocks.networks, vec!["198.51.100.0/24".parse().unwrap()]);
    assert_eq!(book.services.threat_effects.threat_level(&book.field), 3);
    let replay = threats.receive(&book.field, &member, &body, Origin::Gossip);
    assert_eq!(replay.unwrap_err().code, ThreatCode::Replayed);
    let audited: Vec<String> = book
        .services
        .audit
        .since(0)
        .unwrap()
        .into_iter()
        .map(|entry| entry.action)
        .collect();
    assert_eq!(audited, ["threat.report", "threat.apply"]);
}

#[test]
fn one_member_cannot_block_another_but_a_second_company_or_an_admin_can() {
    let book = book_fixture(None, None);
    let threats = threats(&book, AUTO);
    let target = book.members[2].did();
    let pattern = format!("[x-tfc-member:did = '{target}']");
    let body = || report(&bundle(&pattern, ActionKind::BlockPeer, Severity::Critical));
    let first = threats
        .receive(&book.field, &book.members[0].did(), &body(), Origin::Gossip)
        .unwrap();
    assert_eq!(first.actions[0].state, State::AwaitingCorroboration);
    // The same company under a second DID is not a second reporter.
    let same = threats
        .receive(&book.field, &book.members[1].did(), &body(), Origin::Gossip)
        .unwrap();
    assert_eq!(same.actions[0].state, State::AwaitingCorroboration);
    assert!(
        !book
            .services
            .threat_effects
            .member_blocked(&book.field, &target)
    );
    let admin = threats
        .receive(&book.field, &book.admin.did(), &body(), Origin::Gossip)
        .unwrap();
    assert_eq!(admin.actions[0].state, State::Applied);
    assert!(
        book.services
            .threat_effects
            .member_blocked(&book.field, &target)
    );
}

#[test]
fn tlp_red_goes_only_to_named_recipients() {
    let book = book_fixture(None, None);
    let threats = threats(&book, AUTO);
    let mut red = draft(
        "[ipv4-addr:value = '203.0.113.5']",
        ActionKind::BlockAddress,
        Severity::High,
    );
    red.tlp = Tlp::Red;
    let bundle = compose(&red, now_unix()).unwrap();
    let member = book.members[0].did();
    let me = book.services.key.did();
    let send = |recipients: Vec<String>, origin| {
        threats
            .receive(
                &book.field,
                &member,
                &json!({"bundle": bundle, "recipients": recipients}),
                origin,
            )
            .map(|outcome| outcome.taken)
            .map_err(|error| error.code)
    };
    assert_eq!(
        send(vec![me.clone()], Origin::Gossip),
        Err(ThreatCode::TlpViolation)
    );
    assert_eq!(
        send(vec![book.admin.did()], Origin::Direct),
        Err(ThreatCode::TlpViolation)
    );
    assert_eq!(send(vec![me], Origin::Direct), Ok(1));
    let local = threats.receive(
        &book.field,
        &book.services.key.did(),
        &report(&bundle),
        Origin::Local,
    );
    assert_eq!(
        local.unwrap_err().code,
        ThreatCode::TlpViolation,
        "RED needs recipients"
    );
}

#[test]
fn amber_indicators_do_not_leave_their_field() {
    let book = book_fixture(None, None);
    let threats = threats(&book, AUTO);
    let amber = bundle(
        "[ipv4-addr:value = '203.0.113.9']",
        ActionKind::BlockAddress,
        Severity::High,
    );
    threats
        .receive(
            &book.field,
            &book.members[0].did(),
            &report(&amber),
            Origin::Gossip,
        )
        .unwrap();
    let other_field = "0".repeat(64);
    assert_eq!(
        threats
            .check_resharing(&other_field, &amber)
            .unwrap_err()
            .code,
        ThreatCode::TlpViolation
    );
    assert!(threats.check_resharing(&book.field, &amber).is_ok());
}

#[test]
fn manual_actions_wait_for_the_operator_and_every_step_is_audited() {
    let book = book_fixture(None, None);
    let threats = threats(&book, Mode::Simple(SimpleMode::Manual));
    let hash = "ab".repeat(32);
    let body = report(&bundle(
        &format!("[file:hashes.'SHA-256' = '{hash}']"),
        ActionKind::Quarantine,
        Severity::Critical,
    ));
    let outcome = threats
        .receive(&book.field, &book.members[0].did(), &body, Origin::Gossip)
        .unwrap();
    let action = &outcome.actions[0];
    assert_eq!(action.state, State::AwaitingOperator);
    assert_eq!(threats.actions(Some(State::AwaitingOperator)).len(), 1);
    assert!(!book.services.threat_effects.quarantined(&book.field, &hash));
    let applied = threats
        .decide(&action.id, Verdict::Apply, "admin:test")
        .unwrap();
    assert_eq!(applied.state, State::Applied);
    assert!(book.services.threat_effects.quarantined(&book.field, &hash));
    let rejected = threats
        .decide(&action.id, Verdict::Reject, "admin:test")
        .unwrap();
    assert_eq!(rejected.state, State::Rejected);
    assert!(!book.services.threat_effects.quarantined(&book.field, &hash));
    assert_eq!(
        threats
            .decide("nope", Verdict::Apply, "admin:test")
            .unwrap_err()
            .code,
        ThreatCode::UnknownAction
    );
    let actions: Vec<String> = book
        .services
        .audit
        .since(0)
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        [
            "threat.report",
            "threat.queue",
            "threat.operator-apply",
            "threat.apply",
            "threat.operator-reject",
            "threat.lift"
        ]
    );
    assert!(book.services.audit.verify().unwrap().broken.is_none());
}

#[test]
fn an_action_is_lifted_when_its_indicator_expires_even_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let book = book_fixture(Some(store.clone()), Some(dir));
    let threats = threats(&book, AUTO);
    let member = book.members[0].did();
    let mut short = draft(
        "[ipv4-addr:value = '192.0.2.77']",
        ActionKind::BlockAddress,
        Severity::High,
    );
    short.valid_until = now_unix() + 30;
    let body = report(&compose(&short, now_unix()).unwrap());
    threats
        .receive(&book.field, &member, &body, Origin::Gossip)
        .unwrap();
    let long = report(&bundle(
        "[ipv4-addr:value = '192.0.2.78']",
        ActionKind::BlockAddress,
        Severity::High,
    ));
    threats
        .receive(&book.field, &member, &long, Origin::Gossip)
        .unwrap();
    drop(threats);
    // After a restart both are in force again, without a second audit entry.
    let restarted =
        Threats::load(Arc::clone(&book.services), ThreatsConfig::uniform(AUTO)).unwrap();
    assert_eq!(restarted.address_blocks().networks.len(), 2);
    let entries = book.services.audit.since(0).unwrap().len();
    assert_eq!(entries, 4, "two reports, two applications");
    let next = restarted.sweep_at(short.valid_until + 1);
    assert!(
        next.is_some_and(|at| at > short.valid_until),
        "the long one is still scheduled"
    );
    assert_eq!(
        restarted.address_blocks().networks,
        vec!["192.0.2.78/32".parse().unwrap()]
    );
    assert_eq!(
        restarted.counts(),
        (1, 1),
        "the expired indicator is dropped"
    );
    let last = book.services.audit.since(0).unwrap().pop().unwrap();
    assert_eq!(
        (last.action.as_str(), last.decision.as_str()),
        ("threat.lift", "inactive")
    );
}

#[test]
fn a_reporter_is_held_to_its_rate_and_quota() {
    let book = book_fixture(None, None);
    let config = ThreatsConfig {
        reporter_burst: 3,
        reporter_rate: 0.001,
        max_indicators_per_reporter: 2,
        ..ThreatsConfig::uniform(AUTO)
    };
    let threats = Threats::load(Arc::clone(&book.services), config).unwrap();
    let send = |reporter: &KeyPair, n: u8, origin| {
        let body = report(&bundle(
            &format!("[ipv4-addr:value = '192.0.2.{n}']"),
            ActionKind::BlockAddress,
            Severity::Low,
        ));
        threats
            .receive(&book.field, &reporter.did(), &body, origin)
            .map(|_| ())
            .map_err(|e| e.code)
    };
    let member = &book.members[0];
    assert_eq!(send(member, 1, Origin::Gossip), Ok(()));
    assert_eq!(send(member, 2, Origin::Gossip), Ok(()));
    assert_eq!(
        send(member, 3, Origin::Gossip),
        Err(ThreatCode::RateLimited),
        "quota of 2"
    );
    assert_eq!(
        send(member, 4, Origin::Gossip),
        Err(ThreatCode::RateLimited),
        "burst of 3 spent"
    );
    assert_eq!(
        send(&book.members[2], 5, Origin::Gossip),
        Ok(()),
        "others are not affected"
    );
}

#[test]
fn a_revoked_reporters_reports_stop_counting() {
    let book = book_fixture(None, None);
    let threats = threats(&book, AUTO);
    let target = book.members[2].did();
    let pattern = format!("[x-tfc-member:did = '{target}']");
    for reporter in [&book.members[0], &book.admin] {
        let body = report(&bundle(&pattern, ActionKind::CapTier, Severity::High));
        threats
            .receive(&book.field, &reporter.did(), &body, Origin::Gossip)
            .unwrap();
    }
    assert_eq!(
        book.services.threat_effects.tier_cap(&book.field, &target),
        Some(1)
    );
    // Both reporters are revoked: neither is in good standing any more.
    let charter = book
        .services
        .fields
        .get(&book.field)
        .unwrap()
        .charter
        .clone();
    for reporter in [&book.members[0], &book.admin] {
        book.services
            .governance
            .propose(
                &charter,
                &book.admin,
                crate::governance::OpKind::Revoke,
                reporter.did(),
                "test".into(),
                vec![],
                None,
                now_unix(),
            )
            .unwrap();
    }
    threats.rejudge_all();
    assert_eq!(
        book.services.threat_effects.tier_cap(&book.field, &target),
        None
    );
}

#[test]
fn a_suspended_credential_stops_counting_for_its_holder_only() {
    let book = book_fixture(None, None);
    let threats = threats(&book, AUTO);
    let holder = &book.members[2];
    let now = now_unix();
    let token = crate::credential::issue_credential(
        &KeyPair::ed25519_from_seed(&[7; 32]),
        &crate::credential::CredentialDraft {
            type_name: "CreditRatingCredential".into(),
            subject: holder.did(),
            claims: json!({"grade": "B", "score": 70, "assessedOn": "2026-01-01"})
                .as_object()
                .cloned()
                .unwrap(),
            valid_from: now - 60,
            valid_until: Some(now + 3600),
            status: vec![],
        },
        now,
    )
    .unwrap();
    let id = effects::credential_id(&token).unwrap();
    let mut suspension = draft(
        &format!("[x-tfc-member:did = '{}']", holder.did()),
        ActionKind::SuspendCredential,
        Severity::High,
    );
    suspension.countermeasure.credential = Some(id);
    let body = report(&compose(&suspension, now).unwrap());
    let outcome = threats
        .receive(&book.field, &book.admin.did(), &body, Origin::Gossip)
        .unwrap();
    assert_eq!(outcome.actions[0].state, State::Applied);
    let tokens = [token];
    assert!(
        book.services
            .threat_effects
            .counted_credentials(&book.field, &holder.did(), &tokens)
            .is_empty()
    );
    let other = book.members[0].did();
    assert_eq!(
        book.services
            .threat_effects
            .counted_credentials(&book.field, &other, &tokens)
            .len(),
        1
    );
}

#[test]
fn poisoned_locks_fail_closed() {
    let book = book_fixture(None, None);
    let services = &book.services;
    let member = book.members[0].did();
    let field = services.fields.get(&book.field).unwrap();
    assert!(services.in_good_standing(&book.field, &member));
    assert!(!services.effective_charter(&field).issuers.is_empty());

    std::thread::scope(|scope| {
        let _ = scope
            .spawn(|| {
                services
                    .threat_effects
                    .update(|_| -> () { panic!("the effects lock is poisoned for a test") })
            })
            .join();
    });
    let effects = &services.threat_effects;
    assert!(effects.member_blocked(&book.field, &member));
    assert_eq!(effects.tier_cap(&book.field, &member), Some(0));
    assert!(effects.quarantined(&book.field, "00"));
    assert!(
        effects
            .counted_credentials(&book.field, &member, &["token".into()])
            .is_empty()
    );
    assert!(!services.in_good_standing(&book.field, &member));

    let fresh = book_fixture(None, None);
    fresh.services.governance.poison();
    let field = fresh.services.fields.get(&fresh.field).unwrap();
    let member = fresh.members[0].did();
    assert!(fresh.services.is_barred(&fresh.field, &member));
    assert!(!fresh.services.in_good_standing(&fresh.field, &member));
    assert!(fresh.services.effective_charter(&field).issuers.is_empty());
}
