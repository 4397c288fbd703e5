//! The exchange service's judging, rates, sync and checkpoints, on a real one-field node.

use std::collections::BTreeMap;

use serde_json::Value;

use super::envelope::RATE_PER_SEC;
use super::sync::refused;
use super::*;
use crate::charter::Charter;
use crate::credential::{StatusList, StatusPurpose};
use crate::credential::{now_unix, sign_message};
use crate::field::Field;
use crate::identity::{KeyAlgorithm, KeyPair};
use crate::net::{SyncResponse, topic_name};
use crate::services::PeerRecord;
use crate::store::Store;
use crate::store::Tree;

struct Fixture {
    service: Service,
    issuer: KeyPair,
    field: String,
    _dir: tempfile::TempDir,
}

/// A service in a one-field node, and a member of that field.
fn fixture() -> (Fixture, KeyPair) {
    let dir = tempfile::tempdir().unwrap();
    let issuer = KeyPair::generate(KeyAlgorithm::Ed25519);
    let text = format!(
        "name = \"f\"\nfounders = [\"{did}\"]\nquorum = 1\n[[issuers]]\ndid = \"{did}\"\nname = \"I\"\ntypes = [\"CreditRatingCredential\"]\n[tiers.prescreening]\nrequire = [\"CreditRatingCredential\"]\n",
        did = issuer.did()
    );
    let signature = Charter::parse(&text, dir.path())
        .unwrap()
        .sign(&issuer)
        .unwrap();
    let path = dir.path().join("f.toml");
    std::fs::write(&path, format!("{text}{signature}")).unwrap();
    let field = Field::load(&path).unwrap();
    let field_id = field.charter.field_id();
    let store = Store::temporary().unwrap();
    let member = KeyPair::generate(KeyAlgorithm::Ed25519);
    let record = PeerRecord {
        did: member.did(),
        tiers: [(field_id.clone(), 1)].into(),
        presented: Default::default(),
        evaluated_at: now_unix(),
        next_change: None,
        corporate_number: None,
        name: None,
    };
    store
        .tree(Tree::Peers)
        .unwrap()
        .put(member.peer_id().unwrap().to_bytes().as_slice(), &record)
        .unwrap();
    let services = Services::new(
        KeyPair::generate(KeyAlgorithm::Ed25519),
        vec![field],
        vec![],
        store,
        10,
    )
    .unwrap();
    let (commands, _) = mpsc::channel(1);
    let party_store = services.store().clone();
    let services = Arc::new(services);
    let threats = Arc::new(
        Threats::load(
            Arc::clone(&services),
            crate::config::ThreatsConfig::default(),
        )
        .unwrap(),
    );
    let fixture = Fixture {
        service: Service {
            publisher: Publisher {
                services: Arc::clone(&services),
                commands: commands.clone(),
                threats: Arc::clone(&threats),
            },
            threats,
            refusals_audited: HashMap::new(),
            admission_taken: false,
            tasks: tokio::task::JoinSet::new(),
            services,
            commands,
            verifier: Arc::new(CredentialVerifier::new()),
            cores: 2,
            buckets: HashMap::new(),
            max_message_bytes: 1024 * 1024,
            endorse: EndorseMode::Manual,
            discovery: false,
            next_discovery: Instant::now(),
            discovery_follow_ups: Vec::new(),
            spaces: Arc::new(
                crate::spaces::Spaces::open(
                    &party_store,
                    &dir.path().join(crate::spaces::DATA_KEY_FILE),
                    10,
                )
                .unwrap(),
            ),
        },
        issuer,
        field: field_id,
        _dir: dir,
    };
    (fixture, member)
}

fn envelope(key: &KeyPair, field: &str, kind: &str, iat: i64, body: Value) -> Vec<u8> {
    let envelope = Envelope {
        iss: key.did(),
        field: field.into(),
        kind: kind.into(),
        iat,
        jti: uuid::Uuid::new_v4().to_string(),
        body,
    };
    sign_message(key, &envelope).unwrap().into_bytes()
}

