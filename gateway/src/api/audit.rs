//! The audit log: verifying, exporting, publishing checkpoints.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::types::{ApiError, AuditVerification};
use super::{ApiState, Failure};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The audit routes.
pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(verify_audit))
        .routes(routes!(export_audit))
        .routes(routes!(publish_checkpoint))
}

/// Verifies the audit chain, and compares it with the checkpoints members keep.
#[utoipa::path(get, path = "/v1/audit/verify", extensions(("x-tfc-role" = json!("auditor"))), tag = "audit", responses((status = 200, body = AuditVerification), (status = 500, description = "The store failed", body = ApiError)))]
pub(super) async fn verify_audit(
    State(state): State<ApiState>,
) -> Result<Json<AuditVerification>, Failure> {
    let chain = state
        .services
        .audit
        .verify()
        .map_err(|crate::audit::AuditError::Store(error)| Failure::from(error))?;
    let peers = state.publisher.check_peer_checkpoints().await;
    Ok(Json(AuditVerification { chain, peers }))
}

/// `GET /v1/audit/export` query.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub(super) struct ExportQuery {
    /// Entries at or after this instant (RFC 3339); default all.
    since: Option<String>,
}

/// Exports the audit log as JSON lines.
#[utoipa::path(get, path = "/v1/audit/export", extensions(("x-tfc-role" = json!("auditor"))), tag = "audit", params(ExportQuery), responses((status = 200, description = "One JSON entry per line", content_type = "application/x-ndjson"), (status = 422, body = ApiError)))]
pub(super) async fn export_audit(
    State(state): State<ApiState>,
    axum::extract::Query(query): axum::extract::Query<ExportQuery>,
) -> Result<Response, Failure> {
    let since_ms = match &query.since {
        None => 0,
        Some(text) => crate::credential::parse_rfc3339(text)
            .map(|secs| secs.saturating_mul(1000))
            .ok_or_else(|| {
                Failure::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "bad_instant",
                    format!("{text:?} is not an RFC 3339 instant such as 2026-11-22T00:00:00Z"),
                )
            })?,
    };
    let entries = state
        .services
        .audit
        .since(since_ms)
        .map_err(|crate::audit::AuditError::Store(error)| Failure::from(error))?;
    let mut body = String::new();
    for entry in entries {
        body.push_str(&serde_json::to_string(&entry).unwrap_or_default());
        body.push('\n');
    }
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        body,
    )
        .into_response())
}

/// Publishes the audit chain's head to the members now.
#[utoipa::path(post, path = "/v1/audit/checkpoint", extensions(("x-tfc-role" = json!("admin"))), tag = "audit", responses((status = 200, description = "The head published ({seq, head}), or null for an empty log"), (status = 500, description = "The store failed", body = ApiError)))]
pub(super) async fn publish_checkpoint(
    State(state): State<ApiState>,
) -> Result<Json<serde_json::Value>, Failure> {
    let checkpoint = state
        .publisher
        .publish_checkpoint()
        .await
        .map_err(|error| {
            Failure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "sign_failed",
                error.to_string(),
            )
        })?;
    Ok(Json(
        serde_json::to_value(checkpoint).unwrap_or(serde_json::Value::Null),
    ))
}
