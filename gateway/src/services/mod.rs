//! The service layer. [`Services`] holds the gateway's key and one handle per service; each
//! service owns its state behind a small API. Handshake, gossip, sync, data and the API
//! call these services, never each other's internals.

pub mod access;
mod effects;
pub mod explain;
mod facts;
mod fields;
pub mod holdings;
pub mod inbox;
mod peers;
mod standing;
pub mod status;
pub mod threats;
mod wallet;

pub use effects::ThreatEffects;
pub use facts::{FactsChanged, Scope};
pub use fields::{DisabledField, FieldBook};
pub use peers::{PeerBook, PeerRecord, Presented, UsedNonce};
pub use wallet::Wallet;

/// What a peer without standing is told, whatever went wrong: nothing it could use.
pub const REFUSED: &str = "refused";

use std::sync::{Arc, RwLock};

use crate::audit::{AuditError, AuditLog};
use crate::charter::{Charter, IssuerEntry, Quorum};
use crate::credential::StatusLists;
use crate::disclosure::DisclosureLog;
use crate::field::Field;
use crate::governance::Governance;
use crate::identity::KeyPair;
use crate::metrics::Metrics;
use crate::policy::PolicyEngine;
use crate::store::{Store, StoreError};

/// The gateway's key and its services. Shared by every task; each service guards its own
/// state, so no caller holds a lock across another service.
pub struct Services {
    /// The organisation key.
    pub key: KeyPair,
    /// The fields joined.
    pub fields: FieldBook,
    /// The organisation's own credentials.
    pub wallet: Wallet,
    /// What we know of each peer, and the nonces seen.
    pub peers: PeerBook,
    /// The threat countermeasures in force (written by the threat book).
    pub threat_effects: ThreatEffects,
    /// The governance logs of the joined fields.
    pub governance: Governance,
    /// The audit log.
    pub audit: AuditLog,
    /// Every presentation sent or received.
    pub disclosures: DisclosureLog,
    /// Signalled when facts peers were judged on change (a status list, a joined field, a
    /// member's standing): the handshake service then re-judges the peers concerned.
    pub facts_changed: FactsChanged,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    /// Seconds an unknown peer may take to finish the handshake.
    pub grace_secs: u64,
    /// Our DID, spelled once (base58 of the key costs a microsecond each time).
    did: String,
    store: Store,
    status_lists: RwLock<StatusLists>,
}

impl Services {
    /// The services of a gateway with the given fields and wallet; the governance logs are
    /// read from `store`.
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
            did: key.did(),
            fields: FieldBook::new(&store, fields)?,
            wallet: Wallet::new(&store, wallet)?,
            peers: PeerBook::open(&store)?,
            key,
            threat_effects: ThreatEffects::default(),
            governance,
            audit,
            disclosures,
            facts_changed: FactsChanged::default(),
            metrics: Metrics::default(),
            grace_secs,
            store,
            status_lists: RwLock::new(StatusLists::new()),
        })
    }

    /// The verified legal name of the organisation `did`: ours from our wallet's identity
    /// credential; a peer's from the identity credential it presented, counted only from an
    /// issuer a shared field trusts. `None` for an organisation we have not verified.
    pub fn name_of(&self, did: &str) -> Option<String> {
        if did == self.did {
            return self.wallet.own_name();
        }
        self.peers.name_of(did)
    }

    /// The name a joined field's trusted issuers give `did`, if any trusts it.
    pub fn issuer_name(&self, did: &str) -> Option<String> {
        self.fields.all().iter().find_map(|field| {
            self.amended_trust(field)
                .0
                .into_iter()
                .find(|issuer| issuer.did == did)
                .map(|issuer| issuer.name)
        })
    }

    /// The names of those of `dids` we know, by DID.
    pub fn names_of<'a>(
        &self,
        dids: impl IntoIterator<Item = &'a String>,
    ) -> std::collections::BTreeMap<String, String> {
        dids.into_iter()
            .filter_map(|did| Some((did.clone(), self.name_of(did)?)))
            .collect()
    }

    /// The store, for the services that own trees of their own (the threat book, the
    /// checkpoints kept): the peer, wallet and field trees belong to their books.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Waits until every write made so far is on disk (see [`Store::commit`]).
    pub async fn commit(&self) -> Result<(), StoreError> {
        self.store.commit().await
    }

    /// The charter as governance has amended it (trusted issuers, quorum): what tiers are
    /// judged against.
    pub fn effective_charter(&self, field: &Field) -> Charter {
        let mut charter = field.charter.clone();
        (charter.issuers, charter.quorum) = self.amended_trust(field);
        charter
    }

    /// The issuers `field` trusts and the quorum in force, as governance amended the
    /// charter: what most readers need of [`Services::effective_charter`], without a copy
    /// of the charter.
    pub fn amended_trust(&self, field: &Field) -> (Vec<IssuerEntry>, Quorum) {
        if !self.governance.readable() {
            // Fails closed: no issuer is trusted while the amendments cannot be read.
            return (Vec::new(), field.charter.quorum);
        }
        self.governance
            .trust(&field.charter.field_id())
            .unwrap_or_else(|| (field.charter.issuers.clone(), field.charter.quorum))
    }

    /// The policy data requests in `field` are decided by: the latest committed
    /// `amend-policy`, else the charter's file.
    pub fn policy_engine(&self, field: &Field) -> Option<Arc<PolicyEngine>> {
        if !self.governance.readable() {
            return None;
        }
        let amended = self
            .governance
            .state(&field.charter.field_id())
            .and_then(|state| state.policy);
        match amended {
            Some(text) => self.fields.amended_policy(&text),
            None => field.policy.clone(),
        }
    }

    /// Runs `judge` against the known status lists without copying them (they hold megabytes
    /// of bits). A poisoned lock reads as no lists: credentials with a status then fail closed.
    pub fn with_status_lists<R>(&self, judge: impl FnOnce(&StatusLists) -> R) -> R {
        match self.status_lists.read() {
            Ok(lists) => judge(&lists),
            Err(_) => judge(&StatusLists::new()),
        }
    }
}
