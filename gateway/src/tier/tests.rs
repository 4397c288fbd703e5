use std::path::Path;

use serde_json::json;

use super::*;
use crate::credential::test_support::{DAY, NOW, draft, ed25519, issue};
use crate::credential::{StatusEntry, StatusList, StatusPurpose};
use crate::identity::KeyPair;

/// A one-founder charter trusting `bureau` for credit ratings, with a tier-1 requirement
/// and nothing else.
fn charter(bureau: &KeyPair) -> Charter {
    let founder = ed25519().did();
    let text = format!(
        "name = \"t\"\nfounders = [\"{founder}\"]\nquorum = 1\nstatus_max_age = \"1d\"\n\
         [[issuers]]\ndid = \"{}\"\nname = \"Bureau\"\ntypes = [\"CreditRatingCredential\"]\n\
         [tiers.prescreening]\nrequire = [\"CreditRatingCredential\"]\n",
        bureau.did()
    );
    Charter::parse(&text, Path::new(".")).unwrap()
}

fn evaluate_at(
    charter: &Charter,
    holder: &KeyPair,
    tokens: &[String],
    lists: &StatusLists,
    at: i64,
) -> TierReport {
    let did = holder.did();
    evaluate(
        charter,
        &CredentialVerifier::new(),
        tokens,
        TierContext {
            at,
            status_lists: lists,
            holder: Some(&did),
        },
    )
}

#[test]
fn an_empty_tier_cannot_be_reached() {
    let (bureau, holder) = (ed25519(), ed25519());
    let charter = charter(&bureau);
    let tokens = [issue(&bureau, &draft("CreditRatingCredential", &holder))];
    let report = evaluate_at(&charter, &holder, &tokens, &StatusLists::new(), NOW);
    assert_eq!(report.tier, 1);
    assert!(
        !report.tiers[1].satisfied,
        "tier 2 requires nothing, so it is not defined"
    );
}

#[test]
fn no_credentials_means_tier_zero_with_every_requirement_missing() {
    let bureau = ed25519();
    let report = evaluate_at(&charter(&bureau), &ed25519(), &[], &StatusLists::new(), NOW);
    assert_eq!(report.tier, 0);
    assert_eq!(
        report.tiers[0].requirements[0].status,
        RequirementStatus::Missing
    );
    assert_eq!(report.next_change, None);
}

#[test]
fn a_credential_not_yet_valid_schedules_the_change() {
    let (bureau, holder) = (ed25519(), ed25519());
    let mut future = draft("CreditRatingCredential", &holder);
    future.valid_from = NOW + 3 * DAY;
    let report = evaluate_at(
        &charter(&bureau),
        &holder,
        &[issue(&bureau, &future)],
        &StatusLists::new(),
        NOW,
    );
    assert_eq!(report.tier, 0);
    assert_eq!(
        report.tiers[0].requirements[0].code,
        Some(ErrorCode::NotYetValid)
    );
    assert_eq!(report.next_change, Some(NOW + 3 * DAY - CLOCK_SKEW_SECS));
}

#[test]
fn the_status_list_going_stale_is_a_change_too() {
    let (bureau, holder) = (ed25519(), ed25519());
    let list_id = "https://bureau.example/status";
    let mut credential = draft("CreditRatingCredential", &holder);
    credential.status = vec![StatusEntry::new(list_id, StatusPurpose::Revocation, 5)];
    let mut lists = StatusLists::new();
    lists.insert(StatusList::new(
        list_id,
        &bureau.did(),
        StatusPurpose::Revocation,
        0,
        NOW - 3600,
    ));
    let tokens = [issue(&bureau, &credential)];
    let charter = charter(&bureau);
    let report = evaluate_at(&charter, &holder, &tokens, &lists, NOW);
    assert_eq!(report.tier, 1);
    let stale_at = NOW - 3600 + DAY + 1;
    assert_eq!(report.next_change, Some(stale_at));
    let later = evaluate_at(&charter, &holder, &tokens, &lists, stale_at);
    assert_eq!(later.tier, 0);
    assert_eq!(
        later.tiers[0].requirements[0].code,
        Some(ErrorCode::StatusUnavailable)
    );
}

#[test]
fn the_longest_lived_candidate_decides_when_a_requirement_lapses() {
    let (bureau, holder) = (ed25519(), ed25519());
    let mut short = draft("CreditRatingCredential", &holder);
    short.valid_until = Some(NOW + DAY);
    let mut long = draft("CreditRatingCredential", &holder);
    long.valid_until = Some(NOW + 10 * DAY);
    long.claims["score"] = json!(80);
    let tokens = [issue(&bureau, &short), issue(&bureau, &long)];
    let report = evaluate_at(
        &charter(&bureau),
        &holder,
        &tokens,
        &StatusLists::new(),
        NOW,
    );
    assert_eq!(report.next_change, Some(NOW + 10 * DAY + CLOCK_SKEW_SECS));
}

#[test]
fn the_holder_defaults_to_the_first_verified_subject() {
    let (bureau, holder) = (ed25519(), ed25519());
    let tokens = [
        "garbage".to_owned(),
        issue(&bureau, &draft("CreditRatingCredential", &holder)),
    ];
    let report = evaluate(
        &charter(&bureau),
        &CredentialVerifier::new(),
        &tokens,
        TierContext {
            at: NOW,
            status_lists: &StatusLists::new(),
            holder: None,
        },
    );
    assert_eq!(report.holder, Some(holder.did()));
    assert_eq!(report.tier, 1);
}