impl Fixture {
    /// Records `key`'s gateway as verified at tier 1 in the field: it may forward gossip.
    fn verified(&self, key: &KeyPair) {
        let record = PeerRecord {
            did: key.did(),
            tiers: [(self.field.clone(), 1)].into(),
            presented: Default::default(),
            evaluated_at: now_unix(),
            next_change: None,
            corporate_number: None,
            name: None,
        };
        self.service
            .services
            .peers
            .put(key.peer_id().unwrap(), &record)
            .unwrap();
    }

    fn list(&self, issued_at: i64) -> Value {
        let list = StatusList::new(
            "urn:list",
            &self.issuer.did(),
            StatusPurpose::Revocation,
            0,
            issued_at,
        );
        Value::String(list.issue(&self.issuer).unwrap())
    }

    fn judge(
        &mut self,
        from: &KeyPair,
        topic_kind: TopicKind,
        data: &[u8],
    ) -> Result<Verdict, String> {
        let source = from.peer_id().unwrap();
        let topic = topic_name(&self.field, topic_kind);
        self.service
            .judge_gossip(source, &self.field, &topic, data)
            .map_err(|Rejection(code)| code)
    }
}

#[test]
fn a_members_status_list_is_taken_once() {
    let (mut fixture, member) = fixture();
    let body = fixture.list(now_unix() - 10);
    let first = envelope(&member, &fixture.field, "status", now_unix(), body.clone());
    assert_eq!(
        fixture.judge(&member, TopicKind::Status, &first),
        Ok(Verdict::Accept)
    );
    let again = envelope(&member, &fixture.field, "status", now_unix(), body);
    assert_eq!(
        fixture.judge(&member, TopicKind::Status, &again),
        Ok(Verdict::Ignore)
    );
    assert_eq!(fixture.service.services.status_list_summaries().len(), 1);
}

#[test]
fn invalid_messages_are_rejected_with_their_code() {
    let (mut fixture, member) = fixture();
    let stranger = KeyPair::generate(KeyAlgorithm::Ed25519);
    let field = fixture.field.clone();
    let now = now_unix();
    let body = fixture.list(now - 10);
    // A stranger's message: refused from the stranger itself; from a member that relays
    // it, ignored (the member may have judged by older facts: a revocation it had not
    // heard of yet), so that no relay is penalised for what only we knew.
    let stranger_says = envelope(&stranger, &field, "status", now, body.clone());
    assert_eq!(
        fixture.judge(&stranger, TopicKind::Status, &stranger_says),
        Err("not_member".to_owned())
    );
    assert_eq!(
        fixture.judge(&member, TopicKind::Status, &stranger_says),
        Ok(Verdict::Ignore)
    );
    let cases = [
        (
            envelope(&member, &field, "gov", now, body.clone()),
            "wrong_topic",
        ),
        (
            envelope(&member, "other", "status", now, body.clone()),
            "wrong_topic",
        ),
        (
            envelope(&member, &field, "status", now - 3600, body.clone()),
            "stale",
        ),
        (
            envelope(&member, &field, "status", now, Value::Bool(true)),
            "malformed",
        ),
        (
            envelope(&member, &field, "status", now, Value::String("x".into())),
            "malformed",
        ),
        (b"\xff\xfe".to_vec(), "malformed"),
        (b"a.b.c".to_vec(), "malformed"),
    ];
    for (data, code) in cases {
        assert_eq!(
            fixture.judge(&member, TopicKind::Status, &data),
            Err(code.to_owned())
        );
    }
    // A list from an issuer the field does not trust.
    let foreign = StatusList::new("urn:x", &stranger.did(), StatusPurpose::Revocation, 0, now);
    let data = envelope(
        &member,
        &field,
        "status",
        now,
        Value::String(foreign.issue(&stranger).unwrap()),
    );
    assert_eq!(
        fixture.judge(&member, TopicKind::Status, &data),
        Err("untrusted_issuer".to_owned())
    );
    // A topic of a field not joined is none of our business.
    let source = member.peer_id().unwrap();
    assert_eq!(
        fixture
            .service
            .judge_gossip(
                source,
                "feed",
                &topic_name("feed", TopicKind::Status),
                &data
            )
            .map_err(|Rejection(code)| code),
        Ok(Verdict::Ignore)
    );
    assert!(fixture.service.services.status_list_summaries().is_empty());
}

