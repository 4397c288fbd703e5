//! The op log of every joined field: held in the `governance` tree, merged on intake, and
//! the derived [`FieldState`] kept beside it.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use super::state::{FieldState, Progress, StandingKind};
use super::{GovCode, GovError, Op, OpKind, SignedOp};
use crate::charter::Charter;
use crate::identity::KeyPair;
use crate::store::{Store, Stored, Tree};

impl Stored for SignedOp {
    const VERSION: u8 = 1;
}

/// What intake did with an op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GovIntake {
    /// The op id.
    pub id: String,
    /// Its progress after intake.
    pub progress: Progress,
    /// DIDs whose standing changed.
    pub changed: Vec<String>,
    /// Whether anything else in the state changed (quorum, issuers, policy).
    pub rules_changed: bool,
}

struct FieldLog {
    ops: BTreeMap<String, SignedOp>,
    state: FieldState,
}

/// The governance logs of the joined fields.
pub struct Governance {
    store: Store,
    logs: RwLock<HashMap<String, FieldLog>>,
}

fn store_error(error: crate::store::StoreError) -> GovError {
    let code = if error.is_full() {
        GovCode::StorageFull
    } else {
        GovCode::Store
    };
    GovError::new(code, error.to_string())
}

fn key(field: &str, id: &str) -> Vec<u8> {
    format!("{field}/{id}").into_bytes()
}

impl Governance {
    /// The logs held in `store` for the `charters` joined. Ops that no longer verify (too
    /// old to be taken again, for instance) are kept: they were valid when taken.
    pub fn load(store: Store, charters: &[&Charter]) -> Result<Self, crate::store::StoreError> {
        let mut held: HashMap<String, BTreeMap<String, SignedOp>> = HashMap::new();
        for (key, signed) in store.tree(Tree::Governance)?.entries::<SignedOp>()? {
            let Ok(key) = String::from_utf8(key) else {
                continue;
            };
            if let Some((field, id)) = key.split_once('/') {
                held.entry(field.to_owned())
                    .or_default()
                    .insert(id.to_owned(), signed);
            }
        }
        let governance = Self {
            store,
            logs: RwLock::new(HashMap::new()),
        };
        for charter in charters {
            let ops = held.remove(&charter.field_id()).unwrap_or_default();
            governance.install(charter, ops);
        }
        Ok(governance)
    }

    fn install(&self, charter: &Charter, ops: BTreeMap<String, SignedOp>) {
        let state = FieldState::derive(charter, &ops);
        if let Ok(mut logs) = self.logs.write() {
            logs.insert(charter.field_id(), FieldLog { ops, state });
        }
    }

    /// Starts (or keeps) the log of a field just joined.
    pub fn add_field(&self, charter: &Charter) {
        let known = self
            .logs
            .read()
            .is_ok_and(|logs| logs.contains_key(&charter.field_id()));
        if !known {
            self.install(charter, BTreeMap::new());
        }
    }

    /// Verifies an op for `charter`'s field, merges it into the log, stores it durably and
    /// re-derives the state. An op already held with no new signature is `gov_replayed`.
    pub fn intake(
        &self,
        charter: &Charter,
        signed: SignedOp,
        now: i64,
    ) -> Result<GovIntake, GovError> {
        let field = charter.field_id();
        if signed.op.field != field {
            return Err(GovError::new(
                GovCode::WrongField,
                "the op is for another field",
            ));
        }
        let id = signed.verify(now)?;
        let mut logs = self
            .logs
            .write()
            .map_err(|_| GovError::new(GovCode::Store, "governance state is poisoned"))?;
        let log = logs.get_mut(&field).ok_or_else(|| {
            GovError::new(GovCode::WrongField, "this gateway has not joined the field")
        })?;
        let merged = match log.ops.get(&id) {
            Some(held) => {
                let mut merged = held.clone();
                if !merged.merge(signed) {
                    return Err(GovError::new(
                        GovCode::Replayed,
                        "every signature of this op is already held",
                    ));
                }
                merged
            }
            None => signed,
        };
        self.store
            .tree(Tree::Governance)
            .map_err(store_error)?
            .put(&key(&field, &id), &merged)
            .map_err(store_error)?;
        log.ops.insert(id.clone(), merged);
        let state = FieldState::derive(charter, &log.ops);
        let changed = changed_members(&log.state, &state);
        let rules_changed = state.quorum != log.state.quorum
            || state.issuers != log.state.issuers
            || state.policy != log.state.policy;
        log.state = state;
        let progress = log.state.progress.get(&id).cloned().unwrap_or(Progress {
            signatures: 0,
            required: 0,
            committed: None,
        });
        Ok(GovIntake {
            id,
            progress,
            changed,
            rules_changed,
        })
    }

