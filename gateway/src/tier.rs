//! Tier evaluation (信用の3層モデル): which tier a holder reaches in a field, with an
//! explanation of every requirement, and the instant the answer will next change.
//!
//! Tiers nest: tier N needs tiers 1..N−1. A tier whose charter section requires nothing
//! cannot be reached (fail closed). A credential counts for a requirement only if it verifies,
//! belongs to the holder, and comes from an issuer the charter trusts for its type, or is
//! self-declared and the tier lists the type in `self_declared_ok`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::charter::{Charter, IssuerTrust, TierRequirement};
use crate::credential::{
    CLOCK_SKEW_SECS, CredentialVerifier, ErrorCode, StatusLists, VerificationError,
    VerifiedCredential, VerifyContext, parse_rfc3339, unverified_payload,
};

/// Whether a requirement holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequirementStatus {
    /// A credential (or the constraint) satisfies it.
    Satisfied,
    /// No credential of the type was presented.
    Missing,
    /// Credentials of the type were presented but none counts, or the constraint is false.
    Failed,
}

/// One requirement's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequirementOutcome {
    /// `credential` or `constraint`.
    pub kind: &'static str,
    /// The credential type or the constraint text.
    pub requirement: String,
    /// Whether it holds.
    pub status: RequirementStatus,
    /// For a failed credential requirement: the code of the best candidate's failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
    /// One sentence a person can act on.
    pub explanation: String,
}

/// One tier's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TierOutcome {
    /// 1, 2 or 3.
    pub tier: u8,
    /// `prescreening`, `certification` or `transaction`.
    pub name: &'static str,
    /// Whether every requirement of this tier holds (regardless of lower tiers).
    pub satisfied: bool,
    /// Every requirement, in charter order (credentials, then constraints).
    pub requirements: Vec<RequirementOutcome>,
}

/// A tier evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TierReport {
    /// The holder judged.
    pub holder: Option<String>,
    /// The tier reached, 0–3.
    pub tier: u8,
    /// The instant of judgement, Unix seconds.
    pub at: i64,
    /// The next instant at which the result can change (a credential expiring, becoming
    /// valid, or its status list going stale), Unix seconds; `None` if nothing is scheduled.
    pub next_change: Option<i64>,
    /// What changes then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_change_reason: Option<String>,
    /// Tiers 1–3.
    pub tiers: Vec<TierOutcome>,
    /// The credential types that verified, are the holder's and come from an issuer the
    /// charter trusts for them (or are self-declared where a tier accepts that): what the
    /// holder is known to hold in this field.
    pub counted: BTreeSet<String>,
}

/// A credential as the evaluator sees it: verified, or rejected with the type it claimed.
enum Judged {
    Verified(VerifiedCredential),
    Rejected {
        type_name: Option<String>,
        valid_from: Option<i64>,
        error: VerificationError,
    },
}

/// The inputs of an evaluation besides the credentials.
#[derive(Clone, Copy)]
pub struct TierContext<'a> {
    /// The instant of judgement, Unix seconds.
    pub at: i64,
    /// Status lists known to the evaluator.
    pub status_lists: &'a StatusLists,
    /// The holder to judge; `None` takes the subject of the first credential that verifies.
    pub holder: Option<&'a str>,
}

/// A pending instant at which the result may change, with its cause.
type Change = (i64, String);

