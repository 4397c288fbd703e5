//! The service layer. [`Services`] holds the gateway's key and one handle per service; each
//! service owns its state behind a small API. Handshake, gossip, sync, data and the API
//! call these services, never each other's internals.

pub mod access;
mod facts;
pub mod holdings;
mod peers;
pub mod status;
pub mod threats;

pub use facts::{FactsChanged, Scope};
pub use peers::{PeerRecord, Presented, UsedNonce};

/// What a peer without standing is told, whatever went wrong: nothing it could use.
pub const REFUSED: &str = "refused";

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use libp2p::PeerId;

use crate::audit::{AuditError, AuditLog};
use crate::charter::{Applications, Charter, Recipient};
use crate::credential::{CredentialVerifier, ReplayCache, StatusLists};
use crate::disclosure::DisclosureLog;
use crate::field::Field;
use crate::governance::Governance;
use crate::identity::KeyPair;
use crate::metrics::Metrics;
use crate::policy::PolicyEngine;
use crate::store::{Store, StoreError, Tree};

/// The local side of every handshake: who we are, what we hold, which fields we belong to.
/// Shared with the API, which changes the wallet and the fields while the daemon runs.
pub struct Services {
    /// The organisation key.
    pub key: KeyPair,
    /// The fields joined.
    pub fields: RwLock<Vec<Arc<Field>>>,
    /// The organisation's own credentials (compact vc+jwt).
    pub wallet: RwLock<Vec<String>>,
    /// The store (peer records are kept in its `peers` tree).
    pub store: Store,
    /// Used nonces.
    pub replay: ReplayCache,
    /// Known status lists.
    pub status_lists: RwLock<StatusLists>,
    /// Seconds an unknown peer may take to finish the handshake.
    pub grace_secs: u64,
    /// Signalled when facts peers were judged on change (a status list, a joined field, a
    /// member's standing): the handshake service then re-judges the peers concerned.
    pub facts_changed: FactsChanged,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    /// The governance logs of the joined fields.
    pub governance: Governance,
    /// The audit log.
    pub audit: AuditLog,
    /// Every presentation sent or received.
    pub disclosures: DisclosureLog,
    /// The threat countermeasures in force (written by [`crate::threats::Threats`]).
    pub threat_effects: RwLock<crate::threats::Effects>,
    /// Bumped whenever a peer record is written: what was read from one is stale.
    pub peers_generation: std::sync::atomic::AtomicU64,
    /// Policies amended by governance, compiled, by SHA-256 of their text.
    amended_policies: Mutex<HashMap<String, Arc<PolicyEngine>>>,
}

impl Services {
    /// The services of a gateway with the given fields and wallet; the governance logs are read from `store`.
    pub fn new(
        key: KeyPair,
        fields: Vec<Field>,
        wallet: Vec<String>,
        store: Store,
        grace_secs: u64,
    ) -> Result<Self, StoreError> {
        let charters: Vec<&Charter> = fields.iter().map(|field| &field.charter).collect();
        let governance = Governance::load(store.clone(), &charters)?;
        let audit = AuditLog::open(&store).map_err(|AuditError::Store(error)| error)?;
        let disclosures = DisclosureLog::open(&store)?;
        Ok(Self {
            key,
            fields: RwLock::new(fields.into_iter().map(Arc::new).collect()),
            wallet: RwLock::new(wallet),
            store,
            replay: ReplayCache::default(),
            status_lists: RwLock::new(StatusLists::new()),
            grace_secs,
            facts_changed: FactsChanged::default(),
            metrics: Metrics::default(),
            governance,
            audit,
            disclosures,
            threat_effects: RwLock::new(crate::threats::Effects::default()),
            peers_generation: std::sync::atomic::AtomicU64::new(0),
            amended_policies: Mutex::new(HashMap::new()),
        })
    }

    /// The joined field with this id.
    pub fn field(&self, id: &str) -> Option<Arc<Field>> {
        self.fields()
            .into_iter()
            .find(|field| field.charter.field_id() == id)
    }

    /// The charter as governance has amended it (trusted issuers, quorum): what tiers are
    /// judged against.
    pub fn effective_charter(&self, field: &Field) -> Charter {
        let mut charter = field.charter.clone();
        if let Some(state) = self.governance.state(&charter.field_id()) {
            charter.issuers = state.issuers;
            charter.quorum = state.quorum;
        }
        charter
    }

