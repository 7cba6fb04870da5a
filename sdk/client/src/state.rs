//! The client's protocol state, without I/O: what to send when a socket
//! opens or the application asks for something, and what a server message
//! means for the application. The driver (`crate::driver`) moves text
//! between this and a WebSocket.

use std::collections::BTreeMap;

use capstan_protocol::{Timestamp, Value};
use serde_json::{Value as Json, json};

use crate::Error;

/// A query's latest result.
pub type QueryResult = Result<Value, Error>;

/// Something the application should learn.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Query `id` has a new result.
    Query {
        id: u32,
        result: QueryResult,
    },
    /// Mutation `id` finished; on success its writes are already reflected
    /// in every query result delivered before this event.
    Mutation {
        id: u32,
        result: QueryResult,
    },
    Action {
        id: u32,
        result: QueryResult,
    },
    /// The server confirmed the current auth token.
    AuthAccepted,
    /// The server refused the auth token; it closes the socket next, and the
    /// driver reconnects once it has another token (or none).
    AuthRefused {
        error: String,
    },
}

/// The server broke the protocol or closed the session: the socket must be
/// dropped and a new one opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Reconnect(pub String);

#[derive(Debug)]
struct Query {
    path: String,
    args: Value,
    result: Option<QueryResult>,
}

#[derive(Debug)]
struct Mutation {
    path: String,
    args: Value,
    /// The server's answer, held until a Transition covers its commit.
    answered: Option<(Value, Timestamp)>,
}

/// The protocol state of one client object, across its sockets.
#[derive(Debug)]
pub struct ClientState {
    session_id: String,
    connection_count: u32,
    next_query_id: u32,
    next_request_id: u32,
    queries: BTreeMap<u32, Query>,
    mutations: BTreeMap<u32, Mutation>,
    actions: BTreeMap<u32, ()>,
    token: Option<String>,
    max_observed: Option<Timestamp>,
    // Per socket:
    open: bool,
    query_set_version: u32,
    identity_version: u32,
    /// The last Transition's end `(querySet, identity, ts)`.
    version: (u32, u32, Timestamp),
    chunks: Vec<String>,
}

impl Default for ClientState {
    fn default() -> Self {
        ClientState::new()
    }
}

impl ClientState {
    pub fn new() -> ClientState {
        let bytes: [u8; 16] = rand::random();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        // A version-4 UUID.
        let session_id = format!(
            "{}-{}-4{}-{:x}{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[13..16],
            8 | (bytes[8] & 0x3),
            &hex[17..20],
            &hex[20..32]
        );
        ClientState {
            session_id,
            connection_count: 0,
            next_query_id: 0,
            next_request_id: 0,
            queries: BTreeMap::new(),
            mutations: BTreeMap::new(),
            actions: BTreeMap::new(),
            token: None,
            max_observed: None,
            open: false,
            query_set_version: 0,
            identity_version: 0,
            version: (0, 0, Timestamp::default()),
            chunks: Vec::new(),
        }
    }

    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// A socket opened: the messages that bring the server up to date
    /// (Connect, the auth token, every query, every unfinished mutation),
    /// and the actions that failed with the previous socket.
    pub fn opened(&mut self, last_close_reason: Option<&str>) -> (Vec<String>, Vec<Event>) {
        self.open = true;
        self.query_set_version = 0;
        self.identity_version = 0;
        self.version = (0, 0, Timestamp::default());
        self.chunks.clear();
        let mut connect = json!({
            "type": "Connect",
            "sessionId": self.session_id,
            "connectionCount": self.connection_count,
            "lastCloseReason": last_close_reason.unwrap_or("InitialConnect"),
            "clientTs": now_ms(),
        });
        if let Some(ts) = self.max_observed {
            connect["maxObservedTimestamp"] = json!(ts.to_wire());
        }
        self.connection_count += 1;
        let mut messages = vec![connect.to_string()];
        if let Some(message) = self.authenticate_message() {
            messages.push(message);
        }
        let adds: Vec<Json> = self
            .queries
            .iter()
            .map(|(id, query)| add(*id, query))
            .collect();
        messages.push(self.modify(adds));
        for (id, mutation) in &self.mutations {
            messages.push(call_message(
                "Mutation",
                *id,
                &mutation.path,
                &mutation.args,
            ));
        }
        let failed = std::mem::take(&mut self.actions)
            .into_keys()
            .map(|id| Event::Action {
                id,
                result: Err(Error::ConnectionLost),
            })
            .collect();
        (messages, failed)
    }

