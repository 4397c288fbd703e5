//! Four eyes: an action that `api.four_eyes` names is filed by one operator and carried out
//! only when a second operator, with another name, approves it. It complements a field's
//! k-of-n quorum (between organisations) inside one organisation. Filed actions are kept in
//! the store, so a restart loses none.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::guard::require;
use super::server::AdminSession;
use super::types::{ApiError, ProposeOp};
use super::{ApiState, Failure};
use crate::audit::Event;
use crate::credential::format_rfc3339;
use crate::roles::Role;
use crate::store::{Store, StoreError, StoreTree, Stored, Tree};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The approval routes.
pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_approvals))
        .routes(routes!(approve))
        .routes(routes!(reject))
}

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

    fn summary(&self) -> String {
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
        let session = session.as_ref().ok_or_else(|| {
            Failure::new(
                StatusCode::FORBIDDEN,
                "role_missing",
                "four-eyes actions need a named operator's certificate",
            )
        })?;
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
    fn take(&self, pending: &PendingApproval) -> Result<(), Failure> {
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

/// Actions waiting for a second operator, oldest first.
#[utoipa::path(get, path = "/v1/approvals", extensions(("x-tfc-role" = json!("clerk"))), tag = "approvals", responses((status = 200, body = Vec<PendingApproval>)))]
pub(super) async fn list_approvals(
    State(state): State<ApiState>,
) -> Result<Json<Vec<PendingApproval>>, Failure> {
    Ok(Json(state.approvals.all()?))
}

/// Approves and carries out an action another operator filed. The approver must have
/// another name than the proposer, and the role the action needs.
#[utoipa::path(post, path = "/v1/approvals/{id}/approve", extensions(("x-tfc-role" = json!("clerk"))), tag = "approvals", params(("id" = String, Path, description = "Approval id or unambiguous prefix")), responses((status = 200, description = "The action's own answer"), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub(super) async fn approve(
    State(state): State<ApiState>,
    session: Option<axum::Extension<AdminSession>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Response, Failure> {
    let pending = decidable(&state, &session, &id)?;
    state.approvals.take(&pending)?;
    state.services.audit.record(Event {
        actor: actor_of(&session),
        actor_name: name_of(&session),
        action: "four_eyes.approve".into(),
        object: pending.action.summary(),
        decision: "allow".into(),
        reason: format!("filed by {}", pending.proposer_actor),
        ..Event::default()
    });
    match pending.action {
        HeldAction::Op { field, op } => {
            let view = super::ops::propose(&state, &field, op).await?;
            Ok(Json(view).into_response())
        }
        HeldAction::Countermeasure { action } => {
            let view = super::threats::apply(
                &state,
                action,
                format!("{} and {}", pending.proposer_actor, actor_of(&session)),
            )
            .await?;
            Ok(Json(view).into_response())
        }
    }
}

/// Drops an action another operator filed, without carrying it out.
#[utoipa::path(post, path = "/v1/approvals/{id}/reject", extensions(("x-tfc-role" = json!("clerk"))), tag = "approvals", params(("id" = String, Path, description = "Approval id or unambiguous prefix")), responses((status = 200, body = PendingApproval), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub(super) async fn reject(
    State(state): State<ApiState>,
    session: Option<axum::Extension<AdminSession>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<PendingApproval>, Failure> {
    let pending = decidable(&state, &session, &id)?;
    let mut pending = pending;
    state.approvals.take(&pending)?;
    state.services.audit.record(Event {
        actor: actor_of(&session),
        actor_name: name_of(&session),
        action: "four_eyes.reject".into(),
        object: pending.action.summary(),
        decision: "refuse".into(),
        reason: format!("filed by {}", pending.proposer_actor),
        ..Event::default()
    });
    pending.status = "rejected".into();
    Ok(Json(pending))
}

fn actor_of(session: &Option<axum::Extension<AdminSession>>) -> String {
    session
        .as_ref()
        .map_or_else(|| "admin:unknown".into(), |session| session.actor.clone())
}

fn name_of(session: &Option<axum::Extension<AdminSession>>) -> Option<String> {
    session.as_ref().map(|session| session.name.clone())
}

/// The waiting action `id`, if this caller may decide it: another operator than its
/// proposer, with the role it needs.
fn decidable(
    state: &ApiState,
    session: &Option<axum::Extension<AdminSession>>,
    id: &str,
) -> Result<PendingApproval, Failure> {
    let matching: Vec<PendingApproval> = state
        .approvals
        .all()?
        .into_iter()
        .filter(|pending| !id.is_empty() && pending.id.starts_with(id))
        .collect();
    let [pending] = matching.as_slice() else {
        return Err(Failure::new(
            StatusCode::NOT_FOUND,
            "unknown_approval",
            format!(
                "{id} names {} waiting actions (see tfcctl approvals)",
                matching.len()
            ),
        ));
    };
    let least: Role = pending.approver_role.parse().unwrap_or(Role::Admin);
    require(session, least)?;
    let name = session
        .as_ref()
        .map(|session| session.name.as_str())
        .unwrap_or_default();
    if name == pending.proposer {
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            "four_eyes_same_operator",
            format!(
                "{name} filed this action; a second operator, with another certificate name, must approve it"
            ),
        ));
    }
    Ok(pending.clone())
}
