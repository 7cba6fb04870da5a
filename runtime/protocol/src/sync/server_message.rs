//! What the server sends (`specs/sync-protocol.md` §3). Results are
//! [`JsonText`]: written into each message as the function wrote them.

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{QueryId, RequestId, StateVersion};
use crate::function::{FunctionFailure, ResultFields, serialize_result};
use crate::json_text::JsonText;
use crate::timestamp::Timestamp;

/// A message from the server.
///
/// Reading one ([`ServerMessage::from_json`], or `Deserialize` straight
/// from JSON text) finds the `type` first and then reads the message's
/// own type, so that results stay text.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum ServerMessage {
    Transition(Transition),
    TransitionChunk(TransitionChunk),
    MutationResponse(MutationResponse),
    ActionResponse(ActionResponse),
    AuthError(AuthError),
    FatalError(FatalError),
    /// Sent when the socket is otherwise idle: the client gives up on a
    /// server it has not heard from in a while.
    Ping,
}

impl ServerMessage {
    /// The text of the frame: the JSON of its `Serialize`, a Transition
    /// written by hand (see [`Transition`]).
    pub fn to_json(&self) -> String {
        match self {
            ServerMessage::Transition(transition) => transition.to_json(),
            other => serde_json::to_string(other).expect("a server message always serialises"),
        }
    }

    /// Reads one text frame.
    pub fn from_json(text: &str) -> Result<ServerMessage, serde_json::Error> {
        #[derive(Deserialize)]
        struct Tag<'a> {
            #[serde(rename = "type", borrow)]
            kind: std::borrow::Cow<'a, str>,
        }
        let tag: Tag<'_> = serde_json::from_str(text)?;
        Ok(match &*tag.kind {
            "Transition" => ServerMessage::Transition(serde_json::from_str(text)?),
            "TransitionChunk" => ServerMessage::TransitionChunk(serde_json::from_str(text)?),
            "MutationResponse" => ServerMessage::MutationResponse(serde_json::from_str(text)?),
            "ActionResponse" => ServerMessage::ActionResponse(serde_json::from_str(text)?),
            "AuthError" => ServerMessage::AuthError(serde_json::from_str(text)?),
            "FatalError" => ServerMessage::FatalError(serde_json::from_str(text)?),
            "Ping" => ServerMessage::Ping,
            other => {
                return Err(serde_json::Error::custom(format!(
                    "unknown server message type {other:?}"
                )));
            }
        })
    }
}

impl<'de> Deserialize<'de> for ServerMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Box::<serde_json::value::RawValue>::deserialize(deserializer)?;
        ServerMessage::from_json(text.get()).map_err(D::Error::custom)
    }
}

/// The socket's state moved from `start_version` to `end_version`: these
/// queries have new results (all computed at `end_version.ts`), or were
/// removed.
///
/// Every socket holding a query builds its own Transition each time the
/// query's result changes, so [`ServerMessage::to_json`] writes one by
/// hand: each outcome's fields are written once, on the first
/// Transition that carries them, and copied into the others. A test holds
/// that text to the JSON of `Serialize`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    pub start_version: StateVersion,
    pub end_version: StateVersion,
    pub modifications: Vec<StateModification>,
    /// The client's `clientTs` at Connect less the server's clock then, in
    /// milliseconds. Sent together with `server_ts`, or neither.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_clock_skew: Option<f64>,
    /// When the message was sent, in nanoseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_ts: Option<u64>,
}

