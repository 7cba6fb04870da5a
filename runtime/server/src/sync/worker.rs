//! One socket's side of the sync protocol: messages handled in order,
//! mutations run one at a time in arrival order, actions concurrently, and
//! a Transition whenever the socket's queries, query set or identity
//! changed, or a mutation's commit needs covering.
//!
//! The worker sees channels only; `crate::ws` connects them to a socket.

use std::collections::BTreeMap;
use std::sync::Arc;

use capstan_host::{FunctionKind, FunctionPath};
use capstan_protocol::sync::{
    ActionResponse, AuthError, AuthToken, ClientMessage, MutationResponse, QueryId, QueryOutcome,
    QuerySetModification, RequestId, ServerMessage, StateModification, StateVersion, Transition,
    TransitionChunk,
};
use capstan_protocol::{ErrorCode, FunctionFailure, JsonText, SocketClose, Timestamp};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::subscriptions::{QueryHandle, QueryKey, Subscriber};
use super::{Identity, Subscriptions, SyncLimits};
use crate::app::{App, Caller, FunctionResult, public_result};
use crate::arguments::call_arguments;
use crate::credentials::Credentials;
use crate::error::Error;

/// Transitions longer than this go out as TransitionChunks.
const CHUNK_SIZE: usize = 5_000_000;

/// A frame from the client.
#[derive(Debug)]
pub enum Inbound {
    Text(String),
    /// A binary frame: the protocol has none.
    Binary,
    /// A frame over the size limit.
    TooLarge,
}

/// A frame for the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Outbound {
    Text(String),
    /// Close the socket; `code: None` sends a close frame without a code.
    Close {
        code: Option<u16>,
        reason: String,
    },
}

/// What every socket shares.
#[derive(Clone, Debug)]
pub struct SocketContext {
    pub app: App,
    pub subscriptions: Subscriptions,
    pub credentials: Credentials,
    pub limits: SyncLimits,
    pub shutdown: CancellationToken,
    /// Every socket and the calls it started: the server waits for them
    /// before it closes the store.
    pub tasks: tokio_util::task::TaskTracker,
}

struct LiveQuery {
    handle: QueryHandle,
    path: FunctionPath,
    args: String,
    /// The result last sent on this socket.
    sent: Option<Arc<QueryOutcome>>,
}

enum Completed {
    Mutation {
        request_id: RequestId,
        finished: Finished,
    },
    Action {
        request_id: RequestId,
        finished: Finished,
    },
}

/// A finished call as the client sees it.
struct Finished {
    result: Result<JsonText, FunctionFailure>,
    log_lines: Vec<String>,
    /// A committed mutation's timestamp.
    ts: Option<Timestamp>,
}

impl From<Result<FunctionResult, Error>> for Finished {
    fn from(call: Result<FunctionResult, Error>) -> Finished {
        match call {
            Ok(result) => Finished {
                result: public_result(result.result),
                log_lines: result.log_lines,
                ts: result.ts,
            },
            Err(error) => Finished {
                result: Err(error.into_failure()),
                log_lines: Vec::new(),
                ts: None,
            },
        }
    }
}

struct MutationJob {
    /// `(sessionId, requestId)`: present when the client said Connect.
    receipt: Option<Vec<u8>>,
    request_id: RequestId,
    path: FunctionPath,
    args: String,
    identity: Identity,
}

/// Why the worker closes the socket: a close frame, `code: None` for one
/// without a code.
struct Close {
    code: Option<u16>,
    reason: String,
}

impl Close {
    /// After an AuthError: the client fetches a token and reconnects.
    fn after_auth_error() -> Close {
        Close {
            code: None,
            reason: String::new(),
        }
    }

    /// The client is gone: nobody reads the frame.
    fn gone() -> Close {
        Close {
            code: Some(1001),
            reason: "gone".into(),
        }
    }

    fn refuse(code: ErrorCode, message: impl Into<std::borrow::Cow<'static, str>>) -> Close {
        Close::from(Error::new(code, message))
    }

    /// A broken protocol invariant: the client reconnects and starts over.
    fn out_of_sync(detail: impl std::fmt::Display) -> Close {
        Close::refuse(ErrorCode::OutOfSync, detail.to_string())
    }

    fn shutdown() -> Close {
        Close::refuse(ErrorCode::Unavailable, "")
    }
}

/// The close frame of the error's kind, its reason the kind's code and,
/// unless the kind hides it, the public message.
impl From<Error> for Close {
    fn from(error: Error) -> Close {
        match error.code().socket_close() {
            SocketClose::AuthError => Close::after_auth_error(),
            SocketClose::Frame { code, reason } => {
                let message = error.public_message();
                let reason = if message.is_empty() || error.code().public_message().is_some() {
                    reason.to_owned()
                } else {
                    format!("{reason}: {message}")
                };
                Close {
                    code: Some(code),
                    reason,
                }
            }
        }
    }
}

