use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::strategy::ValueTree;

use super::*;

const HOUSING: &str = include_str!("../../../config/policies/housing-subsidy.cedar");
const SUPPLY_CHAIN: &str = include_str!("../../../config/policies/supply-chain.cedar");

fn org(did: &str, tier: u8) -> OrgFacts {
    OrgFacts {
        did: did.into(),
        tier,
        ..OrgFacts::default()
    }
}

fn record(
    field: &str,
    tier: u8,
    owner: &str,
    value: ValueLevel,
    purposes: &[&str],
    disclosure: &[&str],
) -> Resource {
    Resource::Record {
        space: SpaceRef {
            field: field.into(),
            tier,
        },
        labels: RecordLabels {
            id: "r1".into(),
            owner: owner.into(),
            category: Category::TradeSecret,
            value_level: value,
            rights_holders: BTreeSet::new(),
            allowed_purposes: purposes.iter().map(|p| (*p).to_owned()).collect(),
            disclosure: disclosure.iter().map(|d| (*d).to_owned()).collect(),
        },
    }
}

fn request(
    principal: OrgFacts,
    action: Action,
    resource: Resource,
    purpose: &str,
) -> AccessRequest {
    AccessRequest {
        principal,
        action,
        resource,
        purpose: purpose.into(),
        threat_level: 0,
    }
}

#[test]
fn the_example_policies_validate_against_the_schema() {
    assert_eq!(PolicyEngine::new(HOUSING).unwrap().policy_count(), 8);
    assert_eq!(PolicyEngine::new(SUPPLY_CHAIN).unwrap().policy_count(), 9);
    assert_eq!(
        PolicyEngine::new(&synthetic_policy_set(1000))
            .unwrap()
            .policy_count(),
        1000
    );
}

#[test]
fn bad_policies_are_refused_with_the_place() {
    let syntax =
        PolicyEngine::new("permit(principal, action, resource) when { principal.tier >= };")
            .unwrap_err();
    assert_eq!(syntax.code(), "policy_syntax");
    assert!(syntax.to_string().contains("line 1, column 62"), "{syntax}");
    let unknown_attribute = PolicyEngine::new(
        "permit(principal, action, resource is Tfc::Record) when { resource.colour == \"red\" };",
    )
    .unwrap_err();
    assert_eq!(unknown_attribute.code(), "policy_invalid");
    assert!(
        unknown_attribute.to_string().contains("colour"),
        "{unknown_attribute}"
    );
    let wrong_type =
        PolicyEngine::new("permit(principal, action, resource) when { principal.tier == \"3\" };")
            .unwrap_err();
    assert_eq!(wrong_type.code(), "policy_invalid");
    let unknown_action =
        PolicyEngine::new("permit(principal, action == Tfc::Action::\"steal\", resource);")
            .unwrap_err();
    assert_eq!(unknown_action.code(), "policy_invalid");
}

#[test]
fn built_entities_and_requests_conform_to_the_schema() {
    let engine = PolicyEngine::new(HOUSING).unwrap();
    let mut principal = org("did:key:zA", 3);
    principal.corporate_number = Some("7000012050002".into());
    principal.certifications.insert("ISO27001:basic".into());
    principal.roles.insert("admin".into());
    for resource in [
        record(
            "f",
            3,
            "did:key:zB",
            ValueLevel::High,
            &["subsidy-review"],
            &["did:key:zA"],
        ),
        Resource::Space {
            space: SpaceRef {
                field: "f".into(),
                tier: 2,
            },
        },
    ] {
        for action in [
            Action::Read,
            Action::Write,
            Action::List,
            Action::Submit,
            Action::Delete,
        ] {
            let request = request(
                principal.clone(),
                action,
                resource.clone(),
                "subsidy-review",
            );
            engine.check_request_shape(&request).unwrap();
            assert!(engine.decide(&request).errors.is_empty());
        }
    }
}

#[test]
fn decisions_name_their_policies_and_reason() {
    let engine = PolicyEngine::new(HOUSING).unwrap();
    let resource = record(
        "f",
        3,
        "did:key:zOwner",
        ValueLevel::Medium,
        &["subsidy-review"],
        &["did:key:zCity"],
    );
    let allowed = engine.decide(&request(
        org("did:key:zOwner", 3),
        Action::Read,
        resource.clone(),
        "any",
    ));
    assert!(allowed.allowed);
    assert_eq!(allowed.policies, ["owner-access"]);
    assert_eq!(allowed.reason, "the owner of a record may use it");
    let denied = engine.decide(&request(
        org("did:key:zOther", 3),
        Action::Read,
        resource.clone(),
        "subsidy-review",
    ));
    assert!(!denied.allowed);
    assert!(denied.policies.is_empty());
    assert_eq!(denied.reason, "no policy permits this request");
    let mut suspended = org("did:key:zOwner", 3);
    suspended.suspended = true;
    let forbidden = engine.decide(&request(suspended, Action::Read, resource, "any"));
    assert_eq!(forbidden.policies, ["suspended-members"]);
    assert_eq!(forbidden.reason, "suspended members are refused everything");
}

