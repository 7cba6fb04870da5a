//! The host's errors: loading components, and why a call failed.

use std::fmt;

use capstan_protocol::{ErrorCode, FunctionFailure, JsonText};

/// Loading or validating a component failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    #[error("the component cannot run here: {0}")]
    Link(String),
    #[error("the component's function list is invalid: {0}")]
    InvalidFunctions(String),
    #[error("the component's schema is invalid: {0}")]
    InvalidSchema(String),
    #[error("the component failed while describing itself: {0}")]
    Inspect(String),
    #[error("compiled-component cache: {0}")]
    Cache(String),
    #[error("wasmtime: {0}")]
    Engine(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a call produced no value. `Function` is the app's own error; the
/// others are classified traps and limits.
#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    /// The function returned an error; with `data` it is a ConvexError.
    Function {
        message: String,
        data: Option<String>,
    },
    TimedOut {
        limit_ms: u128,
    },
    OutOfMemory {
        limit_bytes: usize,
    },
    StackOverflow,
    /// The guest panicked (or aborted); the message is what it printed.
    Panicked {
        message: String,
    },
    ArgumentsTooLarge {
        size: usize,
        limit: usize,
    },
    ResultTooLarge {
        size: usize,
        limit: usize,
    },
    /// The function returned something that is not a valid value.
    InvalidResult(String),
    /// A fault in the server, not the app: storage failure and the like.
    Internal(String),
}

impl Failure {
    /// The kind of failure, for clients and logs.
    pub fn code(&self) -> ErrorCode {
        match self {
            Failure::Function { .. } => ErrorCode::FunctionError,
            Failure::TimedOut { .. } => ErrorCode::FunctionTimedOut,
            Failure::OutOfMemory { .. } => ErrorCode::OutOfMemory,
            Failure::StackOverflow => ErrorCode::StackOverflow,
            Failure::Panicked { .. } => ErrorCode::GuestPanicked,
            Failure::ArgumentsTooLarge { .. } => ErrorCode::ArgumentsTooLarge,
            Failure::ResultTooLarge { .. } => ErrorCode::ResultTooLarge,
            Failure::InvalidResult(_) => ErrorCode::InvalidResult,
            Failure::Internal(_) => ErrorCode::InternalServerError,
        }
    }

    /// The failure as the client sees it: a fault's detail is logged here
    /// and replaced by the public message of its kind.
    pub fn into_public(self) -> FunctionFailure {
        match self {
            Failure::Function { message, data } => FunctionFailure {
                message,
                // Data that is not JSON is passed on as `null`.
                data: data
                    .map(|data| JsonText::from_string(data).unwrap_or_else(|_| JsonText::null())),
            },
            other => match other.code().public_message() {
                Some(public) => {
                    tracing::error!(detail = %other, code = %other.code(), "function failed inside the server");
                    FunctionFailure::new(public)
                }
                None => FunctionFailure::new(other.to_string()),
            },
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Function { message, .. } => f.write_str(message),
            Failure::TimedOut { limit_ms } => {
                write!(f, "the function timed out after {limit_ms} ms")
            }
            Failure::OutOfMemory { limit_bytes } => write!(
                f,
                "the function ran out of memory (limit {} MiB)",
                limit_bytes >> 20
            ),
            Failure::StackOverflow => f.write_str(
                "the function overflowed its stack (or accessed memory out of bounds), usually from deep recursion",
            ),
            Failure::Panicked { message } if message.is_empty() => {
                f.write_str("the function panicked")
            }
            Failure::Panicked { message } => write!(f, "the function panicked: {message}"),
            Failure::ArgumentsTooLarge { size, limit } => {
                write!(f, "arguments are {size} bytes; the limit is {limit}")
            }
            Failure::ResultTooLarge { size, limit } => {
                write!(f, "the result is {size} bytes; the limit is {limit}")
            }
            Failure::InvalidResult(reason) => {
                write!(f, "the function returned an invalid value: {reason}")
            }
            Failure::Internal(reason) => write!(f, "internal server error: {reason}"),
        }
    }
}
