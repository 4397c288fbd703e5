//! Governance ops: listing, proposing, endorsing.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use axum::response::{IntoResponse, Response};

use super::approvals::HeldAction;
use super::guard::require;
use super::session::AdminSession;
use super::types::{ApiError, MemberImpact, OpView, ProposeOp, RecordsAffected};
use super::{ApiState, Failure, resolve_field};
use crate::credential::format_rfc3339;
use crate::exchange::OpDraft;
use crate::governance::OpKind;
use crate::governance::state::Progress;
use crate::governance::{GovCode, GovError, GovIntake, SignedOp};
use crate::identity::PublicKey;
use crate::roles::Role;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The governance routes.
pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_ops, propose_op))
        .routes(routes!(endorse_op))
        .routes(routes!(member_impact))
        .routes(routes!(op_holders))
}

pub(super) fn op_view(
    services: &crate::services::Services,
    id: &str,
    signed: &SignedOp,
    progress: &Progress,
) -> OpView {
    let op = &signed.op;
    let names = services.names_of(
        [&op.target, &op.proposer]
            .into_iter()
            .chain(signed.signatures.keys()),
    );
    OpView {
        names,
        id: id.to_owned(),
        kind: op.kind.to_string(),
        target: op.target.clone(),
        reason: op.reason.clone(),
        epoch: op.epoch,
        proposer: op.proposer.clone(),
        created: format_rfc3339(op.created),
        signers: signed.signatures.keys().cloned().collect(),
        signatures: progress.signatures,
        required: progress.required,
        committed: progress.committed.map(|via| {
            match via {
                crate::governance::state::Via::Quorum => "quorum",
                crate::governance::state::Via::Admin => "admin",
            }
            .to_owned()
        }),
    }
}

pub(super) fn intake_view(
    state: &ApiState,
    field: &str,
    intake: &GovIntake,
) -> Result<OpView, Failure> {
    let signed = state
        .services
        .governance
        .op(field, &intake.id)
        .ok_or_else(|| Failure::from(GovError::new(GovCode::UnknownOp, "the op vanished")))?;
    Ok(op_view(
        &state.services,
        &intake.id,
        &signed,
        &intake.progress,
    ))
}

/// Lists a field's governance ops, with their signatures.
#[utoipa::path(get, path = "/v1/fields/{field}/ops", extensions(("x-tfc-role" = json!("viewer"))), tag = "governance", params(("field" = String, Path, description = "Field id or unambiguous prefix")), responses((status = 200, body = Vec<OpView>), (status = 404, body = ApiError)))]
pub(super) async fn list_ops(
    State(state): State<ApiState>,
    axum::extract::Path(field): axum::extract::Path<String>,
) -> Result<Json<Vec<OpView>>, Failure> {
    let field = resolve_field(&state, &field)?;
    let ops = state.services.governance.ops(&field.charter.field_id());
    Ok(Json(
        ops.iter()
            .map(|(id, signed, progress)| op_view(&state.services, id, signed, progress))
            .collect(),
    ))
}

/// Proposes a governance op (admit, revoke, suspend, …), signed by this gateway. A clerk
/// may propose an admission; every other kind needs an admin. A kind `api.four_eyes` names
/// is held (202) until a second operator approves it.
#[utoipa::path(post, path = "/v1/fields/{field}/ops", extensions(("x-tfc-role" = json!("clerk"))), tag = "governance", params(("field" = String, Path, description = "Field id or unambiguous prefix")), request_body = ProposeOp, responses((status = 200, body = OpView), (status = 202, description = "Held for a second operator", body = super::approvals::PendingApproval), (status = 403, body = ApiError), (status = 422, body = ApiError)))]
pub(super) async fn propose_op(
    State(state): State<ApiState>,
    session: Option<axum::Extension<AdminSession>>,
    axum::extract::Path(field): axum::extract::Path<String>,
    Json(request): Json<ProposeOp>,
) -> Result<Response, Failure> {
    let field = resolve_field(&state, &field)?.charter.field_id();
    let least = least_role(&request.kind);
    require(&session, least)?;
    let held = HeldAction::Op {
        field: field.clone(),
        op: request.clone(),
    };
    if let Some(held) = state.approvals.hold(&state, &session, held, least)? {
        return Ok(held);
    }
    Ok(Json(propose(&state, &field, request).await?).into_response())
}

/// The least role that may propose or endorse an op of `kind`: admitting is a clerk's work.
fn least_role(kind: &str) -> Role {
    if kind == OpKind::Admit.as_str() {
        Role::Clerk
    } else {
        Role::Admin
    }
}

/// Proposes `request` in `field` (already resolved), signed by this gateway.
pub(super) async fn propose(
    state: &ApiState,
    field: &str,
    request: ProposeOp,
) -> Result<OpView, Failure> {
    let kind = request.kind.parse().map_err(|message: String| {
        Failure::new(StatusCode::UNPROCESSABLE_ENTITY, "gov_malformed", message)
    })?;
    let draft = OpDraft {
        kind,
        target: request.target,
        reason: request.reason,
        types: request.types,
        policy: request.policy,
    };
    let intake = state.publisher.propose(field, draft).await?;
    intake_view(state, field, &intake)
}

