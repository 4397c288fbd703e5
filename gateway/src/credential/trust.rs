//! The trusted-issuer registry of a field: which issuers a verifier accepts for which types.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::{ErrorCode, VerificationError};

/// Which issuers a field trusts for which credential types, and which types may be
/// self-declared. Nothing is trusted by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IssuerTrust {
    issuers: HashMap<String, BTreeSet<String>>,
    self_declared_ok: HashSet<String>,
}

impl IssuerTrust {
    /// Trusts `did` to issue `types`.
    pub fn trust(&mut self, did: &str, types: impl IntoIterator<Item = String>) {
        self.issuers
            .entry(did.to_owned())
            .or_default()
            .extend(types);
    }

    /// Accepts self-declared credentials of `type_name`.
    pub fn allow_self_declared(&mut self, type_name: &str) {
        self.self_declared_ok.insert(type_name.to_owned());
    }

    /// Whether `did` is trusted for `type_name`.
    pub fn is_trusted(&self, did: &str, type_name: &str) -> bool {
        self.issuers
            .get(did)
            .is_some_and(|types| types.contains(type_name))
    }

    /// Judges a credential's issuer: a trusted issuer passes; a self-issued credential passes
    /// only for a type the charter marks `self_declared_ok`.
    pub fn check(
        &self,
        issuer: &str,
        subject: &str,
        type_name: &str,
    ) -> Result<(), VerificationError> {
        if self.is_trusted(issuer, type_name) {
            return Ok(());
        }
        if issuer == subject {
            if self.self_declared_ok.contains(type_name) {
                return Ok(());
            }
            return Err(VerificationError::new(
                ErrorCode::SelfDeclaredNotAccepted,
                format!("{type_name} must come from a trusted issuer, not from the holder itself"),
            ));
        }
        Err(VerificationError::new(
            ErrorCode::UntrustedIssuer,
            format!("the charter does not trust {issuer} to issue {type_name}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{KeyAlgorithm, KeyPair};

    fn did() -> String {
        KeyPair::generate(KeyAlgorithm::Ed25519).did()
    }
    #[test]
    fn trust_is_per_issuer_and_type() {
        let (bureau, registrar, holder) = (did(), did(), did());
        let mut trust = IssuerTrust::default();
        trust.trust(&bureau, ["CreditRatingCredential".to_owned()]);
        trust.allow_self_declared("ServiceOfferingCredential");
        assert!(
            trust
                .check(&bureau, &holder, "CreditRatingCredential")
                .is_ok()
        );
        let error = trust
            .check(&bureau, &holder, "BusinessLicenseCredential")
            .unwrap_err();
        assert_eq!(error.code, ErrorCode::UntrustedIssuer);
        let error = trust
            .check(&registrar, &holder, "CreditRatingCredential")
            .unwrap_err();
        assert_eq!(error.code, ErrorCode::UntrustedIssuer);
        assert!(
            trust
                .check(&holder, &holder, "ServiceOfferingCredential")
                .is_ok()
        );
        let error = trust
            .check(&holder, &holder, "CreditRatingCredential")
            .unwrap_err();
        assert_eq!(error.code, ErrorCode::SelfDeclaredNotAccepted);
    }

    #[test]
    fn empty_trust_trusts_nothing() {
        let issuer = did();
        let error = IssuerTrust::default().check(&issuer, &did(), "CreditRatingCredential");
        assert_eq!(error.unwrap_err().code, ErrorCode::UntrustedIssuer);
    }
}
