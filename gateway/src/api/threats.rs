//! Threat routes: publishing and importing reports, the countermeasure queue, and the
//! TAXII 2.1 read API over the same book.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::approvals::HeldAction;
use super::error::off_the_loop;
use super::{AdminSession, ApiState, Failure, actor, resolve_field};
use crate::exchange::ThreatPublication;
use crate::roles::Role;
use crate::services::threats::taxii::{self, TAXII_MEDIA_TYPE};
use crate::services::threats::{ActionView, ReportOutcome};
use crate::threats::engine::{State as ActionState, Verdict};
use crate::threats::{ThreatCode, ThreatError};

/// The threat and TAXII routes.
pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_indicators, publish))
        .routes(routes!(import))
        .routes(routes!(list_actions))
        .routes(routes!(decide))
        .routes(routes!(discovery))
        .routes(routes!(api_root))
        .routes(routes!(collections))
        .routes(routes!(collection))
        .routes(routes!(objects, add_objects))
        .routes(routes!(add_status))
}

/// The status resources of recent TAXII add requests, newest last; the oldest are dropped.
#[derive(Default)]
pub(super) struct TaxiiStatuses {
    recent: std::sync::Mutex<std::collections::VecDeque<(String, Value)>>,
}

/// How many add statuses are kept.
const KEPT_STATUSES: usize = 256;

impl TaxiiStatuses {
    fn keep(&self, id: String, status: Value) {
        // A poisoned lock loses the status, never the objects: they are in the book.
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() == KEPT_STATUSES {
                recent.pop_front();
            }
            recent.push_back((id, status));
        }
    }

    fn get(&self, id: &str) -> Option<Value> {
        let recent = self.recent.lock().ok()?;
        recent
            .iter()
            .find(|(kept, _)| kept == id)
            .map(|(_, status)| status.clone())
    }
}

/// Whether the caller may add objects to a collection (the route's own least role).
fn can_write(session: &Option<axum::Extension<AdminSession>>) -> bool {
    session
        .as_ref()
        .and_then(|session| session.role)
        .is_some_and(|role| role.satisfies(Role::Operator))
}

impl From<ThreatError> for Failure {
    fn from(error: ThreatError) -> Self {
        let status = match error.code {
            ThreatCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ThreatCode::Malformed
            | ThreatCode::UnsupportedPattern
            | ThreatCode::BadCountermeasure
            | ThreatCode::Expired => StatusCode::UNPROCESSABLE_ENTITY,
            ThreatCode::NotMember | ThreatCode::TlpViolation => StatusCode::FORBIDDEN,
            ThreatCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ThreatCode::Replayed => StatusCode::CONFLICT,
            ThreatCode::WrongField | ThreatCode::UnknownAction => StatusCode::NOT_FOUND,
            ThreatCode::Store => StatusCode::INTERNAL_SERVER_ERROR,
            ThreatCode::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
        };
        Failure::new(status, error.code.as_str(), error.message)
    }
}

/// A report to publish.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PublishThreat {
    /// A STIX 2.1 bundle.
    #[schema(value_type = Object)]
    pub bundle: Value,
    /// For TLP:RED only: the DIDs of the members it goes to.
    #[serde(default)]
    pub recipients: Vec<String>,
}

/// A report to import.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ImportThreat {
    /// A STIX 2.1 bundle (this gateway becomes its reporter; not shared), or a member's
    /// signed threat envelope (a compact JWS string).
    #[schema(value_type = Object)]
    pub report: Value,
}

/// An indicator held.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IndicatorView {
    /// The STIX object.
    #[schema(value_type = Object)]
    pub object: Value,
    /// The reporter's DID.
    pub reporter: String,
    /// When this gateway took it (RFC 3339).
    pub added: String,
    /// How it arrived.
    pub origin: crate::services::threats::Origin,
}