impl Transition {
    fn to_json(&self) -> String {
        let modifications: usize = self
            .modifications
            .iter()
            .map(|modification| match modification {
                StateModification::QueryRemoved { .. } => 48,
                StateModification::Query { outcome, .. } => outcome.fields().len() + 24,
            })
            .sum();
        let mut out = String::with_capacity(modifications + 256);
        out.push_str(r#"{"type":"Transition","startVersion":"#);
        write_version(&mut out, &self.start_version);
        out.push_str(r#","endVersion":"#);
        write_version(&mut out, &self.end_version);
        out.push_str(r#","modifications":["#);
        for (n, modification) in self.modifications.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            match modification {
                StateModification::QueryRemoved { query_id } => {
                    let _ = write!(out, r#"{{"type":"QueryRemoved","queryId":{query_id}}}"#);
                }
                StateModification::Query { query_id, outcome } => {
                    let _ = write!(out, r#"{{"queryId":{query_id},"#);
                    out.push_str(outcome.fields());
                    out.push('}');
                }
            }
        }
        out.push(']');
        if let Some(skew) = self.client_clock_skew {
            // As serde_json writes an f64: shortest form, `null` if not finite.
            match serde_json::Number::from_f64(skew) {
                Some(skew) => write!(out, r#","clientClockSkew":{skew}"#),
                None => write!(out, r#","clientClockSkew":null"#),
            }
            .unwrap_or_default();
        }
        if let Some(server_ts) = self.server_ts {
            let _ = write!(out, r#","serverTs":{server_ts}"#);
        }
        out.push('}');
        out
    }
}

/// `{"querySet":…,"identity":…,"ts":"…"}`, as `StateVersion` serialises.
fn write_version(out: &mut String, version: &StateVersion) {
    let _ = write!(
        out,
        r#"{{"querySet":{},"identity":{},"ts":"{}"}}"#,
        version.query_set,
        version.identity,
        version.ts.to_wire()
    );
}

/// One entry of a Transition's `modifications`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateModification {
    /// `QueryUpdated` or `QueryFailed`: the query's new outcome, which every
    /// socket holding the query shares.
    Query {
        query_id: QueryId,
        outcome: Arc<QueryOutcome>,
    },
    /// `QueryRemoved`: the answer to a Remove.
    QueryRemoved { query_id: QueryId },
}

/// What a query produced, as sent: its value or its failure, with the log
/// lines of the run. Shared by every socket holding the query.
#[derive(Clone, Debug)]
pub struct QueryOutcome {
    result: Result<JsonText, FunctionFailure>,
    log_lines: Vec<String>,
    /// Opaque to clients, which send it back when they subscribe again.
    journal: Option<String>,
    /// The outcome's fields in a modification (all but `queryId`), as JSON
    /// without the braces: written once, copied into every Transition.
    fields: OnceLock<String>,
}

impl PartialEq for QueryOutcome {
    fn eq(&self, other: &Self) -> bool {
        (&self.result, &self.log_lines, &self.journal)
            == (&other.result, &other.log_lines, &other.journal)
    }
}

impl Eq for QueryOutcome {}

impl QueryOutcome {
    pub fn new(result: Result<JsonText, FunctionFailure>, log_lines: Vec<String>) -> QueryOutcome {
        QueryOutcome::with_journal(result, log_lines, None)
    }

    /// An outcome whose text is written now, where it is made (for the
    /// server, by the subscription manager, off every socket's path).
    pub fn with_journal(
        result: Result<JsonText, FunctionFailure>,
        log_lines: Vec<String>,
        journal: Option<String>,
    ) -> QueryOutcome {
        let outcome = QueryOutcome::read(result, log_lines, journal);
        outcome.fields();
        outcome
    }

    /// An outcome read from a message: its text is written only if it is
    /// sent on.
    fn read(
        result: Result<JsonText, FunctionFailure>,
        log_lines: Vec<String>,
        journal: Option<String>,
    ) -> QueryOutcome {
        QueryOutcome {
            result,
            log_lines,
            journal,
            fields: OnceLock::new(),
        }
    }

    pub fn result(&self) -> &Result<JsonText, FunctionFailure> {
        &self.result
    }

    pub fn log_lines(&self) -> &[String] {
        &self.log_lines
    }

    pub fn journal(&self) -> Option<&str> {
        self.journal.as_deref()
    }

    /// Bytes of the outcome as a modification carries it.
    pub fn size(&self) -> usize {
        self.fields().len()
    }

    /// Writes the outcome's fields into a modification's map.
    fn serialize_fields<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        let tags = ("QueryUpdated", "QueryFailed");
        serialize_result(map, "type", tags, &self.result)?;
        map.serialize_entry("logLines", &self.log_lines)?;
        map.serialize_entry("journal", &self.journal)
    }

    /// The fields' JSON, without the braces around them.
    fn fields(&self) -> &str {
        self.fields.get_or_init(|| {
            struct Fields<'a>(&'a QueryOutcome);
            impl Serialize for Fields<'_> {
                fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                    let mut map = serializer.serialize_map(None)?;
                    self.0.serialize_fields(&mut map)?;
                    map.end()
                }
            }
            let object = serde_json::to_string(&Fields(self)).expect("an outcome serialises");
            object[1..object.len() - 1].to_owned()
        })
    }
}

impl Serialize for StateModification {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match self {
            StateModification::QueryRemoved { query_id } => {
                map.serialize_entry("type", "QueryRemoved")?;
                map.serialize_entry("queryId", query_id)?;
            }
            StateModification::Query { query_id, outcome } => {
                map.serialize_entry("queryId", query_id)?;
                outcome.serialize_fields(&mut map)?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for StateModification {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut fields = ResultFields::deserialize(deserializer)?;
        let query_id = fields
            .query_id
            .ok_or_else(|| D::Error::missing_field("queryId"))?;
        let result = match fields.tag.as_str() {
            "QueryRemoved" => return Ok(StateModification::QueryRemoved { query_id }),
            "QueryUpdated" => fields.result(true),
            "QueryFailed" => fields.result(false),
            other => {
                return Err(D::Error::custom(format!(
                    "unknown modification type {other:?}"
                )));
            }
        };
        Ok(StateModification::Query {
            query_id,
            outcome: Arc::new(QueryOutcome::read(result, fields.log_lines, fields.journal)),
        })
    }
}

/// The answer to a Mutation: its value and commit timestamp, or its error
/// (the message in `result`, a ConvexError's data in `errorData`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MutationResponse {
    request_id: RequestId,
    success: bool,
    result: JsonText,
    /// Required on success; `null` on failure.
    ts: Option<Timestamp>,
    log_lines: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error_data: Option<JsonText>,
}

impl MutationResponse {
    pub fn new(
        request_id: RequestId,
        result: Result<(JsonText, Timestamp), FunctionFailure>,
        log_lines: Vec<String>,
    ) -> MutationResponse {
        let (ts, result) = match result {
            Ok((value, ts)) => (Some(ts), Ok(value)),
            Err(failure) => (None, Err(failure)),
        };
        let (success, result, error_data) = encode(result);
        MutationResponse {
            request_id,
            success,
            result,
            ts,
            log_lines,
            error_data,
        }
    }

    pub fn request_id(&self) -> RequestId {
        self.request_id
    }

    /// The value and its commit timestamp, or the failure.
    pub fn result(&self) -> Result<(&JsonText, Option<Timestamp>), FunctionFailure> {
        decode(self.success, &self.result, &self.error_data).map(|value| (value, self.ts))
    }

    pub fn log_lines(&self) -> &[String] {
        &self.log_lines
    }
}

/// The answer to an Action: as a MutationResponse, without a timestamp.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionResponse {
    request_id: RequestId,
    success: bool,
    result: JsonText,
    log_lines: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error_data: Option<JsonText>,
}

impl ActionResponse {
    pub fn new(
        request_id: RequestId,
        result: Result<JsonText, FunctionFailure>,
        log_lines: Vec<String>,
    ) -> ActionResponse {
        let (success, result, error_data) = encode(result);
        ActionResponse {
            request_id,
            success,
            result,
            log_lines,
            error_data,
        }
    }

    pub fn request_id(&self) -> RequestId {
        self.request_id
    }

    pub fn result(&self) -> Result<&JsonText, FunctionFailure> {
        decode(self.success, &self.result, &self.error_data)
    }

    pub fn log_lines(&self) -> &[String] {
        &self.log_lines
    }
}

/// A call's `(success, result, errorData)`: the value, or the message as
/// a JSON string and the error's data.
fn encode(result: Result<JsonText, FunctionFailure>) -> (bool, JsonText, Option<JsonText>) {
    match result {
        Ok(value) => (true, value, None),
        Err(failure) => (false, JsonText::string(&failure.message), failure.data),
    }
}

fn decode<'a>(
    success: bool,
    result: &'a JsonText,
    error_data: &Option<JsonText>,
) -> Result<&'a JsonText, FunctionFailure> {
    if success {
        return Ok(result);
    }
    Err(FunctionFailure {
        message: serde_json::from_str(result.as_str())
            .unwrap_or_else(|_| result.as_str().to_owned()),
        data: error_data.clone(),
    })
}

