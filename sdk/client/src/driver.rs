//! The I/O half of the client: one task that owns the socket and the
//! [`ClientState`], reconnects with backoff, and routes events to the
//! application's subscriptions and pending calls.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use capstan_protocol::{ErrorCode, Value};
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, SinkExt, Stream, StreamExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::Error;
use crate::auth::{AuthManager, AuthStep};
use crate::state::{ClientState, Event, QueryResult};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const MAX_BACKOFF: Duration = Duration::from_secs(16);
/// Retries after which the backoff stops growing.
const BACKOFF_DOUBLINGS: u32 = 8;

enum Command {
    Subscribe {
        path: String,
        args: Value,
        updates: mpsc::UnboundedSender<QueryResult>,
        reply: oneshot::Sender<u32>,
    },
    Unsubscribe(u32),
    Mutation {
        path: String,
        args: Value,
        reply: oneshot::Sender<QueryResult>,
    },
    Action {
        path: String,
        args: Value,
        reply: oneshot::Sender<QueryResult>,
    },
    SetAuth(Option<Fetcher>),
}

/// Fetches an auth token; the argument asks for a fresh one rather than a
/// cached one.
type Fetcher = Arc<dyn Fn(bool) -> BoxFuture<'static, Option<String>> + Send + Sync>;

/// A connection to a Capstan (or Convex) deployment. Cheap to clone; the
/// connection closes when the last clone and subscription are dropped.
///
/// ```no_run
/// # async fn example() -> Result<(), capstan_client::Error> {
/// use capstan_client::{Client, Value};
/// use futures_util::StreamExt;
/// use serde_json::json;
///
/// let client = Client::new("http://127.0.0.1:3210")?;
/// let channel = Value::from_json(&json!({"channel": "general"})).expect("valid args");
/// let mut messages = client.subscribe("messages:list", channel).await?;
/// let first = messages.next().await;
/// let message = json!({"channel": "general", "body": "hi"});
/// client
///     .mutation("messages:send", Value::from_json(&message).expect("valid args"))
///     .await?;
/// // The subscription already holds the mutation's write.
/// let second = messages.next().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    commands: mpsc::UnboundedSender<Command>,
    authenticated: watch::Receiver<bool>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

impl Client {
    /// Connects (in the background) to the deployment at `address`, an
    /// `http://` or `https://` URL. Must be called inside a tokio runtime.
    pub fn new(address: &str) -> Result<Client, Error> {
        let url = if let Some(rest) = address.strip_prefix("http://") {
            format!("ws://{rest}")
        } else if let Some(rest) = address.strip_prefix("https://") {
            format!("wss://{rest}")
        } else {
            return Err(Error::Address(format!(
                "{address:?} must start with http:// or https://"
            )));
        };
        let url = format!(
            "{}/api/{}/sync",
            url.trim_end_matches('/'),
            env!("CARGO_PKG_VERSION")
        );
        let (commands, receiver) = mpsc::unbounded_channel();
        let (authenticated_sender, authenticated) = watch::channel(false);
        // Ends when every Client clone (and Subscription) is dropped.
        tokio::spawn(drive(url, receiver, authenticated_sender));
        Ok(Client {
            commands,
            authenticated,
        })
    }

    /// Subscribes to the query at `path` (`module:function`); the stream
    /// yields its result now and again whenever it changes.
    pub async fn subscribe(&self, path: &str, args: Value) -> Result<Subscription, Error> {
        let (updates, receiver) = mpsc::unbounded_channel();
        let (reply, id) = oneshot::channel();
        self.commands
            .send(Command::Subscribe {
                path: path.to_owned(),
                args,
                updates,
                reply,
            })
            .map_err(|_| Error::Closed)?;
        Ok(Subscription {
            id: id.await.map_err(|_| Error::Closed)?,
            updates: receiver,
            commands: self.commands.clone(),
        })
    }

    /// The query's current result, once.
    pub async fn query(&self, path: &str, args: Value) -> Result<Value, Error> {
        let mut subscription = self.subscribe(path, args).await?;
        subscription.next().await.ok_or(Error::Closed)?
    }

    /// Runs a mutation exactly once (it is resent after a reconnect and the
    /// server deduplicates it). Resolves when its writes are visible in
    /// every subscription of this client.
    pub async fn mutation(&self, path: &str, args: Value) -> Result<Value, Error> {
        self.request(|reply| Command::Mutation {
            path: path.to_owned(),
            args,
            reply,
        })
        .await
    }

    /// Runs an action. Actions are not retried: if the connection drops
    /// while one runs, it fails with [`Error::ConnectionLost`].
    pub async fn action(&self, path: &str, args: Value) -> Result<Value, Error> {
        self.request(|reply| Command::Action {
            path: path.to_owned(),
            args,
            reply,
        })
        .await
    }

