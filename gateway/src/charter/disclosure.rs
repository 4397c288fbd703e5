//! Need to know: the charter's `[disclosure]` table says, per credential type, who may
//! receive it, and who takes part in the field's gossip. `applications` says whether any
//! organisation may apply to the field.
//!
//! Fail-closed defaults: a type the table does not name goes to founders and admins only,
//! except the identity credential, which also goes to peers verified in the field; the
//! gossip goes to peers verified in the field (founders and admins always take part).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// The credential type that binds a corporate number to a DID.
pub const IDENTITY_TYPE: &str = "OrganizationIdentityCredential";
/// The `[disclosure]` key that says who takes part in the field's gossip.
pub const GOSSIP_KEY: &str = "gossip";

/// A class of recipient in a `[disclosure]` rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Audience {
    /// The charter's founders.
    Founders,
    /// The charter's admins.
    Admins,
    /// Members in the field's registry in good standing (founders and admins included).
    Members,
    /// Peers verified in the field: members, and applicants whose credentials reach tier 1.
    Verified,
    /// Peers whose credentials reach at least this tier (1–3) in the sender's judgement.
    TierAtLeast(u8),
    /// Peers that presented a verified credential of this type in the field.
    Holders(String),
}

impl FromStr for Audience {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some(tier) = text.strip_prefix("tier>=") {
            return match tier.trim().parse::<u8>() {
                Ok(tier @ 1..=3) => Ok(Audience::TierAtLeast(tier)),
                _ => Err(format!("{text:?}: the tier must be 1, 2 or 3")),
            };
        }
        if let Some(type_name) = text.strip_prefix("holders:") {
            return Ok(Audience::Holders(type_name.trim().to_owned()));
        }
        match text {
            "founders" => Ok(Audience::Founders),
            "admins" => Ok(Audience::Admins),
            "members" => Ok(Audience::Members),
            "verified" => Ok(Audience::Verified),
            _ => Err(format!(
                "{text:?} is not an audience: founders, admins, members, verified, \
                 tier>=N or holders:<CredentialType>"
            )),
        }
    }
}

impl fmt::Display for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Audience::Founders => f.write_str("founders"),
            Audience::Admins => f.write_str("admins"),
            Audience::Members => f.write_str("members"),
            Audience::Verified => f.write_str("verified"),
            Audience::TierAtLeast(tier) => write!(f, "tier>={tier}"),
            Audience::Holders(type_name) => write!(f, "holders:{type_name}"),
        }
    }
}

impl Serialize for Audience {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// What a sender knows of a recipient in one field when it decides what to send it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recipient {
    /// A founder in the charter.
    pub founder: bool,
    /// An admin in the charter.
    pub admin: bool,
    /// In the registry in good standing (founders and admins are).
    pub member: bool,
    /// Revoked, suspended or blocked by a countermeasure: receives nothing.
    pub barred: bool,
    /// The tier its credentials reach in the sender's judgement (0 if not judged yet).
    pub tier: u8,
    /// The credential types it presented and the sender verified, in this field.
    pub held: BTreeSet<String>,
}

impl Recipient {
    /// Verified in the field: a member, or an applicant whose credentials reach tier 1.
    pub fn verified(&self) -> bool {
        !self.barred && (self.member || self.founder || self.admin || self.tier >= 1)
    }

    /// Whether the recipient is in `audience`.
    pub fn is_in(&self, audience: &Audience) -> bool {
        if self.barred {
            return false;
        }
        match audience {
            Audience::Founders => self.founder,
            Audience::Admins => self.admin,
            Audience::Members => self.member || self.founder || self.admin,
            Audience::Verified => self.verified(),
            Audience::TierAtLeast(tier) => self.tier >= *tier,
            Audience::Holders(type_name) => self.held.contains(type_name),
        }
    }
}

/// Who may apply to a field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Applications {
    /// Only organisations a pending admission op names; strangers get no answer.
    #[default]
    Closed,
    /// Any organisation may apply: the founders' and admins' gateways screen it.
    Open,
}

impl FromStr for Applications {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "closed" => Ok(Applications::Closed),
            "open" => Ok(Applications::Open),
            _ => Err(format!(
                "applications {text:?} must be \"open\" or \"closed\""
            )),
        }
    }
}

/// The `[disclosure]` table, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DisclosureRules {
    /// Audiences by credential type, as the charter writes them.
    types: BTreeMap<String, Vec<Audience>>,
    /// Who takes part in the gossip, if the charter says.
    gossip: Option<Vec<Audience>>,
}

