//! Supply chain: a manufacturer shares restricted design data with certified suppliers.

use serde_json::json;

use super::*;

fn supplier_credentials(supplier: &KeyPair, certification: Option<&str>) -> Vec<String> {
    let registrar = example_key("Legal Affairs Bureau");
    let bureau = example_key("Teikoku Credit Bureau");
    let certifier = example_key("JQA certification body");
    let manufacturer = example_key("Example Motors");
    let mut tokens = vec![
        issue(
            &registrar,
            supplier,
            "OrganizationIdentityCredential",
            json!({
            "corporateNumber": "9010401123456", "legalName": "株式会社サプライ精機",
            "address": "愛知県豊田市1-1", "representative": "佐藤 花子"}),
            365,
        ),
        issue(
            &bureau,
            supplier,
            "CreditRatingCredential",
            json!({"grade": "A", "score": 85, "assessedOn": "2026-03-01"}),
            365,
        ),
        issue(
            supplier,
            supplier,
            "ServiceOfferingCredential",
            json!({"plans": ["battery housings"], "regions": ["JP"], "capacity": 5000}),
            365,
        ),
        issue(
            &manufacturer,
            supplier,
            "ProgramQualificationCredential",
            json!({"program": "ev-platform-2027", "qualification": "tier-1 supplier", "grantedOn": "2026-02-01"}),
            365,
        ),
    ];
    if let Some(level) = certification {
        tokens.push(issue(&certifier, supplier, "SecurityCertificationCredential", json!({
            "scheme": "ISO27001", "assuranceLevel": level, "scope": "design data handling", "certifiedBy": "JQA"}), 365));
    }
    tokens
}

#[test]
fn restricted_design_data_follows_certification_vulnerability_and_threat_level() {
    let field = Field::load("supply-chain");
    let manufacturer = example_key("Example Motors");
    let (substantial, basic, uncertified) = (
        example_key("Supplier S"),
        example_key("Supplier B"),
        example_key("Supplier U"),
    );
    let facts_substantial = field.facts(
        &substantial,
        &supplier_credentials(&substantial, Some("substantial")),
        AT,
    );
    let facts_high = field.facts(
        &substantial,
        &supplier_credentials(&substantial, Some("high")),
        AT,
    );
    let facts_basic = field.facts(&basic, &supplier_credentials(&basic, Some("basic")), AT);
    let facts_uncertified =
        field.facts(&uncertified, &supplier_credentials(&uncertified, None), AT);
    assert_eq!(
        (
            facts_substantial.tier,
            facts_basic.tier,
            facts_uncertified.tier
        ),
        (3, 3, 1)
    );
    assert!(
        facts_high.certifications.contains("ISO27001:substantial"),
        "higher levels imply lower ones"
    );
    let mut vulnerable = facts_substantial.clone();
    vulnerable.vulnerable = true;
    let everyone = [&substantial, &basic, &uncertified];
    let design = |value| {
        record(
            field.space(3),
            &manufacturer,
            value,
            Category::TradeSecret,
            &["design-collaboration"],
            &everyone,
        )
    };
    let (very_high, high) = (design(ValueLevel::VeryHigh), design(ValueLevel::High));
    let cases = [
        (
            "ISO 27001 substantial reads very-high",
            facts_substantial.clone(),
            &very_high,
            0,
            true,
            "disclosed-read",
        ),
        (
            "ISO 27001 high reads very-high",
            facts_high,
            &very_high,
            0,
            true,
            "disclosed-read",
        ),
        (
            "ISO 27001 basic is refused very-high",
            facts_basic.clone(),
            &very_high,
            0,
            false,
            "very-high-needs-iso27001-substantial",
        ),
        (
            "ISO 27001 basic reads high",
            facts_basic,
            &high,
            0,
            true,
            "disclosed-read",
        ),
        (
            "uncertified (tier 1) is refused high",
            facts_uncertified,
            &high,
            0,
            false,
            "high-needs-iso27001",
        ),
        (
            "vulnerable is refused very-high",
            vulnerable.clone(),
            &very_high,
            0,
            false,
            "vulnerable-no-very-high",
        ),
        (
            "vulnerable still reads high",
            vulnerable,
            &high,
            0,
            true,
            "disclosed-read",
        ),
        (
            "high threat level keeps very-high at home",
            facts_substantial,
            &very_high,
            3,
            false,
            "high-threat-no-very-high",
        ),
    ];
    for (name, principal, resource, threat_level, allowed, policy) in cases {
        let decision = field.decide(
            principal,
            Action::Read,
            resource,
            "design-collaboration",
            threat_level,
        );
        assert_eq!(decision.allowed, allowed, "{name}: {decision:?}");
        assert!(
            decision.policies.iter().any(|p| p == policy),
            "{name}: {decision:?}"
        );
    }
}

#[test]
fn the_wrong_purpose_is_refused_even_to_a_certified_supplier() {
    let field = Field::load("supply-chain");
    let manufacturer = example_key("Example Motors");
    let supplier = example_key("Supplier S");
    let facts = field.facts(
        &supplier,
        &supplier_credentials(&supplier, Some("high")),
        AT,
    );
    let resource = record(
        field.space(3),
        &manufacturer,
        ValueLevel::Medium,
        Category::TradeSecret,
        &["design-collaboration"],
        &[&supplier],
    );
    assert!(
        field
            .decide(
                facts.clone(),
                Action::Read,
                &resource,
                "design-collaboration",
                0
            )
            .allowed
    );
    assert!(
        !field
            .decide(facts, Action::Read, &resource, "competitor-analysis", 0)
            .allowed
    );
}
