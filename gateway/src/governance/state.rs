//! The state a field's op log implies: who is a member in good standing, the quorum, the
//! trusted issuers and the policy. It is a pure function of the set of ops held, so that
//! gateways that hold the same ops agree, whatever order the ops arrived in.
//!
//! Ops are applied in a total order: epoch, then kind (revoke, suspend, reinstate, admit,
//! the rest), then id. An op commits if, when its turn comes, its proposer is in good
//! standing and it carries the quorum of signatures from members in good standing, or, for
//! `revoke` and `suspend`, the signature of a charter admin in good standing (the emergency
//! path). For one target, the op with the highest epoch decides; at equal epochs the earlier
//! kind in the order wins, so revoke beats admit. Only `reinstate`, at a higher epoch, lifts
//! a revocation or suspension; `admit` never does.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{OpKind, SignedOp};
use crate::charter::{Charter, IssuerEntry, Quorum};

/// A member's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StandingKind {
    /// A founder or admin named in the charter.
    Founder,
    /// Admitted by a committed op.
    Member,
    /// Suspended: no tier, no vote, until reinstated.
    Suspended,
    /// Revoked: no tier, no vote, until reinstated at a higher epoch.
    Revoked,
}

impl StandingKind {
    /// Whether the member may vote and be served.
    pub fn in_good_standing(self) -> bool {
        matches!(self, StandingKind::Founder | StandingKind::Member)
    }

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            StandingKind::Founder => "founder",
            StandingKind::Member => "member",
            StandingKind::Suspended => "suspended",
            StandingKind::Revoked => "revoked",
        }
    }
}

/// How an op committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// Signatures from a quorum of members in good standing.
    Quorum,
    /// One charter admin's signature (revoke and suspend only).
    Admin,
}

/// A member's standing and the op that set it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Standing {
    /// The standing.
    pub kind: StandingKind,
    /// The epoch of the op that set it (0 for the charter).
    pub epoch: u64,
    /// That op's id (none for the charter).
    pub op: Option<String>,
}

/// How far an op has got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// Signatures from members in good standing when its turn came.
    pub signatures: usize,
    /// Signatures it needs.
    pub required: usize,
    /// How it committed, if it has.
    pub committed: Option<Via>,
}

/// The state of one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldState {
    /// Standing by DID, for everyone an op or the charter names.
    pub members: BTreeMap<String, Standing>,
    /// The quorum in force.
    pub quorum: Quorum,
    /// The trusted issuers in force.
    pub issuers: Vec<IssuerEntry>,
    /// The policy text in force, if amended (else the charter's).
    pub policy: Option<String>,
    /// The highest epoch of a committed op.
    pub epoch: u64,
    /// Every op held, by id, with its progress.
    pub progress: BTreeMap<String, Progress>,
}

/// Where a kind falls among ops of one epoch.
fn rank(kind: OpKind) -> u8 {
    match kind {
        OpKind::Revoke => 0,
        OpKind::Suspend => 1,
        OpKind::Reinstate => 2,
        OpKind::Admit => 3,
        _ => 4,
    }
}

impl FieldState {
    /// The state of `charter`'s field given `ops` (id → op; every op already verified).
    pub fn derive(charter: &Charter, ops: &BTreeMap<String, SignedOp>) -> Self {
        let founding = Standing {
            kind: StandingKind::Founder,
            epoch: 0,
            op: None,
        };
        let mut state = Self {
            members: charter
                .founders
                .iter()
                .chain(&charter.admins)
                .map(|did| (did.clone(), founding.clone()))
                .collect(),
            quorum: charter.quorum,
            issuers: charter.issuers.clone(),
            policy: None,
            epoch: 0,
            progress: BTreeMap::new(),
        };
        let mut order: Vec<(&String, &SignedOp)> = ops.iter().collect();
        order.sort_by_key(|(id, signed)| (signed.op.epoch, rank(signed.op.kind), id.as_str()));
        let admins: BTreeSet<&String> = charter.admins.iter().collect();
        for (id, signed) in order {
            let progress = state.judge(signed, &admins);
            if progress.committed.is_some() {
                state.apply(id, signed);
            }
            state.progress.insert(id.clone(), progress);
        }
        state
    }

    fn judge(&self, signed: &SignedOp, admins: &BTreeSet<&String>) -> Progress {
        let good = |did: &String| {
            self.standing(did)
                .is_some_and(StandingKind::in_good_standing)
        };
        let signatures = signed.signatures.keys().filter(|did| good(did)).count();
        let required = self.quorum.required(self.in_good_standing().count());
        let proposer_good = good(&signed.op.proposer);
        let committed = if !proposer_good {
            None
        } else if signatures >= required {
            Some(Via::Quorum)
        } else if signed.op.kind.is_emergency()
            && signed
                .signatures
                .keys()
                .any(|did| admins.contains(did) && good(did))
        {
            Some(Via::Admin)
        } else {
            None
        };
        Progress {
            signatures,
            required,
            committed,
        }
    }

    fn apply(&mut self, id: &str, signed: &SignedOp) {
        let op = &signed.op;
        self.epoch = self.epoch.max(op.epoch);
        let standing = |kind| Standing {
            kind,
            epoch: op.epoch,
            op: Some(id.to_owned()),
        };
        let current = self.members.get(&op.target).cloned();
        let supersedes = |current: &Standing| {
            op.epoch > current.epoch
                || (op.epoch == current.epoch
                    && current.op.is_some()
                    && rank(op.kind) < rank(self.kind_of(current)))
        };
        match op.kind {
            OpKind::Admit => {
                if current.is_none() {
                    self.members
                        .insert(op.target.clone(), standing(StandingKind::Member));
                }
            }
            OpKind::Revoke | OpKind::Suspend => {
                if current.as_ref().is_none_or(supersedes) {
                    let kind = if op.kind == OpKind::Revoke {
                        StandingKind::Revoked
                    } else {
                        StandingKind::Suspended
                    };
                    self.members.insert(op.target.clone(), standing(kind));
                }
            }
            OpKind::Reinstate => {
                if let Some(current) = current
                    && !current.kind.in_good_standing()
                    && op.epoch > current.epoch
                {
                    self.members
                        .insert(op.target.clone(), standing(StandingKind::Member));
                }
            }
            OpKind::TrustIssuer => {
                self.issuers.retain(|issuer| issuer.did != op.target);
                self.issuers.push(IssuerEntry {
                    did: op.target.clone(),
                    name: op.reason.clone(),
                    types: op.types.clone(),
                });
            }
            OpKind::DistrustIssuer => self.issuers.retain(|issuer| issuer.did != op.target),
            OpKind::SetQuorum => {
                if let Some(quorum) = op.quorum() {
                    self.quorum = quorum;
                }
            }
            OpKind::AmendPolicy => self.policy.clone_from(&op.policy),
        }
    }

    /// The kind an existing standing was set by, for tie-breaks at equal epochs.
    fn kind_of(&self, standing: &Standing) -> OpKind {
        match standing.kind {
            StandingKind::Revoked => OpKind::Revoke,
            StandingKind::Suspended => OpKind::Suspend,
            StandingKind::Member | StandingKind::Founder => OpKind::Admit,
        }
    }

    /// A DID's standing, if the charter or an op names it.
    pub fn standing(&self, did: &str) -> Option<StandingKind> {
        self.members.get(did).map(|standing| standing.kind)
    }

    /// Members in good standing.
    pub fn in_good_standing(&self) -> impl Iterator<Item = &String> {
        self.members
            .iter()
            .filter(|(_, standing)| standing.kind.in_good_standing())
            .map(|(did, _)| did)
    }
}