struct Worker {
    context: SocketContext,
    outbound: mpsc::Sender<Outbound>,
    session_id: Option<String>,
    client_clock_skew: f64,
    query_set_version: u32,
    identity_version: u32,
    identity: Identity,
    queries: BTreeMap<QueryId, LiveQuery>,
    removed: Vec<QueryId>,
    sent: StateVersion,
    /// The newest commit of a mutation answered on this socket that no
    /// Transition has covered yet.
    uncovered: Option<Timestamp>,
    mutations: Option<mpsc::UnboundedSender<MutationJob>>,
    /// Boxed: a channel allocates room for 32 messages up front, and every
    /// socket has this one.
    completed_sender: mpsc::UnboundedSender<Box<Completed>>,
    actions_in_flight: usize,
    transitions_sent: u64,
    /// How the subscription manager wakes this socket.
    subscriber: Subscriber,
}

/// Runs one socket until the client goes away, the server shuts down, or
/// the client breaks the protocol (then the socket is closed with a reason).
pub async fn run_socket(
    context: SocketContext,
    mut inbound: mpsc::Receiver<Inbound>,
    outbound: mpsc::Sender<Outbound>,
) {
    let (completed_sender, mut completed) = mpsc::unbounded_channel();
    let mut updates = context.subscriptions.updates();
    let shutdown = context.shutdown.clone();
    let mut worker = Worker {
        context,
        outbound,
        session_id: None,
        client_clock_skew: 0.0,
        query_set_version: 0,
        identity_version: 0,
        identity: Identity::Anonymous,
        queries: BTreeMap::new(),
        removed: Vec::new(),
        sent: StateVersion::default(),
        uncovered: None,
        mutations: None,
        completed_sender,
        actions_in_flight: 0,
        transitions_sent: 0,
        subscriber: Subscriber::new(),
    };
    let notify = worker.subscriber.notify.clone();
    // Made once: every socket waits on the one token, and registering
    // afresh on each turn would take its lock each time.
    let mut cancelled = std::pin::pin!(shutdown.cancelled());
    let close = loop {
        let step = tokio::select! {
            // Boxed: handling a message needs far more room than waiting,
            // and every idle socket would hold that room.
            frame = inbound.recv() => match frame {
                Some(frame) => Box::pin(worker.receive(frame)).await,
                None => break None,
            },
            Some(done) = completed.recv() => worker.complete(*done).await,
            () = notify.notified() => match worker.check_expiry().await {
                Ok(()) => worker.transition(false).await,
                Err(close) => Err(close),
            },
            // Only while a mutation's commit waits to be covered.
            changed = updates.changed(), if worker.uncovered.is_some() => match changed {
                Ok(()) => worker.transition(false).await,
                Err(_) => break Some(Close::shutdown()),
            },
            () = &mut cancelled => break Some(Close::shutdown()),
        };
        if let Err(close) = step {
            break Some(close);
        }
    };
    if let Some(close) = close {
        let _ = worker
            .outbound
            .send(Outbound::Close {
                code: close.code,
                reason: close.reason,
            })
            .await;
    }
    for query in worker.queries.values() {
        worker
            .context
            .subscriptions
            .unsubscribe(query.handle, &worker.subscriber)
            .await;
    }
    tracing::debug!(
        session = worker.session_id.as_deref().unwrap_or("-"),
        transitions = worker.transitions_sent,
        "socket closed"
    );
}

impl Worker {
    async fn send(&self, message: ServerMessage) -> Result<(), Close> {
        self.send_text(message.to_json()).await
    }

    async fn send_text(&self, text: String) -> Result<(), Close> {
        self.outbound
            .send(Outbound::Text(text))
            .await
            .map_err(|_| Close::gone())
    }

