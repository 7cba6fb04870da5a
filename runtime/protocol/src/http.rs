//! The bodies of the HTTP API: Convex's function endpoints
//! (`specs/sync-protocol.md` §8), errors, and the admin API.

use std::fmt;

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error_code::ErrorCode;
use crate::function::{FunctionFailure, ResultFields, serialize_result};
use crate::json_text::JsonText;
use crate::path::FunctionPath;

/// `POST /api/query`, `/api/mutation`, `/api/action`:
/// `{"path", "args", "format"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionRequest {
    pub path: FunctionPath,
    /// An object, or (as the Convex client sends it) a one-element array
    /// holding one; missing is `{}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<serde_json::Value>,
    /// `"convex_encoded_json"`, the only format there is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// The answer to a function call, sent with status 200 whether the
/// function succeeded (`{"status": "success", "value", "logLines"}`) or
/// failed (`{"status": "error", "errorMessage", "errorData"?, "logLines"}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionResponse {
    pub result: Result<JsonText, FunctionFailure>,
    pub log_lines: Vec<String>,
}

impl Serialize for FunctionResponse {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        serialize_result(&mut map, "status", ("success", "error"), &self.result)?;
        map.serialize_entry("logLines", &self.log_lines)?;
        map.end()
    }
}

/// Reads straight from JSON text (see [`JsonText`]).
impl<'de> Deserialize<'de> for FunctionResponse {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut fields = ResultFields::deserialize(deserializer)?;
        let result = match fields.tag.as_str() {
            "success" => fields.result(true),
            "error" => fields.result(false),
            other => return Err(D::Error::custom(format!("unknown status {other:?}"))),
        };
        Ok(FunctionResponse {
            result,
            log_lines: fields.log_lines,
        })
    }
}

/// Any other failed request: `{"code", "message"}`, with the status of
/// [`ErrorCode::http_status`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

/// `POST /api/deploy` (admin): the app's components, base64, and its
/// config (the server's `AppConfig`; any JSON here).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest<Config = serde_json::Value> {
    /// Base64 of each component's bytes.
    pub components: Vec<String>,
    #[serde(default, bound(deserialize = "Config: Deserialize<'de> + Default"))]
    pub config: Config,
}

/// What a deploy did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploySummary {
    /// The deployment's id: its components' digests.
    pub deployment: String,
    pub functions: usize,
    /// Components compiled for this deploy, and those found compiled.
    pub compiled: usize,
    pub loaded_from_cache: usize,
    pub tables_added: Vec<String>,
    pub indexes_added: Vec<String>,
    pub indexes_removed: Vec<String>,
    /// What the config allows that its author may not mean.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// `GET /health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `"ok"`.
    pub status: String,
    /// The id of the deployment served, if any.
    pub deployment: Option<String>,
    pub components: ComponentStats,
}

/// How the deployed components were obtained since the server started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStats {
    pub compiled: usize,
    pub loaded_from_cache: usize,
}

/// `PUT /api/env/{name}` (admin). `Debug` leaves the value out: variables
/// hold secrets.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetEnvironmentVariable {
    pub value: String,
}

impl fmt::Debug for SetEnvironmentVariable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SetEnvironmentVariable(…)")
    }
}

/// A service key as `GET /api/service_keys` lists it: never the key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceKeyInfo {
    pub name: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    /// When it stops working, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

/// The answer to `POST /api/service_keys/{name}`: the new key, shown this
/// once. `Debug` leaves the key out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewServiceKey {
    pub name: String,
    pub key: String,
}

impl fmt::Debug for NewServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewServiceKey")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn function_responses_are_written_as_convex_clients_read_them() {
        let ok = FunctionResponse {
            result: Ok(
                JsonText::from_string(r#"{"$integer":"AQAAAAAAAAA="}"#.into()).expect("JSON"),
            ),
            log_lines: vec!["[LOG] 'hi'".into()],
        };
        let failed = FunctionResponse {
            result: Err(FunctionFailure {
                message: "plain failure".into(),
                data: Some(JsonText::string("TOO_MANY")),
            }),
            log_lines: Vec::new(),
        };
        for (response, expected) in [
            (
                &ok,
                json!({"status": "success", "value": {"$integer": "AQAAAAAAAAA="}, "logLines": ["[LOG] 'hi'"]}),
            ),
            (
                &failed,
                json!({"status": "error", "errorMessage": "plain failure", "errorData": "TOO_MANY", "logLines": []}),
            ),
        ] {
            let text = serde_json::to_string(response).expect("serialises");
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&text).expect("JSON"),
                expected
            );
            assert_eq!(
                &serde_json::from_str::<FunctionResponse>(&text).expect("reads"),
                response
            );
        }
    }

    #[test]
    fn requests_canonicalise_their_path_and_secrets_stay_out_of_debug() {
        let request: FunctionRequest = serde_json::from_str(
            r#"{"path":"counter.js:get","format":"convex_encoded_json","args":[{}]}"#,
        )
        .expect("reads");
        assert_eq!(request.path, "counter:get");
        let deploy: DeployRequest = serde_json::from_str(r#"{"components":[]}"#).expect("reads");
        assert_eq!(deploy.config, serde_json::Value::Null);
        assert!(serde_json::from_str::<DeployRequest>(r#"{"components":[],"x":1}"#).is_err());
        let secret = SetEnvironmentVariable {
            value: "s3cret".into(),
        };
        assert!(!format!("{secret:?}").contains("s3cret"));
        let key = NewServiceKey {
            name: "billing".into(),
            key: "capstan_service_s3cret".into(),
        };
        assert!(!format!("{key:?}").contains("s3cret"));
    }
}

/// One admin action, as `GET /api/audit` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// `deploy`, `env.set`, `env.unset`, `service_key.create`,
    /// `service_key.revoke`, `admin_key.rotate`.
    pub action: String,
    /// What it acted on: a variable's or key's name, a deployment's id.
    pub target: Option<String>,
    /// The client's address.
    pub source: String,
    /// `ok`, or why it failed.
    pub outcome: String,
}

/// `POST /api/service_keys/{name}`'s optional body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewServiceKeyRequest {
    /// The key stops working this long after it is made.
    #[serde(default)]
    pub expires_in_seconds: Option<u64>,
}