    /// Whether a socket is open.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// The socket closed.
    pub fn closed(&mut self) {
        self.open = false;
    }

    fn modify(&mut self, modifications: Vec<Json>) -> String {
        let base = self.query_set_version;
        self.query_set_version += 1;
        json!({
            "type": "ModifyQuerySet",
            "baseVersion": base,
            "newVersion": base + 1,
            "modifications": modifications,
        })
        .to_string()
    }

    fn authenticate_message(&mut self) -> Option<String> {
        let base = self.identity_version;
        let message = match &self.token {
            Some(token) => {
                json!({"type": "Authenticate", "baseVersion": base, "tokenType": "User", "value": token})
            }
            // No token on this socket: nothing to say.
            None if base == 0 => return None,
            None => json!({"type": "Authenticate", "baseVersion": base, "tokenType": "None"}),
        };
        self.identity_version += 1;
        Some(message.to_string())
    }

    /// Subscribes to a query; returns its id and the message to send now
    /// (none while no socket is open: [`ClientState::opened`] sends it).
    pub fn subscribe(&mut self, path: &str, args: Value) -> (u32, Option<String>) {
        let id = self.next_query_id;
        self.next_query_id += 1;
        let query = Query {
            path: path.to_owned(),
            args,
            result: None,
        };
        let message = self.open.then(|| {
            let add = add(id, &query);
            self.modify(vec![add])
        });
        self.queries.insert(id, query);
        (id, message)
    }

    pub fn unsubscribe(&mut self, id: u32) -> Option<String> {
        self.queries.remove(&id)?;
        self.open
            .then(|| self.modify(vec![json!({"type": "Remove", "queryId": id})]))
    }

    /// The latest result of query `id`, if one arrived.
    pub fn result(&self, id: u32) -> Option<&QueryResult> {
        self.queries.get(&id)?.result.as_ref()
    }

    pub fn mutation(&mut self, path: &str, args: Value) -> (u32, Option<String>) {
        let id = self.next_request_id;
        self.next_request_id += 1;
        let message = self.open.then(|| call_message("Mutation", id, path, &args));
        self.mutations.insert(
            id,
            Mutation {
                path: path.to_owned(),
                args,
                answered: None,
            },
        );
        (id, message)
    }

    /// Starts an action; without an open socket it fails at once (actions
    /// are not resent after a reconnect).
    pub fn action(&mut self, path: &str, args: Value) -> Result<(u32, String), Error> {
        if !self.open {
            return Err(Error::ConnectionLost);
        }
        let id = self.next_request_id;
        self.next_request_id += 1;
        self.actions.insert(id, ());
        Ok((id, call_message("Action", id, path, &args)))
    }

    /// Sets (or, with `None`, clears) the auth token.
    pub fn set_auth(&mut self, token: Option<String>) -> Option<String> {
        self.token = token;
        if self.open {
            self.authenticate_message()
        } else {
            None
        }
    }

    /// Handles one text frame from the server.
    pub fn receive(&mut self, text: &str) -> Result<Vec<Event>, Reconnect> {
        let message: Json = serde_json::from_str(text)
            .map_err(|e| Reconnect(format!("the server sent a frame that is not JSON: {e}")))?;
        let field = |name: &str| message.get(name).cloned().unwrap_or(Json::Null);
        match message["type"].as_str().unwrap_or_default() {
            "Transition" => self.transition(&message),
            "TransitionChunk" => {
                let part = field("partNumber").as_u64().unwrap_or(u64::MAX);
                let total = field("totalParts").as_u64().unwrap_or(0);
                if part != self.chunks.len() as u64 {
                    return Err(Reconnect("a TransitionChunk arrived out of order".into()));
                }
                self.chunks
                    .push(field("chunk").as_str().unwrap_or_default().to_owned());
                if self.chunks.len() as u64 == total {
                    let whole = std::mem::take(&mut self.chunks).concat();
                    return self.receive(&whole);
                }
                Ok(Vec::new())
            }
            "MutationResponse" => {
                let Some(id) = field("requestId").as_u64().map(|id| id as u32) else {
                    return Ok(Vec::new());
                };
                if field("success") == json!(true) {
                    let value = decode(&field("result"))?;
                    let ts = Timestamp::from_wire(field("ts").as_str().unwrap_or_default())
                        .map_err(|e| Reconnect(format!("a MutationResponse without ts: {e}")))?;
                    self.observe(ts);
                    if let Some(mutation) = self.mutations.get_mut(&id) {
                        mutation.answered = Some((value, ts));
                    }
                    // Resolved by the Transition that covers `ts`.
                    Ok(Vec::new())
                } else {
                    Ok(self
                        .mutations
                        .remove(&id)
                        .map(|_| Event::Mutation {
                            id,
                            result: Err(failure(&message)),
                        })
                        .into_iter()
                        .collect())
                }
            }
            "ActionResponse" => {
                let Some(id) = field("requestId").as_u64().map(|id| id as u32) else {
                    return Ok(Vec::new());
                };
                if self.actions.remove(&id).is_none() {
                    return Ok(Vec::new());
                }
                let result = if field("success") == json!(true) {
                    Ok(decode(&field("result"))?)
                } else {
                    Err(failure(&message))
                };
                Ok(vec![Event::Action { id, result }])
            }
            "AuthError" => Ok(vec![Event::AuthRefused {
                error: field("error").as_str().unwrap_or_default().to_owned(),
            }]),
            "FatalError" => Err(Reconnect(format!(
                "the server reported a fatal error: {}",
                field("error").as_str().unwrap_or_default()
            ))),
            "Ping" => Ok(Vec::new()),
            other => Err(Reconnect(format!("unknown server message type {other:?}"))),
        }
    }