    /// Sends the command `make` builds around a reply channel, and awaits
    /// the reply.
    async fn request(
        &self,
        make: impl FnOnce(oneshot::Sender<QueryResult>) -> Command,
    ) -> Result<Value, Error> {
        let (reply, result) = oneshot::channel();
        self.commands.send(make(reply)).map_err(|_| Error::Closed)?;
        result.await.map_err(|_| Error::Closed)?
    }

    /// Runs calls and subscriptions as the user whose tokens `fetch_token`
    /// returns. It is called with `false` for a possibly cached token, with
    /// `true` when a fresh one is needed: after the server confirmed a
    /// cached one, ten seconds before the token in use expires (read from
    /// the JWT's `exp`), and after the server refused one. Three refusals
    /// in a row, or no token at all, and the client carries on signed out.
    ///
    /// ```no_run
    /// # async fn example(client: capstan_client::Client) -> Result<(), capstan_client::Error> {
    /// async fn token_from_my_provider(fresh: bool) -> Option<String> {
    ///     // e.g. ask the identity provider's SDK, bypassing its cache when `fresh`.
    ///     None
    /// }
    /// client.set_auth(token_from_my_provider)?;
    /// let mut signed_in = client.auth_state();
    /// signed_in.wait_for(|yes| *yes).await.ok();
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_auth<F, Fut>(&self, fetch_token: F) -> Result<(), Error>
    where
        F: Fn(bool) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<String>> + Send + 'static,
    {
        let fetcher: Fetcher = Arc::new(move |fresh| fetch_token(fresh).boxed());
        self.commands
            .send(Command::SetAuth(Some(fetcher)))
            .map_err(|_| Error::Closed)
    }

    /// Signs out: calls and subscriptions run without identity again.
    pub fn clear_auth(&self) -> Result<(), Error> {
        self.commands
            .send(Command::SetAuth(None))
            .map_err(|_| Error::Closed)
    }

    /// Whether the server has confirmed the current token; changes as it
    /// is confirmed, refused, refreshed or cleared.
    pub fn auth_state(&self) -> watch::Receiver<bool> {
        self.authenticated.clone()
    }
}

/// A live query: a stream of its results. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    id: u32,
    updates: mpsc::UnboundedReceiver<QueryResult>,
    commands: mpsc::UnboundedSender<Command>,
}

impl Stream for Subscription {
    type Item = QueryResult;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<QueryResult>> {
        self.updates.poll_recv(cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Unsubscribe(self.id));
    }
}

#[derive(Default)]
struct Waiting {
    subscriptions: HashMap<u32, mpsc::UnboundedSender<QueryResult>>,
    mutations: HashMap<u32, oneshot::Sender<QueryResult>>,
    actions: HashMap<u32, oneshot::Sender<QueryResult>>,
}

impl Waiting {
    fn deliver(&mut self, events: Vec<Event>) {
        for event in events {
            match event {
                Event::Query { id, result } => {
                    if let Some(updates) = self.subscriptions.get(&id) {
                        let _ = updates.send(result);
                    }
                }
                Event::Mutation { id, result } => {
                    if let Some(reply) = self.mutations.remove(&id) {
                        let _ = reply.send(result);
                    }
                }
                Event::Action { id, result } => {
                    if let Some(reply) = self.actions.remove(&id) {
                        let _ = reply.send(result);
                    }
                }
                // Handled by `Auth::observe`.
                Event::AuthAccepted | Event::AuthRefused { .. } => {}
            }
        }
    }
}

async fn next_frame(socket: &mut Option<Socket>) -> Option<Result<Message, String>> {
    match socket {
        Some(socket) => socket.next().await.map(|r| r.map_err(|e| e.to_string())),
        None => std::future::pending().await,
    }
}

fn backoff(retries: u32) -> Duration {
    let base = Duration::from_millis(100 << retries.min(BACKOFF_DOUBLINGS)).min(MAX_BACKOFF);
    base.mul_f64(0.5 + rand::random::<f64>())
}

/// The driver's half of auth: the fetcher, its pending calls, the refresh
/// timer, and what the application sees.
struct Auth {
    manager: AuthManager,
    fetcher: Option<Fetcher>,
    fetching: FuturesUnordered<BoxFuture<'static, Fetched>>,
    /// The newest fetch; an older one answering late is ignored.
    latest: u64,
    /// The socket stays down until the pending fetch answers (the first
    /// token, or the replacement of a refused one).
    holding: bool,
    refresh_at: Option<Instant>,
    authenticated: watch::Sender<bool>,
}

/// A fetcher's answer.
struct Fetched {
    generation: u64,
    sequence: u64,
    fresh: bool,
    token: Option<String>,
}