#[test]
fn the_rate_bucket_refills_at_its_rate_up_to_its_burst() {
    let start = Instant::now();
    let mut bucket = Bucket {
        tokens: RATE_BURST,
        at: start,
    };
    let taken = (0..RATE_BURST as usize + 10)
        .filter(|_| bucket.take(start))
        .count();
    assert_eq!(taken, RATE_BURST as usize);
    let later = start + std::time::Duration::from_secs(1);
    let refilled = (0..RATE_BURST as usize)
        .filter(|_| bucket.take(later))
        .count();
    assert_eq!(refilled, RATE_PER_SEC as usize);
    let much_later = later + std::time::Duration::from_secs(3600);
    let capped = (0..2 * RATE_BURST as usize)
        .filter(|_| bucket.take(much_later))
        .count();
    assert_eq!(capped, RATE_BURST as usize);
}

#[test]
fn a_reporter_over_its_threat_rate_is_rejected_but_its_relays_are_not() {
    let (mut fixture, member) = fixture();
    let config = crate::config::ThreatsConfig {
        reporter_burst: 1,
        reporter_rate: 0.001,
        ..Default::default()
    };
    fixture.service.threats =
        Arc::new(Threats::load(Arc::clone(&fixture.service.services), config).unwrap());
    let relay = KeyPair::generate(KeyAlgorithm::Ed25519);
    fixture.verified(&relay);
    let field = fixture.field.clone();
    let report = |n: u8| {
        let now = now_unix();
        let draft = crate::threats::IndicatorDraft {
            name: "n".into(),
            description: String::new(),
            pattern: format!("[ipv4-addr:value = '192.0.2.{n}']"),
            severity: crate::threats::Severity::High,
            countermeasure: crate::threats::Countermeasure {
                action: crate::threats::ActionKind::BlockAddress,
                tier: None,
                credential: None,
            },
            tlp: crate::threats::Tlp::Green,
            confidence: None,
            valid_from: now,
            valid_until: now + 60,
        };
        let bundle = crate::threats::compose(&draft, now).unwrap();
        envelope(
            &member,
            &field,
            "threat",
            now,
            serde_json::json!({ "bundle": bundle }),
        )
    };
    assert_eq!(
        fixture.judge(&member, TopicKind::Threat, &report(1)),
        Ok(Verdict::Accept)
    );
    assert_eq!(
        fixture.judge(&relay, TopicKind::Threat, &report(2)),
        Ok(Verdict::Ignore)
    );
    assert_eq!(
        fixture.judge(&member, TopicKind::Threat, &report(3)),
        Err("rate_limited".to_owned())
    );
}

#[test]
fn a_publisher_over_its_rate_is_rejected_but_its_relays_are_not() {
    let (mut fixture, member) = fixture();
    let relay = KeyPair::generate(KeyAlgorithm::Ed25519);
    fixture.verified(&relay);
    let field = fixture.field.clone();
    // Emptied, and dated ahead so that it cannot refill while the test runs.
    fixture.service.buckets.insert(
        member.did(),
        Bucket {
            tokens: 0.0,
            at: Instant::now() + std::time::Duration::from_secs(3600),
        },
    );
    let data = envelope(&member, &field, "threat", now_unix(), Value::Null);
    assert_eq!(
        fixture.judge(&member, TopicKind::Threat, &data),
        Err("rate_limited".to_owned())
    );
    assert_eq!(
        fixture.judge(&relay, TopicKind::Threat, &data),
        Ok(Verdict::Ignore)
    );
}

