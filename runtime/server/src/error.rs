//! Errors that reach HTTP callers: each has a stable code and a status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A failure outside the function itself (a function's own error is a
/// successful HTTP exchange with `status: "error"`).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    /// Known credentials without the right to this.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    BadDeploy(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Internal(String),
}

impl ServerError {
    pub fn code(&self) -> &'static str {
        match self {
            ServerError::BadRequest(_) => "BadRequest",
            ServerError::Unauthorized(_) => "Unauthorized",
            ServerError::Forbidden(_) => "Forbidden",
            ServerError::NotFound(_) => "NotFound",
            ServerError::PayloadTooLarge(_) => "PayloadTooLarge",
            ServerError::BadDeploy(_) => "BadDeploy",
            ServerError::Unavailable(_) => "Unavailable",
            ServerError::Config(_) | ServerError::Internal(_) => "InternalServerError",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ServerError::BadRequest(_) | ServerError::BadDeploy(_) => StatusCode::BAD_REQUEST,
            ServerError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ServerError::Forbidden(_) => StatusCode::FORBIDDEN,
            ServerError::NotFound(_) => StatusCode::NOT_FOUND,
            ServerError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ServerError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ServerError::Config(_) | ServerError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        let message = match &self {
            // Internal detail is logged, not sent.
            ServerError::Config(detail) | ServerError::Internal(detail) => {
                tracing::error!(%detail, "internal server error");
                "internal server error".to_owned()
            }
            other => other.to_string(),
        };
        let body = serde_json::json!({ "code": self.code(), "message": message });
        (self.status(), axum::Json(body)).into_response()
    }
}
