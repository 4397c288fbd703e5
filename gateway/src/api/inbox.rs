//! `GET /v1/inbox`: what needs this operator's action, oldest first, filtered by the
//! operator's role (a clerk sees the applicants, not the countermeasures).

use axum::Json;
use axum::extract::State;

use super::session::AdminSession;
use super::{ApiState, Failure};
use crate::credential::now_unix;
use crate::roles::Role;
use crate::services::inbox::InboxItem;
use crate::threats::engine::State as ActionState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The inbox route.
pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(inbox))
}

/// What needs this operator's action, oldest first: governance ops waiting for our
/// signature (with k-of-n progress and whether the quorum can still be reached), manual
/// countermeasures, applicants to screen, our credentials expiring within 30 days, members
/// whose status lists went stale, and actions another operator filed for approval.
#[utoipa::path(get, path = "/v1/inbox", extensions(("x-tfc-role" = json!("clerk"))), tag = "gateway", responses((status = 200, body = Vec<InboxItem>), (status = 500, body = super::types::ApiError)))]
pub(super) async fn inbox(
    State(state): State<ApiState>,
    session: Option<axum::Extension<AdminSession>>,
) -> Result<Json<Vec<InboxItem>>, Failure> {
    let now = now_unix();
    let mut items = state.services.inbox(now);
    for action in state
        .publisher
        .threats()
        .actions(Some(ActionState::AwaitingOperator))
    {
        items.push(InboxItem::new(
            "countermeasure",
            action.since.unwrap_or(now),
            Some(&action.field),
            None,
            format!(
                "{} on {} awaits this operator ({} reporting organisation(s))",
                action.action.as_str(),
                action.target,
                action.reporters
            ),
            format!(
                "tfcctl threat apply {} (or reject)",
                action.id.get(..12).unwrap_or(&action.id)
            ),
            "operator",
        ));
    }
    let caller = session.as_ref().map(|session| session.name.clone());
    for pending in state.approvals.all()? {
        if caller.as_deref() == Some(pending.proposer.as_str()) {
            continue;
        }
        items.push(InboxItem::new(
            "approval",
            pending.filed_secs,
            None,
            None,
            format!(
                "{} filed by {} waits for a second operator",
                pending.kind, pending.proposer
            ),
            format!(
                "tfcctl approvals approve {} (or reject)",
                pending.id.get(..12).unwrap_or(&pending.id)
            ),
            &pending.approver_role,
        ));
    }
    let role = session.as_ref().and_then(|session| session.role);
    items.retain(|item| {
        let least: Role = item.role.parse().unwrap_or(Role::Admin);
        role.is_some_and(|role| role.satisfies(least))
    });
    items.sort_by(|a, b| (a.since_secs, &a.kind).cmp(&(b.since_secs, &b.kind)));
    Ok(Json(items))
}
