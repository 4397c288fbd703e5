//! Purpose-bound, attribute-based access decisions with Cedar.
//!
//! The schema (`config/policies/tfc.cedarschema`) is embedded: it is tied to the entity
//! builder in `entities`. A field's policies are validated against it when the charter loads.
//! Each decision evaluates only the policies whose scope can match the request (see
//! `index`), and says which policies decided and why, in one line.

mod entities;
mod index;

use std::collections::HashMap;
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, EntityUid, PolicyId, PolicySet,
    Request, RestrictedExpression, Schema, ValidationMode, Validator,
};
use serde::{Deserialize, Serialize};

pub use entities::{
    ASSURANCE_LEVELS, Category, OrgFacts, RecordLabels, Resource, SpaceRef, ValueLevel,
};

use index::PolicyIndex;

/// The Cedar schema of every field.
pub const SCHEMA_SOURCE: &str = include_str!("../../../config/policies/tfc.cedarschema");

/// A policy file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The schema does not parse (a build defect).
    #[error("the embedded Cedar schema is invalid: {0}")]
    Schema(String),
    /// The policies do not parse.
    #[error("policy syntax: {0}")]
    Syntax(String),
    /// The policies do not type-check against the schema.
    #[error("policy validation: {0}")]
    Validation(String),
}

impl PolicyError {
    /// A stable machine code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            PolicyError::Schema(_) => "policy_schema",
            PolicyError::Syntax(_) => "policy_syntax",
            PolicyError::Validation(_) => "policy_invalid",
        }
    }
}

/// The operations on data spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Read a record.
    Read,
    /// Write a record (or a new one into a space).
    Write,
    /// List a space.
    List,
    /// Submit a copy of a record to another organisation.
    Submit,
    /// Delete a record.
    Delete,
}

impl Action {
    /// The Cedar action name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::List => "list",
            Action::Submit => "submit",
            Action::Delete => "delete",
        }
    }
}

impl FromStr for Action {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "read" => Ok(Action::Read),
            "write" => Ok(Action::Write),
            "list" => Ok(Action::List),
            "submit" => Ok(Action::Submit),
            "delete" => Ok(Action::Delete),
            other => Err(format!(
                "unknown action {other:?} (read, write, list, submit, delete)"
            )),
        }
    }
}

/// One access request, built from verified facts plus the declared purpose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessRequest {
    /// Who asks.
    pub principal: OrgFacts,
    /// What they want to do.
    pub action: Action,
    /// To what.
    pub resource: Resource,
    /// The declared purpose (利用目的).
    pub purpose: String,
    /// The field's threat level, 0 (none) to 4 (critical).
    #[serde(default)]
    pub threat_level: u8,
}

impl AccessRequest {
    /// The attributes a decision rested on that the asker may see: its own verified facts,
    /// the action, the purpose and the field's threat level (not the resource's labels).
    pub fn asker_trace(&self) -> String {
        let facts = &self.principal;
        let list = |items: &std::collections::BTreeSet<String>| {
            if items.is_empty() {
                "none".to_owned()
            } else {
                items.iter().cloned().collect::<Vec<_>>().join(", ")
            }
        };
        format!(
            "you: tier {}, credit {}, licences [{}], certifications [{}], programmes [{}]{}; \
             action {}; purpose {:?}; threat level {}",
            facts.tier,
            facts
                .credit_grade
                .as_deref()
                .map_or("unverified".to_owned(), |grade| format!(
                    "{grade} ({})",
                    facts.credit_score.unwrap_or_default()
                )),
            list(&facts.licences),
            list(&facts.certifications),
            list(&facts.programs),
            if facts.suspended { ", suspended" } else { "" },
            self.action.as_str(),
            self.purpose,
            self.threat_level,
        )
    }
}

/// A decision and its reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Whether the request is allowed.
    pub allowed: bool,
    /// The ids (`@id` annotations, else Cedar ids) of the policies that decided.
    pub policies: Vec<String>,
    /// One line a person can read.
    pub reason: String,
    /// Policies that could not be evaluated (they are skipped, which can only deny more).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl Decision {
    /// The rule trace of a refusal, as the asker may read it: the reason, the policies that
    /// decided, and the asker's attributes and purpose.
    pub fn refusal_trace(&self, request: &AccessRequest) -> String {
        // With no policy named, the reason already says that none permits it.
        let policies = if self.policies.is_empty() {
            String::new()
        } else {
            format!("; policies: {}", self.policies.join(", "))
        };
        format!("{}{policies}; {}", self.reason, request.asker_trace())
    }
}

