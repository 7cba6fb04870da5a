//! The subscription manager: every live query of the server, identical
//! ones (same path, arguments and identity) shared across sockets, and a
//! task that after each batch of commits re-runs only the queries whose read
//! sets the commits' writes intersect.
//!
//! Consistency: the manager publishes a timestamp `ts` together with a
//! result for every live query, each valid at `ts` (it was computed at `ts`,
//! or at an earlier timestamp with no intersecting commit since). Sockets
//! read results and `ts` under one lock, so every Transition they build is
//! one snapshot.
//!
//! Sockets subscribe and unsubscribe under the manager's state lock, with
//! no hop to its task. A query nobody holds yet runs on the task of the
//! socket that asks for it, with no lock held, so a slow query holds up no
//! other socket. It runs at the published timestamp; its result is taken
//! only if no commit processed since (a bounded history of them is kept,
//! including those of a refresh under way) wrote something the query read,
//! and nothing invalidated every result meanwhile (a new `epoch`).
//! Otherwise the socket runs it again once the commit that overtook it is
//! published, and after a few tries (`SyncLimits::socket_runs`) leaves it to
//! the manager's next refresh, which runs it at its own timestamp. While one
//! socket runs a query, others asking for the same one wait for it, so
//! identical queries are still computed once. A refresh does not hold the
//! state while its queries run either.
//!
//! A query no socket holds any more stays, idle, with its result and read
//! set (within `SyncLimits::idle_queries` and `idle_query_bytes`), until a
//! commit writes something it read: then it is dropped, not re-run. A new
//! subscription to it is answered at once, which is how a client that
//! subscribes, reads one result and unsubscribes (a one-shot query) is
//! served again without running the function.
//!
//! Read sets are indexed: documents read by id in a map from id to queries,
//! index ranges per index ordered by their lower bound, so a commit touches
//! only the queries that read what it wrote (and, for ranges, those on the
//! same index starting at or before the written key).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use capstan_protocol::Timestamp;
use capstan_store::read_set::{CommitEntry, DocumentWrite};
use capstan_store::{DocumentId, IndexId, ReadSet};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Notify, broadcast, watch};

use capstan_protocol::sync::QueryOutcome;
use capstan_protocol::{ErrorCode, FunctionFailure};

use super::{Identity, SyncLimits};
use crate::app::{App, Caller, public_result};
use crate::executor::Placement;

/// Identifies one shared query inside the manager.
pub type QueryHandle = u64;

/// What makes two subscriptions the same query.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QueryKey {
    pub path: capstan_host::FunctionPath,
    /// Convex JSON text, normalised (sorted keys).
    pub args: String,
    pub identity: Identity,
}

/// Commits the manager remembers for checking results computed on sockets.
const HISTORY_COMMITS: usize = 1024;
/// The most document writes those commits may hold together.
const HISTORY_WRITES: usize = 64 * 1024;

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

