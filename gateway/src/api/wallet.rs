//! The wallet and the status lists it is checked against.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::types::{ApiError, StatusListImport, StatusListImported, WalletEntryView, WalletImport};
use super::{ApiState, Failure};
use crate::credential::format_rfc3339;
use crate::services::Services;
use crate::services::status::{Intake, StatusIntakeError, StatusListSummary};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The wallet and status-list routes.
pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(wallet, import_credential))
        .routes(routes!(status_lists, import_status_list))
}

/// Lists this gateway's own credentials (types, issuers, expiry; no claims).
#[utoipa::path(get, path = "/v1/wallet", extensions(("x-tfc-role" = json!("clerk"))), tag = "wallet", responses((status = 200, body = Vec<WalletEntryView>)))]
pub(super) async fn wallet(State(state): State<ApiState>) -> Json<Vec<WalletEntryView>> {
    Json(
        state
            .services
            .wallet
            .all()
            .iter()
            .filter_map(|token| wallet_view(&state.services, token))
            .collect(),
    )
}

pub(super) fn wallet_view(services: &Services, token: &str) -> Option<WalletEntryView> {
    let payload = crate::credential::unverified_payload(token)?;
    let text = |name: &str| {
        payload
            .get(name)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    let type_name = payload.get("type")?.get(1)?.as_str()?.to_owned();
    let issuer = text("issuer")?;
    Some(WalletEntryView {
        issuer_name: services.issuer_name(&issuer),
        id: text("id")?,
        trusted_in: services.fields_trusting_for(&issuer, &type_name),
        type_name,
        issuer,
        valid_until: text("validUntil"),
    })
}

/// Imports a credential into the wallet; it must verify and name this gateway.
#[utoipa::path(post, path = "/v1/wallet", extensions(("x-tfc-role" = json!("operator"))), tag = "wallet", request_body = WalletImport, responses((status = 200, body = WalletEntryView), (status = 409, description = "The wallet already holds it", body = ApiError), (status = 422, description = "The credential does not verify or is not ours", body = ApiError)))]
pub(super) async fn import_credential(
    State(state): State<ApiState>,
    Json(request): Json<WalletImport>,
) -> Result<Json<WalletEntryView>, Failure> {
    let credential = state
        .services
        .import_credential(&request.credential)
        .await?;
    Ok(Json(WalletEntryView {
        trusted_in: state
            .services
            .fields_trusting_for(&credential.issuer, &credential.type_name),
        issuer_name: state.services.issuer_name(&credential.issuer),
        id: credential.id,
        type_name: credential.type_name,
        issuer: credential.issuer,
        valid_until: credential.valid_until.map(format_rfc3339),
    }))
}

/// Lists the status lists held.
#[utoipa::path(get, path = "/v1/status-lists", extensions(("x-tfc-role" = json!("viewer"))), tag = "wallet", responses((status = 200, body = Vec<StatusListSummary>)))]
pub(super) async fn status_lists(State(state): State<ApiState>) -> Json<Vec<StatusListSummary>> {
    Json(state.services.status_list_summaries())
}

/// Imports a status list from an issuer a joined field trusts.
#[utoipa::path(post, path = "/v1/status-lists", extensions(("x-tfc-role" = json!("operator"))), tag = "wallet", request_body = StatusListImport, responses((status = 200, body = StatusListImported), (status = 422, description = "The list does not verify or no joined field trusts its issuer", body = ApiError)))]
pub(super) async fn import_status_list(
    State(state): State<ApiState>,
    Json(request): Json<StatusListImport>,
) -> Result<Json<StatusListImported>, Failure> {
    let intake = state
        .publisher
        .import_status_list(&request.credential)
        .await
        .map_err(|error| {
            let status = match error {
                StatusIntakeError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
                StatusIntakeError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            Failure::new(status, error.code(), error.to_string())
        })?;
    let (list, taken) = match intake {
        Intake::Taken(list) => (list, true),
        Intake::Unchanged(list) => (list, false),
    };
    Ok(Json(StatusListImported { list, taken }))
}