    /// A new op by `proposer`, at the field's next epoch; taken into the log.
    #[allow(clippy::too_many_arguments)]
    pub fn propose(
        &self,
        charter: &Charter,
        proposer: &KeyPair,
        kind: OpKind,
        target: String,
        reason: String,
        types: Vec<String>,
        policy: Option<String>,
        now: i64,
    ) -> Result<(SignedOp, GovIntake), GovError> {
        let epoch = self
            .state(&charter.field_id())
            .map_or(0, |state| state.epoch)
            + 1;
        let op = Op {
            kind,
            field: charter.field_id(),
            target,
            reason,
            epoch,
            proposer: proposer.did(),
            created: now,
            types,
            policy,
        };
        let signed = SignedOp::propose(op, proposer)?;
        let intake = self.intake(charter, signed.clone(), now)?;
        Ok((signed, intake))
    }

    /// `endorser`'s signature added to op `id`; taken into the log.
    pub fn endorse(
        &self,
        charter: &Charter,
        endorser: &KeyPair,
        id: &str,
        now: i64,
    ) -> Result<(SignedOp, GovIntake), GovError> {
        let mut signed = self.op(&charter.field_id(), id).ok_or_else(|| {
            GovError::new(GovCode::UnknownOp, format!("no op {id} in this field"))
        })?;
        signed.sign(endorser)?;
        let intake = self.intake(charter, signed.clone(), now)?;
        Ok((signed, intake))
    }

    /// The op with this id, or the only one whose id starts with it.
    pub fn op(&self, field: &str, id: &str) -> Option<SignedOp> {
        let logs = self.logs.read().ok()?;
        let ops = &logs.get(field)?.ops;
        if let Some(op) = ops.get(id) {
            return Some(op.clone());
        }
        let mut matches = ops.iter().filter(|(known, _)| known.starts_with(id));
        match (matches.next(), matches.next()) {
            (Some((_, op)), None) if !id.is_empty() => Some(op.clone()),
            _ => None,
        }
    }

    /// Every op of a field with its progress, in id order.
    pub fn ops(&self, field: &str) -> Vec<(String, SignedOp, Progress)> {
        let Ok(logs) = self.logs.read() else {
            return Vec::new();
        };
        let Some(log) = logs.get(field) else {
            return Vec::new();
        };
        log.ops
            .iter()
            .filter_map(|(id, op)| {
                let progress = log.state.progress.get(id)?.clone();
                Some((id.clone(), op.clone(), progress))
            })
            .collect()
    }

    /// Whether an admission of `did` in `field` is held and has not committed.
    pub fn admission_pending(&self, field: &str, did: &str) -> bool {
        let Ok(logs) = self.logs.read() else {
            return false;
        };
        let Some(log) = logs.get(field) else {
            return false;
        };
        log.ops.iter().any(|(id, signed)| {
            signed.op.kind == super::OpKind::Admit
                && signed.op.target == did
                && log
                    .state
                    .progress
                    .get(id)
                    .is_some_and(|progress| progress.committed.is_none())
        })
    }

