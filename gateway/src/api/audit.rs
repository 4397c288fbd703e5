//! The audit log: verifying, exporting, publishing checkpoints.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::types::{ApiError, AuditEntries, AuditVerification};
use super::{ApiState, Failure};
use crate::audit::AuditEntry;
use crate::audit::query::{self, AuditFilter};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The audit routes.
pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(verify_audit))
        .routes(routes!(export_audit))
        .routes(routes!(audit_entries))
        .routes(routes!(webhooks))
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

/// `GET /v1/audit/export` format.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub(super) struct ExportFormat {
    /// `jsonl` (default: one JSON entry per line) or `cef` (ArcSight CEF lines).
    format: Option<String>,
}

/// The entries `filter` matches, the latest `limit` of them, in order.
fn matching(state: &ApiState, filter: AuditFilter) -> Result<Vec<AuditEntry>, Failure> {
    let filter = filter.checked().map_err(|message| {
        Failure::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_instant", message)
    })?;
    let mut entries: Vec<AuditEntry> = state
        .services
        .audit
        .since(filter.since_ms())
        .map_err(|crate::audit::AuditError::Store(error)| Failure::from(error))?
        .into_iter()
        .filter(|entry| filter.matches(entry))
        .collect();
    let skip = entries.len().saturating_sub(filter.limit());
    entries.drain(..skip);
    Ok(entries)
}

/// Audit entries that match a filter, with the chain's verification beside them.
#[utoipa::path(get, path = "/v1/audit/entries", extensions(("x-tfc-role" = json!("auditor"))), tag = "audit", params(AuditFilter), responses((status = 200, body = AuditEntries), (status = 422, body = ApiError)))]
pub(super) async fn audit_entries(
    State(state): State<ApiState>,
    axum::extract::Query(filter): axum::extract::Query<AuditFilter>,
) -> Result<Json<AuditEntries>, Failure> {
    let entries = matching(&state, filter)?;
    let chain = state
        .services
        .audit
        .verify()
        .map_err(|crate::audit::AuditError::Store(error)| Failure::from(error))?;
    Ok(Json(AuditEntries {
        chain,
        entries: entries.iter().map(query::entry_json).collect(),
    }))
}

/// Exports audit entries for a SIEM: JSON lines (with `time` in RFC 3339 beside `timeMs`)
/// or CEF, filtered as `/v1/audit/entries` is.
#[utoipa::path(get, path = "/v1/audit/export", extensions(("x-tfc-role" = json!("auditor"))), tag = "audit", params(AuditFilter, ExportFormat), responses((status = 200, description = "One entry per line", content_type = "application/x-ndjson"), (status = 422, body = ApiError)))]
pub(super) async fn export_audit(
    State(state): State<ApiState>,
    axum::extract::Query(filter): axum::extract::Query<AuditFilter>,
    axum::extract::Query(format): axum::extract::Query<ExportFormat>,
) -> Result<Response, Failure> {
    let cef = match format.format.as_deref() {
        None | Some("jsonl") => false,
        Some("cef") => true,
        Some(other) => {
            return Err(Failure::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad_format",
                format!("{other:?}: use jsonl or cef"),
            ));
        }
    };
    let mut body = String::new();
    for entry in matching(&state, filter)? {
        if cef {
            body.push_str(&query::entry_cef(&entry));
        } else {
            body.push_str(&query::entry_json(&entry).to_string());
        }
        body.push('\n');
    }
    let content_type = if cef {
        "text/plain"
    } else {
        "application/x-ndjson"
    };
    Ok(([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response())
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

/// The webhook receivers and their deliveries: delivered, given up, waiting, and the latest
/// attempts. Secrets are never shown.
#[utoipa::path(get, path = "/v1/webhooks", extensions(("x-tfc-role" = json!("auditor"))), tag = "audit", responses((status = 200, body = Vec<crate::webhooks::WebhookView>)))]
pub(super) async fn webhooks(
    State(state): State<ApiState>,
) -> Json<Vec<crate::webhooks::WebhookView>> {
    Json(state.webhooks.views())
}