    async fn receive(&mut self, frame: Inbound) -> Result<(), Close> {
        let text = match frame {
            Inbound::Text(text) => text,
            Inbound::Binary => {
                return Err(Close::refuse(
                    ErrorCode::BinaryFrame,
                    "binary frames are not part of the protocol",
                ));
            }
            Inbound::TooLarge => {
                return Err(Close::refuse(
                    ErrorCode::MessageTooLarge,
                    format!(
                        "messages are at most {} bytes",
                        self.context.limits.max_message_size
                    ),
                ));
            }
        };
        let message = ClientMessage::from_json(&text).map_err(|e| {
            Close::refuse(
                ErrorCode::InvalidMessage,
                format!("not a valid client message: {e}"),
            )
        })?;
        match message {
            ClientMessage::Connect {
                session_id,
                client_ts,
                max_observed_timestamp,
                ..
            } => {
                if let Some(observed) = max_observed_timestamp
                    && observed > self.context.app.store().latest_ts()
                {
                    return Err(Close::out_of_sync(
                        "the client has seen a timestamp newer than this server's",
                    ));
                }
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis() as f64;
                self.client_clock_skew = client_ts.map_or(0.0, |ts| ts - now_ms);
                let valid = !session_id.is_empty()
                    && session_id.len() <= 64
                    && session_id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-');
                if !valid {
                    return Err(Close::refuse(
                        ErrorCode::InvalidMessage,
                        "sessionId must be a UUID",
                    ));
                }
                self.session_id = Some(session_id);
                Ok(())
            }
            ClientMessage::ModifyQuerySet {
                base_version,
                new_version,
                modifications,
            } => {
                self.check_expiry().await?;
                self.modify_query_set(base_version, new_version, modifications)
                    .await
            }
            ClientMessage::Mutation {
                request_id,
                udf_path,
                args,
                ..
            } => {
                self.check_expiry().await?;
                let args = match call_arguments(Some(args)) {
                    Ok(args) => args,
                    Err(error) => {
                        let response = MutationResponse::new(
                            request_id,
                            Err(error.into_failure()),
                            Vec::new(),
                        );
                        return self.send(ServerMessage::MutationResponse(response)).await;
                    }
                };
                let identity = self.identity.clone();
                let receipt = self
                    .session_id
                    .as_ref()
                    .map(|session| format!("mutation/{session}/{request_id}").into_bytes());
                self.mutation_queue()
                    .send(MutationJob {
                        receipt,
                        request_id,
                        path: udf_path,
                        args,
                        identity,
                    })
                    .map_err(|_| Close::from(Error::internal("the mutation runner stopped")))
            }
            ClientMessage::Action {
                request_id,
                udf_path,
                args,
                ..
            } => {
                self.check_expiry().await?;
                self.action(request_id, udf_path, args).await
            }
            ClientMessage::Authenticate {
                base_version,
                token,
            } => self.authenticate(base_version, token).await,
            ClientMessage::Event { .. } => Ok(()),
        }
    }

    async fn modify_query_set(
        &mut self,
        base_version: u32,
        new_version: u32,
        modifications: Vec<QuerySetModification>,
    ) -> Result<(), Close> {
        if base_version != self.query_set_version {
            return Err(Close::out_of_sync(format!(
                "BaseVersionMismatch: query set version {base_version} does not follow {}",
                self.query_set_version
            )));
        }
        if new_version <= base_version {
            return Err(Close::out_of_sync(format!(
                "query set version {new_version} does not advance {base_version}"
            )));
        }
        for modification in modifications {
            match modification {
                QuerySetModification::Add {
                    query_id,
                    udf_path,
                    args,
                    ..
                } => {
                    if self.queries.contains_key(&query_id) {
                        return Err(Close::out_of_sync(format!(
                            "query {query_id} is already subscribed"
                        )));
                    }
                    if self.queries.len() >= self.context.limits.max_queries_per_socket {
                        return Err(Close::refuse(
                            ErrorCode::TooManyQueries,
                            format!(
                                "a socket holds at most {} queries",
                                self.context.limits.max_queries_per_socket
                            ),
                        ));
                    }
                    let path = udf_path;
                    let args = call_arguments(Some(args)).map_err(|e| {
                        Close::refuse(
                            ErrorCode::InvalidMessage,
                            format!("query {query_id}: {}", e.public_message()),
                        )
                    })?;
                    let handle = self.subscribe(&path, &args).await?;
                    self.queries.insert(
                        query_id,
                        LiveQuery {
                            handle,
                            path,
                            args,
                            sent: None,
                        },
                    );
                    self.removed.retain(|id| *id != query_id);
                }
                QuerySetModification::Remove { query_id } => {
                    let Some(query) = self.queries.remove(&query_id) else {
                        return Err(Close::out_of_sync(format!(
                            "query {query_id} is not subscribed"
                        )));
                    };
                    self.context
                        .subscriptions
                        .unsubscribe(query.handle, &self.subscriber)
                        .await;
                    self.removed.push(query_id);
                }
            }
        }
        self.query_set_version = new_version;
        self.transition(true).await
    }

