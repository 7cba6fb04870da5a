//! Errors a function returns.

use std::fmt;

use capstan_protocol::Value;
use serde::Serialize;

/// A function's failure.
///
/// A plain error reaches the client as a message. An error made with
/// [`Error::data`] is a ConvexError: the client receives the data as
/// `ConvexError.data` (`errorData` on the wire), so it can react to it.
///
/// ```
/// use capstan::{Error, Value};
/// let plain = Error::new("not signed in");
/// let with_data = Error::data(capstan::json!({"code": "LIMIT", "max": 10}));
/// assert_eq!(plain.message(), "not signed in");
/// let data = with_data.error_data().and_then(Value::as_object).unwrap();
/// assert_eq!(data["max"], Value::Float64(10.0));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Error {
    message: String,
    data: Option<Value>,
}

/// The result of a Capstan function.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            data: None,
        }
    }

    /// A ConvexError carrying `data` to the client. Data that cannot be a
    /// Convex value (an integer beyond ±2^53, a map with non-string keys)
    /// gives a plain error saying why, rather than data the client did not
    /// expect.
    pub fn data(data: impl Serialize) -> Self {
        match crate::to_value(&data) {
            Ok(data) => Error {
                message: match &data {
                    Value::String(text) => text.clone(),
                    other => other.to_json_string(),
                },
                data: Some(data),
            },
            Err(error) => Error::new(format!(
                "the error's data cannot be sent to the client: {}",
                error.message
            )),
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The ConvexError data, if any.
    pub fn error_data(&self) -> Option<&Value> {
        self.data.as_ref()
    }

    pub(crate) fn from_host(
        error: crate::bindings::capstan::runtime::types::FunctionError,
    ) -> Self {
        Error {
            message: error.message,
            data: error.data.and_then(|text| Value::from_json_str(&text).ok()),
        }
    }

    pub(crate) fn into_host(self) -> crate::bindings::capstan::runtime::types::FunctionError {
        crate::bindings::capstan::runtime::types::FunctionError {
            message: self.message,
            data: self.data.map(|data| data.to_json_string()),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error::new(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Error::new(message)
    }
}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Error::new(error.to_string())
    }
}

impl From<capstan_protocol::ValueError> for Error {
    fn from(error: capstan_protocol::ValueError) -> Self {
        Error::new(error.to_string())
    }
}

/// Makes an [`Error`] from a format string.
///
/// ```
/// let name = "general";
/// let error = capstan::error!("channel {name} does not exist");
/// assert_eq!(error.message(), "channel general does not exist");
/// ```
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => {
        $crate::Error::new(::std::format!($($arg)*))
    };
}
