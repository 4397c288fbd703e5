//! Housing subsidy: a city screens the contractors who apply to its programme. A is
//! qualified, B is flagged by its antisocial-forces screening, C is qualified but misbehaves.

use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::cast::{
    Cast, CharterRoles, Opening, abbreviate, allowed, explain, issue, open, outcome, short_type,
};
use super::{DemoError, Story};
use crate::governance::{OpKind, StandingKind};
use crate::net::DataRequest;
use crate::policy::{Category, ValueLevel};
use crate::spaces::{Labels, Record};
use crate::threats::engine::State;
use crate::threats::{ActionKind, Countermeasure, IndicatorDraft, Severity, Tlp};

const TEMPLATE: &str = include_str!("../../../config/fields/housing-subsidy.toml");
const POLICY: &str = include_str!("../../../config/policies/housing-subsidy.cedar");

const CITY: usize = 0;
const REGISTRAR: usize = 1;
const BUREAU: usize = 2;
const SCREENER: usize = 3;
const LICENSING: usize = 4;
const A: usize = 5;
const B: usize = 6;
const C: usize = 7;

const ROLES: [(&str, &str); 8] = [
    ("city", "programme owner and field admin; founder"),
    ("registrar", "issues organisation identities; founder"),
    ("bureau", "issues credit ratings; founder"),
    ("screener", "issues antisocial-forces screenings"),
    ("licensing", "issues construction licences"),
    ("contractor-a", "a qualified contractor"),
    ("contractor-b", "a contractor its screening flagged"),
    ("contractor-c", "a qualified contractor that will misbehave"),
];

const PROGRAMME: &str = "housing-subsidy-2026";
const REVIEW: &str = "subsidy-review";

/// Plays the scenario; returns the field (still up), its id, and the member to tour from.
pub(super) async fn play(
    root: &Path,
    story: &mut Story,
) -> Result<(Cast, String, usize), DemoError> {
    let opening = Opening {
        roles: &ROLES,
        credentials: "the issuers sign what each organisation holds",
        wallets,
        example: ("config/fields/housing-subsidy.toml", TEMPLATE),
        policy: POLICY,
        charter: CharterRoles {
            founders: &[CITY, REGISTRAR, BUREAU],
            admins: &[CITY],
            issuers: &[
                ("Legal Affairs Bureau", REGISTRAR),
                ("Teikoku Credit Bureau", BUREAU),
                ("Prefectural screening agency", SCREENER),
                ("MLIT licensing authority", LICENSING),
                ("Example City", CITY),
            ],
        },
        joining_first: &[CITY, REGISTRAR, BUREAU, SCREENER, LICENSING, A, B, C],
    };
    let (cast, wallets, field, _) = open(root, story, &opening).await?;
    story.chapter("Screening: the applicants present to the founders, who judge their credentials");
    screening(&cast, story, &field, &wallets).await?;

    story.chapter("Admission: the city proposes the screened organisations as members");
    admission(&cast, story, &field).await?;

    story.chapter("Application: A submits an application with a drawing; the city reviews it");
    let application = application(&cast, story, &field).await?;

    story.chapter("Probing: C's gateway asks for records it should not see");
    probes(&cast, story, &application).await;

    story.chapter("Threat: two members report C");
    threat(&cast, story, &field).await?;

    story.chapter("Revocation: the city's admin revokes C");
    revocation(&cast, story, &field, &application).await?;

    story.chapter("Audit: every gateway's hash chain verifies");
    let (verified, entries) = cast.verify_audit()?;
    story.check(
        "audit chains verified",
        format!("{0} of {0}", cast.members.len()),
        format!("{verified} of {}", cast.members.len()),
        &format!("{entries} entries in all, each linked to the previous by its hash"),
    );
    Ok((cast, field, CITY))
}

