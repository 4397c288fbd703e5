//! Housing subsidy: a city screens contractors who apply to its programme.

use serde_json::json;
use tfc_gateway::credential::{CLOCK_SKEW_SECS, ErrorCode, format_rfc3339};
use tfc_gateway::tier::RequirementStatus;

use super::*;

struct Issuers {
    city: KeyPair,
    registrar: KeyPair,
    bureau: KeyPair,
    screener: KeyPair,
    licensing: KeyPair,
}

fn issuers() -> Issuers {
    Issuers {
        city: example_key("Example City"),
        registrar: example_key("Legal Affairs Bureau"),
        bureau: example_key("Teikoku Credit Bureau"),
        screener: example_key("Prefectural screening agency"),
        licensing: example_key("MLIT licensing authority"),
    }
}

/// What a contractor holds, step by step up the tiers.
#[derive(Clone, Copy)]
struct Profile {
    score: i64,
    screening: &'static str,
    licence_days: Option<i64>,
    licence_self_issued: bool,
    offering: bool,
    qualification: Option<&'static str>,
}

const PRESCREENED: Profile = Profile {
    score: 75,
    screening: "clear",
    licence_days: None,
    licence_self_issued: false,
    offering: false,
    qualification: None,
};
const CERTIFIED: Profile = Profile {
    licence_days: Some(365),
    offering: true,
    ..PRESCREENED
};
const QUALIFIED: Profile = Profile {
    qualification: Some("housing-subsidy-2026"),
    ..CERTIFIED
};

fn credentials(contractor: &KeyPair, profile: Profile) -> Vec<String> {
    let issuers = issuers();
    let mut tokens = vec![
        issue(
            &issuers.registrar,
            contractor,
            "OrganizationIdentityCredential",
            json!({
            "corporateNumber": "7000012050002", "legalName": "株式会社エー建設",
            "address": "東京都千代田区霞が関3-1-1", "representative": "山田 太郎"}),
            365,
        ),
        issue(
            &issuers.bureau,
            contractor,
            "CreditRatingCredential",
            json!({"grade": "B", "score": profile.score, "assessedOn": "2026-04-01"}),
            365,
        ),
        issue(
            &issuers.screener,
            contractor,
            "AntisocialForcesScreeningCredential",
            json!({"result": profile.screening, "screenedOn": "2026-04-02", "method": "database and interview"}),
            365,
        ),
    ];
    if let Some(days) = profile.licence_days {
        let issuer = if profile.licence_self_issued {
            contractor
        } else {
            &issuers.licensing
        };
        tokens.push(issue(issuer, contractor, "BusinessLicenseCredential", json!({
            "licenseNumber": "国土交通大臣許可(般-5)第12345号", "authority": "国土交通省", "kind": "建設業許可 (一般)",
            "trades": ["建築工事業", "内装仕上工事業"], "validUntil": "2029-03-31"}), days));
    }
    if profile.offering {
        tokens.push(issue(
            contractor,
            contractor,
            "ServiceOfferingCredential",
            json!({"plans": ["耐震改修", "断熱改修"], "regions": ["東京都"], "capacity": 40}),
            365,
        ));
    }
    if let Some(program) = profile.qualification {
        tokens.push(issue(&issuers.city, contractor, "ProgramQualificationCredential", json!({"program": program, "qualification": "registered contractor", "grantedOn": "2026-05-01"}), 365));
    }
    tokens
}

