//! Two real parties (keys, wallets, charters, governance, sled stores) negotiate in memory
//! through the gateway's own [`PartyView`]: the property test checks that what each side
//! presents is always within what the charter allows the other; the examples check that
//! the staged order ends with both sides judged, and that strangers learn nothing.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::view::PartyView;
use crate::charter::Recipient;
use crate::charter::{Charter, disclosure::IDENTITY_TYPE};
use crate::credential::{CredentialDraft, CredentialVerifier, issue_credential, now_unix};
use crate::field::Field;
use crate::governance::OpKind;
use crate::identity::{KeyAlgorithm, KeyPair};
use crate::negotiation::*;
use crate::services::Services;
use crate::store::Store;

/// The types of the test field: tier 1 identity and credit, tier 2 licence, tier 3 the
/// programme's qualification; an inventory that no tier requires.
const TYPES: [&str; 5] = [
    IDENTITY_TYPE,
    "CreditRatingCredential",
    "BusinessLicenseCredential",
    "ProgramQualificationCredential",
    "SoftwareInventoryCredential",
];

/// What a party is in the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Founder,
    Admin,
    Member,
    Applicant,
    Stranger,
}

struct World {
    issuer: KeyPair,
    founder: KeyPair,
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        Self {
            issuer: KeyPair::generate(KeyAlgorithm::Ed25519),
            founder: KeyPair::generate(KeyAlgorithm::Ed25519),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The charter: `founders` and `admins` besides the world's founder, the rules given,
    /// open or closed.
    fn charter(
        &self,
        founders: &[String],
        admins: &[String],
        rules: &[(usize, Vec<String>)],
        open: bool,
    ) -> Option<Charter> {
        let quote = |dids: &[String]| {
            dids.iter()
                .map(|did| format!("\"{did}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut all_founders = vec![self.founder.did()];
        all_founders.extend(founders.iter().cloned());
        let mut disclosure = String::from("[disclosure]\n");
        for (index, audiences) in rules {
            disclosure.push_str(&format!("{} = [{}]\n", TYPES[*index], quote(audiences)));
        }
        let text = format!(
            "name = \"negotiation\"\nfounders = [{founders}]\nadmins = [{admins}]\nquorum = 1\n\
             applications = \"{applications}\"\n\
             [[issuers]]\ndid = \"{issuer}\"\nname = \"Issuer\"\ntypes = [{types}]\n\
             [tiers.prescreening]\nrequire = [\"{IDENTITY_TYPE}\", \"CreditRatingCredential\"]\n\
             [tiers.certification]\nrequire = [\"BusinessLicenseCredential\"]\n\
             [tiers.transaction]\nrequire = [\"ProgramQualificationCredential\"]\n{disclosure}",
            founders = quote(&all_founders),
            admins = quote(admins),
            applications = if open { "open" } else { "closed" },
            issuer = self.issuer.did(),
            types = quote(&TYPES.map(str::to_owned)),
        );
        Charter::parse(&text, self.dir.path()).ok()
    }

    fn credential(&self, holder: &str, type_name: &str) -> String {
        let claims = match type_name {
            IDENTITY_TYPE => serde_json::json!({"corporateNumber": "7000012050002",
                "legalName": "株式会社テスト", "address": "東京都", "representative": "代表"}),
            "CreditRatingCredential" => {
                serde_json::json!({"grade": "B", "score": 80, "assessedOn": "2026-04-01"})
            }
            "BusinessLicenseCredential" => serde_json::json!({"licenseNumber": "1",
                "authority": "MLIT", "kind": "general", "trades": ["建築工事業"],
                "validUntil": "2029-03-31"}),
            "ProgramQualificationCredential" => serde_json::json!({"program": "p",
                "qualification": "registered", "grantedOn": "2026-05-01"}),
            _ => serde_json::json!({"components": [{"name": "openssl", "version": "3.0.1"}]}),
        };
        let now = now_unix();
        let draft = CredentialDraft {
            type_name: type_name.into(),
            subject: holder.into(),
            claims: claims.as_object().cloned().unwrap(),
            valid_from: now - 86_400,
            valid_until: Some(now + 86_400 * 365),
            status: vec![],
        };
        issue_credential(&self.issuer, &draft, now).unwrap()
    }

    /// A party holding `held` of [`TYPES`], in `charter`'s field, where `members` were
    /// admitted.
    fn services(
        &self,
        key: &KeyPair,
        charter: &Charter,
        held: &[usize],
        members: &[String],
    ) -> Services {
        let wallet = held
            .iter()
            .map(|index| self.credential(&key.did(), TYPES[*index]))
            .collect();
        let field = Field {
            charter: charter.clone(),
            policy: None,
        };
        let services = Services::new(
            KeyPair::from_pkcs8_pem(&key.to_pkcs8_pem()).unwrap(),
            vec![field],
            wallet,
            Store::temporary().unwrap(),
            10,
        )
        .unwrap();
        for member in members {
            let (signed, _) = services
                .governance
                .propose(
                    charter,
                    &self.founder,
                    OpKind::Admit,
                    member.clone(),
                    "test".into(),
                    vec![],
                    None,
                    now_unix(),
                )
                .unwrap();
            drop(signed);
        }
        services
    }
}

/// Runs the handshake between `opener` and `responder` in memory, as the service does.
fn negotiate(opener: &PartyView<'_>, responder: &PartyView<'_>) -> (Negotiation, Negotiation) {
    let now = now_unix();
    let mut ours = Negotiation::new(responder.did(), "hello-o".into());
    let asks = ours.open(opener, now).unwrap();
    let mut theirs = Negotiation::new(opener.did(), "hello-r".into());
    theirs.name(responder);
    theirs.take_asks(responder, &asks, now).unwrap();
    let mut incoming = theirs.next(responder, now).unwrap();
    let proof = responder.present(opener.did(), "hello-o", &[]).unwrap();
    ours.take_proof(opener, &proof).unwrap();
    let mut our_proof = Some(opener.present(responder.did(), "hello-r", &[]).unwrap());
    for round in 0..=MAX_TURNS {
        ours.take(opener, &incoming, now).unwrap();
        let mut out = ours.next(opener, now).unwrap();
        let first_due = round == 0 && ours.any_engaged();
        if round == MAX_TURNS || !(out.has_news() || first_due) {
            break;
        }
        out.proof = our_proof.take();
        if !theirs.proven() {
            theirs
                .take_proof(responder, out.proof.as_deref().unwrap())
                .unwrap();
        }
        theirs.take(responder, &out, now).unwrap();
        incoming = theirs.next(responder, now).unwrap();
    }
    (ours, theirs)
}

fn key_and_did() -> (KeyPair, String) {
    let key = KeyPair::generate(KeyAlgorithm::Ed25519);
    let did = key.did();
    (key, did)
}

/// The charter's roles for a party with `role`.
fn roles(role: Role, did: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    match role {
        Role::Founder => (vec![did.to_owned()], vec![], vec![]),
        Role::Admin => (vec![], vec![did.to_owned()], vec![]),
        Role::Member => (vec![], vec![], vec![did.to_owned()]),
        Role::Applicant | Role::Stranger => (vec![], vec![], vec![]),
    }
}

/// What `services` knows `peer` as, in its judgement at the end.
fn final_recipient(view: &PartyView<'_>, negotiation: &Negotiation, field: &str) -> Recipient {
    let mut recipient = view.recipient(field, negotiation.peer());
    if let Some((judgement, _)) = negotiation.outcome(view).get(field) {
        recipient.tier = judgement.tier;
        recipient.held = judgement.counted.clone();
    }
    recipient
}

fn audience() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("founders".to_owned()),
        Just("admins".to_owned()),
        Just("members".to_owned()),
        Just("verified".to_owned()),
        (1u8..=3).prop_map(|tier| format!("tier>={tier}")),
        (0..TYPES.len()).prop_map(|index| format!("holders:{}", TYPES[index])),
    ]
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![
        Just(Role::Founder),
        Just(Role::Admin),
        Just(Role::Member),
        Just(Role::Applicant),
        Just(Role::Stranger),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Over random charters, roles and wallets, every credential a side presents is one
    /// the charter's rules allow the other side as the presenter finally judged it, and
    /// one the field uses; and nothing at all reaches a stranger.
    #[test]
    fn what_each_side_discloses_is_within_what_the_charter_allows(
        rules in proptest::collection::vec(
            (0..TYPES.len(), proptest::collection::vec(audience(), 0..3)), 0..5),
        open in any::<bool>(),
        (role_a, role_b) in (role(), role()),
        held_a in proptest::collection::btree_set(0..TYPES.len(), 0..=5),
        held_b in proptest::collection::btree_set(0..TYPES.len(), 0..=5),
    ) {
        let world = World::new();
        let (key_a, did_a) = key_and_did();
        let (key_b, did_b) = key_and_did();
        let (mut founders, mut admins, mut members) = roles(role_a, &did_a);
        let (f, a, m) = roles(role_b, &did_b);
        founders.extend(f);
        admins.extend(a);
        members.extend(m);
        let Some(charter) = world.charter(&founders, &admins, &rules, open) else {
            // A table the charter refuses (a cycle, say) never reaches a handshake.
            return Ok(());
        };
        let field = charter.field_id();
        let held_a: Vec<usize> = held_a.into_iter().collect();
        let held_b: Vec<usize> = held_b.into_iter().collect();
        let party_a = world.services(&key_a, &charter, &held_a, &members);
        let party_b = world.services(&key_b, &charter, &held_b, &members);
        // A stranger has not joined the field: it knows it from nowhere.
        let stranger_a = role_a == Role::Stranger;
        let stranger_b = role_b == Role::Stranger;
        if stranger_a {
            party_a.fields.forget_all();
        }
        if stranger_b {
            party_b.fields.forget_all();
        }
        let verifier = CredentialVerifier::new();
        let view_a = PartyView::new(&party_a, &did_a, &verifier);
        let view_b = PartyView::new(&party_b, &did_b, &verifier);
        let (at_a, at_b) = negotiate(&view_a, &view_b);
        for (view, negotiation, sent) in [
            (&view_a, &at_a, view_a.take_writes().disclosures),
            (&view_b, &at_b, view_b.take_writes().disclosures),
        ] {
            let recipient = final_recipient(view, negotiation, &field);
            for disclosure in sent.iter().filter(|d| d.direction == Direction::Sent) {
                for kind in &disclosure.presented {
                    prop_assert!(
                        charter.disclosure.allows(kind, &recipient),
                        "{kind} went to {recipient:?} under {rules:?}"
                    );
                    prop_assert!(charter.presentable_types().contains(kind));
                }
            }
        }
        if stranger_a || stranger_b {
            prop_assert!(!at_a.any_engaged() && !at_b.any_engaged());
        }
    }
}

#[test]
fn an_applicant_reveals_first_to_an_admin_and_both_end_judged() {
    let world = World::new();
    let (city, city_did) = key_and_did();
    let (applicant, applicant_did) = key_and_did();
    let rules = [
        (0, vec!["verified".to_owned()]),
        (2, vec!["verified".to_owned()]),
    ];
    let charter = world
        .charter(&[], std::slice::from_ref(&city_did), &rules, true)
        .unwrap();
    let field = charter.field_id();
    let at_city = world.services(&city, &charter, &[0, 1, 2], &[]);
    let at_applicant = world.services(&applicant, &charter, &[0, 1, 2, 3], &[]);
    let verifier = CredentialVerifier::new();
    let city_view = PartyView::new(&at_city, &city_did, &verifier);
    let applicant_view = PartyView::new(&at_applicant, &applicant_did, &verifier);
    // The applicant opens; the city (an admin of an open field) screens it.
    let (applicant_side, city_side) = negotiate(&applicant_view, &city_view);
    let city_judged = city_side.outcome(&city_view);
    assert_eq!(
        city_judged[&field].0.tier, 3,
        "the city saw everything the charter requires"
    );
    let applicant_judged = applicant_side.outcome(&applicant_view);
    assert_eq!(
        applicant_judged[&field].0.counted,
        BTreeSet::from([
            IDENTITY_TYPE.to_owned(),
            "BusinessLicenseCredential".to_owned()
        ]),
        "the applicant saw what the rules allow a verified peer: not the city's credit"
    );
    assert!(applicant_side.mutual_in(&applicant_view, &field));
    assert!(city_side.mutual_in(&city_view, &field));
    // The city presented only after judging the applicant: its first answer was empty.
    let sent_by_city: Vec<_> = city_view
        .take_writes()
        .disclosures
        .into_iter()
        .filter(|disclosure| disclosure.direction == Direction::Sent)
        .collect();
    assert!(sent_by_city[0].presented.is_empty(), "{sent_by_city:?}");
    assert!(
        sent_by_city
            .iter()
            .any(|d| d.presented.contains(IDENTITY_TYPE))
    );
    assert!(
        sent_by_city
            .iter()
            .all(|d| !d.presented.contains("CreditRatingCredential"))
    );
}

#[test]
fn two_applicants_name_nothing_to_each_other() {
    let world = World::new();
    let (a, did_a) = key_and_did();
    let (b, did_b) = key_and_did();
    let charter = world.charter(&[], &[], &[], true).unwrap();
    let party_a = world.services(&a, &charter, &[0, 1], &[]);
    let party_b = world.services(&b, &charter, &[0, 1], &[]);
    let verifier = CredentialVerifier::new();
    let view_a = PartyView::new(&party_a, &did_a, &verifier);
    let view_b = PartyView::new(&party_b, &did_b, &verifier);
    let (at_a, at_b) = negotiate(&view_a, &view_b);
    assert!(!at_a.any_engaged() && !at_b.any_engaged());
    assert!(
        view_a.take_writes().disclosures.is_empty() && view_b.take_writes().disclosures.is_empty()
    );
}

#[test]
fn an_over_request_is_refused_and_logged_never_trimmed() {
    let world = World::new();
    let (a, did_a) = key_and_did();
    let (b, did_b) = key_and_did();
    let charter = world
        .charter(&[did_a.clone(), did_b.clone()], &[], &[], false)
        .unwrap();
    let field = charter.field_id();
    let party_b = world.services(&b, &charter, &[0, 1], &[]);
    let verifier = CredentialVerifier::new();
    let view_b = PartyView::new(&party_b, &did_b, &verifier);
    // A founder of the same field may be given everything by default; a stranger's key
    // asking for the credit of B in B's field is not a founder.
    let (c, did_c) = key_and_did();
    let now = now_unix();
    let ask = AskClaims {
        iss: did_c.clone(),
        aud: did_b.clone(),
        kind: ASK_KIND.into(),
        field: field.clone(),
        types: BTreeSet::from(["CreditRatingCredential".to_owned()]),
        nonce: "n".into(),
        iat: now,
        exp: now + 60,
    };
    let token = crate::credential::sign_message(&c, &ask).unwrap();
    let mut negotiation = Negotiation::new(&did_c, "h".into());
    negotiation
        .take_asks(&view_b, std::slice::from_ref(&token), now)
        .unwrap();
    // C has no standing in B's closed field: its ask is ignored, not even refused.
    assert!(!negotiation.any_engaged());
    assert!(negotiation.next(&view_b, now).unwrap().answers.is_empty());
    // A (a founder) asking for a type no tier requires and the table does not name is
    // an over-request: refused in full, and logged with what was asked.
    let ask = AskClaims {
        iss: did_a.clone(),
        types: BTreeSet::from([
            IDENTITY_TYPE.to_owned(),
            "TaxComplianceCredential".to_owned(),
        ]),
        ..ask
    };
    let token = crate::credential::sign_message(&a, &ask).unwrap();
    let mut negotiation = Negotiation::new(&did_a, "h".into());
    negotiation.take_asks(&view_b, &[token], now).unwrap();
    let turn = negotiation.next(&view_b, now).unwrap();
    assert_eq!(turn.answers.len(), 1);
    assert_eq!(turn.answers[0].refused.as_deref(), Some("over_request"));
    assert!(turn.answers[0].presentation.is_none());
    let logged = view_b.take_writes().disclosures;
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].outcome, Outcome::Refused);
    assert_eq!(logged[0].requested.len(), 2);
    assert!(logged[0].presented.is_empty());
}

#[test]
fn a_refused_ask_is_asked_again_only_once_the_peers_verdict_of_us_changes() {
    let world = World::new();
    let (a, did_a) = key_and_did();
    let (_, did_b) = key_and_did();
    let rules = [(0, vec!["verified".to_owned()])];
    let charter = world.charter(&[], &[], &rules, false).unwrap();
    let field = charter.field_id();
    // A knows both admissions; B (played by hand) has not heard of A's yet.
    let party_a = world.services(&a, &charter, &[0, 1], &[did_a.clone(), did_b.clone()]);
    let verifier = CredentialVerifier::new();
    let view_a = PartyView::new(&party_a, &did_a, &verifier);
    let now = now_unix();
    let mut at_a = Negotiation::new(&did_b, "h".into());
    let first = at_a.open(&view_a, now).unwrap();
    assert_eq!(first.len(), 1, "A asks B in the field");
    let asked = |turn: &Turn| -> BTreeSet<String> {
        turn.asks
            .iter()
            .flat_map(|token| view_a.open_ask(token, &did_a).unwrap().types)
            .collect()
    };
    assert!(
        asked(&Turn {
            asks: first,
            ..Turn::default()
        })
        .contains(IDENTITY_TYPE)
    );
    let refusal = Turn {
        answers: vec![Answer {
            field: field.clone(),
            presentation: None,
            refused: Some("over_request".into()),
        }],
        ..Turn::default()
    };
    at_a.take(&view_a, &refusal, now).unwrap();
    assert!(
        at_a.next(&view_a, now).unwrap().asks.is_empty(),
        "nothing changed in B's eyes: asking again would only be refused again"
    );
    // B learns of A's admission and tells its verdict: now A asks again.
    let verdict = Turn {
        verdicts: vec![FieldVerdict {
            field: field.clone(),
            tier: 0,
            verified: true,
            counted: BTreeSet::new(),
        }],
        ..Turn::default()
    };
    at_a.take(&view_a, &verdict, now).unwrap();
    let again = at_a.next(&view_a, now).unwrap();
    assert!(asked(&again).contains(IDENTITY_TYPE), "{again:?}");
    // The same verdict told again (it is not: verdicts are told once) would change nothing.
    at_a.take(&view_a, &verdict, now).unwrap();
    assert!(at_a.next(&view_a, now).unwrap().asks.is_empty());
}