/// Evaluates `tokens` (compact vc+jwt credentials) against `charter`.
pub fn evaluate(
    charter: &Charter,
    verifier: &CredentialVerifier,
    tokens: &[String],
    context: TierContext<'_>,
) -> TierReport {
    let verify_context = VerifyContext {
        now: context.at,
        trust: None,
        status_lists: context.status_lists,
        status_max_age_secs: charter.status_max_age_secs,
    };
    let judged: Vec<Judged> = tokens
        .iter()
        .map(|token| judge(verifier, token, &verify_context))
        .collect();
    let holder = context.holder.map(str::to_owned).or_else(|| {
        judged.iter().find_map(|judged| match judged {
            Judged::Verified(credential) => Some(credential.subject.clone()),
            Judged::Rejected { .. } => None,
        })
    });
    let mut evaluation = Evaluation {
        charter,
        trust: charter.issuer_trust(),
        judged: &judged,
        holder: holder.as_deref(),
        context,
        accepted: BTreeMap::new(),
        changes: Vec::new(),
    };
    let tiers: Vec<TierOutcome> = charter
        .tiers
        .iter()
        .map(|tier| evaluation.tier(tier))
        .collect();
    let reached = tiers.iter().take_while(|tier| tier.satisfied).count() as u8;
    let (next_change, next_change_reason) = evaluation
        .changes
        .into_iter()
        .filter(|(instant, _)| *instant > context.at)
        .min_by_key(|(instant, _)| *instant)
        .map_or((None, None), |(instant, reason)| {
            (Some(instant), Some(reason))
        });
    let mut counted: BTreeSet<String> = evaluation
        .accepted
        .keys()
        .map(|type_name| (*type_name).to_owned())
        .collect();
    // Types no tier requires (a software inventory) count when trusted and the holder's.
    for judged in &judged {
        if let Judged::Verified(credential) = judged
            && Some(credential.subject.as_str()) == holder.as_deref()
            && evaluation
                .trust
                .is_trusted(&credential.issuer, &credential.type_name)
        {
            counted.insert(credential.type_name.clone());
        }
    }
    TierReport {
        holder,
        tier: reached,
        at: context.at,
        next_change,
        next_change_reason,
        tiers,
        counted,
    }
}

fn judge(verifier: &CredentialVerifier, token: &str, context: &VerifyContext<'_>) -> Judged {
    match verifier.verify_credential(token, context) {
        Ok(credential) => Judged::Verified(credential),
        Err(error) => {
            let payload = unverified_payload(token).unwrap_or_default();
            let type_name = payload
                .get("type")
                .and_then(Value::as_array)
                .and_then(|types| types.get(1))
                .and_then(Value::as_str)
                .map(str::to_owned);
            let valid_from = payload
                .get("validFrom")
                .and_then(Value::as_str)
                .and_then(parse_rfc3339);
            Judged::Rejected {
                type_name,
                valid_from,
                error,
            }
        }
    }
}

struct Evaluation<'a> {
    charter: &'a Charter,
    trust: IssuerTrust,
    judged: &'a [Judged],
    holder: Option<&'a str>,
    context: TierContext<'a>,
    /// Credentials accepted so far, by type, for constraints of this and higher tiers.
    accepted: BTreeMap<&'a str, Vec<&'a VerifiedCredential>>,
    changes: Vec<Change>,
}

impl<'a> Evaluation<'a> {
    fn tier(&mut self, tier: &'a TierRequirement) -> TierOutcome {
        let mut requirements: Vec<RequirementOutcome> = tier
            .require
            .iter()
            .map(|type_name| self.credential_requirement(tier, type_name))
            .collect();
        for constraint in &tier.constraints {
            let accepted = &self.accepted;
            let holds = constraint.evaluate(&|type_name| {
                accepted.get(type_name).map_or_else(Vec::new, |found| {
                    found
                        .iter()
                        .map(|c| &c.claims)
                        .collect::<Vec<&Map<String, Value>>>()
                })
            });
            requirements.push(RequirementOutcome {
                kind: "constraint",
                requirement: constraint.to_string(),
                status: if holds {
                    RequirementStatus::Satisfied
                } else {
                    RequirementStatus::Failed
                },
                code: None,
                explanation: if holds {
                    "the accepted credentials meet this condition".into()
                } else {
                    "no accepted credential meets this condition".into()
                },
            });
        }
        let satisfied = !tier.require.is_empty()
            && requirements
                .iter()
                .all(|outcome| outcome.status == RequirementStatus::Satisfied);
        TierOutcome {
            tier: tier.tier,
            name: tier.name,
            satisfied,
            requirements,
        }
    }