/// Every member's credentials. Issuers hold tier-1 credentials (they are members too);
/// A and C also hold a licence, a self-declared service offering and the city's qualification.
fn wallets(cast: &Cast) -> Result<Vec<Vec<String>>, DemoError> {
    let issuer = |index: usize| &cast.members[index].issuer;
    let mut wallets = Vec::new();
    for (index, member) in cast.members.iter().enumerate() {
        let did = &member.node.did;
        let screening = if index == B { "flagged" } else { "clear" };
        let mut tokens = vec![
            cast.identity(REGISTRAR, index)?,
            issue(
                issuer(BUREAU),
                did,
                "CreditRatingCredential",
                json!({"grade": "B", "score": 75, "assessedOn": "2026-04-01"}),
            )?,
            issue(
                issuer(SCREENER),
                did,
                "AntisocialForcesScreeningCredential",
                json!({"result": screening, "screenedOn": "2026-04-02", "method": "database and interview"}),
            )?,
        ];
        if [A, B, C].contains(&index) {
            tokens.push(issue(issuer(LICENSING), did, "BusinessLicenseCredential", json!({
                "licenseNumber": format!("国土交通大臣許可(般-6)第{index}号"), "authority": "国土交通省",
                "kind": "建設業許可 (一般)", "trades": ["建築工事業"], "validUntil": "2029-03-31"}))?);
            tokens.push(issue(
                &member.node.org_key()?,
                did,
                "ServiceOfferingCredential",
                json!({"plans": ["耐震改修", "断熱改修"], "regions": ["東京都"], "capacity": 40}),
            )?);
        }
        if [A, C].contains(&index) {
            tokens.push(issue(issuer(CITY), did, "ProgramQualificationCredential",
                json!({"program": PROGRAMME, "qualification": "registered contractor", "grantedOn": "2026-05-01"}))?);
        }
        wallets.push(tokens);
    }
    Ok(wallets)
}

/// What the city concluded of everyone, and why, in the gateway's words.
async fn screening(
    cast: &Cast,
    story: &mut Story,
    field: &str,
    wallets: &[Vec<String>],
) -> Result<(), DemoError> {
    let verdicts = cast.screen(CITY, &[B]).await?;
    for verdict in verdicts {
        let expected = match verdict.member {
            A | C => "tier 3".to_owned(),
            B => "refused: no_tier".to_owned(),
            _ => "tier 1".to_owned(),
        };
        let actual = match &verdict.refusal {
            Some(code) => format!("refused: {code}"),
            None => format!("tier {}", verdict.tier),
        };
        let why = cast
            .evaluate(CITY, field, &wallets[verdict.member])
            .map(|report| explain(&report))
            .unwrap_or_default();
        let name = cast.members[verdict.member].name;
        story.check(&format!("the city screens {name}"), expected, actual, &why);
    }
    story.say("   the registrar's and the bureau's gateways screened the applicants too; the");
    story.say("   applicants saw only the founders, and only what the charter shows applicants");
    Ok(())
}

/// The city proposes everyone but the founders; the other founders' gateways endorse a
/// newcomer by themselves only if their own handshake gave it a tier, so B stays pending.
async fn admission(cast: &Cast, story: &mut Story, field: &str) -> Result<(), DemoError> {
    let listening: Vec<usize> = (0..cast.members.len())
        .filter(|index| *index != B)
        .collect();
    for newcomer in [SCREENER, LICENSING, A, B, C] {
        cast.propose(
            CITY,
            field,
            OpKind::Admit,
            newcomer,
            "passed the city's screening",
        )
        .await?;
    }
    for newcomer in [SCREENER, LICENSING, A, C] {
        cast.until_standing(field, newcomer, StandingKind::Member, &listening)
            .await?;
        story.check(
            &format!("{} admitted", cast.members[newcomer].name),
            "member",
            cast.standing(CITY, field, newcomer),
            "the city proposed; the registrar's and the bureau's gateways endorsed (quorum 2)",
        );
    }
    story.check(
        "contractor-b admitted",
        "not admitted",
        cast.standing(CITY, field, B),
        "no other founder's gateway endorses it: their own screening gave B no tier",
    );
    cast.until_mesh(field, &listening).await?;
    story.say("   the members now meet each other, each seeing what the charter shows members");
    need_to_know(cast, story, field).await?;
    Ok(())
}

/// What the charter's `[disclosure]` rules let each gateway see of contractor A.
async fn need_to_know(cast: &Cast, story: &mut Story, field: &str) -> Result<(), DemoError> {
    for viewpoint in [CITY, C] {
        cast.until_identified(viewpoint, A, field).await?;
    }
    let checks = [
        (
            CITY,
            "CreditRatingCredential",
            "yes",
            "credit goes to founders and admins",
        ),
        (
            C,
            "CreditRatingCredential",
            "no",
            "another contractor never sees it",
        ),
        (
            C,
            "AntisocialForcesScreeningCredential",
            "no",
            "nor the screening result",
        ),
        (
            C,
            "BusinessLicenseCredential",
            "yes",
            "licences go to every verified member",
        ),
    ];
    for (viewpoint, type_name, expected, why) in checks {
        let holds = cast.holds(viewpoint, A, field, type_name);
        story.check(
            &format!(
                "{} holds A's {}",
                cast.members[viewpoint].name,
                short_type(type_name)
            ),
            expected,
            if holds { "yes" } else { "no" },
            why,
        );
    }
    Ok(())
}

