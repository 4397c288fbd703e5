//! Field charters: the founding TOML document of a trust field, and the trusted-issuer
//! registry built from it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use serde::Deserialize;

use crate::credential::{DEFAULT_STATUS_MAX_AGE_SECS, ErrorCode, VerificationError};
use crate::identity::PublicKey;

/// Charter files larger than this are refused.
const MAX_CHARTER_LEN: u64 = 1024 * 1024;

/// A charter that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CharterError {
    /// The file could not be read.
    #[error("cannot read charter {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid charter TOML.
    #[error("charter is not valid: {0}")]
    Syntax(String),
    /// A value is out of range or inconsistent.
    #[error("charter is not valid: {0}")]
    Invalid(String),
}

impl CharterError {
    /// A stable machine code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            CharterError::Io { .. } => "io",
            CharterError::Syntax(_) => "charter_syntax",
            CharterError::Invalid(_) => "charter_invalid",
        }
    }
}

/// A trusted issuer entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerEntry {
    /// The issuer's DID.
    pub did: String,
    /// A human name ("Credit bureau").
    pub name: String,
    /// The credential types this issuer is trusted for.
    pub types: Vec<String>,
}

/// The requirements of one tier.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierRequirement {
    /// Credential types the tier requires.
    #[serde(default)]
    pub require: Vec<String>,
    /// Claim constraints over those credentials.
    #[serde(default)]
    pub constraints: Vec<String>,
    /// Types that may be self-declared (issuer = subject) for this tier.
    #[serde(default)]
    pub self_declared_ok: Vec<String>,
}

/// The three tiers, by their charter names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tiers {
    /// Tier 1, pre-screening (事前審査).
    #[serde(default)]
    pub prescreening: TierRequirement,
    /// Tier 2, certification (認定).
    #[serde(default)]
    pub certification: TierRequirement,
    /// Tier 3, transaction (取引・監査).
    #[serde(default)]
    pub transaction: TierRequirement,
}

/// The quorum: an absolute count or a fraction of members (`"2/3"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Quorum {
    /// This many distinct members.
    Count(u32),
    /// This fraction of the membership, as `"n/d"`.
    Fraction(String),
}

/// A field charter, as written in TOML.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Charter {
    /// The field's name.
    pub name: String,
    /// Founding members' DIDs.
    pub founders: Vec<String>,
    /// Admins' DIDs (emergency revoke and suspend).
    #[serde(default)]
    pub admins: Vec<String>,
    /// Signatures needed to commit a governance op.
    pub quorum: Quorum,
    /// The Cedar policy file, relative to the charter.
    #[serde(default)]
    pub policy: Option<String>,
    /// Status lists older than this (`"24h"`, `"90m"`, `"7d"`) give `status_unavailable`.
    #[serde(default)]
    pub status_max_age: Option<String>,
    /// Trusted issuers.
    #[serde(default)]
    pub issuers: Vec<IssuerEntry>,
    /// Tier requirements.
    #[serde(default)]
    pub tiers: Tiers,
}

impl Charter {
    /// Parses and checks a charter.
    pub fn from_toml(text: &str) -> Result<Self, CharterError> {
        let charter: Charter =
            toml::from_str(text).map_err(|error| CharterError::Syntax(error.to_string()))?;
        charter.check()?;
        Ok(charter)
    }

    /// Reads and parses a charter file.
    pub fn load(path: &Path) -> Result<Self, CharterError> {
        let io = |source| CharterError::Io {
            path: path.display().to_string(),
            source,
        };
        let length = std::fs::metadata(path).map_err(io)?.len();
        if length > MAX_CHARTER_LEN {
            return Err(CharterError::Invalid(format!(
                "{} is larger than {MAX_CHARTER_LEN} bytes",
                path.display()
            )));
        }
        Self::from_toml(&std::fs::read_to_string(path).map_err(io)?)
    }

    fn check(&self) -> Result<(), CharterError> {
        let dids = self
            .founders
            .iter()
            .chain(&self.admins)
            .chain(self.issuers.iter().map(|issuer| &issuer.did));
        for did in dids {
            PublicKey::from_did(did).map_err(|error| CharterError::Invalid(error.to_string()))?;
        }
        if self.founders.is_empty() {
            return Err(CharterError::Invalid(
                "a charter needs at least one founder".into(),
            ));
        }
        self.status_max_age_secs()?;
        Ok(())
    }