    fn credential_requirement(
        &mut self,
        tier: &TierRequirement,
        type_name: &'a str,
    ) -> RequirementOutcome {
        let mut failures: Vec<VerificationError> = Vec::new();
        let mut passing: Vec<&'a VerifiedCredential> = Vec::new();
        for judged in self.judged {
            match judged {
                Judged::Verified(credential) if credential.type_name == type_name => {
                    match self.admit(tier, credential) {
                        Ok(()) => passing.push(credential),
                        Err(error) => failures.push(error),
                    }
                }
                Judged::Rejected {
                    type_name: Some(claimed),
                    valid_from,
                    error,
                } if claimed == type_name => {
                    if error.code == ErrorCode::NotYetValid
                        && let Some(from) = valid_from
                    {
                        self.changes.push((
                            from - CLOCK_SKEW_SECS,
                            format!("a {type_name} becomes valid"),
                        ));
                    }
                    failures.push(error.clone());
                }
                _ => {}
            }
        }
        let outcome = |status, code, explanation| RequirementOutcome {
            kind: "credential",
            requirement: type_name.to_owned(),
            status,
            code,
            explanation,
        };
        if passing.is_empty() {
            return match failures.into_iter().min_by_key(|error| error.code) {
                Some(error) => outcome(RequirementStatus::Failed, Some(error.code), error.message),
                None => outcome(
                    RequirementStatus::Missing,
                    None,
                    format!("no {type_name} was presented"),
                ),
            };
        }
        self.schedule_expiry(type_name, &passing);
        let best = passing
            .iter()
            .max_by_key(|credential| credential.valid_until.unwrap_or(i64::MAX))
            .copied();
        self.accepted.entry(type_name).or_default().extend(passing);
        let explanation = best.map_or_else(String::new, |credential| self.describe(credential));
        outcome(RequirementStatus::Satisfied, None, explanation)
    }

    /// Whether a verified credential counts for this tier: it is the holder's and its
    /// issuer is trusted for its type here.
    fn admit(
        &self,
        tier: &TierRequirement,
        credential: &VerifiedCredential,
    ) -> Result<(), VerificationError> {
        if Some(credential.subject.as_str()) != self.holder {
            return Err(VerificationError::new(
                ErrorCode::HolderMismatch,
                format!(
                    "the {} was issued to {}, not to the holder",
                    credential.type_name, credential.subject
                ),
            ));
        }
        if self
            .trust
            .is_trusted(&credential.issuer, &credential.type_name)
            || (credential.self_declared && tier.self_declared_ok.contains(&credential.type_name))
        {
            return Ok(());
        }
        let (code, message) = if credential.self_declared {
            (
                ErrorCode::SelfDeclaredNotAccepted,
                format!(
                    "the {} is self-declared; the {} tier needs it from a trusted issuer",
                    credential.type_name, tier.name
                ),
            )
        } else {
            (
                ErrorCode::UntrustedIssuer,
                format!(
                    "the {} comes from {}, whom this field does not trust for it",
                    credential.type_name, credential.issuer
                ),
            )
        };
        Err(VerificationError::new(code, message))
    }

    /// The requirement stops holding when the last of its passing credentials expires or
    /// its status list goes stale.
    fn schedule_expiry(&mut self, type_name: &str, passing: &[&VerifiedCredential]) {
        let lasts_until = passing
            .iter()
            .map(|credential| {
                let expiry = credential.valid_until.map(|until| until + CLOCK_SKEW_SECS);
                let stale = self.status_goes_stale(credential);
                [expiry, stale]
                    .into_iter()
                    .flatten()
                    .min()
                    .unwrap_or(i64::MAX)
            })
            .max();
        if let Some(instant) = lasts_until.filter(|instant| *instant != i64::MAX) {
            self.changes.push((
                instant,
                format!("the {type_name} expires or its status can no longer be confirmed"),
            ));
        }
    }

    fn status_goes_stale(&self, credential: &VerifiedCredential) -> Option<i64> {
        credential
            .status
            .iter()
            .filter_map(|entry| self.context.status_lists.get(&entry.status_list_credential))
            .map(|list| list.issued_at + self.charter.status_max_age_secs + 1)
            .min()
    }

    fn describe(&self, credential: &VerifiedCredential) -> String {
        let issuer = self
            .charter
            .issuers
            .iter()
            .find(|issuer| issuer.did == credential.issuer)
            .map_or_else(
                || "the holder itself".to_owned(),
                |issuer| issuer.name.clone(),
            );
        match credential.valid_until {
            Some(until) => format!(
                "from {issuer}, valid until {}",
                crate::credential::format_rfc3339(until)
            ),
            None => format!("from {issuer}, without expiry"),
        }
    }
}

#[cfg(test)]
mod tests;
