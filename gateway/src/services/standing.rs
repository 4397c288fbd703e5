//! Standing: the one place that says what a peer is in a field (founder, admin, member,
//! barred, its tier) and whether it is verified there. Gossip, sync, data, threat reports
//! and the handshake all ask these questions here.

use std::collections::BTreeSet;

use libp2p::PeerId;

use super::{PeerRecord, Services};
use crate::charter::{Applications, Recipient};
use crate::credential::{CredentialVerifier, VerifyContext};
use crate::field::Field;

impl Services {
    /// Whether `did` is barred from `field`: revoked or suspended by governance, or
    /// blocked by a threat countermeasure.
    pub fn barred(&self, field: &str, did: &str) -> bool {
        self.is_barred(field, did) || self.threat_effects.member_blocked(field, did)
    }

    /// Whether `did` is barred in any joined field.
    pub fn barred_anywhere(&self, did: &str) -> bool {
        self.fields
            .all()
            .iter()
            .any(|field| self.barred(&field.charter.field_id(), did))
    }

    /// Whether `did` is barred from `field` by a committed revocation or suspension.
    pub fn is_barred(&self, field: &str, did: &str) -> bool {
        !self.governance.readable()
            || self
                .governance
                .standing(field, did)
                .is_some_and(|standing| !standing.in_good_standing())
    }

    /// Whether `did` is in the registry of `field` in good standing.
    fn registered(&self, field: &str, did: &str) -> bool {
        self.governance
            .standing(field, did)
            .is_some_and(|standing| standing.in_good_standing())
    }

    /// Whether `did` runs software an applied `mark-vulnerable` names in `field`, by the
    /// inventory credentials it presented (verified, about itself). Fails closed.
    pub fn vulnerable(&self, field: &str, did: &str, tokens: &[String]) -> bool {
        if !self.threat_effects.marks_vulnerable_in(field) {
            return false;
        }
        let verifier = CredentialVerifier::new();
        let inventories: Vec<_> = self.with_status_lists(|status_lists| {
            let context = VerifyContext {
                now: crate::credential::now_unix(),
                trust: None,
                status_lists,
                status_max_age_secs: crate::credential::DEFAULT_STATUS_MAX_AGE_SECS,
            };
            tokens
                .iter()
                .filter_map(|token| verifier.verify_credential(token, &context).ok())
                .filter(|credential| {
                    credential.type_name == crate::threats::effects::INVENTORY_TYPE
                })
                .collect()
        });
        self.threat_effects.vulnerable(field, did, &inventories)
    }

    /// What this gateway knows of `did` in `field` by roles and standing alone: founder or
    /// admin by the charter, member by the registry, barred by governance or a threat
    /// countermeasure. Tier and held types are the caller's to fill in.
    pub fn recipient(&self, field: &Field, did: &str) -> Recipient {
        let id = field.charter.field_id();
        Recipient {
            founder: field.charter.is_founder(did),
            admin: field.charter.is_admin(did),
            member: self.registered(&id, did),
            barred: self.barred(&id, did),
            tier: 0,
            held: BTreeSet::new(),
        }
    }

    /// `record`'s peer as a recipient in `field`: roles and standing, with the tier and the
    /// types it presented there.
    pub fn recipient_of(&self, field: &Field, record: &PeerRecord) -> Recipient {
        let id = field.charter.field_id();
        let mut recipient = self.recipient(field, &record.did);
        recipient.tier = record.tiers.get(&id).copied().unwrap_or(0);
        recipient.held = record
            .presented
            .get(&id)
            .map(|presented| presented.counted.clone())
            .unwrap_or_default();
        recipient
    }

    /// Whether the peer of `record` is verified in `field` now: it completed a handshake
    /// there, is not barred, and is a member or reaches tier 1 ([`Recipient::verified`]).
    /// The one "in good standing in field F" query for a connected peer.
    pub fn verified_in(&self, record: &PeerRecord, field: &str) -> bool {
        record.tiers.contains_key(field)
            && self
                .fields
                .get(field)
                .is_some_and(|joined| self.recipient_of(&joined, record).verified())
    }

