//! The one classification of everything that can fail for a client, and
//! how each kind reaches it: an HTTP status, the way a socket ends, and
//! the message a client may see.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What kind of failure a client met. The name of each kind is a stable
/// code: it is the `code` of an HTTP error body (`{"code", "message"}`)
/// and starts the reason of the close frame that ends a socket.
///
/// Every mapping below is one exhaustive `match`, so a new kind cannot be
/// added without deciding how each transport shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    // The caller's mistakes: sending the same again fails the same way.
    /// A malformed request: invalid JSON, arguments that are not an object,
    /// a function called as the wrong kind.
    BadRequest,
    /// A sync protocol message that cannot be read.
    InvalidMessage,
    /// A binary WebSocket frame: the protocol has none.
    BinaryFrame,
    /// A WebSocket message over the size limit.
    MessageTooLarge,
    /// An HTTP request body over the size limit.
    PayloadTooLarge,
    /// No such function (or not one the caller may call), or no app.
    NotFound,
    /// A deploy that cannot be served: bad components, schema or config.
    BadDeploy,
    /// The client's protocol state does not follow the server's (a version
    /// that does not chain, a query added twice): a new socket starts both
    /// afresh.
    OutOfSync,

    // Who is calling.
    /// Missing, malformed, unknown, expired or forged credentials.
    Unauthorized,
    /// Known credentials without the right to this.
    Forbidden,

    // Limits.
    /// More live queries on one socket than the server allows.
    TooManyQueries,
    /// More sockets, or actions on one socket, than the server runs at once.
    TooManyConcurrentRequests,
    /// More calls or sockets in a while than one client may make.
    RateLimited,

    // The function's own failures, answered as a failed call.
    /// The function returned an error (a ConvexError when it has data).
    FunctionError,
    FunctionTimedOut,
    OutOfMemory,
    StackOverflow,
    /// The guest panicked or aborted.
    GuestPanicked,
    ArgumentsTooLarge,
    ResultTooLarge,
    /// The function returned something that is not a value.
    InvalidResult,

    // The server's faults: the same request may succeed later.
    /// The server is shutting down.
    Unavailable,
    /// A fault inside the server; its detail stays in the server's log.
    InternalServerError,
}

/// How a socket ends when an error of some kind ends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketClose {
    /// An `AuthError` message, then a close frame without a code: the
    /// client fetches another token and reconnects.
    AuthError,
    /// A close frame with `code`, its reason starting with `reason`.
    Frame { code: u16, reason: &'static str },
}

impl ErrorCode {
    /// Every kind, for tests and for reading codes back.
    pub const ALL: [ErrorCode; 23] = [
        ErrorCode::BadRequest,
        ErrorCode::InvalidMessage,
        ErrorCode::BinaryFrame,
        ErrorCode::MessageTooLarge,
        ErrorCode::PayloadTooLarge,
        ErrorCode::NotFound,
        ErrorCode::BadDeploy,
        ErrorCode::OutOfSync,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::TooManyQueries,
        ErrorCode::TooManyConcurrentRequests,
        ErrorCode::RateLimited,
        ErrorCode::FunctionError,
        ErrorCode::FunctionTimedOut,
        ErrorCode::OutOfMemory,
        ErrorCode::StackOverflow,
        ErrorCode::GuestPanicked,
        ErrorCode::ArgumentsTooLarge,
        ErrorCode::ResultTooLarge,
        ErrorCode::InvalidResult,
        ErrorCode::Unavailable,
        ErrorCode::InternalServerError,
    ];

