//! Supply chain: a manufacturer shares restricted design data with certified suppliers.
//! What a supplier may read follows its ISO 27001 assurance level, and a vulnerable-software
//! indicator, once the manufacturer's operator applies it, costs the supplier running that
//! software its very-high records.

use std::path::Path;

use serde_json::json;

use super::cast::{Cast, CharterRoles, Opening, explain, issue, open, outcome, short_type};
use super::{DemoError, Story};
use crate::governance::{OpKind, StandingKind};
use crate::net::DataRequest;
use crate::policy::{Category, ValueLevel};
use crate::spaces::{Labels, Record};
use crate::threats::engine::{State, Verdict};
use crate::threats::{ActionKind, Countermeasure, IndicatorDraft, Severity, Tlp};

const TEMPLATE: &str = include_str!("../../../config/fields/supply-chain.toml");
const POLICY: &str = include_str!("../../../config/policies/supply-chain.cedar");

const MAKER: usize = 0;
const REGISTRAR: usize = 1;
const BUREAU: usize = 2;
const CERTIFIER: usize = 3;
const SUPPLIER_A: usize = 4;
const SUPPLIER_B: usize = 5;
const SUPPLIER_C: usize = 6;

const ROLES: [(&str, &str); 7] = [
    ("maker", "owns the design data; field admin; founder"),
    ("registrar", "issues organisation identities"),
    ("bureau", "issues credit ratings; founder"),
    (
        "certifier",
        "issues ISO 27001 certificates and software inventories; founder",
    ),
    ("supplier-a", "ISO 27001 substantial, patched OpenSSL"),
    ("supplier-b", "ISO 27001 basic"),
    ("supplier-c", "ISO 27001 substantial, runs OpenSSL 3.0.1"),
];

/// What the charter's `[disclosure]` rules let each gateway see of the suppliers.
async fn need_to_know(cast: &Cast, story: &mut Story, field: &str) -> Result<(), DemoError> {
    let checks = [
        (
            SUPPLIER_B,
            SUPPLIER_A,
            "SecurityCertificationCredential",
            "yes",
            "partners see each other's certifications",
        ),
        (
            SUPPLIER_B,
            SUPPLIER_C,
            "SoftwareInventoryCredential",
            "no",
            "a software inventory goes to the admin only",
        ),
        (
            MAKER,
            SUPPLIER_C,
            "SoftwareInventoryCredential",
            "yes",
            "the maker matches vulnerabilities against it",
        ),
        (
            SUPPLIER_B,
            SUPPLIER_A,
            "CreditRatingCredential",
            "no",
            "credit stays with the founders",
        ),
    ];
    for (viewpoint, member, _, _, _) in checks {
        cast.until_identified(viewpoint, member, field).await?;
    }
    for (viewpoint, member, type_name, expected, why) in checks {
        let holds = cast.holds(viewpoint, member, field, type_name);
        story.check(
            &format!(
                "{} holds {}'s {}",
                cast.members[viewpoint].name,
                cast.members[member].name,
                short_type(type_name)
            ),
            expected,
            if holds { "yes" } else { "no" },
            why,
        );
    }
    Ok(())
}

/// Each supplier's ISO 27001 assurance level and OpenSSL version.
const SUPPLIERS: [(usize, &str, &str); 3] = [
    (SUPPLIER_A, "substantial", "3.0.12"),
    (SUPPLIER_B, "basic", "3.0.12"),
    (SUPPLIER_C, "substantial", "3.0.1"),
];

const PROGRAMME: &str = "ev-platform-2027";
const PURPOSE: &str = "manufacturing";