#[test]
fn tiers_follow_the_charter() {
    let field = Field::load("housing-subsidy");
    let contractor = example_key("Contractor A");
    struct Case {
        name: &'static str,
        profile: Profile,
        tier: u8,
        requirement: &'static str,
        status: RequirementStatus,
        code: Option<ErrorCode>,
    }
    let cases = [
        Case {
            name: "flagged screening",
            profile: Profile {
                screening: "flagged",
                ..PRESCREENED
            },
            tier: 0,
            requirement: "AntisocialForcesScreeningCredential.result == 'clear'",
            status: RequirementStatus::Failed,
            code: None,
        },
        Case {
            name: "weak credit",
            profile: Profile {
                score: 40,
                ..PRESCREENED
            },
            tier: 0,
            requirement: "CreditRatingCredential.score >= 60",
            status: RequirementStatus::Failed,
            code: None,
        },
        Case {
            name: "good credit, no licence",
            profile: PRESCREENED,
            tier: 1,
            requirement: "BusinessLicenseCredential",
            status: RequirementStatus::Missing,
            code: None,
        },
        Case {
            name: "licence and offering",
            profile: CERTIFIED,
            tier: 2,
            requirement: "ProgramQualificationCredential",
            status: RequirementStatus::Missing,
            code: None,
        },
        Case {
            name: "qualified",
            profile: QUALIFIED,
            tier: 3,
            requirement: "ProgramQualificationCredential.program == 'housing-subsidy-2026'",
            status: RequirementStatus::Satisfied,
            code: None,
        },
        Case {
            name: "another programme's qualification",
            profile: Profile {
                qualification: Some("school-repair-2026"),
                ..QUALIFIED
            },
            tier: 2,
            requirement: "ProgramQualificationCredential.program == 'housing-subsidy-2026'",
            status: RequirementStatus::Failed,
            code: None,
        },
        Case {
            name: "self-declared licence where a third party is required",
            profile: Profile {
                licence_self_issued: true,
                ..QUALIFIED
            },
            tier: 1,
            requirement: "BusinessLicenseCredential",
            status: RequirementStatus::Failed,
            code: Some(ErrorCode::SelfDeclaredNotAccepted),
        },
        Case {
            name: "self-declared offering is accepted",
            profile: CERTIFIED,
            tier: 2,
            requirement: "ServiceOfferingCredential",
            status: RequirementStatus::Satisfied,
            code: None,
        },
    ];
    for case in cases {
        let report = field.tiers(&contractor, &credentials(&contractor, case.profile), AT);
        assert_tier(&report, case.tier, case.name);
        let outcome = requirement(&report, case.requirement);
        assert_eq!(outcome.status, case.status, "{}: {outcome:?}", case.name);
        assert_eq!(outcome.code, case.code, "{}: {outcome:?}", case.name);
    }
}

#[test]
fn a_licence_expiring_tomorrow_drops_the_contractor_to_tier_one_the_day_after() {
    let field = Field::load("housing-subsidy");
    let contractor = example_key("Contractor A");
    let tokens = credentials(
        &contractor,
        Profile {
            licence_days: Some(1),
            ..QUALIFIED
        },
    );
    let today = field.tiers(&contractor, &tokens, AT);
    assert_tier(&today, 3, "today");
    let expiry = AT + DAY + CLOCK_SKEW_SECS;
    assert_eq!(
        today.next_change,
        Some(expiry),
        "next change at {:?}",
        today.next_change.map(format_rfc3339)
    );
    assert!(
        today
            .next_change_reason
            .as_deref()
            .unwrap_or_default()
            .contains("BusinessLicenseCredential")
    );
    assert_tier(
        &field.tiers(&contractor, &tokens, expiry - 1),
        3,
        "a second before the change",
    );
    let after = field.tiers(&contractor, &tokens, AT + 2 * DAY);
    assert_tier(&after, 1, "the day after");
    let licence = requirement(&after, "BusinessLicenseCredential");
    assert_eq!(licence.code, Some(ErrorCode::Expired));
}

#[test]
fn untrusted_issuers_and_other_holders_credentials_do_not_count() {
    let field = Field::load("housing-subsidy");
    let contractor = example_key("Contractor A");
    let stranger = example_key("Unknown screening company");
    let mut tokens = credentials(&contractor, PRESCREENED);
    tokens[2] = issue(
        &stranger,
        &contractor,
        "AntisocialForcesScreeningCredential",
        json!({"result": "clear", "screenedOn": "2026-04-02", "method": "self check"}),
        365,
    );
    let report = field.tiers(&contractor, &tokens, AT);
    assert_tier(&report, 0, "untrusted screening");
    assert_eq!(
        requirement(&report, "AntisocialForcesScreeningCredential").code,
        Some(ErrorCode::UntrustedIssuer)
    );
    let borrowed = credentials(&example_key("Contractor B"), PRESCREENED);
    let report = field.tiers(&contractor, &borrowed, AT);
    assert_tier(&report, 0, "someone else's credentials");
    assert_eq!(
        requirement(&report, "OrganizationIdentityCredential").code,
        Some(ErrorCode::HolderMismatch)
    );
}

/// An application record of contractor A, disclosed to the city, in the tier-3 space.
fn application(field: &Field, owner: &KeyPair, city: &KeyPair) -> Resource {
    record(
        field.space(3),
        owner,
        ValueLevel::High,
        Category::PersonalRelated,
        &["subsidy-review", "audit"],
        &[city],
    )
}