/// Endorses a pending governance op.
#[utoipa::path(post, path = "/v1/fields/{field}/ops/{op}/endorse", extensions(("x-tfc-role" = json!("clerk"))), tag = "governance", params(("field" = String, Path, description = "Field id or unambiguous prefix"), ("op" = String, Path, description = "Op id or unambiguous prefix")), responses((status = 200, body = OpView), (status = 403, body = ApiError), (status = 404, body = ApiError), (status = 409, description = "Already signed", body = ApiError)))]
pub(super) async fn endorse_op(
    State(state): State<ApiState>,
    session: Option<axum::Extension<AdminSession>>,
    axum::extract::Path((field, op)): axum::extract::Path<(String, String)>,
) -> Result<Json<OpView>, Failure> {
    let field = resolve_field(&state, &field)?.charter.field_id();
    let signed = state.services.governance.op(&field, &op);
    if let Some(signed) = &signed {
        require(&session, least_role(signed.op.kind.as_str()))?;
    }
    let id = signed
        .map(|signed| signed.op.id())
        .transpose()?
        .ok_or_else(|| {
            Failure::from(GovError::new(
                GovCode::UnknownOp,
                format!("no op {op} in this field (see tfcctl member ops)"),
            ))
        })?;
    let intake = state.publisher.endorse(&field, &id).await?;
    Ok(Json(intake_view(&state, &field, &intake)?))
}

/// Shows what revoking or suspending `did` in a field would touch: name, standing, tiers,
/// connection, records, countermeasures and pending ops. Changes nothing.
#[utoipa::path(get, path = "/v1/fields/{field}/members/{did}/impact", extensions(("x-tfc-role" = json!("admin"))), tag = "governance", params(("field" = String, Path, description = "Field id or unambiguous prefix"), ("did" = String, Path, description = "The member's DID")), responses((status = 200, body = MemberImpact), (status = 404, body = ApiError)))]
pub(super) async fn member_impact(
    State(state): State<ApiState>,
    axum::extract::Path((field, did)): axum::extract::Path<(String, String)>,
) -> Result<Json<MemberImpact>, Failure> {
    let field = resolve_field(&state, &field)?.charter.field_id();
    let services = &state.services;
    let standing = services.governance.standing(&field, &did);
    let engaged = services.peers.judged_tier(&did, &field).is_some()
        || services.governance.admission_pending(&field, &did);
    let refusal = services
        .governance
        .check_target(&field, OpKind::Revoke, &did, engaged)
        .err()
        .map(|error| format!("{}: {}", error.code.as_str(), error.message));
    let record = services.peers.of_did(&did);
    let connected = match PublicKey::peer_id_named(&did) {
        Some(peer) => {
            let (reply, answer) = tokio::sync::oneshot::channel();
            state
                .commands
                .send(crate::net::Command::ConnectedPeers(reply))
                .await
                .is_ok()
                && answer.await.is_ok_and(|peers| peers.contains(&peer))
        }
        None => false,
    };
    let mut records = RecordsAffected::default();
    for tier in 1..=3 {
        for id in state.spaces.ids(&field, tier).unwrap_or_default() {
            let Ok(stored) = state.spaces.get(&field, tier, &id) else {
                continue;
            };
            records.owned += usize::from(stored.owner == did);
            records.disclosed += usize::from(stored.labels.disclosure.contains(&did));
            records.rights += usize::from(stored.labels.rights_holders.contains(&did));
        }
    }
    let countermeasures = state
        .publisher
        .threats()
        .actions(None)
        .into_iter()
        .filter(|action| action.field == field && action.target.to_string().contains(&did))
        .map(|action| {
            format!(
                "{} {} ({:?})",
                action.id,
                action.action.as_str(),
                action.state
            )
        })
        .collect();
    let pending_ops = services
        .governance
        .ops(&field)
        .into_iter()
        .filter(|(_, signed, progress)| signed.op.target == did && progress.committed.is_none())
        .map(|(id, signed, _)| format!("{id} {}", signed.op.kind))
        .collect();
    let other_fields = services
        .fields
        .all()
        .iter()
        .map(|joined| joined.charter.field_id())
        .filter(|other| *other != field && services.in_good_standing(other, &did))
        .collect();
    Ok(Json(MemberImpact {
        name: services.name_of(&did),
        standing: standing.map_or("none".to_owned(), |kind| kind.as_str().to_owned()),
        refusal,
        tiers: record.map(|record| record.tiers).unwrap_or_default(),
        connected,
        records,
        countermeasures,
        pending_ops,
        other_fields,
        field,
        did,
    }))
}

/// Which members' gateways hold an op: each connected member is asked now.
#[utoipa::path(get, path = "/v1/fields/{field}/ops/{op}/holders", extensions(("x-tfc-role" = json!("viewer"))), tag = "governance", params(("field" = String, Path, description = "Field id or unambiguous prefix"), ("op" = String, Path, description = "Op id or unambiguous prefix")), responses((status = 200, body = Vec<crate::exchange::Holder>), (status = 404, body = ApiError)))]
pub(super) async fn op_holders(
    State(state): State<ApiState>,
    axum::extract::Path((field, op)): axum::extract::Path<(String, String)>,
) -> Result<Json<Vec<crate::exchange::Holder>>, Failure> {
    let field = resolve_field(&state, &field)?.charter.field_id();
    let signed = state.services.governance.op(&field, &op).ok_or_else(|| {
        Failure::from(GovError::new(
            GovCode::UnknownOp,
            format!("no op {op} in this field (see tfcctl member ops)"),
        ))
    })?;
    let id = signed.op.id()?;
    Ok(Json(
        state
            .publisher
            .op_holders(&field, &id, &signed.op.target)
            .await,
    ))
}
