//! Who may use which route. Every route's OpenAPI entry declares the least role it needs
//! (`x-tfc-role`); the table below is read from that document when the router is built, so
//! a route and its role cannot drift apart. A route that declares none is refused to
//! everyone, as is an operator whose certificate carries no role this gateway knows.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::MatchedPath;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::Failure;
use super::session::AdminSession;
use crate::roles::Role;

/// The OpenAPI extension that carries a route's least role.
pub(super) const ROLE_EXTENSION: &str = "x-tfc-role";

/// What a route asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Need {
    /// Nothing: a probe, reachable without a certificate.
    Nobody,
    /// An operator with at least this role.
    Role(Role),
}

/// Route (method and path template) → what it needs.
#[derive(Debug, Default)]
pub(super) struct RoleTable {
    needs: HashMap<(Method, String), Need>,
}

impl RoleTable {
    /// The table the document declares. A declaration that names no known role is left out,
    /// so that route is refused.
    pub(super) fn of(document: &utoipa::openapi::OpenApi) -> Self {
        let mut needs = HashMap::new();
        for (path, item) in &document.paths.paths {
            let operations = [
                (Method::GET, &item.get),
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::DELETE, &item.delete),
            ];
            for (method, operation) in operations {
                let declared = operation
                    .as_ref()
                    .and_then(|operation| operation.extensions.as_ref())
                    .and_then(|extensions| extensions.get(ROLE_EXTENSION))
                    .and_then(serde_json::Value::as_str);
                let need = match declared {
                    Some("none") => Some(Need::Nobody),
                    Some(role) => role.parse().ok().map(Need::Role),
                    None => None,
                };
                if let Some(need) = need {
                    needs.insert((method, path.clone()), need);
                }
            }
        }
        Self { needs }
    }

    /// What the route needs, if it declares anything.
    pub(super) fn need(&self, method: &Method, path: &str) -> Option<Need> {
        self.needs.get(&(method.clone(), path.to_owned())).copied()
    }

    /// Whether some method of `path` is a declared route: another method on it is the
    /// router's 405, not a refusal.
    fn declares_path(&self, path: &str) -> bool {
        self.needs.keys().any(|(_, declared)| declared == path)
    }
}

/// Refuses a caller whose role does not reach the route's declared least role.
pub(super) async fn require_role(
    axum::Extension(table): axum::Extension<Arc<RoleTable>>,
    session: Option<axum::Extension<AdminSession>>,
    matched: Option<MatchedPath>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = matched
        .as_ref()
        .map(MatchedPath::as_str)
        .unwrap_or_default();
    let need = table.need(request.method(), path);
    if need.is_none() && table.declares_path(path) {
        return next.run(request).await;
    }
    match need {
        Some(Need::Nobody) => next.run(request).await,
        Some(Need::Role(least)) => match require(&session, least) {
            Ok(()) => next.run(request).await,
            Err(refusal) => refusal.into_response(),
        },
        None => Failure::new(
            StatusCode::FORBIDDEN,
            "route_undeclared",
            "this route declares no role, so it is refused to everyone",
        )
        .into_response(),
    }
}

/// Refuses the request unless the caller's role reaches `least`: every route's declared
/// role, and again where the least role depends on what is asked (a clerk may propose an
/// admission, not a revocation).
pub(super) fn require(
    session: &Option<axum::Extension<AdminSession>>,
    least: Role,
) -> Result<(), Failure> {
    let role = session.as_ref().and_then(|session| session.role);
    match role {
        Some(role) if role.satisfies(least) => Ok(()),
        Some(role) => Err(Failure::new(
            StatusCode::FORBIDDEN,
            "role_insufficient",
            format!("this needs the {least} role or one above it; your certificate carries {role}"),
        )),
        None => Err(role_missing()),
    }
}

/// The refusal of a certificate that carries no role this gateway knows.
pub(super) fn role_missing() -> Failure {
    Failure::new(
        StatusCode::FORBIDDEN,
        "role_missing",
        "your client certificate carries no role this gateway knows; ask an admin for one \
         (tfcctl admin-cert issue --role R --name NAME)",
    )
}