    async fn subscribe(&self, path: &FunctionPath, args: &str) -> Result<QueryHandle, Close> {
        self.context
            .subscriptions
            .subscribe(
                QueryKey {
                    path: path.clone(),
                    args: args.to_owned(),
                    identity: self.identity.clone(),
                },
                &self.subscriber,
            )
            .await
            .ok_or_else(Close::shutdown)
    }

    async fn authenticate(&mut self, base_version: u32, token: AuthToken) -> Result<(), Close> {
        if base_version != self.identity_version {
            return Err(Close::out_of_sync(format!(
                "identity version {base_version} does not follow {}",
                self.identity_version
            )));
        }
        let identity = match token {
            AuthToken::None => Identity::Anonymous,
            AuthToken::Admin {
                value,
                impersonating,
            } => match self
                .context
                .credentials
                .admin(&value, impersonating.as_ref())
            {
                Ok(identity) => identity,
                Err(error) => return self.auth_error(base_version, &error).await,
            },
            AuthToken::User { value } => {
                match self.context.credentials.verify_user_token(&value).await {
                    Ok(identity) => identity,
                    Err(error) => return self.auth_error(base_version, &error).await,
                }
            }
        };
        self.identity_version = base_version + 1;
        // Stored even when equal: a refreshed token of the same user carries
        // a later expiry.
        let changed = identity != self.identity;
        self.identity = identity;
        if changed {
            // Every query runs again under the new identity.
            let ids: Vec<QueryId> = self.queries.keys().copied().collect();
            for id in ids {
                let (path, args) = {
                    let query = &self.queries[&id];
                    (query.path.clone(), query.args.clone())
                };
                let handle = self.subscribe(&path, &args).await?;
                let query = self.queries.get_mut(&id).expect("present");
                self.context
                    .subscriptions
                    .unsubscribe(query.handle, &self.subscriber)
                    .await;
                query.handle = handle;
            }
        }
        self.transition(true).await
    }

    /// AuthError, then close without a code: the client fetches a new
    /// token and reconnects.
    async fn auth_error(&self, base_version: u32, error: &Error) -> Result<(), Close> {
        self.send(ServerMessage::AuthError(AuthError {
            error: error.public_message().to_owned(),
            base_version,
            auth_update_attempted: true,
        }))
        .await?;
        Err(Close::after_auth_error())
    }

    /// Before running anything for the client: a user token that has
    /// expired on this socket ends it with AuthError (not an answer to an
    /// Authenticate), so the client refreshes and reconnects.
    async fn check_expiry(&self) -> Result<(), Close> {
        let Some(seconds) = self.context.credentials.expired(&self.identity) else {
            return Ok(());
        };
        self.send(ServerMessage::AuthError(AuthError {
            error: format!("Token expired {seconds} seconds ago"),
            base_version: self.identity_version,
            auth_update_attempted: false,
        }))
        .await?;
        Err(Close::after_auth_error())
    }

    fn mutation_queue(&mut self) -> &mpsc::UnboundedSender<MutationJob> {
        self.mutations.get_or_insert_with(|| {
            let (jobs, mut receiver) = mpsc::unbounded_channel::<MutationJob>();
            let app = self.context.app.clone();
            let completed = self.completed_sender.clone();
            // Ends when the worker drops `jobs`.
            self.context.tasks.spawn(async move {
                while let Some(job) = receiver.recv().await {
                    let result = match job.receipt {
                        Some(receipt) => {
                            app.call_mutation_once(
                                &job.path,
                                job.args,
                                Caller::new(job.identity.clone()),
                                receipt,
                            )
                            .await
                        }
                        None => {
                            app.call(
                                Some(FunctionKind::Mutation),
                                &job.path,
                                job.args,
                                Caller::new(job.identity.clone()),
                            )
                            .await
                        }
                    };
                    let done = Completed::Mutation {
                        request_id: job.request_id,
                        finished: result.into(),
                    };
                    if completed.send(Box::new(done)).is_err() {
                        return;
                    }
                }
            });
            jobs
        })
    }

    async fn action(
        &mut self,
        request_id: RequestId,
        path: FunctionPath,
        args: serde_json::Value,
    ) -> Result<(), Close> {
        if self.actions_in_flight >= self.context.limits.max_actions_in_flight {
            return Err(Close::refuse(
                ErrorCode::TooManyConcurrentRequests,
                format!(
                    "at most {} actions run at once per socket",
                    self.context.limits.max_actions_in_flight
                ),
            ));
        }
        let args = match call_arguments(Some(args)) {
            Ok(args) => args,
            Err(error) => {
                let response =
                    ActionResponse::new(request_id, Err(error.into_failure()), Vec::new());
                return self.send(ServerMessage::ActionResponse(response)).await;
            }
        };
        self.actions_in_flight += 1;
        let app = self.context.app.clone();
        let completed = self.completed_sender.clone();
        let caller = Caller::new(self.identity.clone());
        // Ends when the action does.
        self.context.tasks.spawn(async move {
            let done = Completed::Action {
                request_id,
                finished: app
                    .call(Some(FunctionKind::Action), &path, args, caller)
                    .await
                    .into(),
            };
            let _ = completed.send(Box::new(done));
        });
        Ok(())
    }

