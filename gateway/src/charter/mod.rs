//! Field charters: the founding TOML document of a trust field (信頼の場).
//!
//! A charter names the founders, admins and quorum, the trusted issuers, the three tiers'
//! requirements and the Cedar policy file. Its field id is the SHA-256 of its RFC 8785
//! canonical JSON (the TOML document as JSON, without `signatures`, plus `policy_sha256`, the
//! digest of the policy file, so that a policy edit is a new field). Every founder signs the
//! field id; a charter without every founder's valid signature does not load.

mod constraint;
pub mod disclosure;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tfc_schemas::SchemaSet;
use toml::Spanned;

pub use crate::credential::IssuerTrust;
pub use constraint::{Constraint, ConstraintError};
pub use disclosure::{Applications, Audience, DisclosureRules, MatrixRow, Recipient};

use crate::credential::DEFAULT_STATUS_MAX_AGE_SECS;
use crate::identity::{KeyPair, PublicKey};

/// Charter and policy files larger than this are refused.
const MAX_CHARTER_LEN: u64 = 1024 * 1024;
/// The domain-separation prefix of a founder's signature over the field id.
const SIGNATURE_CONTEXT: &str = "tfc/charter/v1:";

/// A charter that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CharterError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid charter TOML.
    #[error("charter is not valid TOML: {0}")]
    Syntax(String),
    /// A value is out of range or inconsistent.
    #[error("charter is not valid: {0}")]
    Invalid(String),
    /// A constraint does not parse or refers to what the tier cannot see.
    #[error("charter line {line}: constraint {constraint:?}: {message}")]
    Constraint {
        /// The 1-based line of the constraint in the charter file.
        line: usize,
        /// The constraint text.
        constraint: String,
        /// What is wrong.
        message: String,
    },
    /// A founder's signature is missing or does not verify.
    #[error("charter signatures: {0}")]
    Signature(String),
}

impl CharterError {
    /// A stable machine code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            CharterError::Io { .. } => "io",
            CharterError::Syntax(_) => "charter_syntax",
            CharterError::Invalid(_) => "charter_invalid",
            CharterError::Constraint { .. } => "charter_constraint",
            CharterError::Signature(_) => "charter_signature",
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

/// The requirements of one tier, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct TierSection {
    #[serde(default)]
    require: Vec<String>,
    #[serde(default)]
    constraints: Vec<Spanned<String>>,
    #[serde(default)]
    self_declared_ok: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct TiersSection {
    #[serde(default)]
    prescreening: TierSection,
    #[serde(default)]
    certification: TierSection,
    #[serde(default)]
    transaction: TierSection,
}

/// A founder's signature over the field id.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureEntry {
    founder: String,
    signature: String,
}

/// The charter file, as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct CharterFile {
    name: String,
    founders: Vec<String>,
    #[serde(default)]
    admins: Vec<String>,
    quorum: Quorum,
    #[serde(default)]
    policy: Option<String>,
    #[serde(default)]
    status_max_age: Option<String>,
    #[serde(default)]
    issuers: Vec<IssuerEntry>,
    #[serde(default)]
    tiers: TiersSection,
    #[serde(default)]
    bootstrap: Vec<String>,
    #[serde(default)]
    applications: Option<String>,
    #[serde(default)]
    disclosure: std::collections::BTreeMap<String, Vec<String>>,
    #[serde(default)]
    signatures: Vec<SignatureEntry>,
}

/// The quorum: an absolute count or a fraction of members (`"2/3"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quorum {
    /// This many distinct members.
    Count(u32),
    /// `numerator / denominator` of the membership, rounded up.
    Fraction {
        /// Numerator.
        numerator: u32,
        /// Denominator.
        denominator: u32,
    },
}

impl<'de> Deserialize<'de> for Quorum {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Count(u32),
            Fraction(String),
        }
        let invalid =
            || serde::de::Error::custom("quorum must be a count (2) or a fraction (\"2/3\")");
        match Raw::deserialize(deserializer)? {
            Raw::Count(count) => Ok(Quorum::Count(count)),
            Raw::Fraction(text) => text.parse().map_err(|_| invalid()),
        }
    }
}