/// Plays the scenario; returns the field (still up), its id, and the member to tour from.
pub(super) async fn play(
    root: &Path,
    story: &mut Story,
) -> Result<(Cast, String, usize), DemoError> {
    let opening = Opening {
        roles: &ROLES,
        credentials: "identities, credit, ISO 27001 certificates and software inventories",
        wallets,
        example: ("config/fields/supply-chain.toml", TEMPLATE),
        policy: POLICY,
        charter: CharterRoles {
            founders: &[MAKER, CERTIFIER, BUREAU],
            admins: &[MAKER],
            issuers: &[
                ("Legal Affairs Bureau", REGISTRAR),
                ("Teikoku Credit Bureau", BUREAU),
                ("JQA certification body", CERTIFIER),
                ("Example Motors", MAKER),
            ],
        },
        joining_first: &[MAKER, CERTIFIER, BUREAU],
    };
    let (cast, wallets, field, charter) = open(root, story, &opening).await?;

    story.chapter("Invitation: the maker proposes the registrar and its suppliers as members");
    let invited = [REGISTRAR, SUPPLIER_A, SUPPLIER_B, SUPPLIER_C];
    for newcomer in invited {
        cast.propose(MAKER, &field, OpKind::Admit, newcomer, "invited supplier")
            .await?;
    }
    // The field is closed: only an organisation a proposal names is answered at all.
    cast.join_only(&charter, &invited).await?;
    let founders = [MAKER, CERTIFIER, BUREAU];
    for newcomer in invited {
        cast.until_standing(&field, newcomer, StandingKind::Member, &founders)
            .await?;
        story.check(
            &format!("{} admitted", cast.members[newcomer].name),
            "member",
            cast.standing(MAKER, &field, newcomer),
            "the certifier's and the bureau's gateways endorsed once their own screening gave a tier",
        );
    }
    story.chapter("Screening: what the maker's gateway concluded of each member");
    for verdict in cast.screen(MAKER, &[]).await? {
        let expected = if verdict.member >= SUPPLIER_A { 3 } else { 1 };
        let why = cast
            .evaluate(MAKER, &field, &wallets[verdict.member])
            .map(|report| explain(&report))
            .unwrap_or_default();
        let name = cast.members[verdict.member].name;
        story.check(
            &format!("the maker screens {name}"),
            format!("tier {expected}"),
            format!("tier {}", verdict.tier),
            &why,
        );
    }
    let everyone: Vec<usize> = (0..cast.members.len()).collect();
    cast.until_mesh(&field, &everyone).await?;
    need_to_know(&cast, story, &field).await?;

    story
        .chapter("Restricted design data: what each supplier may read follows its ISO 27001 level");
    let (design, tolerances) = design_data(&cast, &field)?;
    let expectations = [
        (SUPPLIER_A, &design, "allowed"),
        (SUPPLIER_B, &design, "refused: access_denied"),
        (SUPPLIER_B, &tolerances, "allowed"),
        (SUPPLIER_C, &design, "allowed"),
    ];
    for (supplier, record, expected) in expectations {
        read(&cast, story, supplier, record, expected).await;
    }

    story.chapter("Vulnerable software: the maker reports OpenSSL 3.0.0 to 3.0.6");
    let action = cast.report(MAKER, &field, &vulnerable_openssl()).await?;
    cast.until_action(&everyone, &action, State::AwaitingOperator)
        .await?;
    story.check(
        "mark-vulnerable, severity medium",
        format!("{0} of {0} awaiting operator", everyone.len()),
        format!(
            "{} of {} awaiting operator",
            cast.count_state(&action, State::AwaitingOperator, &everyone),
            everyone.len()
        ),
        "below the automatic bar (auto_at_or_above = \"high\")",
    );
    let applied = cast.members[MAKER]
        .node
        .gateway
        .publisher()
        .threats()
        .decide(&action, Verdict::Apply, "maker operator")
        .map_err(|error| DemoError::failed("applying the action", error.to_string()))?;
    story.check(
        "the maker's operator applies it",
        "applied",
        format!("{:?}", applied.state).to_lowercase(),
        "tfcctl threat apply does the same through the API",
    );
    read(&cast, story, SUPPLIER_C, &design, "refused: access_denied").await;
    read(&cast, story, SUPPLIER_A, &design, "allowed").await;

    story.chapter("Audit: every gateway's hash chain verifies");
    let (verified, entries) = cast.verify_audit()?;
    story.check(
        "audit chains verified",
        format!("{0} of {0}", cast.members.len()),
        format!("{verified} of {}", cast.members.len()),
        &format!("{entries} entries in all"),
    );
    Ok((cast, field, MAKER))
}