#[test]
fn sync_serves_members_what_they_lack() {
    let (fixture, member) = fixture();
    let issued_at = now_unix() - 10;
    let token = fixture.list(issued_at);
    fixture
        .service
        .services
        .import_status_list(token.as_str().unwrap())
        .unwrap();
    let ask = |have: BTreeMap<String, i64>| SyncRequest::StatusLists {
        field: fixture.field.clone(),
        have,
    };
    let peer = member.peer_id().unwrap();
    assert_eq!(
        fixture.service.answer_sync(peer, ask(BTreeMap::new())),
        SyncResponse::StatusLists {
            tokens: vec![token.as_str().unwrap().to_owned()]
        }
    );
    let held = [("urn:list".to_owned(), issued_at)].into();
    assert_eq!(
        fixture.service.answer_sync(peer, ask(held)),
        SyncResponse::StatusLists { tokens: vec![] }
    );
    // A stranger, and a member asking of a field we never joined, read the same.
    let stranger = KeyPair::generate(KeyAlgorithm::Ed25519).peer_id().unwrap();
    let refusal = fixture.service.answer_sync(stranger, ask(BTreeMap::new()));
    assert_eq!(refusal, refused());
    let elsewhere = SyncRequest::StatusLists {
        field: "0".repeat(64),
        have: BTreeMap::new(),
    };
    assert_eq!(fixture.service.answer_sync(peer, elsewhere), refusal);
}

#[test]
fn gossip_forwarded_by_a_peer_not_verified_in_the_field_is_rejected() {
    let (mut fixture, member) = fixture();
    let stranger = KeyPair::generate(KeyAlgorithm::Ed25519);
    let body = fixture.list(now_unix() - 10);
    let data = envelope(&member, &fixture.field.clone(), "status", now_unix(), body);
    assert_eq!(
        fixture.judge(&stranger, TopicKind::Status, &data),
        Err("not_member".to_owned())
    );
    // The same message from the member itself is taken.
    assert_eq!(
        fixture.judge(&member, TopicKind::Status, &data),
        Ok(Verdict::Accept)
    );
}

#[test]
fn a_second_head_for_one_position_is_a_fork() {
    let (fixture, member) = fixture();
    let services = &fixture.service.services;
    let did = member.did();
    let first = Checkpoint {
        seq: 7,
        head: "a".repeat(64),
    };
    assert_eq!(keep_checkpoint(services, &did, &first, "token-1"), Ok(true));
    assert_eq!(
        keep_checkpoint(services, &did, &first, "token-1"),
        Ok(false)
    );
    let rewritten = Checkpoint {
        seq: 7,
        head: "b".repeat(64),
    };
    assert_eq!(
        keep_checkpoint(services, &did, &rewritten, "token-2"),
        Err("audit_fork")
    );
    assert_eq!(kept_checkpoints(services, &did), ["token-1"]);
    assert!(
        services
            .audit
            .since(0)
            .unwrap()
            .iter()
            .any(|entry| entry.action == "audit.fork" && entry.actor == did)
    );
}

#[test]
fn only_what_is_wrong_in_the_message_itself_counts_against_a_relay() {
    use crate::credential::ErrorCode;
    use crate::governance::GovCode;
    use crate::threats::ThreatCode;
    // The owners' own codes, so that a renamed code cannot quietly change who is penalised.
    for code in [
        GovCode::Malformed.as_str(),
        GovCode::Forged.as_str(),
        GovCode::TooLarge.as_str(),
        ThreatCode::Malformed.as_str(),
        ThreatCode::UnsupportedPattern.as_str(),
        ThreatCode::BadCountermeasure.as_str(),
        ThreatCode::TlpViolation.as_str(),
        ErrorCode::BadSignature.as_str(),
    ] {
        assert!(super::intrinsic(code), "{code}");
    }
    for code in [
        ThreatCode::RateLimited.as_str(),
        ThreatCode::NotMember.as_str(),
        ThreatCode::Replayed.as_str(),
        ThreatCode::Expired.as_str(),
        GovCode::NotMember.as_str(),
        GovCode::Stale.as_str(),
    ] {
        assert!(!super::intrinsic(code), "{code}");
    }
}