    async fn complete(&mut self, done: Completed) -> Result<(), Close> {
        match done {
            Completed::Mutation {
                request_id,
                finished:
                    Finished {
                        result,
                        log_lines,
                        ts,
                    },
            } => {
                let result = match (result, ts) {
                    (Ok(value), Some(ts)) => Ok((value, ts)),
                    (Ok(_), None) => {
                        Err(Error::internal("a mutation succeeded without a commit").into_failure())
                    }
                    (Err(failure), _) => Err(failure),
                };
                let response = MutationResponse::new(request_id, result, log_lines);
                self.send(ServerMessage::MutationResponse(response)).await?;
                if let Some(ts) = ts {
                    self.uncovered = Some(self.uncovered.map_or(ts, |t| t.max(ts)));
                }
                self.transition(false).await
            }
            Completed::Action {
                request_id,
                finished: Finished {
                    result, log_lines, ..
                },
            } => {
                self.actions_in_flight -= 1;
                let response = ActionResponse::new(request_id, result, log_lines);
                self.send(ServerMessage::ActionResponse(response)).await
            }
        }
    }

    /// Sends a Transition to the published timestamp if anything the client
    /// should learn changed: a query's result, the query set or identity
    /// version (`forced`), or a mutation now covered.
    async fn transition(&mut self, forced: bool) -> Result<(), Close> {
        let (ts, mut changes) = self.context.subscriptions.read(|published| {
            let mut changes = Vec::new();
            for (query_id, query) in &self.queries {
                let Some(outcome) = published.results.get(&query.handle) else {
                    continue;
                };
                let same = query
                    .sent
                    .as_ref()
                    .is_some_and(|sent| Arc::ptr_eq(sent, outcome) || **sent == **outcome);
                if !same {
                    changes.push(StateModification::Query {
                        query_id: *query_id,
                        outcome: outcome.clone(),
                    });
                }
            }
            (published.ts, changes)
        });
        let ts = ts.max(self.sent.ts);
        let covers = self.uncovered.is_some_and(|t| t <= ts);
        if changes.is_empty() && self.removed.is_empty() && !forced && !covers {
            return Ok(());
        }
        changes.extend(
            self.removed
                .drain(..)
                .map(|query_id| StateModification::QueryRemoved { query_id }),
        );
        for change in &changes {
            if let StateModification::Query { query_id, outcome } = change
                && let Some(query) = self.queries.get_mut(query_id)
            {
                query.sent = Some(outcome.clone());
            }
        }
        let end = StateVersion {
            query_set: self.query_set_version,
            identity: self.identity_version,
            ts,
        };
        let server_ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        let text = ServerMessage::Transition(Transition {
            start_version: self.sent,
            end_version: end,
            modifications: changes,
            client_clock_skew: Some(self.client_clock_skew),
            server_ts: Some(server_ts),
        })
        .to_json();
        self.sent = end;
        if covers {
            self.uncovered = None;
        }
        self.transitions_sent += 1;
        if text.len() <= CHUNK_SIZE {
            return self.send_text(text).await;
        }
        // Contiguous chunks: nothing else is sent until the last one.
        let parts = chunks(&text, CHUNK_SIZE);
        let total_parts = u32::try_from(parts.len()).unwrap_or(u32::MAX);
        for (part_number, part) in (0..).zip(parts) {
            self.send(ServerMessage::TransitionChunk(TransitionChunk {
                chunk: part.to_owned(),
                part_number,
                total_parts,
                transition_id: self.transitions_sent.to_string(),
            }))
            .await?;
        }
        Ok(())
    }
}

/// `text` cut into pieces of at most `size` bytes at character boundaries.
fn chunks(text: &str, size: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = size.min(rest.len());
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (part, tail) = rest.split_at(end);
        parts.push(part);
        rest = tail;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::chunks;

    #[test]
    fn chunks_split_at_character_boundaries_and_join_back() {
        let text = "aé€😀".repeat(100);
        for size in [4, 5, 7, 64] {
            let parts = chunks(&text, size);
            assert!(parts.iter().all(|p| p.len() <= size && !p.is_empty()));
            assert_eq!(parts.concat(), text);
        }
    }
}
