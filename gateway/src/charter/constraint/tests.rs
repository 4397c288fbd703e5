use serde_json::json;

use super::*;

fn claims() -> Vec<(&'static str, Map<String, Value>)> {
    let object = |value: Value| value.as_object().cloned().unwrap();
    vec![
        (
            "CreditRatingCredential",
            object(json!({"grade": "B", "score": 72, "assessedOn": "2026-04-01"})),
        ),
        (
            "AntisocialForcesScreeningCredential",
            object(json!({"result": "clear"})),
        ),
        (
            "BusinessLicenseCredential",
            object(
                json!({"trades": ["建築工事業", "内装仕上工事業"], "kind": "general", "detail": {"class": 2}}),
            ),
        ),
        (
            "BusinessLicenseCredential",
            object(json!({"trades": ["電気工事業"], "kind": "special"})),
        ),
    ]
}

fn holds(source: &str) -> bool {
    let claims = claims();
    let constraint = Constraint::parse(source).unwrap_or_else(|error| panic!("{source}: {error}"));
    constraint.evaluate(&|type_name| {
        claims
            .iter()
            .filter(|(t, _)| *t == type_name)
            .map(|(_, c)| c)
            .collect()
    })
}

#[test]
fn comparisons() {
    for (source, expected) in [
        ("CreditRatingCredential.score >= 60", true),
        ("CreditRatingCredential.score >= 72", true),
        ("CreditRatingCredential.score > 72", false),
        ("CreditRatingCredential.score < 72.5", true),
        ("CreditRatingCredential.score <= -1", false),
        ("CreditRatingCredential.score == 72", true),
        ("CreditRatingCredential.score != 72", false),
        ("CreditRatingCredential.grade == 'B'", true),
        ("CreditRatingCredential.grade == \"B\"", true),
        ("CreditRatingCredential.grade < 'C'", true),
        ("CreditRatingCredential.assessedOn >= '2026-01-01'", true),
        (
            "AntisocialForcesScreeningCredential.result == 'clear'",
            true,
        ),
    ] {
        assert_eq!(holds(source), expected, "{source}");
    }
}

#[test]
fn contains_in_and_nested_paths_see_every_credential_of_the_type() {
    assert!(holds(
        "BusinessLicenseCredential.trades contains '建築工事業'"
    ));
    assert!(holds(
        "BusinessLicenseCredential.trades contains '電気工事業'"
    ));
    assert!(!holds(
        "BusinessLicenseCredential.trades contains '土木工事業'"
    ));
    assert!(holds("CreditRatingCredential.grade in ['A', 'B']"));
    assert!(!holds("CreditRatingCredential.grade in ['D', 'E']"));
    assert!(holds("BusinessLicenseCredential.detail.class == 2"));
}

#[test]
fn boolean_structure_and_precedence() {
    assert!(holds(
        "CreditRatingCredential.score >= 90 or CreditRatingCredential.grade == 'B'"
    ));
    assert!(!holds(
        "CreditRatingCredential.score >= 90 and CreditRatingCredential.grade == 'B'"
    ));
    // and binds tighter than or.
    assert!(holds(
        "CreditRatingCredential.score > 100 and CreditRatingCredential.score > 100 or CreditRatingCredential.grade == 'B'"
    ));
    assert!(!holds(
        "CreditRatingCredential.score > 100 and (CreditRatingCredential.score > 100 or CreditRatingCredential.grade == 'B')"
    ));
    assert!(holds(
        "not AntisocialForcesScreeningCredential.result == 'flagged'"
    ));
    assert!(holds("not not CreditRatingCredential.score == 72"));
}

#[test]
fn missing_claims_and_mismatched_types_fail_closed() {
    assert!(!holds("CreditRatingCredential.nothing == 1"));
    assert!(!holds("TaxComplianceCredential.noArrears == true"));
    assert!(!holds("CreditRatingCredential.score == '72'"));
    assert!(!holds("CreditRatingCredential.score != '72'"));
    assert!(!holds("CreditRatingCredential.grade contains 'B'"));
}

#[test]
fn referenced_types_are_listed() {
    let constraint = Constraint::parse(
        "CreditRatingCredential.score >= 60 and not (TaxComplianceCredential.noArrears == false)",
    )
    .unwrap();
    assert_eq!(
        constraint.types().into_iter().collect::<Vec<_>>(),
        ["CreditRatingCredential", "TaxComplianceCredential"]
    );
}

#[test]
fn bad_constraints_name_the_column() {
    for (source, column) in [
        ("CreditRatingCredential.score = 60", 30),
        ("CreditRatingCredential >= 60", 1),
        ("CreditRatingCredential.score >=", 32),
        ("CreditRatingCredential.score >= 60 and", 39),
        ("CreditRatingCredential.grade == 'B", 33),
        ("(CreditRatingCredential.score >= 60", 36),
        ("CreditRatingCredential.score >= 60)", 35),
        ("CreditRatingCredential.grade in 'A'", 33),
        ("CreditRatingCredential.grade like 'A'", 30),
        ("CreditRatingCredential.score >= 60 # comment", 36),
        ("", 1),
    ] {
        let error = Constraint::parse(source).unwrap_err();
        assert_eq!(error.column, column, "{source}: {error}");
    }
}

#[test]
fn size_and_depth_are_bounded() {
    let deep = format!(
        "{}CreditRatingCredential.score > 1{}",
        "(".repeat(100),
        ")".repeat(100)
    );
    assert!(
        Constraint::parse(&deep)
            .unwrap_err()
            .message
            .contains("deeply")
    );
    let nots = format!("{}CreditRatingCredential.score > 1", "not ".repeat(100));
    assert!(Constraint::parse(&nots).is_err());
    assert!(Constraint::parse(&"x".repeat(2000)).is_err());
}