    /// Whether `peer` is verified in `field` by our record of it.
    pub fn peer_verified_in(&self, peer: PeerId, field: &str) -> bool {
        self.peers
            .get(peer)
            .is_some_and(|record| self.verified_in(&record, field))
    }

    /// Whether the peer of `record` takes part in `field`'s gossip: verified there and in
    /// the charter's gossip audience.
    pub fn gossips_in(&self, record: &PeerRecord, field: &str) -> bool {
        record.tiers.contains_key(field)
            && self.fields.get(field).is_some_and(|joined| {
                joined
                    .charter
                    .disclosure
                    .allows_gossip(&self.recipient_of(&joined, record))
            })
    }

    /// The fields whose gossip `peer` takes part in, by our record of it.
    pub fn gossip_fields(&self, peer: PeerId) -> BTreeSet<String> {
        let Some(record) = self.peers.get(peer) else {
            return BTreeSet::new();
        };
        record
            .tiers
            .keys()
            .filter(|field| self.gossips_in(&record, field))
            .cloned()
            .collect()
    }

    /// Whether `did` is in good standing in `field` as this gateway knows it: not barred, and
    /// a member in the registry or a peer verified here (an applicant the founders
    /// screened). Who may publish a field's gossip or count as a threat reporter.
    pub fn in_good_standing(&self, field: &str, did: &str) -> bool {
        !self.barred(field, did)
            && (self.registered(field, did)
                || self
                    .peers
                    .of_did(did)
                    .is_some_and(|record| self.verified_in(&record, field)))
    }

    /// Whether `did` has standing in `field` here as a member: in the registry in good
    /// standing, or the target of an admission still collecting signatures.
    pub fn member_standing(&self, field: &Field, did: &str) -> bool {
        let id = field.charter.field_id();
        !self.barred(&id, did)
            && (self.registered(&id, did) || self.governance.admission_pending(&id, did))
    }

    /// Whether `did` is a founder, an admin or a member (or up for admission) of some field
    /// we joined: no stranger, even when a handshake found nothing to share yet.
    pub fn knows(&self, did: &str) -> bool {
        self.fields.all().iter().any(|field| {
            field.charter.is_founder(did)
                || field.charter.is_admin(did)
                || self.member_standing(field, did)
        })
    }

    /// Whether this gateway screens applicants in `field`: the field is open to applications
    /// and this gateway is one of its founders or admins.
    pub fn screens_applicants(&self, field: &Field) -> bool {
        let me = self.key.did();
        field.charter.applications == Applications::Open
            && (field.charter.is_founder(&me) || field.charter.is_admin(&me))
            && !self.is_barred(&field.charter.field_id(), &me)
    }

    /// Whether this gateway is an applicant in `field`: joined, not in its registry, not
    /// barred.
    pub fn applies_to(&self, field: &Field) -> bool {
        self.governance
            .standing(&field.charter.field_id(), &self.key.did())
            .is_none()
    }

    /// The fields to name to `peer` first: those where it has standing here as a member,
    /// and those this gateway applies to where `peer` is a founder or an admin (who screen
    /// applicants).
    pub fn fields_to_name(&self, peer: &str) -> Vec<String> {
        // Named even where we hold ourselves barred: a member that learnt of its own
        // suspension learns of its reinstatement only from a peer that verifies it again,
        // and a peer that still holds it barred refuses it anyway.
        self.fields
            .all()
            .iter()
            .filter(|field| {
                self.member_standing(field, peer)
                    || (self.applies_to(field)
                        && (field.charter.is_founder(peer) || field.charter.is_admin(peer)))
            })
            .map(|field| field.charter.field_id())
            .collect()
    }

    /// Whether this gateway answers `peer` in `field` when `peer` names it: joined, `peer`
    /// not barred here, and `peer` has standing as a member, or applies where this gateway
    /// screens applicants. Whether we hold ourselves barred does not matter (see
    /// [`Services::fields_to_name`]).
    pub fn answers(&self, peer: &str, field: &str) -> bool {
        let Some(joined) = self.fields.get(field) else {
            return false;
        };
        if self.barred(field, peer) {
            return false;
        }
        self.member_standing(&joined, peer) || self.screens_applicants(&joined)
    }
}
