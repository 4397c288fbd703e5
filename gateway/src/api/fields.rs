//! Fields: joining, listing, their members and trusted issuers.

use std::collections::BTreeMap;
use std::path::Path;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::error::off_the_loop;
use super::types::{ApiError, FieldView, IssuerView, JoinField, MemberView};
use super::{ApiState, Failure};
use crate::governance::{GovCode, GovError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The field routes.
pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(fields, join_field))
        .routes(routes!(leave_field))
        .routes(routes!(members))
        .routes(routes!(issuers))
        .routes(routes!(explain_tier))
}

/// Explains a peer's tier in a field as of now: every requirement of every tier, what is
/// missing or failed (by credential type and constraint), bars and countermeasures, and
/// when the answer next changes. Judged from the credentials the peer presented here.
#[utoipa::path(get, path = "/v1/fields/{field}/tier/{did}", extensions(("x-tfc-role" = json!("clerk"))), tag = "fields", params(("field" = String, Path, description = "Field id or unambiguous prefix"), ("did" = String, Path, description = "The peer's DID")), responses((status = 200, description = "The explanation", body = Object), (status = 404, body = ApiError)))]
pub(super) async fn explain_tier(
    State(state): State<ApiState>,
    axum::extract::Path((field, did)): axum::extract::Path<(String, String)>,
) -> Result<Json<serde_json::Value>, Failure> {
    let field = resolve_field(&state, &field)?;
    let record = state
        .services
        .peers
        .of_did(&did)
        .filter(|record| record.presented.contains_key(&field.charter.field_id()))
        .ok_or_else(|| {
            Failure::new(
                StatusCode::NOT_FOUND,
                "unknown_peer",
                format!(
                    "this gateway has not judged {did} in this field: it has presented nothing \
                     here yet (tfcctl dial its address, then ask again)"
                ),
            )
        })?;
    let services = std::sync::Arc::clone(&state.services);
    // Verifying credentials is CPU work: off the async workers.
    let mut explanation = off_the_loop("the explanation", move || {
        let verifier = crate::credential::CredentialVerifier::new();
        let tokens = record.credentials_in(&field.charter.field_id()).to_vec();
        services.explain_tier(
            &verifier,
            &field,
            &record.did,
            &tokens,
            crate::credential::now_unix(),
        )
    })
    .await?;
    explanation.name = state.services.name_of(&explanation.did);
    Ok(Json(serde_json::to_value(explanation).unwrap_or_default()))
}

pub(super) fn field_view(
    services: &crate::services::Services,
    field: &crate::field::Field,
) -> FieldView {
    let charter = &field.charter;
    let id = charter.field_id();
    // What governance amended (issuers, quorum), without copying the whole charter.
    let (issuers, quorum) = services.amended_trust(field);
    FieldView {
        name: charter.name.clone(),
        status: "active".into(),
        problem: None,
        names: services.names_of(charter.founders.iter().chain(&charter.admins)),
        founders: charter.founders.clone(),
        admins: charter.admins.clone(),
        quorum: quorum.to_string(),
        issuers: issuers.into_iter().map(IssuerView::from).collect(),
        tiers: charter
            .tiers
            .iter()
            .map(|tier| tier.require.clone())
            .collect(),
        id,
    }
}

/// A field whose charter could not be loaded, as `GET /v1/fields` lists it.
fn disabled_view(disabled: crate::services::DisabledField) -> FieldView {
    FieldView {
        id: disabled.id,
        name: String::new(),
        status: "disabled".into(),
        problem: Some(format!(
            "{}: {} (charter {}; restore it and restart the gateway, or tfcctl field leave)",
            disabled.code,
            disabled.message,
            disabled.charter.display()
        )),
        names: BTreeMap::new(),
        founders: Vec::new(),
        admins: Vec::new(),
        quorum: String::new(),
        issuers: Vec::new(),
        tiers: Vec::new(),
    }
}

/// Lists the fields this gateway has joined.
#[utoipa::path(get, path = "/v1/fields", extensions(("x-tfc-role" = json!("viewer"))), tag = "fields", responses((status = 200, body = Vec<FieldView>)))]
pub(super) async fn fields(State(state): State<ApiState>) -> Json<Vec<FieldView>> {
    Json(
        state
            .services
            .fields
            .all()
            .iter()
            .map(|field| field_view(&state.services, field))
            .chain(
                state
                    .services
                    .fields
                    .disabled()
                    .into_iter()
                    .map(disabled_view),
            )
            .collect(),
    )
}

/// Joins a field from its signed charter.
#[utoipa::path(post, path = "/v1/fields", extensions(("x-tfc-role" = json!("admin"))), tag = "fields", request_body = JoinField, responses((status = 200, body = FieldView), (status = 422, description = "The charter does not load or is not fully signed", body = ApiError)))]
pub(super) async fn join_field(
    State(state): State<ApiState>,
    Json(request): Json<JoinField>,
) -> Result<Json<FieldView>, Failure> {
    let field = state
        .services
        .join_field(Path::new(&request.charter))
        .await?;
    crate::services::holdings::announce_field(&state.commands, &field, state.peer_id).await;
    Ok(Json(field_view(&state.services, &field)))
}

