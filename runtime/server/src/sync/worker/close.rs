//! Why the worker ends a socket, as the close frame it sends.

use capstan_protocol::{ErrorCode, SocketClose};

use crate::error::Error;

/// Why the worker closes the socket: a close frame, `code: None` for one
/// without a code.
pub(super) struct Close {
    pub(super) code: Option<u16>,
    pub(super) reason: String,
}

impl Close {
    /// After an AuthError: the client fetches a token and reconnects.
    pub(super) fn after_auth_error() -> Close {
        Close {
            code: None,
            reason: String::new(),
        }
    }

    /// The client is gone: nobody reads the frame.
    pub(super) fn gone() -> Close {
        Close {
            code: Some(1001),
            reason: "gone".into(),
        }
    }

    pub(super) fn refuse(
        code: ErrorCode,
        message: impl Into<std::borrow::Cow<'static, str>>,
    ) -> Close {
        Close::from(Error::new(code, message))
    }

    /// A broken protocol invariant: the client reconnects and starts over.
    pub(super) fn out_of_sync(detail: impl std::fmt::Display) -> Close {
        Close::refuse(ErrorCode::OutOfSync, detail.to_string())
    }

    pub(super) fn shutdown() -> Close {
        Close::refuse(ErrorCode::Unavailable, "")
    }
}

/// The close frame of the error's kind, its reason the kind's code and,
/// unless the kind hides it, the public message.
impl From<Error> for Close {
    fn from(error: Error) -> Close {
        match error.code().socket_close() {
            SocketClose::AuthError => Close::after_auth_error(),
            SocketClose::Frame { code, reason } => {
                let message = error.public_message();
                let reason = if message.is_empty() || error.code().public_message().is_some() {
                    reason.to_owned()
                } else {
                    format!("{reason}: {message}")
                };
                Close {
                    code: Some(code),
                    reason,
                }
            }
        }
    }
}