/// Why a `[disclosure]` table is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[disclosure] {0}")]
pub struct DisclosureError(pub String);

impl DisclosureRules {
    /// Parses the table: `known` says whether a credential type exists, `required_at` which
    /// types each tier (1–3) requires (for the cycle check).
    pub fn parse(
        table: &BTreeMap<String, Vec<String>>,
        known: impl Fn(&str) -> bool,
        required_at: &[Vec<String>; 3],
    ) -> Result<Self, DisclosureError> {
        let mut rules = Self::default();
        for (key, texts) in table {
            let audiences = texts
                .iter()
                .map(|text| text.parse::<Audience>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|message| DisclosureError(format!("{key}: {message}")))?;
            for audience in &audiences {
                if let Audience::Holders(type_name) = audience
                    && !known(type_name)
                {
                    return Err(DisclosureError(format!(
                        "{key}: holders:{type_name} names an unknown credential type"
                    )));
                }
            }
            if key == GOSSIP_KEY {
                rules.gossip = Some(audiences);
            } else if known(key) {
                rules.types.insert(key.clone(), audiences);
            } else {
                return Err(DisclosureError(format!(
                    "{key} is not a credential type (nor \"{GOSSIP_KEY}\")"
                )));
            }
        }
        rules.check_cycles(required_at)?;
        Ok(rules)
    }

    /// Who may receive `type_name`: the charter's rule, or the fail-closed default.
    pub fn audiences(&self, type_name: &str) -> Vec<Audience> {
        match self.types.get(type_name) {
            Some(audiences) => audiences.clone(),
            None if type_name == IDENTITY_TYPE => {
                vec![Audience::Verified, Audience::Founders, Audience::Admins]
            }
            None => vec![Audience::Founders, Audience::Admins],
        }
    }

    /// Who takes part in the gossip besides founders and admins.
    pub fn gossip_audiences(&self) -> Vec<Audience> {
        self.gossip
            .clone()
            .unwrap_or_else(|| vec![Audience::Verified])
    }

    /// The credential types the table names.
    pub fn named_types(&self) -> impl Iterator<Item = &String> {
        self.types.keys()
    }

    /// Whether `recipient` may receive `type_name`.
    pub fn allows(&self, type_name: &str, recipient: &Recipient) -> bool {
        self.audiences(type_name)
            .iter()
            .any(|audience| recipient.is_in(audience))
    }

    /// Whether `recipient` takes part in the field's gossip: founders and admins, and the
    /// gossip audiences; never a barred peer, nor one not verified in the field.
    pub fn allows_gossip(&self, recipient: &Recipient) -> bool {
        recipient.verified()
            && (recipient.founder
                || recipient.admin
                || self
                    .gossip_audiences()
                    .iter()
                    .any(|audience| recipient.is_in(audience)))
    }

    /// A type every one of whose audiences waits on the recipient showing a credential whose
    /// own disclosure waits, through such audiences, on this type, is never disclosed to a
    /// peer of the same standing: both sides wait for the other. Refused.
    fn check_cycles(&self, required_at: &[Vec<String>; 3]) -> Result<(), DisclosureError> {
        let waits_on = |type_name: &str| -> Option<BTreeSet<String>> {
            let audiences = self.audiences(type_name);
            let mut needed = BTreeSet::new();
            for audience in &audiences {
                match audience {
                    Audience::TierAtLeast(tier) => {
                        for required in required_at.iter().take(usize::from(*tier)) {
                            needed.extend(required.iter().cloned());
                        }
                    }
                    Audience::Holders(held) => {
                        needed.insert(held.clone());
                    }
                    // Known without the recipient showing anything.
                    _ => return None,
                }
            }
            Some(needed)
        };
        for start in self.types.keys() {
            let mut seen = BTreeSet::new();
            let mut frontier = vec![start.clone()];
            while let Some(type_name) = frontier.pop() {
                let Some(needed) = waits_on(&type_name) else {
                    continue;
                };
                for next in needed {
                    if next == *start {
                        return Err(DisclosureError(format!(
                            "{start} can never be disclosed: each of its audiences waits on \
                             the recipient showing a credential that waits on {start} itself \
                             (give it an audience such as \"members\" or \"verified\")"
                        )));
                    }
                    if seen.insert(next.clone()) {
                        frontier.push(next);
                    }
                }
            }
        }
        Ok(())
    }
}