/// Publishes a threat report (STIX 2.1 bundle) to a field.
#[utoipa::path(post, path = "/v1/fields/{field}/threats", extensions(("x-tfc-role" = json!("operator"))), tag = "threats", params(("field" = String, Path, description = "Field id or unambiguous prefix")), request_body = PublishThreat, responses((status = 200, body = ThreatPublication), (status = 403, body = super::ApiError), (status = 422, body = super::ApiError)))]
pub(super) async fn publish(
    State(state): State<ApiState>,
    axum::extract::Path(field): axum::extract::Path<String>,
    Json(request): Json<PublishThreat>,
) -> Result<Json<ThreatPublication>, Failure> {
    let field = resolve_field(&state, &field)?.charter.field_id();
    let publication = state
        .publisher
        .publish_threat(&field, request.bundle, request.recipients)
        .await?;
    Ok(Json(publication))
}

/// Takes a threat report into the local book without publishing it.
#[utoipa::path(post, path = "/v1/fields/{field}/threats/import", extensions(("x-tfc-role" = json!("operator"))), tag = "threats", params(("field" = String, Path, description = "Field id or unambiguous prefix")), request_body = ImportThreat, responses((status = 200, body = ReportOutcome), (status = 403, body = super::ApiError), (status = 422, body = super::ApiError)))]
pub(super) async fn import(
    State(state): State<ApiState>,
    axum::extract::Path(field): axum::extract::Path<String>,
    Json(request): Json<ImportThreat>,
) -> Result<Json<ReportOutcome>, Failure> {
    let field = resolve_field(&state, &field)?.charter.field_id();
    Ok(Json(
        state.publisher.import_threats(&field, &request.report)?,
    ))
}

/// `?limit=`.
#[derive(Debug, Deserialize)]
pub(super) struct Limit {
    limit: Option<usize>,
}

/// Lists the indicators held for a field.
#[utoipa::path(get, path = "/v1/fields/{field}/threats", extensions(("x-tfc-role" = json!("operator"))), tag = "threats", params(("field" = String, Path, description = "Field id or unambiguous prefix"), ("limit" = Option<usize>, Query, description = "At most this many (default 500)")), responses((status = 200, body = Vec<IndicatorView>), (status = 404, description = "No joined field has that id or prefix", body = super::ApiError)))]
pub(super) async fn list_indicators(
    State(state): State<ApiState>,
    axum::extract::Path(field): axum::extract::Path<String>,
    Query(query): Query<Limit>,
) -> Result<Json<Vec<IndicatorView>>, Failure> {
    let field = resolve_field(&state, &field)?.charter.field_id();
    let limit = query
        .limit
        .unwrap_or(taxii::MAX_PAGE)
        .clamp(1, taxii::MAX_PAGE);
    let held = state.publisher.threats().objects(&field, None, limit)?;
    Ok(Json(
        held.into_iter()
            .map(|held| IndicatorView {
                object: Value::Object(held.object),
                reporter: held.reporter,
                added: taxii::timestamp(held.added_ms),
                origin: held.origin,
            })
            .collect(),
    ))
}

/// `?state=`.
#[derive(Debug, Deserialize)]
pub(super) struct StateFilter {
    state: Option<ActionState>,
}

/// Lists countermeasures, by state.
#[utoipa::path(get, path = "/v1/threats/actions", extensions(("x-tfc-role" = json!("operator"))), tag = "threats", params(("state" = Option<String>, Query, description = "applied, awaiting_corroboration, awaiting_operator, rejected or inactive")), responses((status = 200, body = Vec<ActionView>)))]
pub(super) async fn list_actions(
    State(state): State<ApiState>,
    Query(filter): Query<StateFilter>,
) -> Json<Vec<ActionView>> {
    Json(state.publisher.threats().actions(filter.state))
}