    /// The policy data requests in `field` are decided by: the latest committed
    /// `amend-policy`, else the charter's file. Amended policies are compiled once.
    pub fn policy_engine(&self, field: &Field) -> Option<Arc<PolicyEngine>> {
        let amended = self
            .governance
            .state(&field.charter.field_id())
            .and_then(|state| state.policy);
        let Some(text) = amended else {
            return field.policy.clone();
        };
        let digest = crate::governance::sha256_hex(text.as_bytes());
        let mut compiled = self
            .amended_policies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(engine) = compiled.get(&digest) {
            return Some(Arc::clone(engine));
        }
        // Intake compiled it already; a failure here would mean the schema changed.
        match PolicyEngine::new(&text) {
            Ok(engine) => {
                let engine = Arc::new(engine);
                compiled.insert(digest, Arc::clone(&engine));
                Some(engine)
            }
            Err(error) => {
                tracing::error!(%error, "the amended policy no longer compiles: every access is denied");
                None
            }
        }
    }

    /// Whether `did` is barred (revoked, suspended or threat-blocked) in any joined field.
    pub fn barred_anywhere(&self, did: &str) -> bool {
        self.fields().iter().any(|field| {
            let id = field.charter.field_id();
            self.is_barred(&id, did) || self.threat_blocked(&id, did)
        })
    }

    /// Whether `did` is barred from `field` by a committed revocation or suspension.
    pub fn is_barred(&self, field: &str, did: &str) -> bool {
        self.governance
            .standing(field, did)
            .is_some_and(|standing| !standing.in_good_standing())
    }