impl std::str::FromStr for Quorum {
    type Err = ();

    /// `"3"` or `"2/3"`.
    fn from_str(text: &str) -> Result<Self, ()> {
        match text.split_once('/') {
            None => text.trim().parse().map(Quorum::Count).map_err(drop),
            Some((numerator, denominator)) => Ok(Quorum::Fraction {
                numerator: numerator.trim().parse().map_err(drop)?,
                denominator: denominator.trim().parse().map_err(drop)?,
            }),
        }
    }
}

impl Quorum {
    /// Whether the quorum can be met and means something: a count from 1 to `most` (the
    /// founders, when known), or a fraction in (0, 1].
    pub fn check(self, most: Option<usize>) -> Result<(), String> {
        match self {
            Quorum::Count(count)
                if count == 0 || most.is_some_and(|most| count as usize > most) =>
            {
                Err(match most {
                    Some(most) => format!(
                        "quorum {count} must be between 1 and the number of founders ({most})"
                    ),
                    None => format!("quorum {count} must be at least 1"),
                })
            }
            Quorum::Fraction {
                numerator,
                denominator,
            } if numerator == 0 || numerator > denominator => Err(format!(
                "quorum {numerator}/{denominator} must be a fraction in (0, 1]"
            )),
            _ => Ok(()),
        }
    }

    /// Signatures needed among `members` members (at least one).
    pub fn required(self, members: usize) -> usize {
        match self {
            Quorum::Count(count) => count as usize,
            Quorum::Fraction {
                numerator,
                denominator,
            } => (members * numerator as usize)
                .div_ceil(denominator.max(1) as usize)
                .max(1),
        }
    }
}

impl fmt::Display for Quorum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quorum::Count(count) => write!(f, "{count}"),
            Quorum::Fraction {
                numerator,
                denominator,
            } => write!(f, "{numerator}/{denominator}"),
        }
    }
}

/// One tier's requirements, checked and parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct TierRequirement {
    /// 1, 2 or 3.
    pub tier: u8,
    /// The charter's name for it: `prescreening`, `certification` or `transaction`.
    pub name: &'static str,
    /// Required credential types.
    pub require: Vec<String>,
    /// Claim constraints.
    pub constraints: Vec<Constraint>,
    /// Types that may be self-declared for this tier.
    pub self_declared_ok: BTreeSet<String>,
}

/// The charter's names of tiers 1–3.
pub const TIER_NAMES: [&str; 3] = ["prescreening", "certification", "transaction"];

/// A loaded charter: parsed, checked, hashed and (unless loaded unsigned) signed by every
/// founder.
#[derive(Debug, Clone)]
pub struct Charter {
    /// The field's name.
    pub name: String,
    /// Founding members' DIDs.
    pub founders: Vec<String>,
    /// Admins' DIDs (emergency revoke and suspend).
    pub admins: Vec<String>,
    /// Signatures needed to commit a governance op.
    pub quorum: Quorum,
    /// Status lists older than this many seconds give `status_unavailable`.
    pub status_max_age_secs: i64,
    /// Trusted issuers.
    pub issuers: Vec<IssuerEntry>,
    /// Tiers 1–3.
    pub tiers: [TierRequirement; 3],
    /// The Cedar policy file's path and text, if the charter names one.
    pub policy: Option<(PathBuf, String)>,
    /// Members' gateways to dial on joining (`/ip4/…/tcp/…/p2p/<PeerId>` multiaddrs).
    pub bootstrap: Vec<libp2p::Multiaddr>,
    /// Whether any organisation may apply (its founders and admins screen it).
    pub applications: Applications,
    /// Who may receive each credential type, and who takes part in the gossip.
    pub disclosure: DisclosureRules,
    /// SHA-256 of the canonical JSON.
    field_id: [u8; 32],
    /// Founders whose signature verified.
    signed_by: BTreeSet<String>,
}

impl Charter {
    /// Loads a charter file and its policy file, and requires every founder's signature.
    pub fn load(path: &Path) -> Result<Self, CharterError> {
        let charter = Self::load_unsigned(path)?;
        charter.require_all_signatures()?;
        Ok(charter)
    }