    fn observe(&mut self, ts: Timestamp) {
        self.max_observed = Some(self.max_observed.map_or(ts, |t| t.max(ts)));
    }

    fn transition(&mut self, message: &Json) -> Result<Vec<Event>, Reconnect> {
        let version = |v: &Json| -> Result<(u32, u32, Timestamp), Reconnect> {
            let ts = Timestamp::from_wire(v["ts"].as_str().unwrap_or_default())
                .map_err(|e| Reconnect(format!("a Transition with a bad ts: {e}")))?;
            Ok((
                v["querySet"].as_u64().unwrap_or(u64::MAX) as u32,
                v["identity"].as_u64().unwrap_or(u64::MAX) as u32,
                ts,
            ))
        };
        let start = version(&message["startVersion"])?;
        let end = version(&message["endVersion"])?;
        if start != self.version {
            return Err(Reconnect(format!(
                "a Transition starts at {start:?}, not at {:?}",
                self.version
            )));
        }
        let mut events = Vec::new();
        if end.1 > start.1 && self.token.is_some() && end.1 >= self.identity_version {
            events.push(Event::AuthAccepted);
        }
        for change in message["modifications"].as_array().into_iter().flatten() {
            let Some(id) = change["queryId"].as_u64().map(|id| id as u32) else {
                continue;
            };
            let result = match change["type"].as_str() {
                Some("QueryUpdated") => Ok(decode(&change["value"])?),
                Some("QueryFailed") => Err(failure(change)),
                _ => continue,
            };
            if let Some(query) = self.queries.get_mut(&id)
                && query.result.as_ref() != Some(&result)
            {
                query.result = Some(result.clone());
                events.push(Event::Query { id, result });
            }
        }
        self.version = end;
        self.observe(end.2);
        let covered: Vec<u32> = self
            .mutations
            .iter()
            .filter(|(_, m)| m.answered.as_ref().is_some_and(|(_, ts)| *ts <= end.2))
            .map(|(id, _)| *id)
            .collect();
        for id in covered {
            if let Some(Mutation {
                answered: Some((value, _)),
                ..
            }) = self.mutations.remove(&id)
            {
                events.push(Event::Mutation {
                    id,
                    result: Ok(value),
                });
            }
        }
        Ok(events)
    }
}

fn add(id: u32, query: &Query) -> Json {
    json!({"type": "Add", "queryId": id, "udfPath": query.path, "args": [query.args.to_json()]})
}

fn call_message(kind: &str, id: u32, path: &str, args: &Value) -> String {
    json!({"type": kind, "requestId": id, "udfPath": path, "args": [args.to_json()]}).to_string()
}

fn decode(json: &Json) -> Result<Value, Reconnect> {
    Value::from_json(json).map_err(|e| Reconnect(format!("the server sent an invalid value: {e}")))
}

fn failure(message: &Json) -> Error {
    let text = message
        .get("errorMessage")
        .or_else(|| message.get("result"))
        .and_then(Json::as_str)
        .unwrap_or("the function failed")
        .to_owned();
    Error::Function {
        message: text,
        data: message
            .get("errorData")
            .and_then(|data| Value::from_json(data).ok()),
    }
}

fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}
