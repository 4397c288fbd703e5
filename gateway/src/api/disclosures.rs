//! The disclosure log over the API: who has seen which of our credentials, and whose we
//! received. Operators only (the admin CA's client certificate, like every route).

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiState, Failure, resolve_field};
use crate::disclosure::{DisclosureEntry, DisclosureFilter, MAX_QUERY_ENTRIES};
use crate::identity::PublicKey;
use crate::negotiation::Direction;

/// The disclosure routes.
pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(export))
}

/// Which presentations to list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DisclosureQuery {
    /// Only those sent to or received from this DID.
    to: Option<String>,
    /// Only those that requested or presented this credential type.
    #[serde(rename = "type")]
    type_name: Option<String>,
    /// Only those at or after this instant (RFC 3339).
    since: Option<String>,
    /// Only those in this field (id or unambiguous prefix).
    field: Option<String>,
    /// `sent` or `received`.
    direction: Option<String>,
    /// At most this many (default and most: 10,000).
    limit: Option<usize>,
}

impl DisclosureQuery {
    fn filter(&self, state: &ApiState) -> Result<DisclosureFilter, Failure> {
        let bad = |code: &str, message: String| {
            Failure::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
        };
        if let Some(did) = &self.to
            && PublicKey::from_did(did).is_err()
        {
            return Err(bad("bad_did", format!("{did:?} is not a did:key")));
        }
        let since_ms = match &self.since {
            None => None,
            Some(text) => Some(
                crate::credential::parse_rfc3339(text)
                    .map(|secs| secs.saturating_mul(1000))
                    .ok_or_else(|| {
                        bad(
                            "bad_instant",
                            format!(
                                "{text:?} is not an RFC 3339 instant such as 2026-11-22T00:00:00Z"
                            ),
                        )
                    })?,
            ),
        };
        let direction = match self.direction.as_deref() {
            None => None,
            Some("sent") => Some(Direction::Sent),
            Some("received") => Some(Direction::Received),
            Some(other) => {
                return Err(bad(
                    "bad_direction",
                    format!("direction {other:?} must be sent or received"),
                ));
            }
        };
        let field = match &self.field {
            None => None,
            Some(prefix) => Some(resolve_field(state, prefix)?.charter.field_id()),
        };
        Ok(DisclosureFilter {
            peer: self.to.clone(),
            type_name: self.type_name.clone(),
            since_ms,
            field,
            direction,
        })
    }

    fn entries(&self, state: &ApiState) -> Result<Vec<DisclosureEntry>, Failure> {
        let filter = self.filter(state)?;
        let limit = self.limit.unwrap_or(MAX_QUERY_ENTRIES);
        let mut entries = state.services.disclosures.query(&filter, limit)?;
        // Names learnt after the entry was written (the identity came in a later turn).
        for entry in entries.iter_mut().filter(|entry| entry.peer_name.is_none()) {
            entry.peer_name = PublicKey::peer_id_of(&entry.peer)
                .and_then(|peer| state.services.peers.get(peer))
                .and_then(|record| record.name);
        }
        Ok(entries)
    }
}

/// Lists the presentations this gateway sent and received.
#[utoipa::path(get, path = "/v1/disclosures", extensions(("x-tfc-role" = json!("auditor"))), tag = "disclosures", params(DisclosureQuery), responses((status = 200, body = Vec<DisclosureEntry>, description = "Presentations sent and received, oldest first"), (status = 422, body = super::types::ApiError)))]
async fn list(
    State(state): State<ApiState>,
    Query(query): Query<DisclosureQuery>,
) -> Result<Json<Vec<DisclosureEntry>>, Failure> {
    Ok(Json(query.entries(&state)?))
}

/// Exports the disclosure log as JSON lines.
#[utoipa::path(get, path = "/v1/disclosures/export", extensions(("x-tfc-role" = json!("auditor"))), tag = "disclosures", params(DisclosureQuery), responses((status = 200, description = "One JSON entry per line", content_type = "application/x-ndjson"), (status = 422, body = super::types::ApiError)))]
async fn export(
    State(state): State<ApiState>,
    Query(query): Query<DisclosureQuery>,
) -> Result<Response, Failure> {
    let mut body = String::new();
    for entry in query.entries(&state)? {
        body.push_str(&serde_json::to_string(&entry).unwrap_or_default());
        body.push('\n');
    }
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}