    /// Loads a charter without requiring signatures (for `tfcctl field charter hash|sign`).
    pub fn load_unsigned(path: &Path) -> Result<Self, CharterError> {
        let text = read_bounded(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base)
    }

    /// Parses charter text; a `policy` path is read relative to `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, CharterError> {
        let file: CharterFile =
            toml::from_str(text).map_err(|error| CharterError::Syntax(error.to_string()))?;
        let policy = match &file.policy {
            None => None,
            Some(relative) => {
                let path = base.join(relative);
                Some((path.clone(), read_bounded(&path)?))
            }
        };
        let field_id = field_id(text, policy.as_ref().map(|(_, text)| text.as_str()))?;
        let tiers = build_tiers(&file.tiers, text)?;
        let required_at = tiers.clone().map(|tier| tier.require);
        let disclosure = DisclosureRules::parse(
            &file.disclosure,
            |type_name| SchemaSet::global().credential_type(type_name).is_some(),
            &required_at,
        )
        .map_err(|error| CharterError::Invalid(error.to_string()))?;
        let applications = match &file.applications {
            None => Applications::default(),
            Some(text) => text.parse().map_err(CharterError::Invalid)?,
        };
        let mut charter = Self {
            status_max_age_secs: match &file.status_max_age {
                None => DEFAULT_STATUS_MAX_AGE_SECS,
                Some(text) => parse_duration_secs(text).ok_or_else(|| {
                    CharterError::Invalid(format!(
                        "status_max_age {text:?} is not a duration like \"24h\", \"90m\" or \"7d\""
                    ))
                })?,
            },
            name: file.name,
            founders: file.founders,
            admins: file.admins,
            quorum: file.quorum,
            issuers: file.issuers,
            tiers,
            policy,
            bootstrap: parse_bootstrap(&file.bootstrap)?,
            applications,
            disclosure,
            field_id,
            signed_by: BTreeSet::new(),
        };
        charter.check()?;
        charter.signed_by = charter.verified_signers(&file.signatures)?;
        Ok(charter)
    }

    /// The field id: SHA-256 of the canonical JSON, as 64 lowercase hex digits.
    pub fn field_id(&self) -> String {
        hex(&self.field_id)
    }

    /// The founders whose signature verified.
    pub fn signed_by(&self) -> &BTreeSet<String> {
        &self.signed_by
    }

    /// The founders who have not signed yet.
    pub fn unsigned_founders(&self) -> Vec<&str> {
        self.founders
            .iter()
            .filter(|founder| !self.signed_by.contains(*founder))
            .map(String::as_str)
            .collect()
    }

    /// The message a founder signs.
    fn signing_message(&self) -> String {
        format!("{SIGNATURE_CONTEXT}{}", self.field_id())
    }

    /// A founder's signature over this charter, as the `[[signatures]]` TOML block to append.
    pub fn sign(&self, founder: &KeyPair) -> Result<String, CharterError> {
        let did = founder.did();
        if !self.founders.contains(&did) {
            return Err(CharterError::Signature(format!(
                "{did} is not a founder of this charter"
            )));
        }
        if self.signed_by.contains(&did) {
            return Err(CharterError::Signature(format!(
                "{did} has already signed this charter"
            )));
        }
        let signature = URL_SAFE_NO_PAD.encode(founder.sign(self.signing_message().as_bytes()));
        Ok(format!(
            "\n[[signatures]]\nfounder = \"{did}\"\nsignature = \"{signature}\"\n"
        ))
    }

    fn verified_signers(
        &self,
        entries: &[SignatureEntry],
    ) -> Result<BTreeSet<String>, CharterError> {
        let message = self.signing_message();
        let mut signers = BTreeSet::new();
        for entry in entries {
            if !self.founders.contains(&entry.founder) {
                return Err(CharterError::Signature(format!(
                    "{} signed but is not a founder",
                    entry.founder
                )));
            }
            let key = PublicKey::from_did(&entry.founder)
                .map_err(|error| CharterError::Signature(error.to_string()))?;
            let signature = URL_SAFE_NO_PAD.decode(&entry.signature).unwrap_or_default();
            if !key.verify(message.as_bytes(), &signature) {
                return Err(CharterError::Signature(format!(
                    "the signature of {} does not match this charter (was it edited after signing?)",
                    entry.founder
                )));
            }
            signers.insert(entry.founder.clone());
        }
        Ok(signers)
    }

    fn require_all_signatures(&self) -> Result<(), CharterError> {
        let missing = self.unsigned_founders();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(CharterError::Signature(format!(
                "missing signatures from founders {}; each founder runs `tfcctl field charter sign`",
                missing.join(", ")
            )))
        }
    }

    fn check(&self) -> Result<(), CharterError> {
        let invalid = |message: String| Err(CharterError::Invalid(message));
        if self.founders.is_empty() {
            return invalid("a charter needs at least one founder".into());
        }
        let dids = self
            .founders
            .iter()
            .chain(&self.admins)
            .chain(self.issuers.iter().map(|issuer| &issuer.did));
        for did in dids {
            PublicKey::from_did(did).map_err(|error| CharterError::Invalid(error.to_string()))?;
        }
        self.quorum
            .check(Some(self.founders.len()))
            .map_err(CharterError::Invalid)?;
        let schemas = SchemaSet::global();
        let known = |type_name: &str| schemas.credential_type(type_name).is_some();
        for issuer in &self.issuers {
            if let Some(unknown) = issuer.types.iter().find(|t| !known(t)) {
                return invalid(format!(
                    "issuer {} is trusted for unknown type {unknown}",
                    issuer.name
                ));
            }
        }
        Ok(())
    }

    /// Whether `did` is a founder.
    pub fn is_founder(&self, did: &str) -> bool {
        self.founders.iter().any(|founder| founder == did)
    }

    /// Whether `did` is an admin.
    pub fn is_admin(&self, did: &str) -> bool {
        self.admins.iter().any(|admin| admin == did)
    }

    /// The credential types a presentation in this field may carry: those its tiers
    /// require and those its `[disclosure]` table names (a software inventory, say).
    pub fn presentable_types(&self) -> BTreeSet<String> {
        self.tiers
            .iter()
            .flat_map(|tier| tier.require.iter())
            .chain(self.disclosure.named_types())
            .cloned()
            .collect()
    }

    /// Who receives each presentable credential type and the gossip, by recipient class.
    pub fn disclosure_matrix(&self) -> Vec<MatrixRow> {
        self.disclosure.matrix(&self.presentable_types())
    }

    /// The trusted-issuer registry this charter defines (self-declared types of every tier
    /// count; tier evaluation applies them per tier).
    pub fn issuer_trust(&self) -> IssuerTrust {
        let mut trust = IssuerTrust::default();
        for issuer in &self.issuers {
            trust.trust(&issuer.did, issuer.types.iter().cloned());
        }
        for type_name in self.tiers.iter().flat_map(|tier| &tier.self_declared_ok) {
            trust.allow_self_declared(type_name);
        }
        trust
    }
}