/// Strategies over the facts that policies read.
fn org_facts() -> impl Strategy<Value = OrgFacts> {
    (
        0..4u8,
        0..4usize,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        0..3usize,
    )
        .prop_map(|(tier, who, suspended, vulnerable, admin, certification)| {
            let mut facts = org(
                ["did:key:zA", "did:key:zB", "did:key:zC", "did:key:zD"][who],
                tier,
            );
            facts.suspended = suspended;
            facts.vulnerable = vulnerable;
            if admin {
                facts.roles.insert("admin".into());
            }
            for level in &ASSURANCE_LEVELS[..certification] {
                facts.certifications.insert(format!("ISO27001:{level}"));
            }
            facts
        })
}

fn resources() -> impl Strategy<Value = Resource> {
    let dids = ["did:key:zA", "did:key:zB", "did:key:zC", "did:key:zD"];
    let values = [
        ValueLevel::Low,
        ValueLevel::Medium,
        ValueLevel::High,
        ValueLevel::VeryHigh,
    ];
    (
        0..50usize,
        1..4u8,
        0..4usize,
        0..4usize,
        0..7usize,
        proptest::collection::btree_set(0..4usize, 0..3),
        any::<bool>(),
    )
        .prop_map(
            move |(field, tier, owner, value, purpose, disclosed, whole_space)| {
                let space = SpaceRef {
                    field: format!("field-{field}"),
                    tier,
                };
                if whole_space {
                    return Resource::Space { space };
                }
                Resource::Record {
                    space,
                    labels: RecordLabels {
                        id: "r".into(),
                        owner: dids[owner].into(),
                        category: Category::Personal,
                        value_level: values[value],
                        rights_holders: BTreeSet::new(),
                        allowed_purposes: [format!("purpose-{purpose}"), "subsidy-review".into()]
                            .into(),
                        disclosure: disclosed.into_iter().map(|i| dids[i].to_owned()).collect(),
                    },
                }
            },
        )
}

fn requests() -> impl Strategy<Value = AccessRequest> {
    let actions = [
        Action::Read,
        Action::Write,
        Action::List,
        Action::Submit,
        Action::Delete,
    ];
    (org_facts(), 0..5usize, resources(), 0..8usize, 0..5u8).prop_map(
        move |(principal, action, resource, purpose, threat_level)| {
            let purpose = if purpose == 7 {
                "subsidy-review".to_owned()
            } else {
                format!("purpose-{purpose}")
            };
            AccessRequest {
                principal,
                action: actions[action],
                resource,
                purpose,
                threat_level,
            }
        },
    )
}

fn engines() -> &'static [PolicyEngine] {
    static ENGINES: std::sync::OnceLock<Vec<PolicyEngine>> = std::sync::OnceLock::new();
    ENGINES.get_or_init(|| {
        [
            HOUSING.to_owned(),
            SUPPLY_CHAIN.to_owned(),
            synthetic_policy_set(300),
            format!("{HOUSING}{}", synthetic_policy_set(200)),
        ]
        .iter()
        .map(|source| PolicyEngine::new(source).unwrap())
        .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    /// Slicing never changes a decision or the policies that made it.
    #[test]
    fn sliced_decisions_equal_full_decisions(request in requests(), which in 0..4usize) {
        let engine = &engines()[which];
        let sliced = engine.decide(&request);
        let full = engine.decide_unsliced(&request);
        prop_assert_eq!(sliced, full);
    }
}

#[test]
fn slicing_is_exercised_on_both_outcomes() {
    // Guard against a vacuous equality test: the random requests reach both decisions.
    let engine = &engines()[2];
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut allowed, mut denied) = (0, 0);
    for _ in 0..2000 {
        let request = requests().new_tree(&mut runner).unwrap().current();
        if engine.decide(&request).allowed {
            allowed += 1
        } else {
            denied += 1
        }
    }
    assert!(
        allowed > 20 && denied > 20,
        "allowed {allowed}, denied {denied}"
    );
}

#[test]
fn a_changed_label_or_fact_is_decided_afresh_after_a_cached_decision() {
    let engine = PolicyEngine::new(HOUSING).unwrap();
    let city = org("did:key:zCity", 3);
    let disclosed = record(
        "f",
        3,
        "did:key:zOwner",
        ValueLevel::Medium,
        &["subsidy-review"],
        &["did:key:zCity"],
    );
    let ask = |principal: &OrgFacts, resource: &Resource| {
        engine.decide(&request(
            principal.clone(),
            Action::Read,
            resource.clone(),
            "subsidy-review",
        ))
    };
    // Asked twice: the second answer comes from the cached closed entities.
    assert!(ask(&city, &disclosed).allowed);
    assert!(ask(&city, &disclosed).allowed);
    let withdrawn = record(
        "f",
        3,
        "did:key:zOwner",
        ValueLevel::Medium,
        &["subsidy-review"],
        &[],
    );
    assert!(!ask(&city, &withdrawn).allowed);
    let mut suspended = city.clone();
    suspended.suspended = true;
    assert!(!ask(&suspended, &disclosed).allowed);
    assert!(ask(&city, &disclosed).allowed);
}