    /// The stable code.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "BadRequest",
            ErrorCode::InvalidMessage => "InvalidMessage",
            ErrorCode::BinaryFrame => "BinaryFrame",
            ErrorCode::MessageTooLarge => "MessageTooLarge",
            ErrorCode::PayloadTooLarge => "PayloadTooLarge",
            ErrorCode::NotFound => "NotFound",
            ErrorCode::BadDeploy => "BadDeploy",
            ErrorCode::OutOfSync => "OutOfSync",
            ErrorCode::Unauthorized => "Unauthorized",
            ErrorCode::Forbidden => "Forbidden",
            ErrorCode::TooManyQueries => "TooManyQueries",
            ErrorCode::TooManyConcurrentRequests => "TooManyConcurrentRequests",
            ErrorCode::RateLimited => "RateLimited",
            ErrorCode::FunctionError => "FunctionError",
            ErrorCode::FunctionTimedOut => "FunctionTimedOut",
            ErrorCode::OutOfMemory => "OutOfMemory",
            ErrorCode::StackOverflow => "StackOverflow",
            ErrorCode::GuestPanicked => "GuestPanicked",
            ErrorCode::ArgumentsTooLarge => "ArgumentsTooLarge",
            ErrorCode::ResultTooLarge => "ResultTooLarge",
            ErrorCode::InvalidResult => "InvalidResult",
            ErrorCode::Unavailable => "Unavailable",
            ErrorCode::InternalServerError => "InternalServerError",
        }
    }

    /// The kind whose stable code is `code`.
    pub fn from_code(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL
            .into_iter()
            .find(|kind| kind.as_str() == code)
    }

    /// Whether the server, not the request, is at fault, so that the same
    /// request may succeed later: callers retry these (the sync client by
    /// reconnecting and resending), and nothing else.
    pub fn is_server_fault(self) -> bool {
        self.mapping().server_fault
    }

    /// The HTTP status of a request that failed this way. A function's own
    /// failure is a successful exchange (200) whose body says
    /// `"status": "error"`, as Convex clients expect.
    pub fn http_status(self) -> u16 {
        self.mapping().http_status
    }

    /// How a socket ends when an error of this kind ends it. Close reasons
    /// start with the codes the `convex` client's backoff reads
    /// (`specs/sync-protocol.md` §10.3): a broken protocol state is an
    /// `InternalServerError` to it, which reconnects and starts afresh.
    /// A failed call does not end its socket: it is answered.
    pub fn socket_close(self) -> SocketClose {
        self.mapping().socket_close
    }

    /// The message a client sees in place of the error's own, for kinds
    /// whose text is the server's business: a fault's detail is logged,
    /// never sent. `None`: the error's message is meant for the caller.
    pub fn public_message(self) -> Option<&'static str> {
        self.mapping().public_message
    }

    /// How each kind reaches a client: one row a kind, so that a new kind
    /// cannot be added without deciding every part of it.
    fn mapping(self) -> Mapping {
        // The caller's mistakes and limits: its own message, not retried.
        let refused = |http_status, code, reason| Mapping {
            server_fault: false,
            http_status,
            socket_close: SocketClose::Frame { code, reason },
            public_message: None,
        };
        // The function's own failures: answered, never the end of a socket.
        let answered = Mapping {
            server_fault: false,
            http_status: 200,
            socket_close: SocketClose::Frame {
                code: 1011,
                reason: "InternalServerError",
            },
            public_message: None,
        };
        let fault = |http_status, code, reason| Mapping {
            server_fault: true,
            ..refused(http_status, code, reason)
        };
        match self {
            ErrorCode::BadRequest => refused(400, 1008, "InvalidMessage"),
            ErrorCode::InvalidMessage => refused(400, 1008, "InvalidMessage"),
            ErrorCode::BinaryFrame => refused(400, 1003, "InvalidMessage"),
            ErrorCode::MessageTooLarge => refused(413, 1009, "MessageTooLarge"),
            ErrorCode::PayloadTooLarge => refused(413, 1009, "MessageTooLarge"),
            ErrorCode::NotFound => refused(404, 1008, "InvalidMessage"),
            ErrorCode::BadDeploy => refused(400, 1008, "InvalidMessage"),
            ErrorCode::OutOfSync => refused(400, 1011, "InternalServerError"),
            ErrorCode::Unauthorized => Mapping {
                socket_close: SocketClose::AuthError,
                ..refused(401, 0, "")
            },
            ErrorCode::Forbidden => Mapping {
                socket_close: SocketClose::AuthError,
                ..refused(403, 0, "")
            },
            ErrorCode::TooManyQueries => refused(400, 1008, "TooManyQueries"),
            ErrorCode::TooManyConcurrentRequests => fault(503, 1013, "TooManyConcurrentRequests"),
            // Retried later by the client, like an overloaded server.
            ErrorCode::RateLimited => fault(429, 1013, "TooManyConcurrentRequests"),
            ErrorCode::FunctionError
            | ErrorCode::FunctionTimedOut
            | ErrorCode::OutOfMemory
            | ErrorCode::StackOverflow
            | ErrorCode::GuestPanicked
            | ErrorCode::ArgumentsTooLarge
            | ErrorCode::ResultTooLarge
            | ErrorCode::InvalidResult => answered,
            ErrorCode::Unavailable => fault(503, 1001, "ServerShutdown"),
            ErrorCode::InternalServerError => Mapping {
                public_message: Some("Server Error"),
                ..fault(500, 1011, "InternalServerError")
            },
        }
    }

    /// The kind a close reason names (its text up to the first `:`), as
    /// [`ErrorCode::socket_close`] wrote it.
    pub fn from_close_reason(reason: &str) -> Option<ErrorCode> {
        let name = reason.split(':').next().unwrap_or_default().trim();
        match name {
            "ServerShutdown" => Some(ErrorCode::Unavailable),
            name => ErrorCode::from_code(name),
        }
    }
}

/// How one kind reaches a client.
struct Mapping {
    server_fault: bool,
    http_status: u16,
    socket_close: SocketClose,
    public_message: Option<&'static str>,
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_and_serialises_as_its_name() {
        for kind in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_code(kind.as_str()), Some(kind));
            assert_eq!(
                serde_json::to_string(&kind).expect("serialises"),
                format!("\"{kind}\"")
            );
        }
        assert_eq!(ErrorCode::from_code("Nope"), None);
    }

    #[test]
    fn only_faults_are_retried_and_only_faults_hide_their_text() {
        for kind in ErrorCode::ALL {
            if kind.public_message().is_some() {
                assert!(kind.is_server_fault(), "{kind}");
            }
            // A function's failure is an answer, never a refused request.
            if kind.http_status() == 200 {
                assert!(!kind.is_server_fault(), "{kind}");
            }
        }
        assert!(ErrorCode::InternalServerError.is_server_fault());
        assert!(!ErrorCode::BadRequest.is_server_fault());
    }

    #[test]
    fn close_reasons_name_codes_the_client_backs_off_on() {
        let reason = |kind: ErrorCode| match kind.socket_close() {
            SocketClose::Frame { reason, .. } => reason,
            SocketClose::AuthError => "AuthError",
        };
        assert_eq!(reason(ErrorCode::OutOfSync), "InternalServerError");
        assert_eq!(
            ErrorCode::from_close_reason("TooManyConcurrentRequests: at most 1"),
            Some(ErrorCode::TooManyConcurrentRequests)
        );
        assert_eq!(
            ErrorCode::from_close_reason("ServerShutdown"),
            Some(ErrorCode::Unavailable)
        );
        assert_eq!(ErrorCode::from_close_reason("closed by the peer"), None);
        for kind in ErrorCode::ALL {
            if let SocketClose::Frame { reason, .. } = kind.socket_close() {
                assert!(ErrorCode::from_close_reason(reason).is_some(), "{kind}");
            }
        }
    }
}