/// How long a fetcher may take before its answer counts as "no token".
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

impl Auth {
    fn apply(&mut self, step: AuthStep, state: &mut ClientState, outgoing: &mut Vec<String>) {
        match step {
            AuthStep::Fetch { force_refresh } => {
                if let Some(fetch) = &self.fetcher {
                    self.latest += 1;
                    let (generation, sequence) = (self.manager.generation(), self.latest);
                    let token = fetch(force_refresh);
                    self.fetching.push(
                        async move {
                            let token = tokio::time::timeout(FETCH_TIMEOUT, token)
                                .await
                                .unwrap_or_else(|_| {
                                    tracing::warn!("the auth token fetcher did not answer in time");
                                    None
                                });
                            Fetched {
                                generation,
                                sequence,
                                fresh: force_refresh,
                                token,
                            }
                        }
                        .boxed(),
                    );
                }
            }
            AuthStep::Use(token) => outgoing.extend(state.set_auth(Some(token))),
            AuthStep::RefreshIn(delay) => self.refresh_at = Some(Instant::now() + delay),
            AuthStep::SignOut => {
                tracing::warn!("no usable auth token; continuing signed out");
                self.fetcher = None;
                self.refresh_at = None;
                self.holding = false;
                outgoing.extend(state.set_auth(None));
            }
            AuthStep::Wait => {}
        }
        let now = self.manager.is_authenticated();
        self.authenticated.send_if_modified(|shown| {
            let changed = *shown != now;
            *shown = now;
            changed
        });
    }

    /// Reacts to the server's verdicts among `events`; a refusal's message
    /// when the socket must be replaced.
    fn observe(
        &mut self,
        events: &[Event],
        state: &mut ClientState,
        outgoing: &mut Vec<String>,
    ) -> Option<String> {
        let mut refused = None;
        for event in events {
            match event {
                Event::AuthAccepted => {
                    let step = self.manager.accepted();
                    self.apply(step, state, outgoing);
                }
                Event::AuthRefused { error } => {
                    tracing::debug!(%error, "the server refused the auth token");
                    self.refresh_at = None;
                    self.holding = true;
                    let step = self.manager.refused();
                    self.apply(step, state, outgoing);
                    refused = Some(format!("the server refused the auth token: {error}"));
                }
                _ => {}
            }
        }
        refused
    }

    /// A fetcher answered.
    fn fetched(&mut self, fetched: Fetched, state: &mut ClientState, outgoing: &mut Vec<String>) {
        if fetched.sequence != self.latest {
            return;
        }
        let held = std::mem::take(&mut self.holding);
        let step = self
            .manager
            .fetched(fetched.generation, fetched.fresh, fetched.token);
        // No token yet: the socket keeps waiting for the forced fetch.
        self.holding = held && matches!(step, AuthStep::Fetch { .. });
        self.apply(step, state, outgoing);
    }

    fn set(
        &mut self,
        fetcher: Option<Fetcher>,
        state: &mut ClientState,
        outgoing: &mut Vec<String>,
    ) {
        self.refresh_at = None;
        self.fetching = FuturesUnordered::new();
        match fetcher {
            Some(fetcher) => {
                self.fetcher = Some(fetcher);
                self.holding = !state.is_open();
                let (_, step) = self.manager.start();
                self.apply(step, state, outgoing);
            }
            None => {
                self.fetcher = None;
                self.holding = false;
                self.manager.clear();
                outgoing.extend(state.set_auth(None));
                self.apply(AuthStep::Wait, state, outgoing);
            }
        }
    }
}

/// Applies one of the application's commands; the messages for an open
/// socket go to `outgoing`.
fn handle(
    command: Command,
    state: &mut ClientState,
    waiting: &mut Waiting,
    auth: &mut Auth,
    outgoing: &mut Vec<String>,
) {
    match command {
        Command::Subscribe {
            path,
            args,
            updates,
            reply,
        } => {
            let (id, message) = state.subscribe(&path, args);
            waiting.subscriptions.insert(id, updates);
            outgoing.extend(message);
            let _ = reply.send(id);
        }
        Command::Unsubscribe(id) => {
            waiting.subscriptions.remove(&id);
            outgoing.extend(state.unsubscribe(id));
        }
        Command::Mutation { path, args, reply } => {
            let (id, message) = state.mutation(&path, args);
            waiting.mutations.insert(id, reply);
            outgoing.extend(message);
        }
        Command::Action { path, args, reply } => match state.action(&path, args) {
            Ok((id, message)) => {
                waiting.actions.insert(id, reply);
                outgoing.push(message);
            }
            Err(error) => {
                let _ = reply.send(Err(error));
            }
        },
        Command::SetAuth(fetcher) => auth.set(fetcher, state, outgoing),
    }
}

