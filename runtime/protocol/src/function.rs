//! What a function is, as the server, the host, the SDK and the admin API
//! describe it: its kind, who may call it, and its entry in a deployment's
//! function list.

use std::fmt;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};

use crate::json_text::JsonText;
use crate::path::FunctionPath;
use crate::sync::QueryId;

/// What a function does, which decides how it runs: a query reads a
/// snapshot, a mutation reads and writes in a transaction that retries on
/// conflict, an action runs outside any transaction and calls the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FunctionKind {
    Query,
    Mutation,
    Action,
}

impl FunctionKind {
    /// `"query"`, `"mutation"` or `"action"`: the name in the HTTP API's
    /// routes (`/api/query`) and in messages.
    pub fn name(self) -> &'static str {
        match self {
            FunctionKind::Query => "query",
            FunctionKind::Mutation => "mutation",
            FunctionKind::Action => "action",
        }
    }
}

impl fmt::Display for FunctionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Who may call a function: clients reach public functions only; internal
/// ones are for other functions and for admin and service callers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Visibility {
    Public,
    Internal,
}

/// One function of a deployment, as the admin API lists it
/// (`GET /api/functions`): `{"path", "kind", "visibility"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionInfo {
    pub path: FunctionPath,
    pub kind: FunctionKind,
    pub visibility: Visibility,
}

/// A call's failure as the client sees it: the message, and a
/// ConvexError's data (Convex JSON), whose presence makes the client throw
/// a `ConvexError`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionFailure {
    pub message: String,
    pub data: Option<JsonText>,
}

impl FunctionFailure {
    /// A failure with a message only.
    pub fn new(message: impl Into<String>) -> FunctionFailure {
        FunctionFailure {
            message: message.into(),
            data: None,
        }
    }
}

/// Writes a call's result into a message as Convex clients read it: the
/// tag `field` set to `tags.0` and `value`, or to `tags.1` with
/// `errorMessage` and, for a ConvexError, `errorData`.
pub(crate) fn serialize_result<M: SerializeMap>(
    map: &mut M,
    field: &'static str,
    tags: (&'static str, &'static str),
    result: &Result<JsonText, FunctionFailure>,
) -> Result<(), M::Error> {
    match result {
        Ok(value) => {
            map.serialize_entry(field, tags.0)?;
            map.serialize_entry("value", value)
        }
        Err(failure) => {
            map.serialize_entry(field, tags.1)?;
            map.serialize_entry("errorMessage", &failure.message)?;
            match &failure.data {
                Some(data) => map.serialize_entry("errorData", data),
                None => Ok(()),
            }
        }
    }
}

/// The fields of a message that carries a call's result (an HTTP function
/// response, a Transition's query update), read straight from its text.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResultFields {
    /// `type` in the sync protocol, `status` over HTTP.
    #[serde(rename = "type", alias = "status")]
    pub tag: String,
    #[serde(default)]
    pub query_id: Option<QueryId>,
    /// Missing is `null`, as the client reads it.
    #[serde(default)]
    value: Option<JsonText>,
    #[serde(default)]
    error_message: Option<String>,
    #[serde(default)]
    error_data: Option<JsonText>,
    #[serde(default)]
    pub log_lines: Vec<String>,
    #[serde(default)]
    pub journal: Option<String>,
}

impl ResultFields {
    /// The value if the message says `success`, else the failure.
    pub fn result(&mut self, success: bool) -> Result<JsonText, FunctionFailure> {
        if success {
            return Ok(self.value.take().unwrap_or_else(JsonText::null));
        }
        Err(FunctionFailure {
            message: self.error_message.take().unwrap_or_default(),
            data: self.error_data.take(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_visibilities_are_lower_case_on_the_wire() {
        let info = FunctionInfo {
            path: FunctionPath::parse("messages:send"),
            kind: FunctionKind::Mutation,
            visibility: Visibility::Internal,
        };
        let json = serde_json::to_string(&info).expect("serialises");
        assert_eq!(
            json,
            r#"{"path":"messages:send","kind":"mutation","visibility":"internal"}"#
        );
        assert_eq!(
            serde_json::from_str::<FunctionInfo>(&json).expect("parses"),
            info
        );
        assert_eq!(FunctionKind::Action.to_string(), "action");
    }
}