/// A writes its application in its own transaction space, with a drawing, and hands it to
/// the city; the city reads its copy and fetches the drawing from A's gateway.
async fn application(cast: &Cast, story: &mut Story, field: &str) -> Result<Record, DemoError> {
    let failed =
        |error: crate::spaces::DataError| DemoError::failed("A's application", error.to_string());
    let a = &cast.members[A].node;
    let drawing = drawing();
    let mut upload = a.gateway.spaces().upload();
    upload.write(&drawing).map_err(failed)?;
    let mut attachment = upload.finish().map_err(failed)?;
    attachment.name = "elevation.svg".into();
    let labels = Labels {
        category: Category::PersonalRelated,
        value_level: ValueLevel::High,
        rights_holders: Default::default(),
        allowed_purposes: [REVIEW.to_owned()].into(),
        disclosure: Default::default(),
    };
    let body = json!({"programme": PROGRAMME, "works": "耐震改修", "address": "東京都千代田区1-2-3", "amountYen": 1_500_000});
    let record = a
        .gateway
        .spaces()
        .put(
            "admin",
            &a.org_key()?,
            &a.did,
            field,
            3,
            None,
            labels,
            body,
            vec![attachment.clone()],
        )
        .map_err(failed)?;
    let submitted = cast
        .answer(
            A,
            CITY,
            DataRequest::Submit {
                record: Box::new(record.clone()),
                purpose: REVIEW.into(),
            },
        )
        .await;
    story.check(
        "A submits its application to the city",
        "allowed",
        allowed(submitted.allowed),
        &submitted.reason,
    );
    let custody = cast.members[CITY]
        .node
        .gateway
        .spaces()
        .get(field, 3, &record.id);
    let kept = custody
        .as_ref()
        .is_ok_and(|copy| copy.signature_holds() && copy.writer == a.did);
    story.check(
        "the city keeps a copy signed by A",
        "kept",
        if kept { "kept" } else { "missing" },
        &format!("record {} by {}", &record.id, abbreviate(&a.did)),
    );
    let (actual, detail) = match cast
        .fetch(CITY, A, &record, &attachment.sha256, REVIEW)
        .await
    {
        Ok(content) if hex_sha256(&content) == attachment.sha256 => (
            "drawing received".to_owned(),
            format!("{} bytes, SHA-256 matches the record", content.len()),
        ),
        Ok(_) => ("drawing corrupted".to_owned(), String::new()),
        Err(answer) => (format!("refused: {}", answer.code), answer.reason),
    };
    story.check(
        "the city fetches the drawing from A for subsidy review",
        "drawing received",
        actual,
        &detail,
    );
    Ok(record)
}

/// C asks the city for A's application and A for its drawing.
async fn probes(cast: &Cast, story: &mut Story, application: &Record) {
    let get = DataRequest::Get {
        field: application.field.clone(),
        tier: 3,
        id: application.id.clone(),
        purpose: REVIEW.into(),
    };
    let at_city = cast.answer(C, CITY, get).await;
    story.check(
        "C asks the city for A's application",
        "refused: access_denied",
        outcome(&at_city),
        &at_city.reason,
    );
    let sha256 = application
        .attachments
        .first()
        .map(|attachment| attachment.sha256.clone())
        .unwrap_or_default();
    let drawing = cast.fetch(C, A, application, &sha256, REVIEW).await;
    let (actual, detail) = match drawing {
        Ok(_) => ("allowed".to_owned(), String::new()),
        Err(answer) => (outcome(&answer), answer.reason),
    };
    story.check(
        "C asks A for the drawing",
        "refused: access_denied",
        actual,
        &detail,
    );
    story.say("   both refusals are in the holders' audit logs, with C's DID and declared purpose");
}