/// The socket's credentials were refused (`auth_update_attempted`: in
/// answer to an Authenticate) or have expired; the server closes the socket
/// next.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthError {
    pub error: String,
    pub base_version: u32,
    pub auth_update_attempted: bool,
}

/// The client can never continue: it stops for good.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FatalError {
    pub error: String,
}

/// One consecutive piece of a Transition's text too long for one message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransitionChunk {
    pub chunk: String,
    /// From 0.
    pub part_number: u32,
    pub total_parts: u32,
    pub transition_id: String,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn text(json: &str) -> JsonText {
        JsonText::from_string(json.into()).expect("JSON")
    }

    #[test]
    fn a_transition_is_written_field_for_field() {
        let version = |query_set, ts| StateVersion {
            query_set,
            identity: 0,
            ts: Timestamp::new(ts),
        };
        let updated = Arc::new(QueryOutcome::new(
            Ok(text(r#"{"n":{"$integer":"AAAAAAAAAAA="}}"#)),
            vec!["[LOG] 'reading counter'".into()],
        ));
        let failed = Arc::new(QueryOutcome::new(
            Err(FunctionFailure {
                message: "boom".into(),
                data: Some(text(r#"{"code":"X"}"#)),
            }),
            Vec::new(),
        ));
        let message = ServerMessage::Transition(Transition {
            start_version: version(1, 0),
            end_version: version(2, 1_700_000_000_000_000_000),
            modifications: vec![
                StateModification::Query {
                    query_id: QueryId(0),
                    outcome: updated,
                },
                StateModification::Query {
                    query_id: QueryId(1),
                    outcome: failed,
                },
                StateModification::QueryRemoved {
                    query_id: QueryId(7),
                },
            ],
            client_clock_skew: Some(0.0),
            server_ts: Some(1_795_660_686_904_000_000),
        });
        let written = message.to_json();
        // The hand-written text is the JSON of `Serialize`.
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&written).expect("JSON"),
            serde_json::to_value(&message).expect("serialises")
        );
        let expected = json!({
            "type": "Transition",
            "startVersion": {"querySet": 1, "identity": 0, "ts": "AAAAAAAAAAA="},
            "endVersion": {"querySet": 2, "identity": 0, "ts": "AAAqNv6clxc="},
            "modifications": [
                {"type": "QueryUpdated", "queryId": 0, "value": {"n": {"$integer": "AAAAAAAAAAA="}},
                 "logLines": ["[LOG] 'reading counter'"], "journal": null},
                {"type": "QueryFailed", "queryId": 1, "errorMessage": "boom", "logLines": [],
                 "journal": null, "errorData": {"code": "X"}},
                {"type": "QueryRemoved", "queryId": 7},
            ],
            "clientClockSkew": 0.0,
            "serverTs": 1_795_660_686_904_000_000_u64,
        });
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&written).expect("JSON"),
            expected
        );
        assert_eq!(ServerMessage::from_json(&written).expect(&written), message);
        // The same through `Deserialize`.
        let read: ServerMessage = serde_json::from_str(&written).expect("reads");
        assert_eq!(read, message);
    }

    #[test]
    fn responses_carry_a_value_or_a_message() {
        let ok = ServerMessage::MutationResponse(MutationResponse::new(
            RequestId(0),
            Ok((text(r#"{"$integer":"AQAAAAAAAAA="}"#), Timestamp::new(9))),
            vec!["[INFO] 'inc'".into()],
        ));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&ok.to_json()).expect("JSON"),
            json!({"type": "MutationResponse", "requestId": 0, "success": true,
                   "result": {"$integer": "AQAAAAAAAAA="}, "ts": "CQAAAAAAAAA=",
                   "logLines": ["[INFO] 'inc'"]})
        );
        let failure = FunctionFailure {
            message: "bad \"input\"".into(),
            data: Some(text(r#"{"why":"bad"}"#)),
        };
        let failed = MutationResponse::new(RequestId(1), Err(failure.clone()), Vec::new());
        let written = ServerMessage::MutationResponse(failed.clone()).to_json();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&written).expect("JSON"),
            json!({"type": "MutationResponse", "requestId": 1, "success": false,
                   "result": "bad \"input\"", "ts": null, "logLines": [],
                   "errorData": {"why": "bad"}})
        );
        let ServerMessage::MutationResponse(read) =
            ServerMessage::from_json(&written).expect("reads")
        else {
            panic!("{written}");
        };
        assert_eq!(read.result(), Err(failure));
        let action = ActionResponse::new(RequestId(2), Ok(text(r#""action-ok""#)), Vec::new());
        assert_eq!(
            ServerMessage::ActionResponse(action).to_json(),
            r#"{"type":"ActionResponse","requestId":2,"success":true,"result":"action-ok","logLines":[]}"#
        );
        assert_eq!(ServerMessage::Ping.to_json(), r#"{"type":"Ping"}"#);
        let auth = ServerMessage::AuthError(AuthError {
            error: "Token expired".into(),
            base_version: 3,
            auth_update_attempted: false,
        });
        assert_eq!(
            ServerMessage::from_json(&auth.to_json()).expect("reads"),
            auth
        );
        assert!(ServerMessage::from_json(r#"{"type":"Nope"}"#).is_err());
    }
}
