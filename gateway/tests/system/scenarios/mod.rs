//! The two example fields, walked end to end: the committed charters in `config/fields/`
//! load (signed by their founders), tiers come out as the charter says, and the Cedar
//! policies decide as the programme expects.
//!
//! The example organisations' keys are derived from their public names: they are for
//! examples and tests only. `config/fields/*.toml` is generated from `charters.rs`; if a test
//! says the file is out of date, run `TFC_REGENERATE_EXAMPLES=1 cargo test -p tfc-gateway
//! --test system scenarios::` and commit the result.

mod charters;
mod housing;
mod supply_chain;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tfc_gateway::charter::Charter;
use tfc_gateway::credential::{
    CredentialDraft, CredentialVerifier, StatusLists, VerifiedCredential, VerifyContext,
    issue_credential,
};
use tfc_gateway::identity::KeyPair;
use tfc_gateway::policy::{
    AccessRequest, Action, Category, Decision, OrgFacts, PolicyEngine, RecordLabels, Resource,
    SpaceRef, ValueLevel,
};
use tfc_gateway::tier::{TierContext, TierReport, evaluate};

/// 2026-06-01T00:00:00Z.
pub const AT: i64 = 1_780_272_000;
pub const DAY: i64 = 86_400;

/// An example organisation's key, derived from its name (public: examples only).
pub fn example_key(name: &str) -> KeyPair {
    let seed: [u8; 32] = Sha256::digest(format!("tfc example key: {name}")).into();
    KeyPair::ed25519_from_seed(&seed)
}

pub fn fields_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/fields")
}

/// A loaded example field and the means to issue into it.
pub struct Field {
    pub charter: Charter,
    pub engine: PolicyEngine,
    verifier: CredentialVerifier,
    lists: StatusLists,
}

impl Field {
    /// Loads `config/fields/<name>.toml`, requiring every founder's signature, and compiles
    /// its policy.
    pub fn load(name: &str) -> Self {
        let charter = Charter::load(&fields_dir().join(format!("{name}.toml")))
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        let policy = &charter
            .policy
            .as_ref()
            .expect("example charters name a policy")
            .1;
        let engine = PolicyEngine::new(policy).unwrap();
        Self {
            charter,
            engine,
            verifier: CredentialVerifier::new(),
            lists: StatusLists::new(),
        }
    }

    pub fn tiers(&self, holder: &KeyPair, credentials: &[String], at: i64) -> TierReport {
        let holder = holder.did();
        let context = TierContext {
            at,
            status_lists: &self.lists,
            holder: Some(&holder),
        };
        evaluate(&self.charter, &self.verifier, credentials, context)
    }

    /// The org's facts as the gateway would build them: its tier and verified credentials.
    pub fn facts(&self, holder: &KeyPair, credentials: &[String], at: i64) -> OrgFacts {
        let tier = self.tiers(holder, credentials, at).tier;
        let context = VerifyContext {
            now: at,
            trust: None,
            status_lists: &self.lists,
            status_max_age_secs: DAY,
        };
        let verified: Vec<VerifiedCredential> = credentials
            .iter()
            .filter_map(|token| self.verifier.verify_credential(token, &context).ok())
            .collect();
        OrgFacts::from_verified(&holder.did(), tier, &verified, &self.charter)
    }

    pub fn decide(
        &self,
        principal: OrgFacts,
        action: Action,
        resource: &Resource,
        purpose: &str,
        threat_level: u8,
    ) -> Decision {
        let request = AccessRequest {
            principal,
            action,
            resource: resource.clone(),
            purpose: purpose.into(),
            threat_level,
        };
        self.engine.check_request_shape(&request).unwrap();
        let decision = self.engine.decide(&request);
        assert_eq!(
            decision,
            self.engine.decide_unsliced(&request),
            "slicing changed a decision"
        );
        decision
    }

    pub fn space(&self, tier: u8) -> SpaceRef {
        SpaceRef {
            field: self.charter.field_id(),
            tier,
        }
    }
}

/// Issues a credential valid from 30 days before `AT` for `valid_days`.
pub fn issue(
    issuer: &KeyPair,
    holder: &KeyPair,
    type_name: &str,
    claims: Value,
    valid_days: i64,
) -> String {
    let draft = CredentialDraft {
        type_name: type_name.into(),
        subject: holder.did(),
        claims: claims.as_object().cloned().unwrap_or_default(),
        valid_from: AT - 30 * DAY,
        valid_until: Some(AT + valid_days * DAY),
        status: vec![],
    };
    issue_credential(issuer, &draft, AT - 30 * DAY).unwrap()
}

pub fn record(
    space: SpaceRef,
    owner: &KeyPair,
    value: ValueLevel,
    category: Category,
    purposes: &[&str],
    disclosure: &[&KeyPair],
) -> Resource {
    Resource::Record {
        space,
        labels: RecordLabels {
            id: "record-1".into(),
            owner: owner.did(),
            category,
            value_level: value,
            rights_holders: BTreeSet::new(),
            allowed_purposes: purposes
                .iter()
                .map(|purpose| (*purpose).to_owned())
                .collect(),
            disclosure: disclosure.iter().map(|org| org.did()).collect(),
        },
    }
}

/// Asserts a tier and that the named requirement has the given status (and code).
pub fn assert_tier(report: &TierReport, tier: u8, case: &str) {
    assert_eq!(
        report.tier,
        tier,
        "{case}: {}",
        serde_json::to_string_pretty(report).unwrap_or_default()
    );
}

pub fn requirement<'a>(
    report: &'a TierReport,
    requirement: &str,
) -> &'a tfc_gateway::tier::RequirementOutcome {
    report
        .tiers
        .iter()
        .flat_map(|tier| &tier.requirements)
        .find(|outcome| outcome.requirement == requirement)
        .unwrap_or_else(|| panic!("no requirement {requirement}"))
}
