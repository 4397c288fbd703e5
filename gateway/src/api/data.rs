//! Data spaces: records, submissions, asking other gateways, attachments.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use libp2p::PeerId;

use super::error::off_the_loop;
use super::types::{
    ApiError, AskData, DataAnswer, PutRecord, RecordSummary, SubmitRecord, WhyRequest,
};
use super::{AdminSession, ApiState, Failure, resolve_field};
use crate::audit::Event;
use crate::spaces::{DataCode, DataError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The data-space and attachment routes.
pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_records, put_record))
        .routes(routes!(get_record, delete_record))
        .routes(routes!(submit_record))
        .routes(routes!(ask_data))
        .routes(routes!(upload_attachment))
        .routes(routes!(download_attachment))
        .routes(routes!(why))
}

/// Raises the bulk-change guard's alert in the audit log and metrics.
pub(super) fn bulk_alert(state: &ApiState, actor: &str, field: &str, tier: u8, error: &DataError) {
    if error.code == DataCode::BulkGuard {
        state
            .services
            .metrics
            .count(crate::metrics::DECISIONS, "data:bulk_guard");
        state.services.audit.record(Event {
            actor: actor.to_owned(),
            action: "data.bulk_guard".into(),
            object: format!("{field}/{tier}"),
            decision: "alert".into(),
            reason: error.code.as_str().into(),
            ..Event::default()
        });
    }
}

/// The actor of a session, for the bulk-change guard.
pub(super) fn actor(session: &Option<axum::Extension<AdminSession>>) -> String {
    session
        .as_ref()
        .map_or_else(|| "admin:unknown".into(), |session| session.actor.clone())
}

/// Stores a record in a tier of a field's data space.
#[utoipa::path(post, path = "/v1/data/{field}/{tier}", extensions(("x-tfc-role" = json!("clerk"))), tag = "data", request_body = PutRecord, responses((status = 200, body = crate::spaces::Record), (status = 403, body = ApiError), (status = 422, body = ApiError)))]
pub(super) async fn put_record(
    State(state): State<ApiState>,
    session: Option<axum::Extension<AdminSession>>,
    axum::extract::Path((field, tier)): axum::extract::Path<(String, u8)>,
    Json(request): Json<PutRecord>,
) -> Result<Json<crate::spaces::Record>, Failure> {
    let field = resolve_field(&state, &field)?.charter.field_id();
    let owner = state.services.key.did();
    let attachments = request
        .attachments
        .into_iter()
        .map(|attachment| crate::spaces::AttachmentRef {
            name: attachment.name,
            sha256: attachment.sha256,
            size: 0,
        })
        .collect();
    let actor = actor(&session);
    let record = state.spaces.put(
        &actor,
        &state.services.key,
        &owner,
        &field,
        tier,
        request.id.as_deref(),
        request.labels,
        request.body,
        attachments,
    );
    if let Err(error) = &record {
        bulk_alert(&state, &actor, &field, tier, error);
    }
    Ok(Json(record?))
}

/// Lists the records of a tier, without their contents.
#[utoipa::path(get, path = "/v1/data/{field}/{tier}", extensions(("x-tfc-role" = json!("clerk"))), tag = "data", params(crate::spaces::LabelFilter), responses((status = 200, body = Vec<RecordSummary>), (status = 400, description = "The tier is not a number"), (status = 404, description = "No joined field has that id or prefix", body = ApiError)))]
pub(super) async fn list_records(
    State(state): State<ApiState>,
    axum::extract::Path((field, tier)): axum::extract::Path<(String, u8)>,
    axum::extract::Query(filter): axum::extract::Query<crate::spaces::LabelFilter>,
) -> Result<Json<Vec<RecordSummary>>, Failure> {
    let field = resolve_field(&state, &field)?.charter.field_id();
    let summaries = state
        .spaces
        .ids(&field, tier)?
        .into_iter()
        .filter_map(|id| match state.spaces.get(&field, tier, &id) {
            Ok(record) if !filter.matches(&record.labels) => None,
            Ok(record) => Some(RecordSummary {
                id,
                status: "ok".into(),
                version: Some(record.version),
                owner: Some(record.owner),
                labels: Some(record.labels),
            }),
            // A record that no longer opens is listed as such, never served.
            Err(error) => Some(RecordSummary {
                id,
                status: error.code.as_str().into(),
                version: None,
                owner: None,
                labels: None,
            }),
        })
        .collect();
    Ok(Json(summaries))
}