/// A reports C; the licensing authority corroborates. A block is manual by default, so the
/// action then waits for each operator.
async fn threat(cast: &Cast, story: &mut Story, field: &str) -> Result<(), DemoError> {
    let listeners: Vec<usize> = (0..cast.members.len())
        .filter(|index| ![B, C].contains(index))
        .collect();
    let draft = member_indicator(&cast.members[C].node.did);
    let action = cast.report(A, field, &draft).await?;
    cast.until_action(&listeners, &action, State::AwaitingCorroboration)
        .await?;
    story.check(
        "A reports C: block-peer, severity high",
        format!("{0} of {0} awaiting corroboration", listeners.len()),
        format!(
            "{} of {} awaiting corroboration",
            cast.count_state(&action, State::AwaitingCorroboration, &listeners),
            listeners.len()
        ),
        "one member's report cannot act against another member",
    );
    let second = cast.report(LICENSING, field, &draft).await?;
    let same = if second == action {
        "same action"
    } else {
        "another action"
    };
    story.check(
        "the licensing authority reports C too",
        "same action",
        same,
        "two independent organisations (different 法人番号) corroborate",
    );
    cast.until_action(&listeners, &action, State::AwaitingOperator)
        .await?;
    story.check(
        "the corroborated block",
        format!("{0} of {0} awaiting operator", listeners.len()),
        format!(
            "{} of {} awaiting operator",
            cast.count_state(&action, State::AwaitingOperator, &listeners),
            listeners.len()
        ),
        "block_peer is manual by default: each organisation's operator applies or rejects it (tfcctl threat pending)",
    );
    Ok(())
}

fn member_indicator(did: &str) -> IndicatorDraft {
    let now = crate::credential::now_unix();
    IndicatorDraft {
        name: "Contractor probing records outside its purpose".into(),
        description: "Repeated requests for other applicants' records".into(),
        pattern: format!("[x-tfc-member:did = '{did}']"),
        severity: Severity::High,
        countermeasure: Countermeasure {
            action: ActionKind::BlockPeer,
            tier: None,
            credential: None,
        },
        tlp: Tlp::Amber,
        confidence: Some(80),
        valid_from: now - 5,
        valid_until: now + 86_400,
    }
}

/// The admin revokes C on the emergency path; every gateway holds it revoked, and C's next
/// request is refused.
async fn revocation(
    cast: &Cast,
    story: &mut Story,
    field: &str,
    application: &Record,
) -> Result<(), DemoError> {
    let members: Vec<usize> = (0..cast.members.len())
        .filter(|index| ![B, C].contains(index))
        .collect();
    let started = std::time::Instant::now();
    cast.propose(
        CITY,
        field,
        OpKind::Revoke,
        C,
        "probing other applicants' records",
    )
    .await?;
    cast.until_standing(field, C, StandingKind::Revoked, &members)
        .await?;
    let elapsed = started.elapsed();
    let millis = elapsed.as_secs_f64() * 1000.0;
    story.figure("revocation_ms", millis);
    story.check(
        "every member's gateway holds C revoked",
        format!("{0} of {0}", members.len()),
        format!(
            "{} of {}",
            cast.count_standing(field, C, StandingKind::Revoked, &members),
            members.len()
        ),
        &format!("{millis:.1} ms from the admin's signature to the last gateway; each re-judged C at once"),
    );
    let get = DataRequest::Get {
        field: field.to_owned(),
        tier: 3,
        id: application.id.clone(),
        purpose: REVIEW.into(),
    };
    let next = cast.answer(C, CITY, get).await;
    story.check(
        "C's next request to the city",
        "refused",
        if next.allowed { "allowed" } else { "refused" },
        &format!("{}: {}", next.code, next.reason),
    );
    Ok(())
}

/// A small SVG elevation drawing.
fn drawing() -> Vec<u8> {
    let mut svg =
        String::from("<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 400 300\">");
    svg.push_str(
        "<rect x=\"50\" y=\"100\" width=\"300\" height=\"180\" fill=\"none\" stroke=\"black\"/>",
    );
    svg.push_str("<path d=\"M40 100 L200 20 L360 100\" fill=\"none\" stroke=\"black\"/>");
    svg.push_str("<text x=\"60\" y=\"295\">南立面図 (耐震改修後)</text></svg>");
    svg.into_bytes()
}

fn hex_sha256(bytes: &[u8]) -> String {
    crate::hex::encode(&Sha256::digest(bytes))
}
