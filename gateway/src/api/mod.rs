//! The local HTTPS API: JSON over rustls with mutual TLS against the admin CA. A client
//! without a certificate the admin CA signed is refused during the TLS handshake, before any
//! HTTP is read.

pub mod approvals;
mod audit;
mod data;
pub mod disclosures;
mod error;
mod fields;
mod four_eyes;
mod guard;
mod inbox;
mod node;
mod ops;
mod server;
mod session;
pub mod threats;
pub mod types;
mod wallet;

pub use server::{ApiServer, ApiStartError};

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::{Extension, Json, Router};
use libp2p::PeerId;
use tokio::sync::mpsc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::exchange::Publisher;
use crate::net::Command;
use crate::services::Services;
use crate::spaces::Spaces;
use data::actor;
use error::Failure;
use fields::resolve_field;
use server::{audit_and_commit, require_certificate};
use session::AdminSession;
use types::ApiError;

/// Largest request body accepted.
const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
struct ApiState {
    services: Arc<Services>,
    commands: mpsc::Sender<Command>,
    peer_id: PeerId,
    publisher: Publisher,
    spaces: Arc<Spaces>,
    approvals: Arc<approvals::Approvals>,
    taxii_statuses: Arc<threats::TaxiiStatuses>,
    sessions: Arc<server::SessionTally>,
    webhooks: Arc<crate::webhooks::WebhookStatus>,
}

/// The OpenAPI description of this API, served at `/openapi.json`. The paths come from the
/// handlers' own `#[utoipa::path]` attributes, through the router that serves them.
#[derive(utoipa::OpenApi)]
#[openapi(info(
    title = "TFC gateway admin API",
    description = "Local admin and application API; every client authenticates with the admin CA's certificate (mutual TLS)."
))]
pub struct ApiDoc;

/// This document.
#[utoipa::path(get, path = "/openapi.json", extensions(("x-tfc-role" = json!("viewer"))), tag = "gateway", responses((status = 200, description = "This document")))]
async fn openapi(
    Extension(document): Extension<Arc<utoipa::openapi::OpenApi>>,
) -> Json<utoipa::openapi::OpenApi> {
    Json(document.as_ref().clone())
}

/// Every route and its description, from one list: a route cannot be served undocumented.
fn routes() -> (Router<ApiState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
        .routes(routes!(openapi))
        .merge(node::routes())
        .merge(wallet::routes())
        .merge(fields::routes())
        .merge(ops::routes())
        .merge(data::routes())
        .merge(audit::routes())
        .merge(threats::routes())
        .merge(disclosures::routes())
        .merge(four_eyes::routes())
        .merge(inbox::routes())
        .split_for_parts()
}

fn router(state: ApiState) -> Router {
    let (routes, document) = routes();
    let roles = Arc::new(guard::RoleTable::of(&document));
    routes
        .route_layer(axum::middleware::from_fn(guard::require_role))
        .layer(Extension(roles))
        .layer(Extension(Arc::new(document)))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit_and_commit,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(require_certificate))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use crate::roles::Role;

    /// Every route declares the least role it needs, and the name is one we know: a route
    /// without one would be refused to everyone.
    #[test]
    fn every_route_declares_a_known_role() {
        let (_, document) = super::routes();
        let table = super::guard::RoleTable::of(&document);
        let mut routes = 0;
        for (path, item) in &document.paths.paths {
            for (method, operation) in [
                (axum::http::Method::GET, &item.get),
                (axum::http::Method::POST, &item.post),
                (axum::http::Method::DELETE, &item.delete),
            ] {
                if operation.is_some() {
                    routes += 1;
                    assert!(
                        table.need(&method, path).is_some(),
                        "{method} {path} declares no known role"
                    );
                }
            }
        }
        assert!(routes > 30, "only {routes} routes found");
        let siem = super::guard::Need::Role(Role::Siem);
        assert_eq!(table.need(&axum::http::Method::GET, "/taxii2/"), Some(siem));
    }

    /// A route added with axum's own `.route` would be served but not documented: every
    /// route goes through `routes!`, which takes its path and method from the handler's
    /// `#[utoipa::path]`. (The daemon test checks the served router against the document.)
    #[test]
    fn every_route_is_added_through_the_documenting_router() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            files += 1;
            assert!(
                !text.contains(&[".rou", "te("].concat()),
                "{} adds a route outside routes!()",
                path.display()
            );
        }
        assert!(
            files > 5,
            "the api files were not found in {}",
            dir.display()
        );
    }
}