fn build_tiers(section: &TiersSection, text: &str) -> Result<[TierRequirement; 3], CharterError> {
    let schemas = SchemaSet::global();
    let sections = [
        &section.prescreening,
        &section.certification,
        &section.transaction,
    ];
    let mut visible: BTreeSet<String> = BTreeSet::new();
    let mut tiers = Vec::with_capacity(3);
    for (index, (section, name)) in sections.into_iter().zip(TIER_NAMES).enumerate() {
        let invalid = |message: String| CharterError::Invalid(format!("[tiers.{name}] {message}"));
        if let Some(unknown) = section
            .require
            .iter()
            .find(|t| schemas.credential_type(t).is_none())
        {
            return Err(invalid(format!(
                "requires unknown credential type {unknown}"
            )));
        }
        if let Some(stray) = section
            .self_declared_ok
            .iter()
            .find(|t| !section.require.contains(t))
        {
            return Err(invalid(format!(
                "self_declared_ok lists {stray}, which this tier does not require"
            )));
        }
        visible.extend(section.require.iter().cloned());
        let constraints = section
            .constraints
            .iter()
            .map(|spanned| parse_constraint(spanned, text, &visible))
            .collect::<Result<Vec<_>, _>>()?;
        tiers.push(TierRequirement {
            tier: index as u8 + 1,
            name,
            require: section.require.clone(),
            constraints,
            self_declared_ok: section.self_declared_ok.iter().cloned().collect(),
        });
    }
    tiers
        .try_into()
        .map_err(|_| CharterError::Invalid("three tiers expected".into()))
}