/// A class of recipient, for the disclosure matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipientClass {
    /// A founder (judged at tier 0).
    Founder,
    /// An admin (judged at tier 0).
    Admin,
    /// A member in the registry judged at tier 0 (its credentials unseen or not enough).
    Member,
    /// A member or applicant judged at tier 1.
    Tier1,
    /// … at tier 2.
    Tier2,
    /// … at tier 3.
    Tier3,
    /// An applicant whose credentials were not judged yet, or reach no tier.
    Applicant,
}

impl RecipientClass {
    /// Every class, in the matrix's column order.
    pub const ALL: [RecipientClass; 7] = [
        RecipientClass::Founder,
        RecipientClass::Admin,
        RecipientClass::Member,
        RecipientClass::Tier1,
        RecipientClass::Tier2,
        RecipientClass::Tier3,
        RecipientClass::Applicant,
    ];

    /// The column heading.
    pub fn label(self) -> &'static str {
        match self {
            RecipientClass::Founder => "founder",
            RecipientClass::Admin => "admin",
            RecipientClass::Member => "member",
            RecipientClass::Tier1 => "tier 1",
            RecipientClass::Tier2 => "tier 2",
            RecipientClass::Tier3 => "tier 3",
            RecipientClass::Applicant => "applicant",
        }
    }

    /// A representative recipient of this class that holds no credential type.
    fn recipient(self) -> Recipient {
        let base = Recipient::default();
        match self {
            RecipientClass::Founder => Recipient {
                founder: true,
                member: true,
                ..base
            },
            RecipientClass::Admin => Recipient {
                admin: true,
                member: true,
                ..base
            },
            RecipientClass::Member => Recipient {
                member: true,
                ..base
            },
            RecipientClass::Tier1 => Recipient { tier: 1, ..base },
            RecipientClass::Tier2 => Recipient { tier: 2, ..base },
            RecipientClass::Tier3 => Recipient { tier: 3, ..base },
            RecipientClass::Applicant => base,
        }
    }
}

/// One row of the disclosure matrix: who receives a credential type (or the gossip).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatrixRow {
    /// The credential type, or `gossip`.
    pub subject: String,
    /// The audiences in force (the charter's, or the default).
    pub audiences: Vec<Audience>,
    /// Whether the rule is the fail-closed default.
    pub default: bool,
    /// The classes that receive it, in [`RecipientClass::ALL`] order.
    pub receives: Vec<bool>,
    /// Holders of these types receive it too, whatever their class.
    pub also_holders: Vec<String>,
}