/// Every query the manager holds, indexed by what it read.
struct State {
    queries: HashMap<QueryHandle, LiveQuery>,
    index: ReadSetIndex,
    next_handle: QueryHandle,
    idle: IdleQueries,
    /// Published with the results; see [`Published::epoch`].
    epoch: u64,
    history: History,
    /// The refresh under way computes every result afresh: no result
    /// computed on a socket is taken until it is published.
    restarting: bool,
    /// Subscriptions whose runs on sockets kept going stale: the next
    /// refresh runs them at its timestamp.
    pending: Vec<Pending>,
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
                history: History::default(),
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
                if let Some(read_set) = read_set
                    && state.takes(ts, epoch, &read_set)
                {
                    return Some(state.insert(&self.shared, key, subscriber, outcome, read_set));
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

struct LiveQuery {
    key: QueryKey,
    /// Per socket: how to wake it, and how many of its query ids hold this.
    subscribers: HashMap<u64, (Arc<Notify>, usize)>,
    read_set: ReadSet,
    /// Set while no socket holds the query: its place in `IdleQueries`.
    idle: Option<u64>,
}

/// The idle queries, least recently dropped first, within their bounds.
#[derive(Default)]
struct IdleQueries {
    max_queries: usize,
    max_bytes: usize,
    /// By the order they went idle: the query and its result's size.
    order: BTreeMap<u64, (QueryHandle, usize)>,
    bytes: usize,
    next: u64,
}

impl IdleQueries {
    /// Records `handle` as idle, if its result of `size` bytes fits;
    /// returns its place, and the queries to drop to stay within bounds.
    fn push(&mut self, handle: QueryHandle, size: usize) -> (Option<u64>, Vec<QueryHandle>) {
        if self.max_queries == 0 || size > self.max_bytes {
            return (None, Vec::new());
        }
        let place = self.next;
        self.next += 1;
        self.order.insert(place, (handle, size));
        self.bytes += size;
        let mut evicted = Vec::new();
        while self.order.len() > self.max_queries || self.bytes > self.max_bytes {
            let Some((_, (oldest, size))) = self.order.pop_first() else {
                break;
            };
            self.bytes -= size;
            evicted.push(oldest);
        }
        (Some(place), evicted)
    }

    fn remove(&mut self, place: u64) {
        if let Some((_, size)) = self.order.remove(&place) {
            self.bytes -= size;
        }
    }
}

/// The commits the manager processed since `floor`, for checking results
/// computed on sockets; bounded by [`HISTORY_COMMITS`] and
/// [`HISTORY_WRITES`].
#[derive(Default)]
struct History {
    commits: VecDeque<Arc<CommitEntry>>,
    writes: usize,
    /// Every processed commit after this is in `commits`.
    floor: Timestamp,
}

impl History {
    fn push(&mut self, entry: Arc<CommitEntry>) {
        self.writes += entry.writes.len();
        self.commits.push_back(entry);
        while self.commits.len() > HISTORY_COMMITS || self.writes > HISTORY_WRITES {
            let Some(oldest) = self.commits.pop_front() else {
                break;
            };
            self.writes -= oldest.writes.len();
            self.floor = self.floor.max(oldest.ts);
        }
    }

    /// Forgets everything up to `ts`: every result is computed afresh.
    fn restart(&mut self, ts: Timestamp) {
        self.commits.clear();
        self.writes = 0;
        self.floor = ts;
    }

    /// Whether a result computed at `ts` with `read_set` is still valid
    /// after every commit processed so far.
    fn still_valid(&self, ts: Timestamp, read_set: &ReadSet) -> bool {
        ts >= self.floor
            && self
                .commits
                .iter()
                .rev()
                .take_while(|entry| entry.ts > ts)
                .all(|entry| {
                    !entry.schema_changed && read_set.intersection(&entry.writes).is_none()
                })
    }
}

impl State {
    /// Whether a result computed at `ts` in `epoch`, having read
    /// `read_set`, is valid at the published timestamp and after the
    /// refresh under way, if any.
    fn takes(&self, ts: Timestamp, epoch: u64, read_set: &ReadSet) -> bool {
        epoch == self.epoch && !self.restarting && self.history.still_valid(ts, read_set)
    }

    /// Adds `subscriber` to the query of `key`, if it is held.
    fn join(
        &mut self,
        shared: &Shared,
        key: &QueryKey,
        subscriber: &Subscriber,
    ) -> Option<QueryHandle> {
        let handle = *shared
            .published
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys
            .get(key)?;
        let query = self.queries.get_mut(&handle)?;
        query
            .subscribers
            .entry(subscriber.socket)
            .or_insert_with(|| (subscriber.notify.clone(), 0))
            .1 += 1;
        if let Some(place) = query.idle.take() {
            self.idle.remove(place);
            shared.stats.reused.fetch_add(1, Ordering::Relaxed);
        }
        Some(handle)
    }

    /// Holds a new query for `subscriber`, with a result valid at the
    /// published timestamp, and publishes it.
    fn insert(
        &mut self,
        shared: &Shared,
        key: QueryKey,
        subscriber: &Subscriber,
        outcome: QueryOutcome,
        read_set: ReadSet,
    ) -> QueryHandle {
        let handle = self.next_handle;
        self.next_handle += 1;
        self.index.insert(handle, &read_set);
        {
            let mut published = shared
                .published
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            published.keys.insert(key.clone(), handle);
            published.results.insert(handle, Arc::new(outcome));
        }
        self.queries.insert(
            handle,
            LiveQuery {
                key,
                subscribers: HashMap::from([(subscriber.socket, (subscriber.notify.clone(), 1))]),
                read_set,
                idle: None,
            },
        );
        handle
    }

    /// Keeps the query of `handle`, which no socket holds any more, while
    /// its result is valid and within the idle bounds; drops it otherwise.
    fn make_idle(&mut self, shared: &Shared, handle: QueryHandle) {
        if self.queries.get(&handle).is_none_or(|q| q.idle.is_some()) {
            return;
        }
        // Failures are not kept: one may come from the server, not the
        // function.
        let size = shared
            .published
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .results
            .get(&handle)
            .and_then(|outcome| {
                outcome
                    .result
                    .as_ref()
                    .ok()
                    .map(|value| value.as_str().len())
            });
        let Some(size) = size else {
            self.drop_query(shared, handle);
            return;
        };
        let (place, evicted) = self.idle.push(handle, size);
        match place {
            Some(place) => {
                if let Some(query) = self.queries.get_mut(&handle) {
                    query.idle = Some(place);
                }
            }
            None => self.drop_query(shared, handle),
        }
        for handle in evicted {
            self.drop_query(shared, handle);
        }
    }

    /// Forgets the query of `handle`, which no socket holds.
    fn drop_query(&mut self, shared: &Shared, handle: QueryHandle) {
        let Some(query) = self.queries.remove(&handle) else {
            return;
        };
        if let Some(place) = query.idle {
            self.idle.remove(place);
        }
        self.index.remove(handle, &query.read_set);
        let mut published = shared
            .published
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        published.keys.remove(&query.key);
        published.results.remove(&handle);
    }
}

/// The manager's task: re-runs the queries each batch of commits affects.
struct Manager {
    app: App,
    commits: broadcast::Receiver<Arc<CommitEntry>>,
    generations: watch::Receiver<u64>,
    shared: Arc<Shared>,
}

/// What invalidated the published results.
enum Invalidation {
    /// Commits up to `ts`, with their writes.
    Commits(Timestamp, Vec<Arc<CommitEntry>>),
    /// Everything must run again at the store's latest timestamp.
    All,
    /// Nothing changed; subscriptions are pending.
    Pending,
}

impl Manager {
    async fn run(mut self) {
        loop {
            let invalidation = tokio::select! {
                entry = self.commits.recv() => match entry {
                    Ok(entry) => {
                        let mut entries = vec![entry];
                        let mut lagged = false;
                        loop {
                            match self.commits.try_recv() {
                                Ok(entry) => entries.push(entry),
                                Err(broadcast::error::TryRecvError::Lagged(_)) => lagged = true,
                                Err(_) => break,
                            }
                        }
                        if lagged {
                            Invalidation::All
                        } else {
                            let ts = entries.iter().map(|e| e.ts).max().unwrap_or_default();
                            Invalidation::Commits(ts, entries)
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => Invalidation::All,
                    // The store closed: nothing will change any more.
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                changed = self.generations.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    Invalidation::All
                }
                () = self.shared.wake.notified() => Invalidation::Pending,
            };
            self.refresh(invalidation).await;
        }
    }

    fn published_ts(&self) -> Timestamp {
        self.shared
            .published
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .ts
    }

    /// Re-runs the invalidated queries at the new timestamp, runs the
    /// pending subscriptions there too, and publishes. The state is not held
    /// while they run: sockets subscribe meanwhile.
    async fn refresh(&mut self, invalidation: Invalidation) {
        let restart = matches!(invalidation, Invalidation::All);
        let (ts, runs, pending) = {
            let mut state = self.shared.state.lock().await;
            let (ts, affected): (Timestamp, Vec<QueryHandle>) = match invalidation {
                Invalidation::Commits(ts, entries) => {
                    let mut affected = HashSet::new();
                    let mut everything = false;
                    for entry in &entries {
                        if entry.schema_changed {
                            everything = true;
                            break;
                        }
                        state.index.affected(&entry.writes, &mut affected);
                    }
                    for entry in entries {
                        state.history.push(entry);
                    }
                    if everything {
                        (ts, state.queries.keys().copied().collect())
                    } else {
                        (ts, affected.into_iter().collect())
                    }
                }
                Invalidation::All => (
                    self.app.store().latest_ts(),
                    state.queries.keys().copied().collect(),
                ),
                Invalidation::Pending => (self.published_ts(), Vec::new()),
            };
            let ts = ts.max(self.published_ts());
            let mut runs = Vec::new();
            for handle in affected {
                let Some(query) = state.queries.get(&handle) else {
                    continue;
                };
                // Nobody waits for an idle query's new result.
                if query.idle.is_some() {
                    state.drop_query(&self.shared, handle);
                    continue;
                }
                runs.push((Some(handle), query.key.clone()));
            }
            // Pending subscriptions to one key share a run.
            let mut pending: HashMap<QueryKey, Vec<Pending>> = HashMap::new();
            for waiting in std::mem::take(&mut state.pending) {
                pending
                    .entry(waiting.key.clone())
                    .or_default()
                    .push(waiting);
            }
            runs.extend(pending.keys().map(|key| (None, key.clone())));
            state.restarting = restart;
            (ts, runs, pending)
        };
        let mut running = tokio::task::JoinSet::new();
        let mut by_task = HashMap::new();
        for (handle, key) in runs {
            let app = self.app.clone();
            let stats = self.shared.stats.clone();
            let task = running.spawn({
                let key = key.clone();
                async move { execute(&app, &stats, &key, ts, Placement::Pool).await }
            });
            by_task.insert(task.id(), (handle, key));
        }
        let mut fresh = Vec::new();
        while let Some(joined) = running.join_next_with_id().await {
            let (id, run) = match joined {
                Ok((id, run)) => (id, run),
                // A run that failed outside the function runner still
                // yields a result: the old one is not valid at `ts`.
                Err(error) => {
                    tracing::error!(%error, "a subscribed query's run failed");
                    (error.id(), (server_error(), None))
                }
            };
            if let Some(task) = by_task.remove(&id) {
                fresh.push((task, run));
            }
        }

        let mut state = self.shared.state.lock().await;
        let state = &mut *state;
        let mut changed = Vec::new();
        let mut idle = Vec::new();
        let mut new = Vec::new();
        {
            let mut published = self
                .shared
                .published
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for ((handle, key), (outcome, read_set)) in fresh {
                let Some(handle) = handle else {
                    new.push((key, outcome, read_set));
                    continue;
                };
                // Dropped meanwhile, or idle: nobody waits for it.
                let Some(query) = state.queries.get_mut(&handle) else {
                    continue;
                };
                if query.idle.is_some() {
                    idle.push(handle);
                    continue;
                }
                // When the server failed to run it, the query keeps what it
                // read before, so that the next commit there runs it again.
                if let Some(read_set) = read_set {
                    state.index.remove(handle, &query.read_set);
                    state.index.insert(handle, &read_set);
                    query.read_set = read_set;
                }
                if published
                    .results
                    .get(&handle)
                    .is_none_or(|old| **old != outcome)
                {
                    published.results.insert(handle, Arc::new(outcome));
                    changed.push(handle);
                }
            }
            published.ts = ts;
            if restart {
                // With the timestamp, so a socket reading the new epoch
                // runs at or after this refresh's timestamp.
                published.epoch += 1;
                state.epoch = published.epoch;
                state.history.restart(ts);
            }
        }
        for handle in idle {
            state.drop_query(&self.shared, handle);
        }
        // The pending subscriptions, whose runs are valid at `ts`.
        let mut pending = pending;
        for (key, outcome, read_set) in new {
            for waiting in pending.remove(&key).unwrap_or_default() {
                let handle = match state.join(&self.shared, &key, &waiting.subscriber) {
                    Some(handle) => handle,
                    None => state.insert(
                        &self.shared,
                        key.clone(),
                        &waiting.subscriber,
                        outcome.clone(),
                        read_set.clone().unwrap_or_default(),
                    ),
                };
                let _ = waiting.reply.send(handle);
            }
        }
        state.restarting = false;
        self.shared.updates.send_replace(ts);
        // Only the sockets holding a changed query wake up.
        for handle in changed {
            if let Some(query) = state.queries.get(&handle) {
                for (notify, _) in query.subscribers.values() {
                    notify.notify_one();
                }
            }
        }
    }
}

/// What a run produced: the outcome as clients see it, and what the query
/// read, or `None` when the server failed to run it (then the outcome is a
/// "Server Error" and says nothing of the data).
type Run = (QueryOutcome, Option<ReadSet>);

/// Runs the query of `key` at `ts`.
async fn execute(
    app: &App,
    stats: &Stats,
    key: &QueryKey,
    ts: Timestamp,
    placement: Placement,
) -> Run {
    stats.executions.fetch_add(1, Ordering::Relaxed);
    match app
        .query_at(
            &key.path,
            key.args.clone(),
            ts,
            Caller::new(key.identity.clone()),
            placement,
        )
        .await
    {
        Ok(run) => (
            QueryOutcome::new(public_result(run.result), run.log_lines),
            Some(run.read_set),
        ),
        Err(error) => {
            tracing::error!(path = %key.path, %error, "a subscribed query could not run");
            (server_error(), None)
        }
    }
}

fn server_error() -> QueryOutcome {
    let message = ErrorCode::InternalServerError
        .public_message()
        .unwrap_or_default();
    QueryOutcome::new(Err(FunctionFailure::new(message)), Vec::new())
}

/// The ranges read on one index, keyed by (lower bound, query, position in
/// the query's read set), with their upper bounds.
type RangesOnIndex = BTreeMap<(Vec<u8>, QueryHandle, usize), Option<Vec<u8>>>;

/// Read sets indexed by what they read.
#[derive(Default)]
struct ReadSetIndex {
    documents: HashMap<DocumentId, HashSet<QueryHandle>>,
    /// Per index: ranges keyed by (lower bound, query, position).
    ranges: HashMap<IndexId, RangesOnIndex>,
}

impl ReadSetIndex {
    fn insert(&mut self, handle: QueryHandle, read_set: &ReadSet) {
        for id in &read_set.documents {
            self.documents.entry(*id).or_default().insert(handle);
        }
        for (index, ranges) in &read_set.ranges {
            let entries = self.ranges.entry(*index).or_default();
            for (position, range) in ranges.iter().enumerate() {
                entries.insert((range.lo.clone(), handle, position), range.hi.clone());
            }
        }
    }

    fn remove(&mut self, handle: QueryHandle, read_set: &ReadSet) {
        for id in &read_set.documents {
            if let Some(handles) = self.documents.get_mut(id) {
                handles.remove(&handle);
                if handles.is_empty() {
                    self.documents.remove(id);
                }
            }
        }
        for (index, ranges) in &read_set.ranges {
            if let Some(entries) = self.ranges.get_mut(index) {
                for (position, range) in ranges.iter().enumerate() {
                    entries.remove(&(range.lo.clone(), handle, position));
                }
                if entries.is_empty() {
                    self.ranges.remove(index);
                }
            }
        }
    }

    /// Adds to `affected` every query that read something in `writes`.
    fn affected(&self, writes: &[DocumentWrite], affected: &mut HashSet<QueryHandle>) {
        for write in writes {
            if let Some(handles) = self.documents.get(&write.id) {
                affected.extend(handles.iter().copied());
            }
            for change in &write.index_keys {
                let Some(entries) = self.ranges.get(&change.index) else {
                    continue;
                };
                for key in [change.old.as_deref(), change.new.as_deref()]
                    .into_iter()
                    .flatten()
                {
                    // Ranges starting at or before `key` that end after it.
                    let upper = (key.to_vec(), QueryHandle::MAX, usize::MAX);
                    for ((_, handle, _), hi) in entries.range(..=upper) {
                        if hi.as_deref().is_none_or(|hi| key < hi) {
                            affected.insert(*handle);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle(max_queries: usize, max_bytes: usize) -> IdleQueries {
        IdleQueries {
            max_queries,
            max_bytes,
            ..IdleQueries::default()
        }
    }

    #[test]
    fn idle_queries_stay_within_their_count_and_bytes() {
        let mut queries = idle(2, 100);
        assert_eq!(queries.push(1, 40), (Some(0), vec![]));
        assert_eq!(queries.push(2, 40), (Some(1), vec![]));
        // A third pushes out the least recently dropped.
        assert_eq!(queries.push(3, 10), (Some(2), vec![1]));
        // 40 + 10 + 60 bytes is over 100: the oldest goes.
        let (place, evicted) = queries.push(4, 60);
        assert_eq!((place.is_some(), evicted), (true, vec![2]));
        assert_eq!(queries.bytes, 70);
        // A result larger than the whole budget is not kept, and pushes
        // nothing out.
        assert_eq!(queries.push(5, 101), (None, vec![]));
        assert_eq!(queries.bytes, 70);
        // Taken back by a subscription: its bytes are freed.
        queries.remove(2);
        assert_eq!((queries.bytes, queries.order.len()), (60, 1));
    }

    fn commit(ts: u64, ids: &[DocumentId]) -> Arc<CommitEntry> {
        Arc::new(CommitEntry {
            ts: Timestamp::new(ts),
            writes: ids
                .iter()
                .map(|id| DocumentWrite {
                    id: *id,
                    deleted: false,
                    index_keys: Vec::new(),
                })
                .collect(),
            schema_changed: false,
        })
    }

    #[test]
    fn a_result_is_taken_only_if_no_later_commit_wrote_what_it_read() {
        let table = capstan_store::TableNumber(1);
        let (read, other) = (
            DocumentId::new(table, [1; 16]),
            DocumentId::new(table, [2; 16]),
        );
        let mut read_set = ReadSet::default();
        read_set.record_document(read);
        let mut history = History::default();
        history.push(commit(10, &[read]));
        history.push(commit(20, &[other]));
        // Computed after the commit that wrote it, or before one that did
        // not: still valid.
        assert!(history.still_valid(Timestamp::new(10), &read_set));
        assert!(history.still_valid(Timestamp::new(15), &read_set));
        // Computed before a commit that wrote it: stale.
        assert!(!history.still_valid(Timestamp::new(5), &read_set));
        // A schema change makes every earlier result stale.
        history.push(Arc::new(CommitEntry {
            schema_changed: true,
            ..(*commit(30, &[])).clone()
        }));
        assert!(!history.still_valid(Timestamp::new(20), &read_set));
        assert!(history.still_valid(Timestamp::new(30), &read_set));
        // After a restart nothing earlier is known, so nothing earlier is
        // taken.
        history.restart(Timestamp::new(40));
        assert!(!history.still_valid(Timestamp::new(35), &ReadSet::default()));
        assert!(history.still_valid(Timestamp::new(40), &read_set));
    }

    #[test]
    fn the_history_forgets_its_oldest_commits_and_what_they_covered() {
        let id = DocumentId::new(capstan_store::TableNumber(1), [1; 16]);
        let mut history = History::default();
        for ts in 1..=HISTORY_COMMITS as u64 + 10 {
            history.push(commit(ts, &[]));
        }
        assert_eq!(history.commits.len(), HISTORY_COMMITS);
        assert_eq!(history.floor, Timestamp::new(10));
        // Before the floor, a result cannot be checked: it is not taken.
        assert!(!history.still_valid(Timestamp::new(9), &ReadSet::default()));
        assert!(history.still_valid(Timestamp::new(10), &ReadSet::default()));
        // Bounded by writes too.
        history.push(commit(5_000, &[id]));
        history.push(commit(5_001, &vec![id; HISTORY_WRITES]));
        assert_eq!(history.commits.len(), 1);
        assert_eq!(history.writes, HISTORY_WRITES);
        assert_eq!(history.floor, Timestamp::new(5_000));
    }

    #[test]
    fn no_idle_queries_are_kept_when_turned_off() {
        let mut queries = idle(0, 100);
        assert_eq!(queries.push(1, 1), (None, vec![]));
        assert!(queries.order.is_empty());
    }
}