/// The joined field whose id is `id` or starts with it (unambiguously).
pub(super) fn resolve_field(
    state: &ApiState,
    id: &str,
) -> Result<std::sync::Arc<crate::field::Field>, Failure> {
    let fields = state.services.fields.all();
    let mut matches = fields
        .iter()
        .filter(|field| field.charter.field_id().starts_with(id) && !id.is_empty());
    match (matches.next(), matches.next()) {
        (Some(field), None) => Ok(std::sync::Arc::clone(field)),
        (Some(_), Some(_)) => Err(Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "ambiguous_field",
            format!("{id} is the start of several field ids; give more of it"),
        )),
        (None, _) => Err(Failure::new(
            StatusCode::NOT_FOUND,
            "unknown_field",
            format!("this gateway has not joined a field {id} (see tfcctl field list)"),
        )),
    }
}

/// Lists a field's members, with their standing.
#[utoipa::path(get, path = "/v1/fields/{field}/members", extensions(("x-tfc-role" = json!("viewer"))), tag = "fields", params(("field" = String, Path, description = "Field id or unambiguous prefix")), responses((status = 200, body = Vec<MemberView>), (status = 404, body = ApiError)))]
pub(super) async fn members(
    State(state): State<ApiState>,
    axum::extract::Path(field): axum::extract::Path<String>,
) -> Result<Json<Vec<MemberView>>, Failure> {
    let field = resolve_field(&state, &field)?.charter.field_id();
    let governance = state.services.governance.state(&field).ok_or_else(|| {
        Failure::from(GovError::new(
            GovCode::WrongField,
            "no governance state for the field",
        ))
    })?;
    let mut view: BTreeMap<String, MemberView> = BTreeMap::new();
    for (did, standing) in &governance.members {
        let admission = standing.kind.as_str();
        view.insert(
            did.clone(),
            MemberView {
                did: did.clone(),
                admission: admission.into(),
                epoch: standing.epoch,
                tier: None,
                name: None,
                unmet: Vec::new(),
            },
        );
    }
    for (_, signed, progress) in state.services.governance.ops(&field) {
        if signed.op.kind == crate::governance::OpKind::Admit && progress.committed.is_none() {
            view.entry(signed.op.target.clone()).or_insert(MemberView {
                did: signed.op.target.clone(),
                admission: "pending".into(),
                epoch: signed.op.epoch,
                tier: None,
                name: None,
                unmet: Vec::new(),
            });
        }
    }
    for (_, record) in state.services.peers.all()? {
        let tier = record.tiers.get(&field).copied();
        let entry = view.entry(record.did.clone()).or_insert(MemberView {
            did: record.did.clone(),
            admission: "not_admitted".into(),
            epoch: 0,
            tier: None,
            name: None,
            unmet: Vec::new(),
        });
        entry.tier = tier;
    }
    for entry in view.values_mut() {
        entry.name = state.services.name_of(&entry.did);
    }
    for (_, record) in state.services.peers.all()? {
        if let (Some(entry), Some(presented)) =
            (view.get_mut(&record.did), record.presented.get(&field))
        {
            entry.unmet.clone_from(&presented.unmet);
        }
    }
    Ok(Json(view.into_values().collect()))
}

/// Lists the issuers a field trusts, and for which credential types.
#[utoipa::path(get, path = "/v1/fields/{field}/issuers", extensions(("x-tfc-role" = json!("viewer"))), tag = "fields", params(("field" = String, Path, description = "Field id or unambiguous prefix")), responses((status = 200, body = Vec<IssuerView>), (status = 404, body = ApiError)))]
pub(super) async fn issuers(
    State(state): State<ApiState>,
    axum::extract::Path(field): axum::extract::Path<String>,
) -> Result<Json<Vec<IssuerView>>, Failure> {
    let field = resolve_field(&state, &field)?;
    let (issuers, _) = state.services.amended_trust(&field);
    Ok(Json(issuers.into_iter().map(IssuerView::from).collect()))
}

/// Leaves a field (active or disabled): this gateway stops gossiping, answering and judging
/// peers there at once. Its governance ops and records stay in the store.
#[utoipa::path(delete, path = "/v1/fields/{field}", extensions(("x-tfc-role" = json!("admin"))), tag = "fields", params(("field" = String, Path, description = "Field id or unambiguous prefix")), responses((status = 200, description = "Left: {\"left\": <field id>}"), (status = 404, body = ApiError)))]
pub(super) async fn leave_field(
    State(state): State<ApiState>,
    axum::extract::Path(field): axum::extract::Path<String>,
) -> Result<Json<serde_json::Value>, Failure> {
    let left = state.services.leave_field(&field)?.ok_or_else(|| {
        Failure::new(
            StatusCode::NOT_FOUND,
            "unknown_field",
            format!("no joined field has the id or prefix {field:?} (tfcctl field list)"),
        )
    })?;
    let _ = state
        .commands
        .send(crate::net::Command::LeaveField(left.clone()))
        .await;
    Ok(Json(serde_json::json!({ "left": left })))
}