/// A field's validated policies, indexed for fast decisions.
pub struct PolicyEngine {
    schema: Schema,
    policies: PolicySet,
    index: PolicyIndex,
    authorizer: Authorizer,
    /// Each policy's `@id` (or Cedar id) and `@reason`, looked up once.
    labels: HashMap<PolicyId, (String, Option<String>)>,
    entities: entities::EntityCache,
}

impl PolicyEngine {
    /// Parses `source` and validates it strictly against the TFC schema.
    pub fn new(source: &str) -> Result<Self, PolicyError> {
        let schema = tfc_schema()?;
        let policies = PolicySet::from_str(source)
            .map_err(|error| PolicyError::Syntax(located(source, &error)))?;
        let validation = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
        if !validation.validation_passed() {
            let problems: Vec<String> = validation
                .validation_errors()
                .map(|error| located(source, error))
                .collect();
            return Err(PolicyError::Validation(problems.join("; ")));
        }
        let index = PolicyIndex::new(&policies, &schema);
        let labels = policies
            .policies()
            .map(|policy| {
                let name = policy
                    .annotation("id")
                    .map_or_else(|| policy.id().to_string(), str::to_owned);
                (
                    policy.id().clone(),
                    (name, policy.annotation("reason").map(str::to_owned)),
                )
            })
            .collect();
        Ok(Self {
            schema,
            policies,
            index,
            authorizer: Authorizer::new(),
            labels,
            entities: entities::EntityCache::default(),
        })
    }

    /// How many policies the field has.
    pub fn policy_count(&self) -> usize {
        self.index.len()
    }

    /// Decides a request, evaluating only the policies that can apply to it.
    pub fn decide(&self, request: &AccessRequest) -> Decision {
        let resource_uid = request.resource.uid();
        let ancestors = request.resource.ancestors();
        let action = entities::uid("Action", request.action.as_str());
        let resource_type = entities::type_name(request.resource.type_name());
        let slice = self
            .index
            .slice(&action, &resource_uid, &ancestors, resource_type);
        let built = self
            .entities
            .request_entities(&request.principal, &request.resource);
        self.evaluate(request, resource_uid, &slice, built)
    }

    /// Decides a request against every policy of the field, on entities built afresh: the
    /// reference for `decide`, which neither its slicing nor its caches may change.
    pub fn decide_unsliced(&self, request: &AccessRequest) -> Decision {
        let built = entities::closed_afresh(&request.principal, &request.resource, None);
        self.evaluate(request, request.resource.uid(), &self.policies, built)
    }

    fn evaluate(
        &self,
        request: &AccessRequest,
        resource: EntityUid,
        policies: &PolicySet,
        entities: Result<impl std::borrow::Borrow<Entities>, String>,
    ) -> Decision {
        let built = entities
            .and_then(|entities| Ok((self.cedar_request(request, resource, None)?, entities)));
        let (cedar_request, entities) = match built {
            Ok(built) => built,
            Err(error) => return deny_with(&format!("request could not be built: {error}")),
        };
        let response = self
            .authorizer
            .is_authorized(&cedar_request, policies, entities.borrow());
        let allowed = response.decision() == CedarDecision::Allow;
        // The diagnostics hold a set: sort by policy id so that the reason is stable.
        let mut decided: Vec<&(String, Option<String>)> = response
            .diagnostics()
            .reason()
            .filter_map(|id| self.labels.get(id))
            .collect();
        decided.sort();
        let reasons: Vec<&str> = decided
            .iter()
            .filter_map(|(_, reason)| reason.as_deref())
            .collect();
        let reason = match (allowed, reasons.is_empty()) {
            (_, false) => reasons.join("; "),
            (true, true) => "allowed by policy".to_owned(),
            (false, true) => "no policy permits this request".to_owned(),
        };
        let policies_decided = decided.into_iter().map(|(name, _)| name.clone()).collect();
        let errors = response
            .diagnostics()
            .errors()
            .map(|error| error.to_string())
            .collect();
        Decision {
            allowed,
            policies: policies_decided,
            reason,
            errors,
        }
    }