/// Applies or rejects a countermeasure that waits for an operator.
#[utoipa::path(post, path = "/v1/threats/actions/{action}/{verdict}", extensions(("x-tfc-role" = json!("operator"))), tag = "threats", params(("action" = String, Path, description = "Action id or unambiguous prefix"), ("verdict" = String, Path, description = "apply or reject")), responses((status = 200, body = ActionView), (status = 202, description = "Held for a second operator", body = super::approvals::PendingApproval), (status = 404, body = super::ApiError)))]
pub(super) async fn decide(
    State(state): State<ApiState>,
    session: Option<axum::Extension<AdminSession>>,
    axum::extract::Path((action, verdict)): axum::extract::Path<(String, String)>,
) -> Result<Response, Failure> {
    let verdict = match verdict.as_str() {
        "apply" => Verdict::Apply,
        "reject" => Verdict::Reject,
        other => {
            return Err(Failure::new(
                StatusCode::NOT_FOUND,
                "unknown_verdict",
                format!("{other:?}: use apply or reject"),
            ));
        }
    };
    let threats = state.publisher.threats();
    let matching: Vec<String> = threats
        .actions(None)
        .into_iter()
        .map(|view| view.id)
        .filter(|id| !action.is_empty() && id.starts_with(&action))
        .collect();
    let [id] = matching.as_slice() else {
        return Err(Failure::from(ThreatError::new(
            ThreatCode::UnknownAction,
            format!(
                "{action} names {} actions (see tfcctl threat pending)",
                matching.len()
            ),
        )));
    };
    let id = id.clone();
    if verdict == Verdict::Apply {
        let held = HeldAction::Countermeasure { action: id.clone() };
        if let Some(held) = state
            .approvals
            .hold(&state, &session, held, Role::Operator)?
        {
            return Ok(held);
        }
    }
    Ok(Json(decide_now(&state, id, verdict, actor(&session)).await?).into_response())
}

/// Applies the countermeasure `id` now, as `operator` (after a four-eyes approval).
pub(super) async fn apply(
    state: &ApiState,
    id: String,
    operator: String,
) -> Result<ActionView, Failure> {
    decide_now(state, id, Verdict::Apply, operator).await
}

async fn decide_now(
    state: &ApiState,
    id: String,
    verdict: Verdict,
    operator: String,
) -> Result<ActionView, Failure> {
    let threats = std::sync::Arc::clone(state.publisher.threats());
    let view = off_the_loop("the decision", move || {
        threats.decide(&id, verdict, &operator)
    })
    .await??;
    Ok(view)
}

/// A TAXII response: its media type, and a 406 when the client accepts neither it nor JSON.
fn taxii_response(headers: &HeaderMap, body: Value, extra: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("*/*");
    let acceptable = accept.split(',').any(|offered| {
        let offered = offered.trim().replace(' ', "");
        offered.starts_with("application/taxii+json")
            || offered.starts_with("*/*")
            || offered.starts_with("application/*")
            || offered.starts_with("application/json")
    });
    if !acceptable {
        return taxii_error(
            StatusCode::NOT_ACCEPTABLE,
            "Accept application/taxii+json;version=2.1",
        );
    }
    let mut response = (StatusCode::OK, Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(TAXII_MEDIA_TYPE),
    );
    response.headers_mut().extend(extra);
    response
}

/// A TAXII error message.
fn taxii_error(status: StatusCode, title: &str) -> Response {
    let body = serde_json::json!({
        "title": title,
        "http_status": status.as_u16().to_string(),
    });
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(TAXII_MEDIA_TYPE),
    );
    response
}

/// TAXII 2.1 server discovery.
#[utoipa::path(get, path = "/taxii2/", extensions(("x-tfc-role" = json!("siem"))), tag = "taxii", responses((status = 200, description = "The discovery resource", content_type = "application/taxii+json;version=2.1"), (status = 406, description = "The Accept header names no TAXII 2.1 media type")))]
async fn discovery(headers: HeaderMap) -> Response {
    taxii_response(&headers, taxii::discovery(), HeaderMap::new())
}

/// The TAXII 2.1 API root.
#[utoipa::path(get, path = "/taxii2/tfc/", extensions(("x-tfc-role" = json!("siem"))), tag = "taxii", responses((status = 200, description = "The API root resource", content_type = "application/taxii+json;version=2.1"), (status = 406, description = "The Accept header names no TAXII 2.1 media type")))]
async fn api_root(headers: HeaderMap) -> Response {
    taxii_response(&headers, taxii::api_root(), HeaderMap::new())
}

