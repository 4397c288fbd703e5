//! Four eyes, the queue: an action that `api.four_eyes` names is filed by one operator and
//! waits here, in the store (a restart loses none), until a second operator with another
//! name decides it (`four_eyes`). It complements a field's k-of-n quorum (between
//! organisations) inside one organisation.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::guard::role_missing;
use super::session::AdminSession;
use super::types::ProposeOp;
use super::{ApiState, Failure};
use crate::audit::Event;
use crate::credential::format_rfc3339;
use crate::roles::Role;
use crate::store::{Store, StoreError, StoreTree, Stored, Tree};

/// What waits for a second operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HeldAction {
    /// A governance op to propose in a field.
    Op {
        /// The field id.
        field: String,
        /// The op as the first operator asked for it.
        op: ProposeOp,
    },
    /// A manual countermeasure to apply.
    Countermeasure {
        /// The countermeasure's action id.
        action: String,
    },
}

impl HeldAction {
    /// The `api.four_eyes` name of this action.
    pub fn kind(&self) -> &str {
        match self {
            HeldAction::Op { op, .. } => &op.kind,
            HeldAction::Countermeasure { .. } => "countermeasure",
        }
    }

    pub(super) fn summary(&self) -> String {
        match self {
            HeldAction::Op { field, op } => format!("{} {} in field {field}", op.kind, op.target),
            HeldAction::Countermeasure { action } => format!("apply countermeasure {action}"),
        }
    }
}

/// An action filed by one operator, waiting for another's approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingApproval {
    /// The approval id.
    pub id: String,
    /// `awaiting_approval` (always, while it is listed).
    pub status: String,
    /// What is to be done.
    pub action: HeldAction,
    /// The `api.four_eyes` name of the action.
    pub kind: String,
    /// The operator who filed it (the certificate's name).
    pub proposer: String,
    /// The same, as the audit names it (name, role, certificate).
    pub proposer_actor: String,
    /// The least role its approver needs.
    pub approver_role: String,
    /// When it was filed (RFC 3339 UTC).
    pub filed: String,
    /// The same, in Unix seconds.
    pub filed_secs: i64,
}

impl Stored for PendingApproval {
    const VERSION: u8 = 1;
}

/// The actions waiting for a second operator. Owns the `approvals` tree.
pub(super) struct Approvals {
    held: StoreTree,
    actions: Vec<String>,
}

impl Approvals {
    /// The approvals kept in `store`, for the actions `four_eyes` names.
    pub(super) fn open(store: &Store, four_eyes: &[String]) -> Result<Self, StoreError> {
        Ok(Self {
            held: store.tree(Tree::Approvals)?,
            actions: four_eyes.to_vec(),
        })
    }

    /// Whether `kind` needs a second operator.
    pub(super) fn needed(&self, kind: &str) -> bool {
        self.actions.iter().any(|action| action == kind)
    }

    /// Files `action` for a second operator, unless it needs none: then `None`, and the
    /// caller goes ahead.
    pub(super) fn hold(
        &self,
        state: &ApiState,
        session: &Option<axum::Extension<AdminSession>>,
        action: HeldAction,
        approver_role: Role,
    ) -> Result<Option<Response>, Failure> {
        if !self.needed(action.kind()) {
            return Ok(None);
        }
        let session = session.as_ref().ok_or_else(role_missing)?;
        let filed_secs = crate::audit::now_ms() / 1000;
        let pending = PendingApproval {
            id: uuid::Uuid::new_v4().simple().to_string(),
            status: "awaiting_approval".into(),
            kind: action.kind().to_owned(),
            proposer: session.name.clone(),
            proposer_actor: session.actor.clone(),
            approver_role: approver_role.to_string(),
            filed: format_rfc3339(filed_secs),
            filed_secs,
            action,
        };
        self.held.put(pending.id.as_bytes(), &pending)?;
        state.services.audit.record(Event {
            actor: session.actor.clone(),
            actor_name: Some(session.name.clone()),
            action: "four_eyes.file".into(),
            object: pending.action.summary(),
            decision: "held".into(),
            reason: format!("approval {}", pending.id),
            ..Event::default()
        });
        Ok(Some((StatusCode::ACCEPTED, Json(pending)).into_response()))
    }

    /// Every action waiting, oldest first.
    pub(super) fn all(&self) -> Result<Vec<PendingApproval>, StoreError> {
        let mut all: Vec<PendingApproval> = self
            .held
            .entries::<PendingApproval>()?
            .into_iter()
            .map(|(_, pending)| pending)
            .collect();
        all.sort_by(|a, b| (a.filed_secs, &a.id).cmp(&(b.filed_secs, &b.id)));
        Ok(all)
    }

    /// Takes `pending` out of the queue; an error if another approver took it first.
    pub(super) fn take(&self, pending: &PendingApproval) -> Result<(), Failure> {
        if self.held.take(pending.id.as_bytes())? {
            Ok(())
        } else {
            Err(Failure::new(
                StatusCode::CONFLICT,
                "approval_decided",
                format!(
                    "approval {} was decided by another operator meanwhile",
                    pending.id
                ),
            ))
        }
    }
}