#[test]
fn access_to_applications_is_purpose_bound_and_tier_scoped() {
    let field = Field::load("housing-subsidy");
    let city = example_key("Example City");
    let (a, b, c) = (
        example_key("Contractor A"),
        example_key("Contractor B"),
        example_key("Contractor C"),
    );
    let facts_a = field.facts(&a, &credentials(&a, QUALIFIED), AT);
    let facts_b = field.facts(&b, &credentials(&b, QUALIFIED), AT);
    let facts_c = field.facts(&c, &credentials(&c, CERTIFIED), AT);
    let facts_city = field.facts(&city, &[], AT);
    assert_eq!(
        (facts_a.tier, facts_b.tier, facts_c.tier, facts_city.tier),
        (3, 3, 2, 0)
    );
    assert!(facts_city.roles.contains("admin"));
    assert_eq!(facts_a.corporate_number.as_deref(), Some("7000012050002"));
    assert!(facts_a.licences.contains("建築工事業"));
    let application = application(&field, &a, &city);
    struct Case {
        name: &'static str,
        principal: OrgFacts,
        action: Action,
        resource: Resource,
        purpose: &'static str,
        allowed: bool,
        policy: Option<&'static str>,
    }
    let disclosed_to_c = record(
        field.space(3),
        &a,
        ValueLevel::High,
        Category::PersonalRelated,
        &["subsidy-review"],
        &[&c],
    );
    let mut suspended_a = facts_a.clone();
    suspended_a.suspended = true;
    let cases = [
        Case {
            name: "the city reviews an application",
            principal: facts_city.clone(),
            action: Action::Read,
            resource: application.clone(),
            purpose: "subsidy-review",
            allowed: true,
            policy: Some("programme-review"),
        },
        Case {
            name: "the city reads it for marketing",
            principal: facts_city.clone(),
            action: Action::Read,
            resource: application.clone(),
            purpose: "marketing",
            allowed: false,
            policy: None,
        },
        Case {
            name: "the applicant reads its own application",
            principal: facts_a.clone(),
            action: Action::Read,
            resource: application.clone(),
            purpose: "audit",
            allowed: true,
            policy: Some("owner-access"),
        },
        Case {
            name: "a competitor reads the application",
            principal: facts_b.clone(),
            action: Action::Read,
            resource: application.clone(),
            purpose: "subsidy-review",
            allowed: false,
            policy: None,
        },
        Case {
            name: "a tier-2 contractor reads a tier-3 record even when disclosed",
            principal: facts_c.clone(),
            action: Action::Read,
            resource: disclosed_to_c,
            purpose: "subsidy-review",
            allowed: false,
            policy: None,
        },
        Case {
            name: "a tier-3 contractor lists the tier-3 space",
            principal: facts_b.clone(),
            action: Action::List,
            resource: Resource::Space {
                space: field.space(3),
            },
            purpose: "subsidy-review",
            allowed: true,
            policy: Some("space-access"),
        },
        Case {
            name: "a tier-2 contractor lists the tier-3 space",
            principal: facts_c.clone(),
            action: Action::List,
            resource: Resource::Space {
                space: field.space(3),
            },
            purpose: "subsidy-review",
            allowed: false,
            policy: None,
        },
        Case {
            name: "a suspended applicant is refused its own record",
            principal: suspended_a,
            action: Action::Read,
            resource: application.clone(),
            purpose: "audit",
            allowed: false,
            policy: Some("suspended-members"),
        },
    ];
    for case in cases {
        let decision = field.decide(case.principal, case.action, &case.resource, case.purpose, 0);
        assert_eq!(
            decision.allowed, case.allowed,
            "{}: {decision:?}",
            case.name
        );
        if let Some(policy) = case.policy {
            assert!(
                decision.policies.iter().any(|p| p == policy),
                "{}: {decision:?}",
                case.name
            );
        }
        assert!(!decision.reason.is_empty());
    }
}

#[test]
fn a_critical_threat_level_freezes_writes_except_for_admins() {
    let field = Field::load("housing-subsidy");
    let (a, city) = (example_key("Contractor A"), example_key("Example City"));
    let facts_a = field.facts(&a, &credentials(&a, QUALIFIED), AT);
    let space = Resource::Space {
        space: field.space(3),
    };
    assert!(
        field
            .decide(
                facts_a.clone(),
                Action::Write,
                &space,
                "subsidy-application",
                0
            )
            .allowed
    );
    let frozen = field.decide(facts_a, Action::Write, &space, "subsidy-application", 4);
    assert!(!frozen.allowed);
    assert_eq!(frozen.policies, ["critical-threat-freeze"]);
    let facts_city = field.facts(&city, &[], AT);
    let record = application(&field, &city, &city);
    assert!(
        field
            .decide(facts_city, Action::Write, &record, "subsidy-review", 4)
            .allowed
    );
}
