//! The client's protocol state, without I/O: what to send when a socket
//! opens or the application asks for something, and what a server message
//! means for the application. The driver (`crate::driver`) moves text
//! between this and a WebSocket.

use std::collections::BTreeMap;

use capstan_protocol::sync::{
    AuthToken, ClientMessage, FunctionCall, QueryId, QuerySetModification, RequestId,
    ServerMessage, StateModification, StateVersion, Transition,
};
use capstan_protocol::{FunctionFailure, FunctionPath, JsonText, Timestamp, Value};

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
    path: FunctionPath,
    args: Value,
    result: Option<QueryResult>,
}

#[derive(Debug)]
struct Mutation {
    path: FunctionPath,
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
    /// The last Transition's end.
    version: StateVersion,
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
            version: StateVersion::default(),
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
        self.version = StateVersion::default();
        self.chunks.clear();
        let connect = ClientMessage::Connect {
            session_id: self.session_id.clone(),
            connection_count: self.connection_count,
            last_close_reason: Some(last_close_reason.unwrap_or("InitialConnect").to_owned()),
            max_observed_timestamp: self.max_observed,
            client_ts: Some(now_ms()),
        };
        self.connection_count += 1;
        let mut messages = vec![connect.to_json()];
        if let Some(message) = self.authenticate_message() {
            messages.push(message);
        }
        let adds: Vec<QuerySetModification> = self
            .queries
            .iter()
            .map(|(id, query)| add(*id, query))
            .collect();
        messages.push(self.modify(adds));
        for (id, mutation) in &self.mutations {
            messages.push(mutation_message(*id, mutation));
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

    fn modify(&mut self, modifications: Vec<QuerySetModification>) -> String {
        let base = self.query_set_version;
        self.query_set_version += 1;
        ClientMessage::ModifyQuerySet {
            base_version: base,
            new_version: base + 1,
            modifications,
        }
        .to_json()
    }

    fn authenticate_message(&mut self) -> Option<String> {
        let base = self.identity_version;
        let token = match &self.token {
            Some(token) => AuthToken::User {
                value: token.clone(),
            },
            // No token on this socket: nothing to say.
            None if base == 0 => return None,
            None => AuthToken::None,
        };
        self.identity_version += 1;
        Some(
            ClientMessage::Authenticate {
                base_version: base,
                token,
            }
            .to_json(),
        )
    }

    /// Subscribes to a query; returns its id and the message to send now
    /// (none while no socket is open: [`ClientState::opened`] sends it).
    pub fn subscribe(&mut self, path: &str, args: Value) -> (u32, Option<String>) {
        let id = self.next_query_id;
        self.next_query_id += 1;
        let query = Query {
            path: FunctionPath::parse(path),
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
        self.open.then(|| {
            self.modify(vec![QuerySetModification::Remove {
                query_id: QueryId(id),
            }])
        })
    }

    /// The latest result of query `id`, if one arrived.
    pub fn result(&self, id: u32) -> Option<&QueryResult> {
        self.queries.get(&id)?.result.as_ref()
    }

    pub fn mutation(&mut self, path: &str, args: Value) -> (u32, Option<String>) {
        let id = self.next_request_id;
        self.next_request_id += 1;
        let mutation = Mutation {
            path: FunctionPath::parse(path),
            args,
            answered: None,
        };
        let message = self.open.then(|| mutation_message(id, &mutation));
        self.mutations.insert(id, mutation);
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
        let message = ClientMessage::Action(FunctionCall {
            request_id: RequestId(id),
            udf_path: FunctionPath::parse(path),
            args: arguments(&args),
            component_path: None,
        });
        Ok((id, message.to_json()))
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
        let message = ServerMessage::from_json(text).map_err(|e| {
            Reconnect(format!(
                "the server sent a frame that is not a message: {e}"
            ))
        })?;
        match message {
            ServerMessage::Transition(transition) => self.transition(transition),
            ServerMessage::TransitionChunk(chunk) => {
                if chunk.part_number as usize != self.chunks.len() {
                    return Err(Reconnect("a TransitionChunk arrived out of order".into()));
                }
                self.chunks.push(chunk.chunk);
                if self.chunks.len() == chunk.total_parts as usize {
                    let whole = std::mem::take(&mut self.chunks).concat();
                    return self.receive(&whole);
                }
                Ok(Vec::new())
            }
            ServerMessage::MutationResponse(response) => {
                let id = response.request_id().0;
                match response.result() {
                    Ok((value, ts)) => {
                        let value = decode(value)?;
                        let ts = ts.ok_or_else(|| {
                            Reconnect("a successful MutationResponse without ts".into())
                        })?;
                        self.observe(ts);
                        if let Some(mutation) = self.mutations.get_mut(&id) {
                            mutation.answered = Some((value, ts));
                        }
                        // Resolved by the Transition that covers `ts`.
                        Ok(Vec::new())
                    }
                    Err(failure) => Ok(self
                        .mutations
                        .remove(&id)
                        .map(|_| Event::Mutation {
                            id,
                            result: Err(function_error(failure)),
                        })
                        .into_iter()
                        .collect()),
                }
            }
            ServerMessage::ActionResponse(response) => {
                let id = response.request_id().0;
                if self.actions.remove(&id).is_none() {
                    return Ok(Vec::new());
                }
                let result = match response.result() {
                    Ok(value) => Ok(decode(value)?),
                    Err(failure) => Err(function_error(failure)),
                };
                Ok(vec![Event::Action { id, result }])
            }
            ServerMessage::AuthError(error) => Ok(vec![Event::AuthRefused { error: error.error }]),
            ServerMessage::FatalError(error) => Err(Reconnect(format!(
                "the server reported a fatal error: {}",
                error.error
            ))),
            ServerMessage::Ping => Ok(Vec::new()),
        }
    }

    fn observe(&mut self, ts: Timestamp) {
        self.max_observed = Some(self.max_observed.map_or(ts, |t| t.max(ts)));
    }

    fn transition(&mut self, transition: Transition) -> Result<Vec<Event>, Reconnect> {
        let (start, end) = (transition.start_version, transition.end_version);
        if start != self.version {
            return Err(Reconnect(format!(
                "a Transition starts at {start:?}, not at {:?}",
                self.version
            )));
        }
        let mut events = Vec::new();
        if end.identity > start.identity
            && self.token.is_some()
            && end.identity >= self.identity_version
        {
            events.push(Event::AuthAccepted);
        }
        for modification in transition.modifications {
            let StateModification::Query { query_id, outcome } = modification else {
                continue;
            };
            let result = match outcome.result() {
                Ok(value) => Ok(decode(value)?),
                Err(failure) => Err(function_error(failure.clone())),
            };
            if let Some(query) = self.queries.get_mut(&query_id.0)
                && query.result.as_ref() != Some(&result)
            {
                query.result = Some(result.clone());
                events.push(Event::Query {
                    id: query_id.0,
                    result,
                });
            }
        }
        self.version = end;
        self.observe(end.ts);
        let covered: Vec<u32> = self
            .mutations
            .iter()
            .filter(|(_, m)| m.answered.as_ref().is_some_and(|(_, ts)| *ts <= end.ts))
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

/// Arguments as the Convex client sends them: `[{…}]`.
fn arguments(args: &Value) -> serde_json::Value {
    serde_json::Value::Array(vec![args.to_json()])
}

fn add(id: u32, query: &Query) -> QuerySetModification {
    QuerySetModification::Add {
        query_id: QueryId(id),
        udf_path: query.path.clone(),
        args: arguments(&query.args),
        journal: None,
        component_path: None,
    }
}

fn mutation_message(id: u32, mutation: &Mutation) -> String {
    ClientMessage::Mutation(FunctionCall {
        request_id: RequestId(id),
        udf_path: mutation.path.clone(),
        args: arguments(&mutation.args),
        component_path: None,
    })
    .to_json()
}

fn decode(value: &JsonText) -> Result<Value, Reconnect> {
    value
        .to_value()
        .map_err(|e| Reconnect(format!("the server sent an invalid value: {e}")))
}

fn function_error(failure: FunctionFailure) -> Error {
    Error::Function {
        message: failure.message,
        data: failure.data.and_then(|data| data.to_value().ok()),
    }
}

fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}