    /// The Cedar request; with `schema`, checked against it.
    fn cedar_request(
        &self,
        request: &AccessRequest,
        resource: EntityUid,
        schema: Option<&Schema>,
    ) -> Result<Request, String> {
        let context = Context::from_pairs([
            (
                "purpose".to_owned(),
                RestrictedExpression::new_string(request.purpose.clone()),
            ),
            (
                "threatLevel".to_owned(),
                RestrictedExpression::new_long(i64::from(request.threat_level)),
            ),
        ])
        .map_err(|error| error.to_string())?;
        let principal = entities::uid("Org", &request.principal.did);
        let action = entities::uid("Action", request.action.as_str());
        Request::new(principal, action, resource, context, schema)
            .map_err(|error| error.to_string())
    }

    /// Checks a request and its entities against the schema (tests and `tfcctl policy check`).
    pub fn check_request_shape(&self, request: &AccessRequest) -> Result<(), String> {
        entities::closed_afresh(&request.principal, &request.resource, Some(&self.schema))?;
        self.cedar_request(request, request.resource.uid(), Some(&self.schema))
            .map(drop)
    }
}

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PolicyEngine({} policies)", self.policy_count())
    }
}

/// A Cedar diagnostic prefixed with the line and column of its first label in `source`.
fn located(source: &str, error: &dyn miette::Diagnostic) -> String {
    let offset = error
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|label| label.offset());
    let mut message = error.to_string();
    if let Some(help) = error.help() {
        message = format!("{message} ({help})");
    }
    match offset.and_then(|offset| source.get(..offset)) {
        Some(before) => {
            let line = before.matches('\n').count() + 1;
            let column = before
                .rsplit('\n')
                .next()
                .map_or(0, |text| text.chars().count())
                + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

fn deny_with(reason: &str) -> Decision {
    Decision {
        allowed: false,
        policies: Vec::new(),
        reason: reason.to_owned(),
        errors: Vec::new(),
    }
}

fn tfc_schema() -> Result<Schema, PolicyError> {
    Schema::from_cedarschema_str(SCHEMA_SOURCE)
        .map(|(schema, _warnings)| schema)
        .map_err(|error| PolicyError::Schema(format!("{error:?}")))
}

#[cfg(test)]
mod tests;

/// A reproducible policy set of `count` policies over 50 fields, mixing the scopes real fields
/// use (per space, per action, unscoped), for benchmarks and the slicing tests.
pub fn synthetic_policy_set(count: usize) -> String {
    let mut source = String::new();
    for i in 0..count {
        let field = format!("field-{}", i % 50);
        let tier = 1 + i % 3;
        let purpose = format!("purpose-{}", i % 7);
        let policy = match i % 10 {
            0..=5 => format!(
                "@id(\"p{i}\") permit (principal, action == Tfc::Action::\"read\", resource is Tfc::Record in Tfc::Space::\"{field}/tier-{tier}\") \
                 when {{ principal.tier >= {tier} && resource.allowedPurposes.contains(\"{purpose}\") && resource.disclosure.contains(principal) }};\n"
            ),
            6 => format!(
                "@id(\"p{i}\") permit (principal, action in [Tfc::Action::\"list\", Tfc::Action::\"write\"], resource == Tfc::Space::\"{field}/tier-{tier}\") \
                 when {{ principal.tier >= {tier} }};\n"
            ),
            7 => format!(
                "@id(\"p{i}\") forbid (principal, action == Tfc::Action::\"read\", resource is Tfc::Record in Tfc::Field::\"{field}\") \
                 when {{ resource.valueRank >= 4 }} unless {{ principal.certifications.contains(\"ISO27001:substantial\") }};\n"
            ),
            8 => format!(
                "@id(\"p{i}\") permit (principal, action, resource is Tfc::Record in Tfc::Field::\"{field}\") \
                 when {{ resource.owner == principal && context.purpose == \"{purpose}\" }};\n"
            ),
            _ => format!(
                "@id(\"p{i}\") forbid (principal, action == Tfc::Action::\"delete\", resource) \
                 when {{ context.threatLevel >= {} && !principal.roles.contains(\"admin\") }};\n",
                3 + i % 2
            ),
        };
        source.push_str(&policy);
    }
    source
}
