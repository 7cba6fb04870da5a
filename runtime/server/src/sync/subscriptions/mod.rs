//! The subscription manager: every live query of the server, identical
//! ones (same path, arguments and identity) shared across sockets, re-run
//! only when a commit writes something they read. A query nobody holds yet
//! runs on the socket that asks for it; one nobody holds any more keeps its
//! result until a commit touches it. `README.md` beside this file gives
//! the invariants and the lock order.
//!
//! # Layout
//! - this file: [`Subscriptions`], the sockets' handle: subscribe (running
//!   a new query on the caller's task), unsubscribe, read what is
//!   published.
//! - `manager.rs`: the manager's task, re-running what commits invalidate.
//! - `state.rs`: every query held, live or idle, under the state lock.
//! - `history.rs`: the commits processed lately, which results computed on
//!   sockets are checked against.
//! - `idle.rs`: the results kept for queries nobody holds.
//! - `read_set_index.rs`: read sets indexed by what they read.

mod history;
mod idle;
mod manager;
mod read_set_index;
mod state;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use capstan_host::FunctionPath;
use capstan_protocol::Timestamp;
use capstan_protocol::sync::QueryOutcome;
use tokio::sync::{Notify, watch};

use super::Identity;
use crate::app::App;
use crate::executor::Placement;
use crate::limits::SyncLimits;
use history::History;
use idle::IdleQueries;
use manager::{Manager, execute};
use read_set_index::ReadSetIndex;
use state::State;

/// Identifies one shared query inside the manager.
pub type QueryHandle = u64;

/// What makes two subscriptions the same query.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QueryKey {
    pub path: FunctionPath,
    /// Convex JSON text, normalised (sorted keys).
    pub args: String,
    pub identity: Identity,
}

/// The results of every live query, all valid at `ts`.
#[derive(Debug, Default)]
pub struct Published {
    pub ts: Timestamp,
    /// Changes whenever every result was computed afresh (a deploy, a lagged
    /// write log): a result computed on a socket before that is not taken.
    pub epoch: u64,
    pub results: HashMap<QueryHandle, Arc<QueryOutcome>>,
    /// The query of each key the manager holds, live or idle.
    pub keys: HashMap<QueryKey, QueryHandle>,
}

/// How the manager tells one socket that a query it holds has a new result.
#[derive(Clone, Debug)]
pub struct Subscriber {
    /// Unique per socket.
    pub socket: u64,
    pub notify: Arc<Notify>,
}

impl Subscriber {
    pub fn new() -> Subscriber {
        static SOCKETS: AtomicU64 = AtomicU64::new(0);
        Subscriber {
            socket: SOCKETS.fetch_add(1, Ordering::Relaxed),
            notify: Arc::new(Notify::new()),
        }
    }
}

impl Default for Subscriber {
    fn default() -> Self {
        Subscriber::new()
    }
}

/// What the sockets and the manager's task share.
struct Shared {
    /// Taken by sockets to subscribe and unsubscribe, and by the manager's
    /// task to start and to finish a refresh; held while a query runs only
    /// on the rare path where a socket's runs keep going stale.
    state: tokio::sync::Mutex<State>,
    published: RwLock<Published>,
    /// The queries being run on sockets, with what ends when each run is
    /// over: a socket asking for one of them waits for it.
    running: Mutex<HashMap<QueryKey, watch::Receiver<()>>>,
    updates: watch::Sender<Timestamp>,
    stats: Arc<Stats>,
    /// Wakes the manager's task for `State::pending`.
    wake: Notify,
    /// Cancelled when the manager's task ends (on shutdown): nothing is
    /// published any more, so nobody waits for it.
    closed: tokio_util::sync::CancellationToken,
    /// See [`SyncLimits::socket_runs`].
    socket_runs: usize,
}

/// A subscription a socket leaves to the manager's next refresh.
struct Pending {
    key: QueryKey,
    subscriber: Subscriber,
    reply: tokio::sync::oneshot::Sender<QueryHandle>,
}

/// The sockets' side of the manager.
#[derive(Clone)]
pub struct Subscriptions {
    app: App,
    shared: Arc<Shared>,
    updates: watch::Receiver<Timestamp>,
}

impl std::fmt::Debug for Subscriptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriptions")
            .field("stats", &self.shared.stats)
            .finish_non_exhaustive()
    }
}

/// A socket's claim to run the query of `key`; dropping it lets the sockets
/// waiting for that run go on.
struct Claim {
    key: QueryKey,
    shared: Arc<Shared>,
    _done: watch::Sender<()>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.shared
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.key);
    }
}

/// What a socket does about a query it subscribes to.
enum Step {
    /// The manager holds it.
    Known,
    /// Another socket is running it.
    Wait(watch::Receiver<()>),
    /// Nobody has it: this socket runs it.
    Run(Claim),
}

/// Counters for tests and benchmarks.
#[derive(Debug, Default)]
pub struct Stats {
    /// Query executions for subscriptions: first runs (on sockets or the
    /// manager) and re-runs.
    pub executions: AtomicU64,
    /// Subscriptions answered with the kept result of an idle query.
    pub reused: AtomicU64,
}