/// The TAXII collections: one per joined field.
#[utoipa::path(get, path = "/taxii2/tfc/collections/", extensions(("x-tfc-role" = json!("siem"))), tag = "taxii", responses((status = 200, description = "The collections resource", content_type = "application/taxii+json;version=2.1"), (status = 406, description = "The Accept header names no TAXII 2.1 media type")))]
async fn collections(
    State(state): State<ApiState>,
    session: Option<axum::Extension<AdminSession>>,
    headers: HeaderMap,
) -> Response {
    let writable = can_write(&session);
    let collections: Vec<Value> = state
        .services
        .fields
        .all()
        .iter()
        .map(|field| taxii::collection(field, writable))
        .collect();
    taxii_response(
        &headers,
        serde_json::json!({ "collections": collections }),
        HeaderMap::new(),
    )
}

fn field_of(state: &ApiState, collection: &str) -> Option<std::sync::Arc<crate::field::Field>> {
    state
        .services
        .fields
        .all()
        .into_iter()
        .find(|field| taxii::collection_id(&field.charter.field_id()) == collection)
}

/// One TAXII collection.
#[utoipa::path(get, path = "/taxii2/tfc/collections/{collection}/", extensions(("x-tfc-role" = json!("siem"))), tag = "taxii", params(("collection" = String, Path, description = "Collection id")), responses((status = 200, description = "The collection resource", content_type = "application/taxii+json;version=2.1"), (status = 404, description = "No such collection", content_type = "application/taxii+json;version=2.1"), (status = 406, description = "The Accept header names no TAXII 2.1 media type")))]
async fn collection(
    State(state): State<ApiState>,
    session: Option<axum::Extension<AdminSession>>,
    headers: HeaderMap,
    axum::extract::Path(collection): axum::extract::Path<String>,
) -> Response {
    match field_of(&state, &collection) {
        Some(field) => taxii_response(
            &headers,
            taxii::collection(&field, can_write(&session)),
            HeaderMap::new(),
        ),
        None => taxii_error(StatusCode::NOT_FOUND, "no such collection"),
    }
}

/// `objects/` query parameters.
#[derive(Debug, Deserialize)]
struct ObjectsQuery {
    added_after: Option<String>,
    limit: Option<usize>,
    next: Option<String>,
}

/// The STIX objects of a collection, a page at a time.
#[utoipa::path(get, path = "/taxii2/tfc/collections/{collection}/objects/", extensions(("x-tfc-role" = json!("siem"))), tag = "taxii", params(("collection" = String, Path, description = "Collection id"), ("added_after" = Option<String>, Query, description = "Only objects added after this instant"), ("limit" = Option<usize>, Query, description = "At most this many"), ("next" = Option<String>, Query, description = "The page after this one")), responses((status = 200, description = "An envelope of STIX objects", content_type = "application/taxii+json;version=2.1"), (status = 400, description = "Unreadable query parameters", content_type = "application/taxii+json;version=2.1"), (status = 404, description = "No such collection", content_type = "application/taxii+json;version=2.1"), (status = 406, description = "The Accept header names no TAXII 2.1 media type")))]
async fn objects(
    State(state): State<ApiState>,
    headers: HeaderMap,
    axum::extract::Path(collection): axum::extract::Path<String>,
    query: Result<Query<ObjectsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return taxii_error(StatusCode::BAD_REQUEST, "unreadable query parameters");
    };
    let Some(field) = field_of(&state, &collection) else {
        return taxii_error(StatusCode::NOT_FOUND, "no such collection");
    };
    let added_after = match query.added_after.as_deref().map(taxii::parse_timestamp) {
        Some(Err(error)) => return taxii_error(StatusCode::BAD_REQUEST, &error.message),
        Some(Ok(ms)) => Some(ms),
        None => None,
    };
    let threats = std::sync::Arc::clone(state.publisher.threats());
    let field_id = field.charter.field_id();
    let page = tokio::task::spawn_blocking(move || {
        taxii::objects(
            &threats,
            &field_id,
            added_after,
            query.next.as_deref(),
            query.limit,
        )
    })
    .await;
    match page {
        Ok(Ok(page)) => {
            let mut extra = HeaderMap::new();
            if let Some((first, last)) = page.added {
                for (name, ms) in [
                    ("x-taxii-date-added-first", first),
                    ("x-taxii-date-added-last", last),
                ] {
                    if let Ok(value) = HeaderValue::from_str(&taxii::timestamp(ms)) {
                        extra.insert(name, value);
                    }
                }
            }
            taxii_response(&headers, page.envelope, extra)
        }
        Ok(Err(error)) => taxii_error(StatusCode::BAD_REQUEST, &error.message),
        Err(_) => taxii_error(StatusCode::INTERNAL_SERVER_ERROR, "the listing failed"),
    }
}

