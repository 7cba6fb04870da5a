//! One socket's side of the sync protocol: messages handled in order,
//! mutations run one at a time in arrival order, actions concurrently, and
//! a Transition whenever the socket's queries, query set or identity
//! changed, or a mutation's commit needs covering.
//!
//! The worker sees channels only; `crate::ws` connects them to a socket.
//!
//! # Layout
//! - this file: [`run_socket`], the loop over the socket's frames, its
//!   finished calls and the manager's wake-ups, and what it reads from a
//!   frame.
//! - `query_set.rs`: ModifyQuerySet: subscribing and unsubscribing.
//! - `authentication.rs`: Authenticate, and a token that expires on the socket.
//! - `calls.rs`: mutations (queued, exactly once) and actions (side by side).
//! - `transition.rs`: what the client should learn, as one Transition.
//! - `close.rs`: why and how the worker ends the socket.

mod authentication;
mod calls;
mod close;
mod query_set;
mod transition;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use capstan_protocol::ErrorCode;
use capstan_protocol::Timestamp;
use capstan_protocol::sync::{
    ClientMessage, QueryId, QuerySetModification, ServerMessage, StateVersion,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::subscriptions::Subscriber;
use super::{Identity, Subscriptions, SyncLimits};
use crate::app::App;
use crate::credentials::Credentials;
use crate::metrics::Metrics;
use crate::rate_limit::Limiters;
use calls::{Completed, MutationJob};
use close::Close;
use query_set::LiveQuery;

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
    /// Bytes of live results all sockets hold, against
    /// `SyncLimits::max_live_result_bytes`.
    pub live_result_bytes: Arc<AtomicUsize>,
    pub metrics: Metrics,
    pub limiters: Arc<Limiters>,
}

struct Worker {
    context: SocketContext,
    /// The client's address, for its rate limits.
    client: IpAddr,
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
    mutations: Option<mpsc::Sender<MutationJob>>,
    /// KiB of arguments the socket's queued mutations may still hold.
    queued_mutation_bytes: Arc<tokio::sync::Semaphore>,
    /// Boxed: a channel allocates room for 32 messages up front, and every
    /// socket has this one.
    completed_sender: mpsc::UnboundedSender<Box<Completed>>,
    actions_in_flight: usize,
    transitions_sent: u64,
    /// Bytes of the results last sent, counted in `live_result_bytes`.
    result_bytes: usize,
    /// How the subscription manager wakes this socket.
    subscriber: Subscriber,
}

/// Runs one socket until the client goes away, the server shuts down, or
/// the client breaks the protocol (then the socket is closed with a reason).
pub async fn run_socket(
    context: SocketContext,
    client: IpAddr,
    mut inbound: mpsc::Receiver<Inbound>,
    outbound: mpsc::Sender<Outbound>,
) {
    let (completed_sender, mut completed) = mpsc::unbounded_channel();
    let mut updates = context.subscriptions.updates();
    let shutdown = context.shutdown.clone();
    let queued_mutation_bytes = Arc::new(tokio::sync::Semaphore::new(calls::budget_kib(
        context.limits.queued_mutation_bytes,
    ) as usize));
    let mut worker = Worker {
        context,
        client,
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
        queued_mutation_bytes,
        completed_sender,
        actions_in_flight: 0,
        transitions_sent: 0,
        result_bytes: 0,
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
            // Not while the socket runs its most actions: its next frames
            // wait unread (and then its client's sends) until one ends.
            frame = inbound.recv(), if worker.actions_in_flight < worker.context.limits.max_actions_in_flight => match frame {
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
    worker.queries.clear();
    worker.account_results();
    tracing::debug!(
        session = worker.session_id.as_deref().unwrap_or("-"),
        transitions = worker.transitions_sent,
        "socket closed"
    );
}

impl Worker {
    /// Takes `calls` from the client's call budget, waiting for them when
    /// the wait is short (the socket's messages then wait unread); a client
    /// far over its rate is disconnected, to come back later.
    async fn pace_calls(&self, calls: usize) -> Result<(), Close> {
        const LONGEST_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
        let keys = crate::rate_limit::keys(self.client, &self.identity);
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        for _ in 0..calls {
            loop {
                match self.context.limiters.calls.take(&keys) {
                    Ok(()) => break,
                    Err(wait) if wait <= LONGEST_WAIT => tokio::time::sleep(wait).await,
                    Err(_) => {
                        self.context.metrics.refused("call_rate");
                        return Err(Close::refuse(
                            ErrorCode::RateLimited,
                            "too many calls from this client",
                        ));
                    }
                }
            }
        }
        Ok(())
    }

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
                let now_ms = self.context.credentials.clock.since_epoch().as_millis() as f64;
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
                let added = modifications
                    .iter()
                    .filter(|m| matches!(m, QuerySetModification::Add { .. }))
                    .count();
                self.pace_calls(added).await?;
                self.modify_query_set(base_version, new_version, modifications)
                    .await
            }
            ClientMessage::Mutation(call) => {
                self.check_expiry().await?;
                self.pace_calls(1).await?;
                self.mutation(call).await
            }
            ClientMessage::Action(call) => {
                self.check_expiry().await?;
                self.pace_calls(1).await?;
                self.action(call).await
            }
            ClientMessage::Authenticate {
                base_version,
                token,
            } => self.authenticate(base_version, token).await,
            ClientMessage::Event { .. } => Ok(()),
        }
    }
}
