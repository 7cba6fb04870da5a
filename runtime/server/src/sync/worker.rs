//! One socket's side of the sync protocol: messages handled in order,
//! mutations run one at a time in arrival order, actions concurrently, and
//! a Transition whenever the socket's queries, query set or identity
//! changed, or a mutation's commit needs covering.
//!
//! The worker sees channels only; `crate::ws` connects them to a socket.

use std::collections::BTreeMap;
use std::sync::Arc;

use capstan_host::{FunctionKind, FunctionPath};
use capstan_protocol::Timestamp;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::messages::{
    self, AuthToken, ClientMessage, FunctionFailure, QueryChange, QueryOutcome,
    QuerySetModification, StateVersion, Transition,
};
use super::subscriptions::{QueryHandle, QueryKey, Subscriber};
use super::{Identity, Subscriptions, SyncLimits, client_failure};
use crate::arguments::call_arguments;
use crate::credentials::Credentials;
use crate::facade::App;
use crate::facade::Caller;

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
    Mutation { request_id: u32, finished: Finished },
    Action { request_id: u32, finished: Finished },
}

/// A finished call as the client sees it.
struct Finished {
    result: Result<String, FunctionFailure>,
    log_lines: Vec<String>,
    /// A committed mutation's timestamp.
    ts: Option<Timestamp>,
}

impl From<Result<crate::facade::FunctionResult, crate::ServerError>> for Finished {
    fn from(call: Result<crate::facade::FunctionResult, crate::ServerError>) -> Finished {
        match call {
            Ok(result) => Finished {
                result: result.result.map_err(client_failure),
                log_lines: result.log_lines,
                ts: result.ts,
            },
            Err(error) => Finished {
                result: Err(FunctionFailure {
                    message: error.to_string(),
                    data: None,
                }),
                log_lines: Vec::new(),
                ts: None,
            },
        }
    }
}

struct MutationJob {
    /// `(sessionId, requestId)`: present when the client said Connect.
    receipt: Option<Vec<u8>>,
    request_id: u32,
    path: FunctionPath,
    args: String,
    identity: Identity,
}

/// Why the worker closes the socket.
struct Close {
    code: Option<u16>,
    reason: String,
}

impl Close {
    fn new(code: u16, reason: impl Into<String>) -> Close {
        Close {
            code: Some(code),
            reason: reason.into(),
        }
    }

    /// A broken protocol invariant: the client reconnects and starts over.
    fn protocol(detail: impl std::fmt::Display) -> Close {
        Close::new(1011, format!("InternalServerError: {detail}"))
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
    queries: BTreeMap<u32, LiveQuery>,
    removed: Vec<u32>,
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
                Err(_) => break Some(Close::new(1001, "ServerShutdown")),
            },
            () = &mut cancelled => break Some(Close::new(1001, "ServerShutdown")),
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
    async fn send(&self, text: String) -> Result<(), Close> {
        self.outbound
            .send(Outbound::Text(text))
            .await
            .map_err(|_| Close::new(1001, "gone"))
    }