fn wallets(cast: &Cast) -> Result<Vec<Vec<String>>, DemoError> {
    let issuer = |index: usize| &cast.members[index].issuer;
    let mut wallets = Vec::new();
    for (index, member) in cast.members.iter().enumerate() {
        let did = &member.node.did;
        let mut tokens = vec![
            cast.identity(REGISTRAR, index)?,
            issue(
                issuer(BUREAU),
                did,
                "CreditRatingCredential",
                json!({"grade": "A", "score": 85, "assessedOn": "2026-04-01"}),
            )?,
        ];
        if let Some((_, level, openssl)) =
            SUPPLIERS.iter().find(|(supplier, ..)| *supplier == index)
        {
            tokens.push(issue(issuer(CERTIFIER), did, "SecurityCertificationCredential",
                json!({"scheme": "ISO27001", "assuranceLevel": level, "scope": "design data handling", "certifiedBy": "JQA"}))?);
            tokens.push(issue(issuer(CERTIFIER), did, "SoftwareInventoryCredential", json!({"components": [
                {"name": "openssl", "version": openssl, "cpe": format!("cpe:2.3:a:openssl:openssl:{openssl}:*:*:*:*:*:*:*")}]}))?);
            tokens.push(issue(
                &member.node.org_key()?,
                did,
                "ServiceOfferingCredential",
                json!({"plans": ["battery housings"], "regions": ["愛知県"], "capacity": 12000}),
            )?);
            tokens.push(issue(issuer(MAKER), did, "ProgramQualificationCredential",
                json!({"program": PROGRAMME, "qualification": "approved supplier", "grantedOn": "2026-06-01"}))?);
        }
        wallets.push(tokens);
    }
    Ok(wallets)
}

/// The maker's records, disclosed to every supplier: a very-high design and a high sheet.
fn design_data(cast: &Cast, field: &str) -> Result<(Record, Record), DemoError> {
    let maker = &cast.members[MAKER].node;
    let key = maker.org_key()?;
    let suppliers: std::collections::BTreeSet<String> = SUPPLIERS
        .iter()
        .map(|(index, ..)| cast.members[*index].node.did.clone())
        .collect();
    let put = |tier: u8, value_level: ValueLevel, body: serde_json::Value| {
        let labels = Labels {
            category: Category::TradeSecret,
            value_level,
            rights_holders: Default::default(),
            allowed_purposes: [PURPOSE.to_owned()].into(),
            disclosure: suppliers.clone(),
        };
        maker
            .gateway
            .spaces()
            .put(
                "admin",
                &key,
                &maker.did,
                field,
                tier,
                None,
                labels,
                body,
                vec![],
            )
            .map_err(|error| DemoError::failed("storing design data", error.to_string()))
    };
    let design = put(
        3,
        ValueLevel::VeryHigh,
        json!({"part": "battery housing rev. C", "drawing": "BH-2027-C"}),
    )?;
    let tolerances = put(
        3,
        ValueLevel::High,
        json!({"part": "battery housing", "tolerance_mm": 0.05}),
    )?;
    Ok((design, tolerances))
}

async fn read(cast: &Cast, story: &mut Story, supplier: usize, record: &Record, expected: &str) {
    let request = DataRequest::Get {
        field: record.field.clone(),
        tier: record.tier,
        id: record.id.clone(),
        purpose: PURPOSE.into(),
    };
    let answer = cast.answer(supplier, MAKER, request).await;
    let level = serde_json::to_value(record.labels.value_level)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default();
    story.check(
        &format!("{} reads a {level} record", cast.members[supplier].name),
        expected,
        outcome(&answer),
        &answer.reason,
    );
}

fn vulnerable_openssl() -> IndicatorDraft {
    let now = crate::credential::now_unix();
    IndicatorDraft {
        name: "OpenSSL 3.0.0-3.0.6 X.509 buffer overflow (CVE-2022-3602)".into(),
        description: "Punycode decoding overflow in certificate verification".into(),
        pattern: "[software:name = 'openssl' AND software:version >= '3.0.0' AND software:version < '3.0.7']".into(),
        severity: Severity::Medium,
        countermeasure: Countermeasure { action: ActionKind::MarkVulnerable, tier: None, credential: None },
        tlp: Tlp::Amber,
        confidence: Some(95),
        valid_from: now - 5,
        valid_until: now + 30 * 86_400,
    }
}
