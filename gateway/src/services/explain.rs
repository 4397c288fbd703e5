//! Why a peer has the tier it has in a field: the one judgement the handshake stores, and
//! the explanation a clerk reads (`tfcctl tier explain`). Both come from here, so the
//! explanation cannot disagree with the tier.

use serde::Serialize;

use super::Services;
use crate::credential::CredentialVerifier;
use crate::field::Field;
use crate::negotiation::Judgement;
use crate::tier::{RequirementStatus, TierContext, TierReport, evaluate};

/// A peer's tier in a field, with everything that decided it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TierExplanation {
    /// The field id.
    pub field: String,
    /// The peer's DID.
    pub did: String,
    /// Its verified legal name, if known (filled in by whoever shows the explanation).
    pub name: Option<String>,
    /// The tier it has, after bars and countermeasures.
    pub tier: u8,
    /// Why it has none at all, when governance or a countermeasure bars it.
    pub barred: Option<String>,
    /// A countermeasure's ceiling on its tier, if one is in force.
    pub cap: Option<u8>,
    /// How many presented credentials a countermeasure suspended (they did not count).
    pub withheld: usize,
    /// What is missing or failed for the next tier, one line each (empty at tier 3).
    pub unmet: Vec<String>,
    /// The full evaluation: every requirement of every tier, and when it next changes.
    pub report: TierReport,
}

impl TierExplanation {
    /// The judgement the handshake stores.
    pub fn judgement(&self) -> Judgement {
        Judgement {
            tier: self.tier,
            counted: self.report.counted.clone(),
            next_change: self.report.next_change,
            unmet: self.unmet.clone(),
        }
    }
}

impl Services {
    /// Judges `did`'s presented `tokens` in `field` as of `now`: none while it is barred;
    /// less the credentials a countermeasure suspended; under a countermeasure's ceiling.
    pub fn explain_tier(
        &self,
        verifier: &CredentialVerifier,
        field: &Field,
        did: &str,
        tokens: &[String],
        now: i64,
    ) -> TierExplanation {
        let charter = self.effective_charter(field);
        let id = charter.field_id();
        let barred = if self.is_barred(&id, did) {
            Some("revoked or suspended in this field by governance".to_owned())
        } else if self.threat_effects.member_blocked(&id, did) {
            Some("blocked in this field by a threat countermeasure".to_owned())
        } else {
            None
        };
        let counted = self.threat_effects.counted_credentials(&id, did, tokens);
        let report = self.with_status_lists(|status_lists| {
            evaluate(
                &charter,
                verifier,
                &counted,
                TierContext {
                    at: now,
                    status_lists,
                    holder: Some(did),
                },
            )
        });
        let cap = self.threat_effects.tier_cap(&id, did);
        let tier = if barred.is_some() {
            0
        } else {
            report.tier.min(cap.unwrap_or(u8::MAX))
        };
        let mut unmet: Vec<String> = barred.iter().cloned().collect();
        if let Some(cap) = cap.filter(|cap| *cap < report.tier) {
            unmet.push(format!("capped at tier {cap} by a threat countermeasure"));
        }
        unmet.extend(unmet_requirements(&report));
        TierExplanation {
            field: id,
            did: did.to_owned(),
            name: None,
            tier,
            barred,
            cap,
            withheld: tokens.len() - counted.len(),
            unmet,
            report,
        }
    }
}

/// The requirements of the first tier not reached that do not hold.
fn unmet_requirements(report: &TierReport) -> Vec<String> {
    let Some(next) = report.tiers.iter().find(|tier| tier.tier > report.tier) else {
        return Vec::new();
    };
    next.requirements
        .iter()
        .filter(|outcome| outcome.status != RequirementStatus::Satisfied)
        .map(|outcome| {
            let code = outcome
                .code
                .map(|code| format!(" [{code}]"))
                .unwrap_or_default();
            format!(
                "tier {}: {}: {}{code}",
                next.tier, outcome.requirement, outcome.explanation
            )
        })
        .collect()
}
