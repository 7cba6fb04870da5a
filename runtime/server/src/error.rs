//! The server's one error: a kind ([`ErrorCode`]), which decides how it
//! reaches a client, the message a client may see, and, for faults of the
//! server, detail that only the server's log sees.

use std::borrow::Cow;
use std::fmt;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use capstan_protocol::http::ErrorBody;
use capstan_protocol::{ErrorCode, FunctionFailure};

/// A failure outside the function itself (a function's own error is a
/// [`capstan_host::Failure`], answered as a failed call).
#[derive(Debug)]
pub struct Error {
    code: ErrorCode,
    /// What the caller may read: what it did wrong, or which limit it met.
    message: Cow<'static, str>,
    /// A fault's detail: logged, never sent.
    detail: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error whose `message` is meant for the caller.
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Error {
        Error {
            code,
            message: message.into(),
            detail: None,
        }
    }

    /// An error whose `message` is meant for the caller, with `detail`
    /// for the server's log only (addresses, a connection's failure).
    pub fn with_detail(
        code: ErrorCode,
        message: impl Into<Cow<'static, str>>,
        detail: impl Into<String>,
    ) -> Error {
        Error {
            code,
            message: message.into(),
            detail: Some(detail.into()),
        }
    }

    /// A fault of the server: callers see the public message of
    /// [`ErrorCode::InternalServerError`]; `detail` goes to the log.
    pub fn internal(detail: impl Into<String>) -> Error {
        Error {
            code: ErrorCode::InternalServerError,
            message: Cow::Borrowed(""),
            detail: Some(detail.into()),
        }
    }

    /// A store failure: a database that is unreachable (or restarting) is
    /// `Unavailable` and may be retried; anything else is a fault.
    pub fn from_store(e: capstan_store::Error) -> Error {
        match e.code() {
            capstan_store::ErrorCode::Unavailable => Error::with_detail(
                ErrorCode::Unavailable,
                "the database is unavailable; try again",
                e.to_string(),
            ),
            _ => Error::internal(format!("commit failed: {e}")),
        }
    }

    /// A server that cannot start as configured: for its operator.
    pub fn config(detail: impl fmt::Display) -> Error {
        Error::internal(format!("configuration: {detail}"))
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// What a client may see. A fault's detail is logged here, where it
    /// leaves the server.
    pub fn public_message(&self) -> &str {
        if let Some(detail) = &self.detail {
            tracing::error!(code = %self.code, %detail, "server fault");
        }
        self.code.public_message().unwrap_or(&self.message)
    }

    /// The error as a failed call's answer.
    pub fn into_failure(self) -> FunctionFailure {
        FunctionFailure::new(self.public_message())
    }
}

/// The whole story, for the operator (logs, the command line); clients get
/// [`Error::public_message`].
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.detail {
            Some(detail) => f.write_str(detail),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {}

/// `{"code", "message"}` with the status of the code.
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody {
            code: self.code,
            message: self.public_message().to_owned(),
        };
        (status, axum::Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_keeps_its_detail_for_the_log() {
        let fault = Error::internal("disk on fire at /var/lib/capstan");
        assert_eq!(fault.public_message(), "Server Error");
        assert!(fault.to_string().contains("disk on fire"));
        assert_eq!(fault.into_failure(), FunctionFailure::new("Server Error"));
        let mistake = Error::new(ErrorCode::NotFound, "no such function");
        assert_eq!(mistake.public_message(), "no such function");
        assert_eq!(mistake.into_response().status(), StatusCode::NOT_FOUND);
    }
}