/// Reads one record.
#[utoipa::path(get, path = "/v1/data/{field}/{tier}/{id}", extensions(("x-tfc-role" = json!("clerk"))), tag = "data", responses((status = 200, body = crate::spaces::Record), (status = 404, body = ApiError), (status = 409, description = "Tampered at rest", body = ApiError)))]
pub(super) async fn get_record(
    State(state): State<ApiState>,
    axum::extract::Path((field, tier, id)): axum::extract::Path<(String, u8, String)>,
) -> Result<Json<crate::spaces::Record>, Failure> {
    let field = resolve_field(&state, &field)?.charter.field_id();
    Ok(Json(state.spaces.get(&field, tier, &id)?))
}

/// Deletes one record.
#[utoipa::path(delete, path = "/v1/data/{field}/{tier}/{id}", extensions(("x-tfc-role" = json!("clerk"))), tag = "data", responses((status = 200, description = "Deleted"), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub(super) async fn delete_record(
    State(state): State<ApiState>,
    session: Option<axum::Extension<AdminSession>>,
    axum::extract::Path((field, tier, id)): axum::extract::Path<(String, u8, String)>,
) -> Result<Json<serde_json::Value>, Failure> {
    let field = resolve_field(&state, &field)?.charter.field_id();
    let actor = actor(&session);
    if let Err(error) = state.spaces.delete(&actor, &field, tier, &id) {
        bulk_alert(&state, &actor, &field, tier, &error);
        return Err(error.into());
    }
    Ok(Json(serde_json::json!({"deleted": id})))
}

pub(super) fn peer_of(did: &str) -> Result<PeerId, Failure> {
    crate::identity::PublicKey::peer_id_of(did).ok_or_else(|| {
        Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_did",
            format!("{did} is not an organisation DID"),
        )
    })
}

pub(super) async fn ask(
    state: &ApiState,
    did: &str,
    request: crate::net::DataRequest,
) -> Result<Json<DataAnswer>, Failure> {
    let peer = peer_of(did)?;
    let response = state
        .publisher
        .request_data(peer, request)
        .await
        .map_err(|reason| {
            Failure::new(
                StatusCode::BAD_GATEWAY,
                "unreachable",
                format!("{did} did not answer: {reason} (is it connected? see tfcctl peers)"),
            )
        })?;
    Ok(Json(response.into()))
}

/// Submits a record to another gateway, which decides on it.
#[utoipa::path(post, path = "/v1/data/{field}/{tier}/{id}/submit", extensions(("x-tfc-role" = json!("clerk"))), tag = "data", request_body = SubmitRecord, responses((status = 200, body = DataAnswer), (status = 502, body = ApiError)))]
pub(super) async fn submit_record(
    State(state): State<ApiState>,
    axum::extract::Path((field, tier, id)): axum::extract::Path<(String, u8, String)>,
    Json(request): Json<SubmitRecord>,
) -> Result<Json<DataAnswer>, Failure> {
    let field = resolve_field(&state, &field)?.charter.field_id();
    let record = state.spaces.get(&field, tier, &id)?;
    ask(
        &state,
        &request.to,
        crate::net::DataRequest::Submit {
            record: Box::new(record),
            purpose: request.purpose,
        },
    )
    .await
}