async fn drive(
    url: String,
    mut commands: mpsc::UnboundedReceiver<Command>,
    authenticated: watch::Sender<bool>,
) {
    let mut auth = Auth {
        manager: AuthManager::default(),
        fetcher: None,
        fetching: FuturesUnordered::new(),
        latest: 0,
        holding: false,
        refresh_at: None,
        authenticated,
    };
    let mut state = ClientState::new();
    let mut waiting = Waiting::default();
    let mut socket: Option<Socket> = None;
    let mut retries = 0u32;
    let mut next_attempt = Instant::now();
    let mut last_close: Option<String> = None;
    loop {
        if socket.is_none() {
            // Commands queued meanwhile shape what the new socket sends
            // first (and a first token fetch holds it back); the socket's
            // opening messages carry their effect, so theirs are dropped.
            let mut superseded = Vec::new();
            while let Ok(command) = commands.try_recv() {
                handle(
                    command,
                    &mut state,
                    &mut waiting,
                    &mut auth,
                    &mut superseded,
                );
            }
        }
        // While the first token, or the replacement of a refused one, is
        // being fetched, the socket stays down: it must not open without
        // the token, or with the refused one.
        let may_connect = socket.is_none() && !auth.holding;
        if may_connect && Instant::now() >= next_attempt {
            match tokio_tungstenite::connect_async(url.as_str()).await {
                Ok((mut opened, _)) => {
                    let (messages, events) = state.opened(last_close.as_deref());
                    waiting.deliver(events);
                    let mut sent = true;
                    for message in messages {
                        if opened.send(Message::text(message)).await.is_err() {
                            sent = false;
                            break;
                        }
                    }
                    if sent {
                        socket = Some(opened);
                    } else {
                        state.closed();
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "cannot connect; retrying");
                    last_close = Some(error.to_string());
                }
            }
            if socket.is_none() {
                retries += 1;
                next_attempt = Instant::now() + backoff(retries);
            }
        }
        let mut outgoing = Vec::new();
        tokio::select! {
            command = commands.recv() => {
                let Some(command) = command else {
                    if let Some(mut socket) = socket.take() {
                        let _ = socket.close(None).await;
                    }
                    return;
                };
                handle(command, &mut state, &mut waiting, &mut auth, &mut outgoing);
            }
            frame = next_frame(&mut socket) => {
                let reason = match frame {
                    Some(Ok(Message::Text(text))) => match state.receive(&text) {
                        Ok(events) => {
                            let refused = auth.observe(&events, &mut state, &mut outgoing);
                            // Refusals keep backing off.
                            if refused.is_none() {
                                retries = 0;
                            }
                            waiting.deliver(events);
                            refused
                        }
                        Err(reconnect) => Some(reconnect.0),
                    },
                    Some(Ok(Message::Close(frame))) => {
                        let reason = frame.map_or_else(
                            || "closed by the server".to_owned(),
                            |f| f.reason.to_string(),
                        );
                        // A refusal the same state would meet again (a
                        // message the server cannot read, too many queries)
                        // is retried at the longest backoff; the server's
                        // own faults and restarts at the usual one.
                        if ErrorCode::from_close_reason(&reason)
                            .is_some_and(|code| !code.is_server_fault())
                        {
                            retries = retries.max(BACKOFF_DOUBLINGS);
                        }
                        Some(reason)
                    }
                    Some(Ok(_)) => None,
                    Some(Err(error)) => Some(error),
                    None => Some("the connection ended".to_owned()),
                };
                if let Some(reason) = reason {
                    tracing::debug!(%reason, "socket closed; reconnecting");
                    socket = None;
                    state.closed();
                    last_close = Some(reason);
                    retries += 1;
                    next_attempt = Instant::now() + backoff(retries);
                }
            }
            () = tokio::time::sleep_until(next_attempt), if may_connect => {}
            Some(fetched) = auth.fetching.next(), if !auth.fetching.is_empty() => {
                auth.fetched(fetched, &mut state, &mut outgoing);
            }
            () = tokio::time::sleep_until(auth.refresh_at.unwrap_or_else(Instant::now)),
                if auth.refresh_at.is_some() =>
            {
                auth.refresh_at = None;
                auth.apply(AuthStep::Fetch { force_refresh: true }, &mut state, &mut outgoing);
            }
        }
        if let Some(open) = socket.as_mut() {
            for message in outgoing {
                if open.send(Message::text(message)).await.is_err() {
                    socket = None;
                    state.closed();
                    last_close = Some("FailedToSendMessage".into());
                    next_attempt = Instant::now() + backoff(retries);
                    break;
                }
            }
        }
    }
}
