//! The gateway itself: health, metrics, status, peers, dials.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use tokio::sync::oneshot;

use super::types::{ApiError, Dial, PeerView, StatusResponse};
use super::{ApiState, Failure};
use crate::credential::format_rfc3339;
use crate::net::Command;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The gateway's own routes.
pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(status))
        .routes(routes!(peers))
        .routes(routes!(dial))
}

/// Says the gateway is up. Needs no client certificate (for load balancers and systemd),
/// and says nothing else.
#[utoipa::path(get, path = "/healthz", extensions(("x-tfc-role" = json!("none"))), tag = "gateway", responses((status = 200, description = "The gateway is up")))]
pub(super) async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Says whether the gateway is ready to serve: its network runs and its store commits.
/// Needs no client certificate, and says nothing else.
#[utoipa::path(get, path = "/readyz", extensions(("x-tfc-role" = json!("none"))), tag = "gateway", responses((status = 200, description = "Ready"), (status = 503, description = "Not ready")))]
pub(super) async fn readyz(State(state): State<ApiState>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let ready = !state.commands.is_closed() && state.services.commit().await.is_ok();
    if ready {
        Json(serde_json::json!({"status": "ready"})).into_response()
    } else {
        let body = Json(serde_json::json!({"status": "not_ready"}));
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

/// Metrics, in Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", extensions(("x-tfc-role" = json!("viewer"))), tag = "gateway", responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub(super) async fn metrics(State(state): State<ApiState>) -> Result<String, Failure> {
    let peers = state.services.peers.len();
    let mut text = format!(
        "# HELP tfc_peers Peers with a recorded handshake.\n# TYPE tfc_peers gauge\ntfc_peers {peers}\n\
         # HELP tfc_fields Fields joined.\n# TYPE tfc_fields gauge\ntfc_fields {}\n\
         # HELP tfc_wallet_credentials Credentials in the wallet.\n# TYPE tfc_wallet_credentials gauge\ntfc_wallet_credentials {}\n\
         # HELP tfc_status_lists Status lists in force.\n# TYPE tfc_status_lists gauge\ntfc_status_lists {}\n",
        state.services.fields.all().len(),
        state.services.wallet.all().len(),
        state
            .services
            .with_status_lists(|lists| lists.iter().count()),
    );
    text.push_str(&state.services.metrics.render());
    Ok(text)
}

/// The gateway's identity, addresses, fields and counts.
#[utoipa::path(get, path = "/v1/status", extensions(("x-tfc-role" = json!("viewer"))), tag = "gateway", responses((status = 200, body = StatusResponse), (status = 500, body = ApiError)))]
pub(super) async fn status(State(state): State<ApiState>) -> Result<Json<StatusResponse>, Failure> {
    let (reply, answer) = oneshot::channel();
    let listen = match state.commands.send(Command::ListenAddresses(reply)).await {
        Ok(()) => answer
            .await
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect(),
        Err(_) => Vec::new(),
    };
    Ok(Json(StatusResponse {
        did: state.services.key.did(),
        name: state.services.wallet.own_name(),
        peer_id: state.peer_id.to_string(),
        listen,
        fields: state
            .services
            .fields
            .all()
            .iter()
            .map(|field| field.charter.field_id())
            .collect(),
        wallet: state.services.wallet.all().len(),
        peers: state.services.peers.len(),
    }))
}

/// Peers this gateway has handshaken with, and their tiers.
#[utoipa::path(get, path = "/v1/peers", extensions(("x-tfc-role" = json!("viewer"))), tag = "gateway", responses((status = 200, body = Vec<PeerView>), (status = 500, body = ApiError)))]
pub(super) async fn peers(State(state): State<ApiState>) -> Result<Json<Vec<PeerView>>, Failure> {
    let records = state.services.peers.all()?;
    Ok(Json(
        records
            .into_iter()
            .map(|(peer, record)| PeerView {
                peer_id: peer.to_string(),
                did: record.did,
                name: record.name,
                unmet: record
                    .presented
                    .iter()
                    .map(|(field, presented)| (field.clone(), presented.unmet.clone()))
                    .collect(),
                tiers: record.tiers,
                evaluated_at: format_rfc3339(record.evaluated_at),
                next_change: record.next_change.map(format_rfc3339),
            })
            .collect(),
    ))
}

/// Dials another gateway.
#[utoipa::path(post, path = "/v1/dial", extensions(("x-tfc-role" = json!("operator"))), tag = "gateway", request_body = Dial, responses((status = 200, description = "Dialing"), (status = 422, body = ApiError)))]
pub(super) async fn dial(
    State(state): State<ApiState>,
    Json(request): Json<Dial>,
) -> Result<Json<serde_json::Value>, Failure> {
    let address: libp2p::Multiaddr =
        request
            .address
            .parse()
            .map_err(|error: libp2p::multiaddr::Error| {
                Failure::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "bad_address",
                    error.to_string(),
                )
            })?;
    state
        .commands
        .send(Command::Dial(address))
        .await
        .map_err(|_| {
            Failure::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "network",
                "the network task has stopped",
            )
        })?;
    Ok(Json(serde_json::json!({"dialing": request.address})))
}