/// Asks another gateway for a record or an attachment, for a purpose.
#[utoipa::path(post, path = "/v1/data/ask", extensions(("x-tfc-role" = json!("clerk"))), tag = "data", request_body = AskData, responses((status = 200, body = DataAnswer, description = "The decision (for `attachment`: the file, application/octet-stream)"), (status = 403, description = "An attachment transfer was refused or stopped", body = ApiError), (status = 502, body = ApiError)))]
pub(super) async fn ask_data(
    State(state): State<ApiState>,
    Json(request): Json<AskData>,
) -> Result<Response, Failure> {
    let field = resolve_field(&state, &request.field)?.charter.field_id();
    if request.kind == "attachment" {
        let (Some(id), Some(sha256)) = (request.id, request.sha256) else {
            return Err(Failure::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "data_malformed",
                "attachment needs id and sha256",
            ));
        };
        let wanted = crate::exchange::AttachmentWanted {
            field,
            tier: request.tier,
            id,
            sha256,
            purpose: request.purpose,
        };
        let bytes = state
            .publisher
            .fetch_attachment(peer_of(&request.from)?, wanted)
            .await
            .map_err(|failure| {
                let status = if failure.refused {
                    StatusCode::FORBIDDEN
                } else {
                    StatusCode::BAD_GATEWAY
                };
                Failure::new(status, &failure.code, failure.message)
            })?;
        return Ok((
            [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
            bytes,
        )
            .into_response());
    }
    let data_request = match (request.kind.as_str(), request.id) {
        ("get", Some(id)) => crate::net::DataRequest::Get {
            field,
            tier: request.tier,
            id,
            purpose: request.purpose,
        },
        ("list", None) => crate::net::DataRequest::List {
            field,
            tier: request.tier,
            purpose: request.purpose,
            filter: request.filter,
        },
        _ => {
            return Err(Failure::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "data_malformed",
                "kind is get (with id), list (without), or attachment (with id and sha256)",
            ));
        }
    };
    Ok(ask(&state, &request.from, data_request)
        .await?
        .into_response())
}

/// Stores an attachment; records refer to it by its hash.
#[utoipa::path(post, path = "/v1/attachments", extensions(("x-tfc-role" = json!("clerk"))), tag = "data", request_body(content = Vec<u8>, content_type = "application/octet-stream"), responses((status = 200, body = crate::spaces::AttachmentRef), (status = 422, body = ApiError)))]
pub(super) async fn upload_attachment(
    State(state): State<ApiState>,
    body: axum::body::Body,
) -> Result<Json<crate::spaces::AttachmentRef>, Failure> {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut upload = state.spaces.upload();
    while let Some(chunk) = stream.next().await {
        let written = chunk
            .map_err(|error| {
                Failure::new(
                    StatusCode::BAD_REQUEST,
                    "data_malformed",
                    format!("the upload broke off: {error}"),
                )
            })
            .and_then(|bytes| upload.write(&bytes).map_err(Failure::from));
        if let Err(failure) = written {
            upload.discard();
            return Err(failure);
        }
    }
    Ok(Json(upload.finish()?))
}

/// Reads an attachment by its hash.
#[utoipa::path(get, path = "/v1/attachments/{sha256}", extensions(("x-tfc-role" = json!("clerk"))), tag = "data", responses((status = 200, description = "The file", content_type = "application/octet-stream"), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
pub(super) async fn download_attachment(
    State(state): State<ApiState>,
    axum::extract::Path(sha256): axum::extract::Path<String>,
) -> Result<Response, Failure> {
    let spaces = std::sync::Arc::clone(&state.spaces);
    let bytes =
        off_the_loop("reading the attachment", move || spaces.attachment(&sha256)).await??;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        bytes,
    )
        .into_response())
}

/// Explains how this gateway decides a request another organisation makes (or would make)
/// for its data, as of now: the policies that decide, and the asker's verified facts, the
/// resource's labels and the purpose they were judged on. Nothing is read or served.
#[utoipa::path(post, path = "/v1/data/why", extensions(("x-tfc-role" = json!("clerk"))), tag = "data", request_body = WhyRequest, responses((status = 200, body = crate::services::access::WhyAnswer), (status = 404, body = ApiError), (status = 422, body = ApiError)))]
pub(super) async fn why(
    State(state): State<ApiState>,
    Json(request): Json<WhyRequest>,
) -> Result<Json<crate::services::access::WhyAnswer>, Failure> {
    let field = resolve_field(&state, &request.field)?.charter.field_id();
    let action: crate::policy::Action = request.action.parse().map_err(|_| {
        Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_action",
            format!(
                "{:?}: use read, list, write, submit or delete",
                request.action
            ),
        )
    })?;
    let (services, spaces) = (
        std::sync::Arc::clone(&state.services),
        std::sync::Arc::clone(&state.spaces),
    );
    // Verifying the asker's credentials again is CPU work: off the async workers.
    let answer = off_the_loop("the decision", move || {
        crate::services::access::why(
            &services,
            &spaces,
            &request.peer,
            &field,
            request.tier,
            request.id.as_deref(),
            action,
            &request.purpose,
        )
    })
    .await?;
    Ok(Json(answer))
}
