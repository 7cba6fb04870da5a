//! The messages of the Convex sync protocol, with their exact field names
//! (`specs/sync-protocol.md` §2, §3).

use capstan_protocol::Timestamp;
use serde::Deserialize;
use serde_json::json;

/// A message from the client.
#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
pub enum ClientMessage {
    #[serde(rename_all = "camelCase")]
    Connect {
        session_id: String,
        #[serde(default)]
        connection_count: u32,
        #[serde(default)]
        last_close_reason: Option<String>,
        #[serde(default)]
        max_observed_timestamp: Option<String>,
        #[serde(default)]
        client_ts: Option<f64>,
    },
    #[serde(rename_all = "camelCase")]
    ModifyQuerySet {
        base_version: u32,
        new_version: u32,
        modifications: Vec<QuerySetModification>,
    },
    #[serde(rename_all = "camelCase")]
    Mutation {
        request_id: u32,
        udf_path: String,
        args: serde_json::Value,
        #[serde(default)]
        component_path: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    Action {
        request_id: u32,
        udf_path: String,
        args: serde_json::Value,
        #[serde(default)]
        component_path: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    Authenticate {
        base_version: u32,
        #[serde(flatten)]
        token: AuthToken,
    },
    #[serde(rename_all = "camelCase")]
    Event {
        #[serde(default)]
        event_type: Option<String>,
    },
}

/// `Debug` names the kind only: tokens and keys never reach logs.
#[derive(Deserialize)]
#[serde(tag = "tokenType")]
pub enum AuthToken {
    User {
        value: String,
    },
    Admin {
        value: String,
        #[serde(default)]
        impersonating: Option<serde_json::Value>,
    },
    None,
}

impl std::fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthToken::User { .. } => f.write_str("User(…)"),
            AuthToken::Admin { impersonating, .. } => f
                .debug_struct("Admin")
                .field("impersonating", &impersonating.is_some())
                .finish_non_exhaustive(),
            AuthToken::None => f.write_str("None"),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
pub enum QuerySetModification {
    #[serde(rename_all = "camelCase")]
    Add {
        query_id: u32,
        udf_path: String,
        args: serde_json::Value,
        #[serde(default)]
        journal: Option<String>,
        #[serde(default)]
        component_path: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    Remove { query_id: u32 },
}

impl ClientMessage {
    pub fn parse(text: &str) -> Result<ClientMessage, String> {
        serde_json::from_str(text).map_err(|e| format!("not a valid client message: {e}"))
    }
}

/// `{querySet, identity, ts}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateVersion {
    pub query_set: u32,
    pub identity: u32,
    pub ts: Timestamp,
}

impl StateVersion {
    /// Appends `{"querySet":…,"identity":…,"ts":"…"}`.
    fn write_json(self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = write!(
            out,
            r#"{{"querySet":{},"identity":{},"ts":"{}"}}"#,
            self.query_set,
            self.identity,
            self.ts.to_wire()
        );
    }
}

/// What a query produced, as sent: a value or an error, with log lines,
/// rendered once as the JSON fields of its modification so that a result
/// shared by many sockets is serialised once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryOutcome {
    pub result: Result<String, FunctionFailure>,
    pub log_lines: Vec<String>,
    /// `"type":…` and the fields after `"queryId"`, without braces.
    fields: String,
}

impl QueryOutcome {
    pub fn new(result: Result<String, FunctionFailure>, log_lines: Vec<String>) -> QueryOutcome {
        let logs = serde_json::to_string(&log_lines).unwrap_or_else(|_| "[]".into());
        let fields = match &result {
            Ok(value) => {
                let value = if serde_json::from_str::<serde::de::IgnoredAny>(value).is_ok() {
                    value.as_str()
                } else {
                    "null"
                };
                format!(r#""type":"QueryUpdated","value":{value},"logLines":{logs},"journal":null"#)
            }
            Err(failure) => {
                let mut fields = format!(
                    r#""type":"QueryFailed","errorMessage":{},"logLines":{logs},"journal":null"#,
                    serde_json::Value::String(failure.message.clone())
                );
                if let Some(data) = &failure.data {
                    fields.push_str(r#","errorData":"#);
                    fields.push_str(&json_text(data).to_string());
                }
                fields
            }
        };
        QueryOutcome {
            result,
            log_lines,
            fields,
        }
    }
}

/// A function's error as the client sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionFailure {
    pub message: String,
    /// Convex JSON of a ConvexError's data.
    pub data: Option<String>,
}

/// One entry of a Transition's `modifications`.
#[derive(Clone, Debug)]
pub enum QueryChange {
    Updated {
        query_id: u32,
        outcome: std::sync::Arc<QueryOutcome>,
    },
    Removed {
        query_id: u32,
    },
}

fn json_text(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
}

fn with_error_data(mut body: serde_json::Value, data: &Option<String>) -> serde_json::Value {
    if let Some(data) = data {
        body["errorData"] = json_text(data);
    }
    body
}

#[derive(Debug)]
pub struct Transition<'a> {
    pub start: StateVersion,
    pub end: StateVersion,
    pub changes: &'a [QueryChange],
    pub client_clock_skew: f64,
    pub server_ts: u64,
}

impl Transition<'_> {
    pub fn to_json(&self) -> String {
        use std::fmt::Write as _;
        let fields: usize = self
            .changes
            .iter()
            .map(|change| match change {
                QueryChange::Removed { .. } => 48,
                QueryChange::Updated { outcome, .. } => outcome.fields.len() + 24,
            })
            .sum();
        let mut out = String::with_capacity(fields + 256);
        out.push_str(r#"{"type":"Transition","startVersion":"#);
        self.start.write_json(&mut out);
        out.push_str(r#","endVersion":"#);
        self.end.write_json(&mut out);
        out.push_str(r#","modifications":["#);
        for (n, change) in self.changes.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            match change {
                QueryChange::Removed { query_id } => {
                    let _ = write!(out, r#"{{"type":"QueryRemoved","queryId":{query_id}}}"#);
                }
                QueryChange::Updated { query_id, outcome } => {
                    let _ = write!(out, r#"{{"queryId":{query_id},"#);
                    out.push_str(&outcome.fields);
                    out.push('}');
                }
            }
        }
        let _ = write!(
            out,
            r#"],"clientClockSkew":{},"serverTs":{}}}"#,
            serde_json::Value::from(self.client_clock_skew),
            self.server_ts,
        );
        out
    }
}

pub fn mutation_response(
    request_id: u32,
    result: &Result<String, FunctionFailure>,
    ts: Option<Timestamp>,
    log_lines: &[String],
) -> String {
    match result {
        Ok(value) => json!({
            "type": "MutationResponse",
            "requestId": request_id,
            "success": true,
            "result": json_text(value),
            "ts": ts.map(Timestamp::to_wire),
            "logLines": log_lines,
        }),
        Err(failure) => with_error_data(
            json!({
                "type": "MutationResponse",
                "requestId": request_id,
                "success": false,
                "result": failure.message,
                "ts": null,
                "logLines": log_lines,
            }),
            &failure.data,
        ),
    }
    .to_string()
}

pub fn action_response(
    request_id: u32,
    result: &Result<String, FunctionFailure>,
    log_lines: &[String],
) -> String {
    match result {
        Ok(value) => json!({
            "type": "ActionResponse",
            "requestId": request_id,
            "success": true,
            "result": json_text(value),
            "logLines": log_lines,
        }),
        Err(failure) => with_error_data(
            json!({
                "type": "ActionResponse",
                "requestId": request_id,
                "success": false,
                "result": failure.message,
                "logLines": log_lines,
            }),
            &failure.data,
        ),
    }
    .to_string()
}

pub fn auth_error(error: &str, base_version: u32, attempted: bool) -> String {
    json!({
        "type": "AuthError",
        "error": error,
        "baseVersion": base_version,
        "authUpdateAttempted": attempted,
    })
    .to_string()
}

pub const PING: &str = r#"{"type":"Ping"}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_show_in_debug_output() {
        let message: ClientMessage = serde_json::from_str(
            r#"{"type":"Authenticate","baseVersion":0,"tokenType":"User","value":"eyJsecret.token.sig"}"#,
        )
        .unwrap();
        assert!(!format!("{message:?}").contains("secret"), "{message:?}");
        let admin: ClientMessage = serde_json::from_str(
            r#"{"type":"Authenticate","baseVersion":0,"tokenType":"Admin","value":"capstan_admin_secret"}"#,
        )
        .unwrap();
        assert!(!format!("{admin:?}").contains("secret"), "{admin:?}");
    }
}
