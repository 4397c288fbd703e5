//! Four eyes, the decisions: listing the actions filed, and approving (carrying out) or
//! rejecting one, by an operator other than the one who filed it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::approvals::{HeldAction, PendingApproval};
use super::guard::require;
use super::session::AdminSession;
use super::types::ApiError;
use super::{ApiState, Failure, actor};
use crate::audit::Event;
use crate::roles::Role;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The approval routes.
pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_approvals))
        .routes(routes!(approve))
        .routes(routes!(reject))
}

/// Actions waiting for a second operator that this operator's role may decide, oldest
/// first: a clerk does not see an admin's revocation.
#[utoipa::path(get, path = "/v1/approvals", extensions(("x-tfc-role" = json!("clerk"))), tag = "approvals", responses((status = 200, body = Vec<PendingApproval>)))]
pub(super) async fn list_approvals(
    State(state): State<ApiState>,
    session: Option<axum::Extension<AdminSession>>,
) -> Result<Json<Vec<PendingApproval>>, Failure> {
    let mut waiting = state.approvals.all()?;
    waiting.retain(|pending| require(&session, approver_role(pending)).is_ok());
    Ok(Json(waiting))
}

/// The least role that may decide `pending` (an unreadable one: only an admin).
fn approver_role(pending: &PendingApproval) -> Role {
    pending.approver_role.parse().unwrap_or(Role::Admin)
}

/// Approves and carries out an action another operator filed. The approver must have
/// another name than the proposer, and the role the action needs.
#[utoipa::path(post, path = "/v1/approvals/{id}/approve", extensions(("x-tfc-role" = json!("clerk"))), tag = "approvals", params(("id" = String, Path, description = "Approval id or unambiguous prefix")), responses((status = 200, description = "The action's own answer"), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub(super) async fn approve(
    State(state): State<ApiState>,
    session: Option<axum::Extension<AdminSession>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Response, Failure> {
    let pending = settle(&state, &session, &id, "approve", "allow")?;
    match pending.action {
        HeldAction::Op { field, op } => {
            let view = super::ops::propose(&state, &field, op).await?;
            Ok(Json(view).into_response())
        }
        HeldAction::Countermeasure { action } => {
            let view = super::threats::apply(
                &state,
                action,
                format!("{} and {}", pending.proposer_actor, actor(&session)),
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
    let mut pending = settle(&state, &session, &id, "reject", "refuse")?;
    pending.status = "rejected".into();
    Ok(Json(pending))
}

/// Takes the waiting action `id` out of the queue for this caller, and audits the
/// `verb` (approve or reject) with both operators.
fn settle(
    state: &ApiState,
    session: &Option<axum::Extension<AdminSession>>,
    id: &str,
    verb: &str,
    decision: &str,
) -> Result<PendingApproval, Failure> {
    let pending = decidable(state, session, id)?;
    state.approvals.take(&pending)?;
    state.services.audit.record(Event {
        actor: actor(session),
        actor_name: session.as_ref().map(|session| session.name.clone()),
        action: format!("four_eyes.{verb}"),
        object: pending.action.summary(),
        decision: decision.into(),
        reason: format!("filed by {}", pending.proposer_actor),
        ..Event::default()
    });
    Ok(pending)
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
    require(session, approver_role(pending))?;
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