    /// The status list freshness limit in seconds.
    pub fn status_max_age_secs(&self) -> Result<i64, CharterError> {
        match &self.status_max_age {
            None => Ok(DEFAULT_STATUS_MAX_AGE_SECS),
            Some(text) => parse_duration_secs(text).ok_or_else(|| {
                CharterError::Invalid(format!(
                    "status_max_age {text:?} is not a duration like \"24h\", \"90m\" or \"7d\""
                ))
            }),
        }
    }

    /// The trusted-issuer registry this charter defines.
    pub fn issuer_trust(&self) -> IssuerTrust {
        let mut trust = IssuerTrust::default();
        for issuer in &self.issuers {
            trust.trust(&issuer.did, issuer.types.iter().cloned());
        }
        let tiers = [
            &self.tiers.prescreening,
            &self.tiers.certification,
            &self.tiers.transaction,
        ];
        for tier in tiers {
            trust
                .self_declared_ok
                .extend(tier.self_declared_ok.iter().cloned());
        }
        trust
    }
}

/// Parses `"<n><unit>"` with unit `s`, `m`, `h` or `d` into seconds.
pub fn parse_duration_secs(text: &str) -> Option<i64> {
    let text = text.trim();
    let unit_at = text.len().checked_sub(1)?;
    let (number, unit) = text.split_at_checked(unit_at)?;
    let number: i64 = number.parse().ok().filter(|number| *number > 0)?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    number.checked_mul(scale)
}

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

    /// The trusted issuers and their types, sorted.
    pub fn issuers(&self) -> BTreeMap<&str, &BTreeSet<String>> {
        self.issuers
            .iter()
            .map(|(did, types)| (did.as_str(), types))
            .collect()
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

    #[test]
    fn charter_builds_trust_and_freshness() {
        let (founder, bureau) = (did(), did());
        let text = format!(
            r#"
            name = "test field"
            founders = ["{founder}"]
            quorum = 1
            status_max_age = "12h"
            [[issuers]]
            did = "{bureau}"
            name = "Credit bureau"
            types = ["CreditRatingCredential"]
            [tiers.certification]
            self_declared_ok = ["ServiceOfferingCredential"]
            "#
        );
        let charter = Charter::from_toml(&text).unwrap();
        assert_eq!(charter.status_max_age_secs().unwrap(), 12 * 3600);
        let trust = charter.issuer_trust();
        assert!(trust.is_trusted(&bureau, "CreditRatingCredential"));
        assert!(
            trust
                .check(&founder, &founder, "ServiceOfferingCredential")
                .is_ok()
        );
    }

    #[test]
    fn bad_charters_are_refused_with_a_reason() {
        let founder = did();
        let cases = [
            (
                "name = \"x\"\nquorum = 1\nfounders = []".to_owned(),
                "charter_invalid",
            ),
            (
                format!("name = \"x\"\nquorum = 1\nfounders = [\"{founder}\"]\ntypo = 1"),
                "charter_syntax",
            ),
            (
                "name = \"x\"\nquorum = 1\nfounders = [\"did:web:x\"]".to_owned(),
                "charter_invalid",
            ),
            (
                format!(
                    "name = \"x\"\nquorum = 1\nfounders = [\"{founder}\"]\nstatus_max_age = \"soon\""
                ),
                "charter_invalid",
            ),
        ];
        for (text, code) in cases {
            assert_eq!(
                Charter::from_toml(&text).unwrap_err().code(),
                code,
                "{text}"
            );
        }
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration_secs("24h"), Some(86_400));
        assert_eq!(parse_duration_secs("90m"), Some(5400));
        assert_eq!(parse_duration_secs("7d"), Some(604_800));
        for bad in ["", "h", "0h", "-1h", "1y", "1.5h", "9999999999999999999d"] {
            assert_eq!(parse_duration_secs(bad), None, "{bad}");
        }
    }
}