    /// Stores what we verified about a peer. Not flushed here: a record lost to a crash is
    /// made again by the next handshake, and sled writes it out within half a second.
    pub fn put_peer_record(&self, peer: PeerId, record: &PeerRecord) -> Result<(), StoreError> {
        self.store
            .tree(Tree::Peers)?
            .put(peer.to_bytes().as_slice(), record)?;
        self.peers_generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Whether a threat countermeasure blocks `did` in `field`. Fails closed: a poisoned
    /// lock blocks.
    pub fn threat_blocked(&self, field: &str, did: &str) -> bool {
        self.threat_effects
            .read()
            .map_or(true, |effects| effects.member_blocked(field, did))
    }

    /// The tier ceiling a threat countermeasure puts on `did` in `field` (tier 0 if the
    /// countermeasures cannot be read).
    pub fn tier_cap(&self, field: &str, did: &str) -> Option<u8> {
        self.threat_effects
            .read()
            .map_or(Some(0), |effects| effects.tier_cap(field, did))
    }

    /// `did`'s credentials less those a threat countermeasure suspended in `field`.
    pub fn counted_credentials(&self, field: &str, did: &str, tokens: &[String]) -> Vec<String> {
        let Ok(effects) = self.threat_effects.read() else {
            return Vec::new();
        };
        if !effects.suspends_credentials_in(field) {
            return tokens.to_vec();
        }
        tokens
            .iter()
            .filter(|token| {
                crate::threats::effects::credential_id(token)
                    .is_none_or(|id| !effects.credential_suspended(field, did, &id))
            })
            .cloned()
            .collect()
    }

    /// Whether `did` runs software an applied `mark-vulnerable` names in `field`, by the
    /// inventory credentials it presented (verified, about itself). Fails closed.
    pub fn vulnerable(&self, field: &str, did: &str, tokens: &[String]) -> bool {
        let Ok(effects) = self.threat_effects.read() else {
            return true;
        };
        if !effects.marks_vulnerable_in(field) {
            return false;
        }
        let verifier = CredentialVerifier::new();
        let inventories: Vec<_> = self.with_status_lists(|status_lists| {
            let context = crate::credential::VerifyContext {
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
        effects.vulnerable(field, did, &inventories)
    }

    /// The fields joined, as of now.
    pub fn fields(&self) -> Vec<Arc<Field>> {
        self.fields
            .read()
            .map(|fields| fields.clone())
            .unwrap_or_default()
    }

    /// Runs `judge` against the known status lists without copying them (they hold megabytes
    /// of bits). A poisoned lock reads as no lists: credentials with a status then fail closed.
    pub fn with_status_lists<R>(&self, judge: impl FnOnce(&StatusLists) -> R) -> R {
        match self.status_lists.read() {
            Ok(lists) => judge(&lists),
            Err(_) => judge(&StatusLists::new()),
        }
    }

    /// What this gateway knows of `did` in `field` by roles and standing alone: founder or
    /// admin by the charter, member by the registry, barred by governance or a threat
    /// countermeasure. Tier and held types are the caller's to fill in.
    pub fn recipient(&self, field: &Field, did: &str) -> Recipient {
        let id = field.charter.field_id();
        let barred = self.is_barred(&id, did) || self.threat_blocked(&id, did);
        Recipient {
            founder: field.charter.is_founder(did),
            admin: field.charter.is_admin(did),
            member: self
                .governance
                .standing(&id, did)
                .is_some_and(|standing| standing.in_good_standing()),
            barred,
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
    /// there, is not barred, and is a member or reaches tier 1. The one "in good standing in
    /// field F" query: gossip, sync, data and threat reports all ask it.
    pub fn verified_in(&self, record: &PeerRecord, field: &str) -> bool {
        record.tiers.contains_key(field)
            && self
                .field(field)
                .is_some_and(|joined| self.recipient_of(&joined, record).verified())
    }

    /// Whether the peer of `record` takes part in `field`'s gossip: verified there and in
    /// the charter's gossip audience.
    pub fn gossips_in(&self, record: &PeerRecord, field: &str) -> bool {
        record.tiers.contains_key(field)
            && self.field(field).is_some_and(|joined| {
                joined
                    .charter
                    .disclosure
                    .allows_gossip(&self.recipient_of(&joined, record))
            })
    }

    /// The fields whose gossip `peer` takes part in, by our record of it.
    pub fn gossip_fields(&self, peer: PeerId) -> BTreeSet<String> {
        let Some(record) = self.peer_record(peer) else {
            return BTreeSet::new();
        };
        record
            .tiers
            .keys()
            .filter(|field| self.gossips_in(&record, field))
            .cloned()
            .collect()
    }

    /// Our record of `peer`, if it ever completed a handshake with us.
    pub fn peer_record(&self, peer: PeerId) -> Option<PeerRecord> {
        self.store
            .tree(Tree::Peers)
            .ok()?
            .get(peer.to_bytes().as_slice())
            .ok()?
    }

    /// Whether `did` is in good standing in `field` as this gateway knows it: not barred, and
    /// a member in the registry or a peer verified here (an applicant the founders
    /// screened). Who may publish a field's gossip or count as a threat reporter.
    pub fn in_good_standing(&self, field: &str, did: &str) -> bool {
        if self.is_barred(field, did) || self.threat_blocked(field, did) {
            return false;
        }
        let registered = self
            .governance
            .standing(field, did)
            .is_some_and(|standing| standing.in_good_standing());
        registered
            || crate::identity::PublicKey::peer_id_named(did).is_some_and(|peer| {
                self.peer_record(peer)
                    .is_some_and(|record| record.did == did && self.verified_in(&record, field))
            })
    }

    /// Whether `peer` is verified in `field` by our record of it.
    pub fn peer_verified_in(&self, peer: PeerId, field: &str) -> bool {
        self.peer_record(peer)
            .is_some_and(|record| self.verified_in(&record, field))
    }

    /// Whether `did` has standing in `field` here as a member: in the registry in good
    /// standing, or the target of an admission still collecting signatures.
    pub fn member_standing(&self, field: &Field, did: &str) -> bool {
        let id = field.charter.field_id();
        if self.is_barred(&id, did) || self.threat_blocked(&id, did) {
            return false;
        }
        let registered = self
            .governance
            .standing(&id, did)
            .is_some_and(|standing| standing.in_good_standing());
        registered || self.governance.admission_pending(&id, did)
    }

    /// Whether `did` is a founder, an admin or a member (or up for admission) of some field
    /// we joined: no stranger, even when a handshake found nothing to share yet.
    pub fn knows(&self, did: &str) -> bool {
        self.fields().iter().any(|field| {
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
    /// applicants). Never a field where this gateway is barred.
    pub fn fields_to_name(&self, peer: &str) -> Vec<String> {
        let me = self.key.did();
        self.fields()
            .iter()
            .filter(|field| !self.is_barred(&field.charter.field_id(), &me))
            .filter(|field| {
                self.member_standing(field, peer)
                    || (self.applies_to(field)
                        && (field.charter.is_founder(peer) || field.charter.is_admin(peer)))
            })
            .map(|field| field.charter.field_id())
            .collect()
    }

    /// Whether this gateway answers `peer` in `field` when `peer` names it: joined, not
    /// barred here, and `peer` has standing as a member, or applies where this gateway
    /// screens applicants.
    pub fn answers(&self, peer: &str, field: &str) -> bool {
        let Some(joined) = self.field(field) else {
            return false;
        };
        let me = self.key.did();
        if self.is_barred(field, &me)
            || self.is_barred(field, peer)
            || self.threat_blocked(field, peer)
        {
            return false;
        }
        self.member_standing(&joined, peer) || self.screens_applicants(&joined)
    }

    /// The wallet's credentials of `types`, as `(type, token)`.
    pub fn credentials_of(&self, types: &BTreeSet<String>) -> Vec<(String, String)> {
        self.wallet()
            .into_iter()
            .filter_map(|token| {
                let type_name = crate::credential::credential_type(&token)?;
                types.contains(&type_name).then_some((type_name, token))
            })
            .collect()
    }

    /// The wallet, as of now.
    pub fn wallet(&self) -> Vec<String> {
        self.wallet
            .read()
            .map(|wallet| wallet.clone())
            .unwrap_or_default()
    }
}