    /// The trusted issuers and the quorum in force in `field`: what an amended charter
    /// needs, without a copy of the whole state.
    pub fn trust(
        &self,
        field: &str,
    ) -> Option<(Vec<crate::charter::IssuerEntry>, crate::charter::Quorum)> {
        let logs = self.logs.read().ok()?;
        let state = &logs.get(field)?.state;
        Some((state.issuers.clone(), state.quorum))
    }

    /// The field's state.
    pub fn state(&self, field: &str) -> Option<FieldState> {
        self.logs
            .read()
            .ok()?
            .get(field)
            .map(|log| log.state.clone())
    }

    /// Whether the logs can be trusted: after a panic under their lock nothing they say is,
    /// and every standing check fails closed (barred, no amended rule, no issuer).
    pub fn readable(&self) -> bool {
        !self.logs.is_poisoned()
    }

    /// Refuses a revocation or suspension of `target` in `field` unless it names a member
    /// (founder, admin or admitted) not already revoked, or a peer `engaged` in the field
    /// here (an applicant this gateway judged); and a reinstatement unless `target` is
    /// barred. A mistyped or unknown DID is refused before anything is signed. (Ops from
    /// other gateways are judged by their signatures, not by this.)
    pub fn check_target(
        &self,
        field: &str,
        kind: OpKind,
        target: &str,
        engaged: bool,
    ) -> Result<(), GovError> {
        let standing = self.standing(field, target);
        let refuse = |what: &str| {
            Err(GovError::new(
                GovCode::NotAMember,
                format!(
                    "{target} is {what} of this field: nothing to {kind} (check the DID with `tfcctl member list`)"
                ),
            ))
        };
        match (kind, standing) {
            (OpKind::Revoke | OpKind::Suspend, None) if !engaged => refuse("not a member"),
            (OpKind::Revoke | OpKind::Suspend, Some(StandingKind::Revoked)) => {
                refuse("already a revoked member")
            }
            (OpKind::Reinstate, None) => refuse("not a member"),
            (OpKind::Reinstate, Some(standing)) if standing.in_good_standing() => {
                refuse("a member in good standing")
            }
            _ => Ok(()),
        }
    }

    /// Poisons the logs' lock, as a panic while holding it would: for fail-closed tests.
    #[cfg(test)]
    pub(crate) fn poison(&self) {
        std::thread::scope(|scope| {
            let _ = scope
                .spawn(|| {
                    let _held = self.logs.write();
                    panic!("the governance lock is poisoned for a test");
                })
                .join();
        });
    }

    /// A DID's standing in a field, if the charter or an op names it.
    pub fn standing(&self, field: &str, did: &str) -> Option<StandingKind> {
        self.logs.read().ok()?.get(field)?.state.standing(did)
    }

    /// What this gateway holds of a field: op id → number of signatures.
    pub fn digest(&self, field: &str) -> BTreeMap<String, usize> {
        self.logs
            .read()
            .ok()
            .and_then(|logs| {
                logs.get(field).map(|log| {
                    log.ops
                        .iter()
                        .map(|(id, op)| (id.clone(), op.signatures.len()))
                        .collect()
                })
            })
            .unwrap_or_default()
    }

    /// The ops a peer with `digest` lacks, or holds with fewer signatures.
    pub fn missing(&self, field: &str, digest: &BTreeMap<String, usize>) -> Vec<SignedOp> {
        let Ok(logs) = self.logs.read() else {
            return Vec::new();
        };
        let Some(log) = logs.get(field) else {
            return Vec::new();
        };
        log.ops
            .iter()
            .filter(|(id, op)| {
                digest
                    .get(*id)
                    .is_none_or(|count| *count < op.signatures.len())
            })
            .map(|(_, op)| op.clone())
            .collect()
    }
}

fn changed_members(before: &FieldState, after: &FieldState) -> Vec<String> {
    after
        .members
        .iter()
        .filter(|(did, standing)| before.standing(did) != Some(standing.kind))
        .map(|(did, _)| did.clone())
        .chain(
            before
                .members
                .keys()
                .filter(|did| !after.members.contains_key(*did))
                .cloned(),
        )
        .collect()
}
