//! One mapping from every error the handlers meet to an HTTP status and a stable code.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::types::ApiError;
use crate::governance::{GovCode, GovError};
use crate::spaces::{DataCode, DataError};

/// An API failure: one mapping from errors to HTTP statuses.
pub(super) struct Failure {
    status: StatusCode,
    body: ApiError,
}

impl Failure {
    pub(super) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ApiError {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}

/// Runs CPU or disk work (`what`, for the error) on the blocking pool, off the async
/// workers; a task that panicked answers `internal`.
pub(super) async fn off_the_loop<T: Send + 'static>(
    what: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(work).await.map_err(|_| {
        Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{what} failed"),
        )
    })
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<crate::store::StoreError> for Failure {
    fn from(error: crate::store::StoreError) -> Self {
        let status = if error.is_full() {
            StatusCode::INSUFFICIENT_STORAGE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        Failure::new(status, error.code(), error.to_string())
    }
}

impl From<crate::services::holdings::HoldingError> for Failure {
    fn from(error: crate::services::holdings::HoldingError) -> Self {
        match error {
            crate::services::holdings::HoldingError::Store(error) => Failure::from(error),
            error @ crate::services::holdings::HoldingError::Duplicate(_) => {
                Failure::new(StatusCode::CONFLICT, error.code(), error.to_string())
            }
            error => Failure::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                error.code(),
                error.to_string(),
            ),
        }
    }
}

impl From<GovError> for Failure {
    fn from(error: GovError) -> Self {
        let status = match error.code {
            GovCode::Store => StatusCode::INTERNAL_SERVER_ERROR,
            GovCode::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
            GovCode::UnknownOp => StatusCode::NOT_FOUND,
            GovCode::Replayed => StatusCode::CONFLICT,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Failure::new(status, error.code.as_str(), error.message)
    }
}

impl From<DataError> for Failure {
    fn from(error: DataError) -> Self {
        let status = match error.code {
            DataCode::NotFound => StatusCode::NOT_FOUND,
            DataCode::Tampered => StatusCode::CONFLICT,
            DataCode::Malformed => StatusCode::UNPROCESSABLE_ENTITY,
            DataCode::Denied | DataCode::BulkGuard | DataCode::Quarantined => StatusCode::FORBIDDEN,
            DataCode::Store => StatusCode::INTERNAL_SERVER_ERROR,
            DataCode::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
        };
        Failure::new(status, error.code.as_str(), error.message)
    }
}