/// Parses one constraint; errors carry the charter line. A constraint may only read types
/// that this tier or a lower one requires.
fn parse_constraint(
    spanned: &Spanned<String>,
    text: &str,
    visible: &BTreeSet<String>,
) -> Result<Constraint, CharterError> {
    let line = text
        .get(..spanned.span().start)
        .map_or(1, |before| before.matches('\n').count() + 1);
    let error = |message: String| CharterError::Constraint {
        line,
        constraint: spanned.get_ref().clone(),
        message,
    };
    let constraint =
        Constraint::parse(spanned.get_ref()).map_err(|error_| error(error_.to_string()))?;
    if let Some(unseen) = constraint
        .types()
        .into_iter()
        .find(|type_name| !visible.contains(*type_name))
    {
        return Err(error(format!(
            "{unseen} is not required by this tier or a lower one"
        )));
    }
    Ok(constraint)
}

/// SHA-256 of the canonical JSON of the charter text without `signatures`, plus the policy
/// file's digest.
fn field_id(text: &str, policy: Option<&str>) -> Result<[u8; 32], CharterError> {
    let mut table: toml::Table = text
        .parse()
        .map_err(|error: toml::de::Error| CharterError::Syntax(error.to_string()))?;
    table.remove("signatures");
    let mut json =
        serde_json::to_value(&table).map_err(|error| CharterError::Invalid(error.to_string()))?;
    if let Some(policy) = policy {
        json["policy_sha256"] = hex(&Sha256::digest(policy.as_bytes())).into();
    }
    let canonical =
        serde_jcs::to_vec(&json).map_err(|error| CharterError::Invalid(error.to_string()))?;
    Ok(Sha256::digest(&canonical).into())
}

use crate::hex::encode as hex;

fn read_bounded(path: &Path) -> Result<String, CharterError> {
    use std::io::Read as _;
    let io = |source| CharterError::Io {
        path: path.display().to_string(),
        source,
    };
    let too_large = || {
        CharterError::Invalid(format!(
            "{} is larger than {MAX_CHARTER_LEN} bytes",
            path.display()
        ))
    };
    // A device or a FIFO reports no length (`policy = "/dev/zero"`): only a regular file
    // is read, and never past the limit, whatever its metadata says.
    let metadata = std::fs::metadata(path).map_err(io)?;
    if !metadata.is_file() {
        return Err(CharterError::Invalid(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    if metadata.len() > MAX_CHARTER_LEN {
        return Err(too_large());
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(MAX_CHARTER_LEN + 1)
        .read_to_string(&mut text)
        .map_err(io)?;
    if text.len() as u64 > MAX_CHARTER_LEN {
        return Err(too_large());
    }
    Ok(text)
}

/// Bootstrap addresses must name the peer they reach, so that the handshake can check that
/// the gateway there is the member it claims to be.
fn parse_bootstrap(addresses: &[String]) -> Result<Vec<libp2p::Multiaddr>, CharterError> {
    addresses
        .iter()
        .map(|text| {
            let address: libp2p::Multiaddr = text.parse().map_err(|error| {
                CharterError::Invalid(format!("bootstrap address {text:?}: {error}"))
            })?;
            match address.iter().last() {
                Some(libp2p::multiaddr::Protocol::P2p(_)) => Ok(address),
                _ => Err(CharterError::Invalid(format!(
                    "bootstrap address {text:?} must end with /p2p/<PeerId>"
                ))),
            }
        })
        .collect()
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

#[cfg(test)]
mod tests;
