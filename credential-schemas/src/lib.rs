//! JSON Schemas (draft 2020-12) for every TFC credential type, embedded in the binary.
//!
//! Each schema validates a whole credential payload (the VC plus its JWT claims) and refers
//! to the shared envelope schema `https://schemas.tfc.example/vc-envelope/v1`. The custom
//! format `corporate-number` checks the check digit of a Japanese corporate number (法人番号).
//!
//! ```
//! let schemas = tfc_schemas::SchemaSet::global();
//! assert!(schemas.credential_type("CreditRatingCredential").is_some());
//! assert!(tfc_schemas::corporate_number_is_valid("7000012050002"));
//! ```
#![deny(missing_docs, unreachable_pub)]

mod corporate_number;

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

pub use corporate_number::{corporate_number_check_digit, corporate_number_is_valid};

/// The prefix of every schema `$id`; the full id is `<prefix><kebab-name>/v1`.
pub const SCHEMA_ID_PREFIX: &str = "https://schemas.tfc.example/";

/// The `$id` of the envelope schema that every type schema refers to.
pub const ENVELOPE_SCHEMA_ID: &str = "https://schemas.tfc.example/vc-envelope/v1";

const ENVELOPE_SCHEMA: &str = include_str!("../schemas/vc-envelope.json");

/// One credential type the gateway understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialType {
    /// The VC type name, e.g. `CreditRatingCredential`.
    pub name: &'static str,
    /// The kebab-case name used in the schema `$id` and file name.
    pub kebab_name: &'static str,
    /// The trust tier this type usually serves (1–3), or `None` for supporting types.
    pub tier: Option<u8>,
    /// The schema source text.
    pub schema_source: &'static str,
}

impl CredentialType {
    /// The schema `$id`, `https://schemas.tfc.example/<kebab-name>/v1`.
    pub fn schema_id(&self) -> String {
        format!("{SCHEMA_ID_PREFIX}{}/v1", self.kebab_name)
    }
}

macro_rules! credential_type {
    ($name:literal, $kebab:literal, $tier:expr) => {
        CredentialType {
            name: $name,
            kebab_name: $kebab,
            tier: $tier,
            schema_source: include_str!(concat!("../schemas/", $kebab, ".json")),
        }
    };
}

/// Every credential type (the list in docs/CHARTER.md), in tier order.
pub const CREDENTIAL_TYPES: &[CredentialType] = &[
    credential_type!(
        "OrganizationIdentityCredential",
        "organization-identity-credential",
        Some(1)
    ),
    credential_type!(
        "CreditRatingCredential",
        "credit-rating-credential",
        Some(1)
    ),
    credential_type!(
        "AntisocialForcesScreeningCredential",
        "antisocial-forces-screening-credential",
        Some(1)
    ),
    credential_type!(
        "TaxComplianceCredential",
        "tax-compliance-credential",
        Some(1)
    ),
    credential_type!(
        "BusinessLicenseCredential",
        "business-license-credential",
        Some(2)
    ),
    credential_type!(
        "SecurityCertificationCredential",
        "security-certification-credential",
        Some(2)
    ),
    credential_type!(
        "ServiceOfferingCredential",
        "service-offering-credential",
        Some(2)
    ),
    credential_type!(
        "ProgramQualificationCredential",
        "program-qualification-credential",
        Some(3)
    ),
    credential_type!(
        "UsageApplicationCredential",
        "usage-application-credential",
        Some(3)
    ),
    credential_type!(
        "SoftwareInventoryCredential",
        "software-inventory-credential",
        None
    ),
];

/// A schema that failed to compile. Only a defect in the embedded schemas causes this.
#[derive(Debug, thiserror::Error)]
#[error("embedded schema {schema} is invalid: {reason}")]
pub struct SchemaBuildError {
    /// The schema's file name.
    pub schema: String,
    /// What the compiler said.
    pub reason: String,
}

/// A credential that does not satisfy its type's schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct SchemaViolation {
    /// JSON pointer to the offending value (`/credentialSubject/score`), or empty for the root.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

struct CompiledType {
    info: CredentialType,
    schema_id: String,
    validator: jsonschema::Validator,
}

/// The compiled validators for every credential type.
pub struct SchemaSet {
    by_name: HashMap<&'static str, CompiledType>,
}

impl SchemaSet {
    /// Compiles every embedded schema. Prefer [`SchemaSet::global`], which does it once.
    pub fn new() -> Result<Self, SchemaBuildError> {
        let envelope = parse_schema("vc-envelope.json", ENVELOPE_SCHEMA)?;
        let registry = jsonschema::Registry::new()
            .add(ENVELOPE_SCHEMA_ID, envelope)
            .and_then(|builder| builder.prepare())
            .map_err(|error| SchemaBuildError {
                schema: "vc-envelope.json".into(),
                reason: error.to_string(),
            })?;
        let mut by_name = HashMap::new();
        for info in CREDENTIAL_TYPES {
            let file = format!("{}.json", info.kebab_name);
            let schema = parse_schema(&file, info.schema_source)?;
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .with_registry(&registry)
                .should_validate_formats(true)
                .with_format("corporate-number", corporate_number_is_valid)
                .build(&schema)
                .map_err(|error| SchemaBuildError {
                    schema: file.clone(),
                    reason: error.to_string(),
                })?;
            let schema_id = info.schema_id();
            if schema.get("$id").and_then(Value::as_str) != Some(schema_id.as_str()) {
                return Err(SchemaBuildError {
                    schema: file,
                    reason: format!("$id must be {schema_id}"),
                });
            }
            by_name.insert(
                info.name,
                CompiledType {
                    info: *info,
                    schema_id,
                    validator,
                },
            );
        }
        Ok(Self { by_name })
    }

    /// The process-wide schema set, compiled on first use.
    ///
    /// # Panics
    /// Panics if an embedded schema does not compile: a build defect, caught by this crate's
    /// tests, never by input.
    pub fn global() -> &'static SchemaSet {
        static GLOBAL: OnceLock<SchemaSet> = OnceLock::new();
        GLOBAL.get_or_init(|| match SchemaSet::new() {
            Ok(set) => set,
            Err(error) => panic!("{error}"),
        })
    }

    /// Looks up a credential type by its VC type name.
    pub fn credential_type(&self, name: &str) -> Option<&CredentialType> {
        self.by_name.get(name).map(|compiled| &compiled.info)
    }

    /// The schema `$id` of a type, if the type is known.
    pub fn schema_id(&self, name: &str) -> Option<&str> {
        self.by_name
            .get(name)
            .map(|compiled| compiled.schema_id.as_str())
    }

    /// Validates a whole credential payload against the schema of `type_name`.
    ///
    /// Returns `None` if the type is unknown.
    pub fn validate(
        &self,
        type_name: &str,
        credential: &Value,
    ) -> Option<Result<(), SchemaViolation>> {
        let compiled = self.by_name.get(type_name)?;
        Some(
            compiled
                .validator
                .validate(credential)
                .map_err(|error| SchemaViolation {
                    path: error.instance_path().to_string(),
                    reason: error.to_string(),
                }),
        )
    }
}

fn parse_schema(file: &str, source: &str) -> Result<Value, SchemaBuildError> {
    serde_json::from_str(source).map_err(|error| SchemaBuildError {
        schema: file.into(),
        reason: error.to_string(),
    })
}

#[cfg(test)]
mod tests;
