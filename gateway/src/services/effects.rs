//! The countermeasures in force, as every service reads them. The threat book alone writes
//! them ([`ThreatEffects::update`]). Every reader fails closed: a poisoned lock blocks,
//! caps at tier 0, counts no credential and quarantines everything.

use std::sync::RwLock;

use crate::credential::VerifiedCredential;
use crate::threats::Effects;
use crate::threats::blocks::AddressBlocks;
use crate::threats::effects::credential_id;

/// The threat countermeasures in force, behind one lock.
#[derive(Default)]
pub struct ThreatEffects {
    effects: RwLock<Effects>,
}

impl ThreatEffects {
    /// Changes what is in force (the threat book's). A poisoned lock changes nothing; every
    /// reader then fails closed.
    pub(crate) fn update<R>(&self, change: impl FnOnce(&mut Effects) -> R) -> Option<R> {
        self.effects
            .write()
            .ok()
            .map(|mut effects| change(&mut effects))
    }

    fn read<R>(&self, closed: R, judge: impl FnOnce(&Effects) -> R) -> R {
        self.effects
            .read()
            .map_or(closed, |effects| judge(&effects))
    }

    /// Whether a countermeasure blocks `did` in `field`.
    pub fn member_blocked(&self, field: &str, did: &str) -> bool {
        self.read(true, |effects| effects.member_blocked(field, did))
    }

    /// The tier ceiling a countermeasure puts on `did` in `field`.
    pub fn tier_cap(&self, field: &str, did: &str) -> Option<u8> {
        self.read(Some(0), |effects| effects.tier_cap(field, did))
    }

    /// `tokens` less those a countermeasure suspended for `did` in `field`.
    pub fn counted_credentials(&self, field: &str, did: &str, tokens: &[String]) -> Vec<String> {
        self.read(Vec::new(), |effects| {
            if !effects.suspends_credentials_in(field) {
                return tokens.to_vec();
            }
            tokens
                .iter()
                .filter(|token| {
                    credential_id(token)
                        .is_none_or(|id| !effects.credential_suspended(field, did, &id))
                })
                .cloned()
                .collect()
        })
    }

    /// Whether some `mark-vulnerable` is in force in `field` (then inventories matter).
    pub fn marks_vulnerable_in(&self, field: &str) -> bool {
        self.read(true, |effects| effects.marks_vulnerable_in(field))
    }

    /// Whether `did` runs software a `mark-vulnerable` in force names, by `inventories`.
    pub fn vulnerable(&self, field: &str, did: &str, inventories: &[VerifiedCredential]) -> bool {
        self.read(true, |effects| effects.vulnerable(field, did, inventories))
    }

    /// The highest severity in force in `field`, as the policy's threat level.
    pub fn threat_level(&self, field: &str) -> u8 {
        self.read(u8::MAX, |effects| effects.threat_level(field))
    }

    /// Whether an attachment with this hash is quarantined in `field`.
    pub fn quarantined(&self, field: &str, sha256: &str) -> bool {
        self.read(true, |effects| effects.quarantined(field, sha256))
    }

    /// The addresses the countermeasures in force block (none readable: none listed; the
    /// gate keeps what it was last told).
    pub fn address_blocks(&self) -> AddressBlocks {
        self.read(AddressBlocks::default(), Effects::address_blocks)
    }
}