impl DisclosureRules {
    /// The effective matrix for `types` (the field's presentable types) and the gossip.
    pub fn matrix(&self, types: &BTreeSet<String>) -> Vec<MatrixRow> {
        let row = |subject: &str, audiences: Vec<Audience>, default: bool, gossip: bool| {
            let receives = RecipientClass::ALL
                .iter()
                .map(|class| {
                    let recipient = class.recipient();
                    if gossip {
                        self.allows_gossip(&recipient)
                    } else {
                        audiences.iter().any(|audience| recipient.is_in(audience))
                    }
                })
                .collect();
            let also_holders = audiences
                .iter()
                .filter_map(|audience| match audience {
                    Audience::Holders(type_name) => Some(type_name.clone()),
                    _ => None,
                })
                .collect();
            MatrixRow {
                subject: subject.to_owned(),
                audiences,
                default,
                receives,
                also_holders,
            }
        };
        let mut rows: Vec<MatrixRow> = types
            .iter()
            .map(|type_name| {
                let default = !self.types.contains_key(type_name);
                row(type_name, self.audiences(type_name), default, false)
            })
            .collect();
        rows.push(row(
            GOSSIP_KEY,
            self.gossip_audiences(),
            self.gossip.is_none(),
            true,
        ));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(type_name: &str) -> bool {
        type_name.ends_with("Credential")
    }

    fn tiers() -> [Vec<String>; 3] {
        [
            vec![IDENTITY_TYPE.into(), "CreditRatingCredential".into()],
            vec!["BusinessLicenseCredential".into()],
            vec![],
        ]
    }

    fn rules(entries: &[(&str, &[&str])]) -> Result<DisclosureRules, DisclosureError> {
        let table = entries
            .iter()
            .map(|(key, audiences)| {
                (
                    (*key).to_owned(),
                    audiences.iter().map(|text| (*text).to_owned()).collect(),
                )
            })
            .collect();
        DisclosureRules::parse(&table, known, &tiers())
    }

    #[test]
    fn audiences_parse_and_print_back() {
        for text in [
            "founders",
            "admins",
            "members",
            "verified",
            "tier>=2",
            "holders:ProgramQualificationCredential",
        ] {
            assert_eq!(text.parse::<Audience>().unwrap().to_string(), text);
        }
        for bad in ["tier>=0", "tier>=4", "tier>=x", "everyone", ""] {
            assert!(bad.parse::<Audience>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_defaults_fail_closed() {
        let rules = rules(&[]).unwrap();
        let member = Recipient {
            member: true,
            tier: 3,
            ..Recipient::default()
        };
        let admin = Recipient {
            admin: true,
            member: true,
            ..Recipient::default()
        };
        assert!(rules.allows(IDENTITY_TYPE, &member));
        assert!(!rules.allows("CreditRatingCredential", &member));
        assert!(rules.allows("CreditRatingCredential", &admin));
        let applicant = Recipient::default();
        assert!(!rules.allows(IDENTITY_TYPE, &applicant));
        assert!(!rules.allows_gossip(&applicant));
        assert!(rules.allows_gossip(&member));
        let barred = Recipient {
            barred: true,
            ..admin
        };
        assert!(!rules.allows(IDENTITY_TYPE, &barred));
        assert!(!rules.allows_gossip(&barred));
    }

    #[test]
    fn rules_by_tier_and_holding() {
        let rules = rules(&[
            ("BusinessLicenseCredential", &["tier>=1"]),
            (
                "CreditRatingCredential",
                &["admins", "holders:ProgramQualificationCredential"],
            ),
            (GOSSIP_KEY, &["tier>=2"]),
        ])
        .unwrap();
        let mut peer = Recipient {
            tier: 1,
            ..Recipient::default()
        };
        assert!(rules.allows("BusinessLicenseCredential", &peer));
        assert!(!rules.allows("CreditRatingCredential", &peer));
        assert!(!rules.allows_gossip(&peer));
        peer.held.insert("ProgramQualificationCredential".into());
        peer.tier = 2;
        assert!(rules.allows("CreditRatingCredential", &peer));
        assert!(rules.allows_gossip(&peer));
        // Founders and admins always take part in the gossip.
        let founder = Recipient {
            founder: true,
            member: true,
            ..Recipient::default()
        };
        assert!(rules.allows_gossip(&founder));
    }

    #[test]
    fn unknown_names_and_cycles_are_refused() {
        assert!(rules(&[("NoSuchThing", &["admins"])]).is_err());
        assert!(rules(&[("CreditRatingCredential", &["holders:Nope"])]).is_err());
        assert!(rules(&[("CreditRatingCredential", &["everyone"])]).is_err());
        // Credit is needed for tier 1: showing it only to peers at tier 1 waits forever.
        let cycle = rules(&[("CreditRatingCredential", &["tier>=1"])]).unwrap_err();
        assert!(cycle.0.contains("never be disclosed"), "{cycle}");
        let mutual = rules(&[
            (
                "TaxComplianceCredential",
                &["holders:SoftwareInventoryCredential"],
            ),
            (
                "SoftwareInventoryCredential",
                &["holders:TaxComplianceCredential"],
            ),
        ]);
        assert!(mutual.is_err());
        // Another audience that needs nothing shown breaks the cycle.
        assert!(rules(&[("CreditRatingCredential", &["tier>=1", "members"])]).is_ok());
        // A licence (tier 2) shown to peers at tier 1 needs only tier-1 types: no cycle.
        assert!(rules(&[("BusinessLicenseCredential", &["tier>=1"])]).is_ok());
    }

    #[test]
    fn the_matrix_shows_each_class() {
        let rules = rules(&[("BusinessLicenseCredential", &["tier>=1"])]).unwrap();
        let types: BTreeSet<String> = [IDENTITY_TYPE, "BusinessLicenseCredential"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        let matrix = rules.matrix(&types);
        let licence = matrix
            .iter()
            .find(|row| row.subject == "BusinessLicenseCredential")
            .unwrap();
        assert!(!licence.default);
        // founder admin member tier1 tier2 tier3 applicant
        assert_eq!(
            licence.receives,
            [false, false, false, true, true, true, false]
        );
        let identity = matrix
            .iter()
            .find(|row| row.subject == IDENTITY_TYPE)
            .unwrap();
        assert!(identity.default);
        assert_eq!(
            identity.receives,
            [true, true, true, true, true, true, false]
        );
        let gossip = matrix.last().unwrap();
        assert_eq!(gossip.subject, GOSSIP_KEY);
        assert_eq!(gossip.receives, [true, true, true, true, true, true, false]);
    }
}
