//! A trust field as a gateway uses it: its signed charter and its compiled policies.

use std::path::Path;

use crate::charter::{Charter, CharterError};
use crate::policy::{PolicyEngine, PolicyError};

/// A field that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum FieldError {
    /// The charter is unreadable, invalid or not signed by every founder.
    #[error(transparent)]
    Charter(#[from] CharterError),
    /// The charter's policy file does not parse or does not fit the schema.
    #[error("{path}: {source}")]
    Policy {
        /// The policy file.
        path: String,
        /// What is wrong with it.
        source: PolicyError,
    },
}

impl FieldError {
    /// A stable machine code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            FieldError::Charter(error) => error.code(),
            FieldError::Policy { source, .. } => source.code(),
        }
    }
}

/// A loaded field: charter verified, policies validated against the schema.
#[derive(Debug)]
pub struct Field {
    /// The charter.
    pub charter: Charter,
    /// The compiled policies; `None` if the charter names no policy file, in which case
    /// every access is denied.
    pub policy: Option<std::sync::Arc<PolicyEngine>>,
}

impl Field {
    /// Loads a charter, requires every founder's signature, and compiles its policy file.
    pub fn load(path: &Path) -> Result<Self, FieldError> {
        let charter = Charter::load(path)?;
        let policy = match &charter.policy {
            None => None,
            Some((policy_path, source)) => Some(std::sync::Arc::new(
                PolicyEngine::new(source).map_err(|source| FieldError::Policy {
                    path: policy_path.display().to_string(),
                    source,
                })?,
            )),
        };
        Ok(Self { charter, policy })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{KeyAlgorithm, KeyPair};

    fn write_field(dir: &Path, policy: &str) -> std::path::PathBuf {
        let founder = KeyPair::generate(KeyAlgorithm::Ed25519);
        std::fs::write(dir.join("field.cedar"), policy).unwrap();
        let text = format!(
            "name = \"f\"\nfounders = [\"{}\"]\nquorum = 1\npolicy = \"field.cedar\"\n",
            founder.did()
        );
        let signature = Charter::parse(&text, dir).unwrap().sign(&founder).unwrap();
        let path = dir.join("field.toml");
        std::fs::write(&path, format!("{text}{signature}")).unwrap();
        path
    }

    #[test]
    fn a_field_loads_with_its_policies() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_field(
            dir.path(),
            "permit(principal, action == Tfc::Action::\"list\", resource is Tfc::Space);",
        );
        let field = Field::load(&path).unwrap();
        assert_eq!(field.policy.unwrap().policy_count(), 1);
    }

    #[test]
    fn a_policy_that_does_not_fit_the_schema_stops_the_charter_loading() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_field(
            dir.path(),
            "permit(principal, action, resource) when { resource.colour == \"red\" };",
        );
        let error = Field::load(&path).unwrap_err();
        assert_eq!(error.code(), "policy_invalid");
        assert!(error.to_string().contains("field.cedar"), "{error}");
    }
}