/// Adds STIX objects to a collection (TAXII 2.1 "Add Objects"): the envelope's objects are
/// checked as one report, as gossip is, and taken into this gateway's book with this
/// gateway as reporter; they are not published to the field. Answers the status resource.
#[utoipa::path(post, path = "/taxii2/tfc/collections/{collection}/objects/", extensions(("x-tfc-role" = json!("operator"))), tag = "taxii", params(("collection" = String, Path, description = "Collection id")), request_body(content = Object, description = "A TAXII envelope of STIX objects", content_type = "application/taxii+json;version=2.1"), responses((status = 202, description = "The status resource", content_type = "application/taxii+json;version=2.1"), (status = 400, description = "Not a TAXII envelope", content_type = "application/taxii+json;version=2.1"), (status = 404, description = "No such collection", content_type = "application/taxii+json;version=2.1"), (status = 415, description = "Not application/taxii+json")))]
async fn add_objects(
    State(state): State<ApiState>,
    headers: HeaderMap,
    axum::extract::Path(collection): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/taxii+json") {
        return taxii_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send a TAXII envelope as application/taxii+json;version=2.1",
        );
    }
    let Some(field) = field_of(&state, &collection) else {
        return taxii_error(StatusCode::NOT_FOUND, "no such collection");
    };
    let bundle = match serde_json::from_slice::<Value>(&body)
        .map_err(|error| ThreatError::new(ThreatCode::Malformed, error.to_string()))
        .and_then(|envelope| taxii::bundle_of_envelope(&envelope))
    {
        Ok(bundle) => bundle,
        Err(error) => return taxii_error(StatusCode::BAD_REQUEST, &error.message),
    };
    let requested_ms = crate::audit::now_ms();
    let id = uuid::Uuid::new_v4().to_string();
    let outcome = state
        .publisher
        .import_threats(&field.charter.field_id(), &bundle);
    let failure = outcome
        .err()
        .map(|error| format!("{}: {}", error.code.as_str(), error.message));
    let status = taxii::add_status(&id, requested_ms, &bundle, failure.as_deref());
    state.taxii_statuses.keep(id, status.clone());
    let mut response = taxii_response(&headers, status, HeaderMap::new());
    if response.status() == StatusCode::OK {
        *response.status_mut() = StatusCode::ACCEPTED;
    }
    response
}

/// The status of an add request (kept for the last 256 requests).
#[utoipa::path(get, path = "/taxii2/tfc/status/{status}/", extensions(("x-tfc-role" = json!("operator"))), tag = "taxii", params(("status" = String, Path, description = "Status id")), responses((status = 200, description = "The status resource", content_type = "application/taxii+json;version=2.1"), (status = 404, description = "No such status", content_type = "application/taxii+json;version=2.1")))]
async fn add_status(
    State(state): State<ApiState>,
    headers: HeaderMap,
    axum::extract::Path(status): axum::extract::Path<String>,
) -> Response {
    match state.taxii_statuses.get(&status) {
        Some(status) => taxii_response(&headers, status, HeaderMap::new()),
        None => taxii_error(StatusCode::NOT_FOUND, "no such status"),
    }
}