impl Subscriptions {
    /// Starts the manager for `app`; it ends when `shutdown` is cancelled
    /// or the store closes. Await the handle before closing the store: the
    /// manager holds the app.
    pub fn start(
        app: App,
        limits: &SyncLimits,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> (Subscriptions, tokio::task::JoinHandle<()>) {
        // Subscribed first: a commit after `ts` is then processed.
        let commits = app.store().subscribe();
        let ts = app.store().latest_ts();
        let (updates_sender, updates) = watch::channel(ts);
        let shared = Arc::new(Shared {
            state: tokio::sync::Mutex::new(State {
                queries: HashMap::new(),
                index: ReadSetIndex::default(),
                next_handle: 0,
                idle: IdleQueries {
                    max_queries: limits.idle_queries,
                    max_bytes: limits.idle_query_bytes,
                    ..IdleQueries::default()
                },
                epoch: 0,
                history: History::new(limits.history_commits, limits.history_writes),
                restarting: false,
                pending: Vec::new(),
            }),
            published: RwLock::new(Published {
                ts,
                ..Published::default()
            }),
            running: Mutex::default(),
            updates: updates_sender,
            stats: Arc::default(),
            wake: Notify::new(),
            closed: tokio_util::sync::CancellationToken::new(),
            socket_runs: limits.socket_runs,
        });
        let manager = Manager {
            retries: manager::Retries::default(),
            commits,
            generations: app.generations(),
            app: app.clone(),
            shared: shared.clone(),
        };
        // Ends on shutdown, or when the store and the app are gone.
        let closed = shared.closed.clone();
        let task = tokio::spawn(async move {
            tokio::select! {
                () = manager.run() => {}
                () = shutdown.cancelled() => {}
            }
            closed.cancel();
        });
        (
            Subscriptions {
                app,
                shared,
                updates,
            },
            task,
        )
    }

    /// Registers interest in `key`; its result is published before this
    /// returns. A query nobody holds runs on the caller's task.
    /// `subscriber` is notified whenever the query's result changes.
    /// `None` once the server is shutting down.
    pub async fn subscribe(&self, key: QueryKey, subscriber: &Subscriber) -> Option<QueryHandle> {
        loop {
            match self.step(&key) {
                Step::Known => {
                    let mut state = self.shared.state.lock().await;
                    if let Some(handle) = state.join(&self.shared, &key, subscriber) {
                        return Some(handle);
                    }
                    // Dropped since it was seen: look again.
                }
                // Done or abandoned: either way, look again.
                Step::Wait(mut done) => {
                    tokio::select! {
                        _ = done.changed() => {}
                        () = self.shared.closed.cancelled() => return None,
                    }
                }
                Step::Run(claim) => return self.run_and_register(key, subscriber, claim).await,
            }
        }
    }

    fn step(&self, key: &QueryKey) -> Step {
        let published = self
            .shared
            .published
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if published.keys.contains_key(key) {
            return Step::Known;
        }
        // Taken with `published` held, so the key cannot be registered in
        // between: a run that ended has registered it first.
        let mut running = self
            .shared
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(done) = running.get(key) {
            return Step::Wait(done.clone());
        }
        let (sender, done) = watch::channel(());
        running.insert(key.clone(), done);
        Step::Run(Claim {
            key: key.clone(),
            shared: self.shared.clone(),
            _done: sender,
        })
    }

    /// Runs the query of `key` here at the published timestamp and holds
    /// it with that result, unless a commit since wrote what it read (or
    /// the server failed to run it): then again once that commit is
    /// published, and after a few tries in the manager's next refresh.
    async fn run_and_register(
        &self,
        key: QueryKey,
        subscriber: &Subscriber,
        _claim: Claim,
    ) -> Option<QueryHandle> {
        let mut updates = self.updates.clone();
        for _ in 0..self.shared.socket_runs {
            updates.borrow_and_update();
            let (ts, epoch) = self.read(|published| (published.ts, published.epoch));
            let (outcome, read_set) =
                execute(&self.app, &self.shared.stats, &key, ts, Placement::InPlace).await;
            {
                let mut state = self.shared.state.lock().await;
                if let Some(handle) = state.join(&self.shared, &key, subscriber) {
                    return Some(handle);
                }
                match read_set {
                    Some(read_set) if state.takes(ts, epoch, &read_set) => {
                        return Some(state.insert(
                            &self.shared,
                            key,
                            subscriber,
                            outcome,
                            read_set,
                        ));
                    }
                    Some(_) => {}
                    // The server failed to run it: the manager runs it,
                    // and again after a back-off until it runs.
                    None => break,
                }
            }
            // At once if it was published during the run.
            tokio::select! {
                _ = updates.changed() => {}
                () = self.shared.closed.cancelled() => return None,
            }
        }
        // Commits keep overtaking the runs: the manager runs it between
        // them.
        let (reply, handle) = tokio::sync::oneshot::channel();
        {
            let mut state = self.shared.state.lock().await;
            if let Some(handle) = state.join(&self.shared, &key, subscriber) {
                return Some(handle);
            }
            state.pending.push(Pending {
                key,
                subscriber: subscriber.clone(),
                reply,
            });
        }
        self.shared.wake.notify_one();
        tokio::select! {
            handle = handle => handle.ok(),
            () = self.shared.closed.cancelled() => None,
        }
    }

    pub async fn unsubscribe(&self, handle: QueryHandle, subscriber: &Subscriber) {
        let mut state = self.shared.state.lock().await;
        let Some(query) = state.queries.get_mut(&handle) else {
            return;
        };
        if let Some((_, count)) = query.subscribers.get_mut(&subscriber.socket) {
            *count -= 1;
            if *count == 0 {
                query.subscribers.remove(&subscriber.socket);
            }
        }
        if query.subscribers.is_empty() {
            state.make_idle(&self.shared, handle);
        }
    }

    /// A receiver that changes whenever a new timestamp is published (for
    /// sockets waiting for a commit to be covered).
    pub fn updates(&self) -> watch::Receiver<Timestamp> {
        self.updates.clone()
    }

    /// Reads the published timestamp and the results of `handles` at once.
    pub fn read<R>(&self, read: impl FnOnce(&Published) -> R) -> R {
        let published = self
            .shared
            .published
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        read(&published)
    }

    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }
}