    async fn receive(&mut self, frame: Inbound) -> Result<(), Close> {
        let text = match frame {
            Inbound::Text(text) => text,
            Inbound::Binary => {
                return Err(Close::new(
                    1003,
                    "InvalidMessage: binary frames are not part of the protocol",
                ));
            }
            Inbound::TooLarge => {
                return Err(Close::new(
                    1009,
                    format!(
                        "MessageTooLarge: messages are at most {} bytes",
                        self.context.limits.max_message_size
                    ),
                ));
            }
        };
        let message = ClientMessage::parse(&text)
            .map_err(|e| Close::new(1008, format!("InvalidMessage: {e}")))?;
        match message {
            ClientMessage::Connect {
                session_id,
                client_ts,
                max_observed_timestamp,
                ..
            } => {
                if let Some(observed) = max_observed_timestamp {
                    let observed = Timestamp::from_wire(&observed).map_err(|e| {
                        Close::new(1008, format!("InvalidMessage: maxObservedTimestamp: {e}"))
                    })?;
                    if observed > self.context.app.store().latest_ts() {
                        return Err(Close::protocol(
                            "the client has seen a timestamp newer than this server's",
                        ));
                    }
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
                    return Err(Close::new(1008, "InvalidMessage: sessionId must be a UUID"));
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
                let path = FunctionPath::parse(&udf_path);
                let args = match call_arguments(Some(args)) {
                    Ok(args) => args,
                    Err(message) => {
                        let failure = Err(FunctionFailure {
                            message,
                            data: None,
                        });
                        return self
                            .send(messages::mutation_response(request_id, &failure, None, &[]))
                            .await;
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
                        path,
                        args,
                        identity,
                    })
                    .map_err(|_| Close::new(1011, "InternalServerError: mutation runner stopped"))
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
            return Err(Close::protocol(format!(
                "BaseVersionMismatch: query set version {base_version} does not follow {}",
                self.query_set_version
            )));
        }
        if new_version <= base_version {
            return Err(Close::protocol(format!(
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
                        return Err(Close::protocol(format!(
                            "query {query_id} is already subscribed"
                        )));
                    }
                    if self.queries.len() >= self.context.limits.max_queries_per_socket {
                        return Err(Close::new(
                            1008,
                            format!(
                                "TooManyQueries: a socket holds at most {} queries",
                                self.context.limits.max_queries_per_socket
                            ),
                        ));
                    }
                    let path = FunctionPath::parse(&udf_path);
                    let args = call_arguments(Some(args)).map_err(|e| {
                        Close::new(1008, format!("InvalidMessage: query {query_id}: {e}"))
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
                        return Err(Close::protocol(format!(
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
            .ok_or_else(|| Close::new(1001, "ServerShutdown"))
    }

    async fn authenticate(&mut self, base_version: u32, token: AuthToken) -> Result<(), Close> {
        if base_version != self.identity_version {
            return Err(Close::protocol(format!(
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
                match self.context.credentials.app.verify_user_token(&value).await {
                    Ok(identity) => identity,
                    Err(error) => {
                        return self
                            .auth_error(base_version, &format!("Could not verify token: {error}"))
                            .await;
                    }
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
            let ids: Vec<u32> = self.queries.keys().copied().collect();
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
    async fn auth_error(&self, base_version: u32, error: &str) -> Result<(), Close> {
        self.send(messages::auth_error(error, base_version, true))
            .await?;
        Err(Close {
            code: None,
            reason: String::new(),
        })
    }

    /// Before running anything for the client: a user token that has
    /// expired on this socket ends it with AuthError (not an answer to an
    /// Authenticate), so the client refreshes and reconnects.
    async fn check_expiry(&self) -> Result<(), Close> {
        let leeway = self.context.credentials.app.token_leeway();
        let Some(seconds) = expired(&self.identity, leeway) else {
            return Ok(());
        };
        self.send(messages::auth_error(
            &format!("Token expired {seconds} seconds ago"),
            self.identity_version,
            false,
        ))
        .await?;
        Err(Close {
            code: None,
            reason: String::new(),
        })
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
        request_id: u32,
        udf_path: String,
        args: serde_json::Value,
    ) -> Result<(), Close> {
        if self.actions_in_flight >= self.context.limits.max_actions_in_flight {
            return Err(Close::new(
                1013,
                format!(
                    "TooManyConcurrentRequests: at most {} actions run at once per socket",
                    self.context.limits.max_actions_in_flight
                ),
            ));
        }
        let args = match call_arguments(Some(args)) {
            Ok(args) => args,
            Err(message) => {
                let failure = Err(FunctionFailure {
                    message,
                    data: None,
                });
                return self
                    .send(messages::action_response(request_id, &failure, &[]))
                    .await;
            }
        };
        self.actions_in_flight += 1;
        let app = self.context.app.clone();
        let completed = self.completed_sender.clone();
        let path = FunctionPath::parse(&udf_path);
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
                self.send(messages::mutation_response(
                    request_id, &result, ts, &log_lines,
                ))
                .await?;
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
                self.send(messages::action_response(request_id, &result, &log_lines))
                    .await
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
                    changes.push(QueryChange::Updated {
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
                .map(|query_id| QueryChange::Removed { query_id }),
        );
        for change in &changes {
            if let QueryChange::Updated { query_id, outcome } = change
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
        let text = Transition {
            start: self.sent,
            end,
            changes: &changes,
            client_clock_skew: self.client_clock_skew,
            server_ts,
        }
        .to_json();
        self.sent = end;
        if covers {
            self.uncovered = None;
        }
        self.transitions_sent += 1;
        if text.len() <= CHUNK_SIZE {
            return self.send(text).await;
        }
        // Contiguous chunks: nothing else is sent until the last one.
        let parts = chunks(&text, CHUNK_SIZE);
        let total = parts.len();
        for (number, part) in parts.into_iter().enumerate() {
            self.send(
                serde_json::json!({
                    "type": "TransitionChunk",
                    "chunk": part,
                    "partNumber": number,
                    "totalParts": total,
                    "transitionId": self.transitions_sent.to_string(),
                })
                .to_string(),
            )
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

/// How long ago a user identity's token expired, if it has, allowing the
/// clock leeway its verification allowed.
fn expired(identity: &Identity, leeway: std::time::Duration) -> Option<u64> {
    let expires_at = identity.expires_at()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    (now > expires_at.saturating_add(leeway.as_secs())).then(|| now - expires_at)
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
