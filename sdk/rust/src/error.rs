//! Errors a function returns.

use std::fmt;

use serde::Serialize;

/// A function's failure.
///
/// A plain error reaches the client as a message. An error made with
/// [`Error::data`] is a ConvexError: the client receives the data as
/// `ConvexError.data` (`errorData` on the wire), so it can react to it.
///
/// ```
/// use capstan::Error;
/// let plain = Error::new("not signed in");
/// let with_data = Error::data(serde_json::json!({"code": "LIMIT", "max": 10}));
/// assert_eq!(plain.message(), "not signed in");
/// assert!(with_data.error_data().is_some());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Error {
    message: String,
    data: Option<serde_json::Value>,
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

    /// A ConvexError carrying `data` to the client.
    pub fn data(data: impl Serialize) -> Self {
        let data = serde_json::to_value(data).unwrap_or(serde_json::Value::Null);
        let message = match &data {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        Error {
            message,
            data: Some(data),
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn error_data(&self) -> Option<&serde_json::Value> {
        self.data.as_ref()
    }

    pub(crate) fn from_host(
        error: crate::bindings::capstan::runtime::types::FunctionError,
    ) -> Self {
        let data = error
            .data
            .and_then(|text| capstan_protocol::Value::from_json_str(&text).ok())
            .and_then(|value| crate::from_value(&value).ok());
        Error {
            message: error.message,
            data,
        }
    }

    pub(crate) fn into_host(self) -> crate::bindings::capstan::runtime::types::FunctionError {
        let data = self.data.and_then(|data| {
            crate::to_value(&data)
                .ok()
                .map(|value| value.to_json_string())
        });
        crate::bindings::capstan::runtime::types::FunctionError {
            message: self.message,
            data,
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
