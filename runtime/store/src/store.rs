//! The store's handle and the state its parts share.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use capstan_protocol::Timestamp;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::catalog::Catalog;
use crate::clock_reads::ClockReads;
use crate::committer::{CommitRequest, Committer, Request, SchemaChange};
use crate::error::{Conflict, Error, Result};
use crate::gc::{self, GcStats};
use crate::keys;
use crate::limits::StoreConfig;
use crate::persistence::{MemoryPersistence, Persistence};
use crate::read_set::CommitEntry;
use crate::schema::Schema;
use crate::sled_engine::SledPersistence;
use crate::transaction::Transaction;
use crate::write_log::{self, Truncated, WriteLog};

/// State shared by the handle, transactions, the committer and the collector.
pub(crate) struct Shared {
    pub persistence: Arc<dyn Persistence>,
    pub config: StoreConfig,
    pub write_log: WriteLog,
    state: Mutex<State>,
    /// The published timestamp, for callers that wait for one.
    published: tokio::sync::watch::Sender<Timestamp>,
    /// Set when a write or sync failed: what is on disk is then unknown, so
    /// the store refuses further commits rather than risk exposing a
    /// half-acknowledged one.
    failure: Mutex<Option<String>>,
}

/// What readers need to begin, changed together under one lock so that a
/// snapshot's timestamp and catalog always match.
struct State {
    /// The newest commit readers may see.
    ts: Timestamp,
    catalog: Arc<Catalog>,
    /// Open snapshots and how many readers hold each; the collector keeps
    /// every version they can see.
    active: BTreeMap<Timestamp, usize>,
    /// Versions before this may have been collected: no snapshot may open
    /// below it.
    gc_floor: Timestamp,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every critical section only assigns plain data; a panic inside one
        // cannot leave the state half-changed.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn latest_ts(&self) -> Timestamp {
        self.state().ts
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.state().catalog.clone()
    }

    /// Makes a commit visible to new readers.
    pub fn publish(&self, ts: Timestamp, catalog: Option<Arc<Catalog>>) {
        let mut state = self.state();
        state.ts = ts;
        if let Some(catalog) = catalog {
            state.catalog = catalog;
        }
        drop(state);
        self.published.send_replace(ts);
    }

    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn fail(&self, reason: String) {
        tracing::error!(%reason, "storage failure; the store stops accepting commits");
        *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason);
    }

    /// The oldest timestamp whose versions must survive collection, and
    /// raises the floor below which no snapshot may open.
    pub fn gc_horizon(&self) -> Timestamp {
        let mut state = self.state();
        let retention = u64::try_from(self.config.retention.as_nanos()).unwrap_or(u64::MAX);
        let mut horizon = state.ts.saturating_sub_nanos(retention);
        if let Some((&oldest, _)) = state.active.first_key_value() {
            horizon = horizon.min(oldest);
        }
        state.gc_floor = state.gc_floor.max(horizon);
        horizon
    }

    /// Opens a snapshot at the newest commit, which is always readable: the
    /// collector's floor and the catalog's start never pass it.
    fn open_latest_snapshot(self: &Arc<Self>) -> (SnapshotGuard, Arc<Catalog>) {
        let mut state = self.state();
        let ts = state.ts;
        self.register(&mut state, ts)
    }

    fn open_snapshot_at(self: &Arc<Self>, ts: Timestamp) -> Result<(SnapshotGuard, Arc<Catalog>)> {
        let mut state = self.state();
        let oldest = state.gc_floor.max(Timestamp::new(state.catalog.since));
        if ts < oldest || ts > state.ts {
            return Err(Error::SnapshotTooOld {
                requested: ts,
                oldest,
            });
        }
        Ok(self.register(&mut state, ts))
    }

    fn register(
        self: &Arc<Self>,
        state: &mut State,
        ts: Timestamp,
    ) -> (SnapshotGuard, Arc<Catalog>) {
        *state.active.entry(ts).or_default() += 1;
        (
            SnapshotGuard {
                shared: self.clone(),
                ts,
            },
            state.catalog.clone(),
        )
    }
}

/// How long [`Store::refresh`] waits for this node to catch up.
const REFRESH_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long the catch-up thread waits for a notification before it looks
/// at the shared log anyway (a notification lost to a reconnect).
const CATCH_UP_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// On a shared engine: wakes the committer to learn other nodes' commits
/// whenever the log says there are some. Ends with the store.
fn spawn_catch_up(shared: Arc<Shared>, commits: mpsc::WeakSender<Request>) -> Result<()> {
    std::thread::Builder::new()
        .name("capstan-catch-up".into())
        .spawn(move || {
            loop {
                if let Some(log) = shared.persistence.shared_log() {
                    log.wait(CATCH_UP_POLL);
                }
                let Some(sender) = commits.upgrade() else {
                    return;
                };
                if let Err(mpsc::error::TrySendError::Closed(_)) = sender.try_send(Request::CatchUp)
                {
                    return;
                }
            }
        })?;
    Ok(())
}

/// An open snapshot; while it lives, the versions it sees are kept.
pub(crate) struct SnapshotGuard {
    shared: Arc<Shared>,
    pub ts: Timestamp,
}

impl Drop for SnapshotGuard {
    fn drop(&mut self) {
        let mut state = self.shared.state();
        if let Some(count) = state.active.get_mut(&self.ts) {
            *count -= 1;
            if *count == 0 {
                state.active.remove(&self.ts);
            }
        }
    }
}

/// A handle to an open store. Clones share the store; it closes when the last
/// handle is dropped or [`Store::close`] is called.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
    commits: mpsc::Sender<Request>,
    /// On a shared engine, the newest timestamp read from the database.
    clock_reads: Option<Arc<ClockReads>>,
    threads: Arc<Threads>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("latest_ts", &self.shared.latest_ts())
            .finish_non_exhaustive()
    }
}

/// The committer and collector threads. Dropping the last handle closes
/// their channels, which ends them.
struct Threads {
    committer: Mutex<Option<JoinHandle<()>>>,
    collector: Mutex<Option<(std::sync::mpsc::Sender<()>, JoinHandle<()>)>>,
}

impl Store {
    /// Opens (or creates) the sled store in `dir`.
    pub fn open(dir: &Path, config: StoreConfig) -> Result<Store> {
        Store::with_persistence(
            Arc::new(SledPersistence::open(dir, config.cache_bytes)?),
            config,
        )
    }

    /// Opens (or creates) the store in a PostgreSQL database, shared with
    /// every other node opened on it.
    pub fn open_postgres(
        postgres: &crate::postgres::PostgresConfig,
        config: StoreConfig,
    ) -> Result<Store> {
        Store::with_persistence(
            crate::postgres::PostgresPersistence::open(postgres)?,
            config,
        )
    }

    /// A store that lives in memory only, for tests.
    pub fn open_in_memory(config: StoreConfig) -> Result<Store> {
        Store::with_persistence(Arc::new(MemoryPersistence::new()), config)
    }

    pub fn with_persistence(
        persistence: Arc<dyn Persistence>,
        config: StoreConfig,
    ) -> Result<Store> {
        let (last_ts, catalog) = match persistence.shared_log() {
            Some(log) => {
                let (last_ts, catalog) = log.state()?;
                let catalog = match catalog {
                    Some(bytes) => crate::committer::parse_catalog(&bytes)?,
                    None => Catalog::default(),
                };
                (last_ts, catalog)
            }
            None => {
                let last_ts = match persistence.get(keys::LAST_TS)? {
                    None => Timestamp::MIN,
                    Some(bytes) => {
                        let bytes: [u8; 8] = bytes
                            .try_into()
                            .map_err(|_| Error::Corrupt("last commit timestamp".into()))?;
                        Timestamp::new(u64::from_be_bytes(bytes))
                    }
                };
                (last_ts, crate::committer::load_catalog(&*persistence)?)
            }
        };
        let (commits, requests) = mpsc::channel(config.commit_queue.max(1));
        let gc_interval = config.gc_interval;
        let shared = Arc::new(Shared {
            persistence,
            write_log: WriteLog::new(
                write_log::Bounds {
                    entries: config.write_log_capacity,
                    bytes: config.write_log_bytes,
                    max_age: config.write_log_max_age,
                },
                last_ts,
            ),
            config,
            state: Mutex::new(State {
                ts: last_ts,
                catalog: Arc::new(catalog),
                active: BTreeMap::new(),
                gc_floor: last_ts,
            }),
            published: tokio::sync::watch::channel(last_ts).0,
            failure: Mutex::new(None),
        });
        let committer = Committer::new(shared.clone(), requests, last_ts);
        let committer = std::thread::Builder::new()
            .name("capstan-committer".into())
            .spawn(move || committer.run())?;
        let clock_reads = match shared.persistence.shared_log() {
            Some(_) => {
                spawn_catch_up(shared.clone(), commits.downgrade())?;
                Some(ClockReads::start(Arc::downgrade(&shared))?)
            }
            None => None,
        };
        let collector = match gc_interval {
            None => None,
            Some(interval) => {
                let (stop, stopped) = std::sync::mpsc::channel::<()>();
                let shared = shared.clone();
                let handle = std::thread::Builder::new()
                    .name("capstan-gc".into())
                    .spawn(move || gc::run_periodically(&shared, interval, &stopped))?;
                Some((stop, handle))
            }
        };
        Ok(Store {
            shared,
            commits,
            clock_reads,
            threads: Arc::new(Threads {
                committer: Mutex::new(Some(committer)),
                collector: Mutex::new(collector),
            }),
        })
    }

    /// Begins a transaction at the newest commit.
    pub fn begin(&self) -> Transaction {
        let (snapshot, catalog) = self.shared.open_latest_snapshot();
        Transaction::new(self.shared.clone(), snapshot, catalog)
    }

    /// Begins a read at an earlier commit, if it is still retained and the
    /// schema has not changed since.
    pub fn begin_at(&self, ts: Timestamp) -> Result<Transaction> {
        let (snapshot, catalog) = self.shared.open_snapshot_at(ts)?;
        Ok(Transaction::new(self.shared.clone(), snapshot, catalog))
    }

    /// Validates `transaction`'s reads against every commit after its
    /// snapshot and, if none intersects, commits its writes durably. A
    /// read-only transaction commits at its snapshot without waiting.
    pub async fn commit(&self, transaction: Transaction) -> Result<Result<Timestamp, Conflict>> {
        if transaction.is_read_only() {
            return Ok(Ok(transaction.snapshot_ts()));
        }
        let (reply, response) = oneshot::channel();
        let request = CommitRequest::from(transaction);
        self.commits
            .send(Request::Commit { request, reply })
            .await
            .map_err(|_| Error::ShutDown)?;
        response.await.map_err(|_| Error::ShutDown)?
    }

    /// [`Store::commit`] for callers outside an async runtime.
    pub fn commit_blocking(&self, transaction: Transaction) -> Result<Result<Timestamp, Conflict>> {
        if transaction.is_read_only() {
            return Ok(Ok(transaction.snapshot_ts()));
        }
        let (reply, response) = oneshot::channel();
        let request = CommitRequest::from(transaction);
        self.commits
            .blocking_send(Request::Commit { request, reply })
            .map_err(|_| Error::ShutDown)?;
        response.blocking_recv().map_err(|_| Error::ShutDown)?
    }

    /// Deploys a schema: creates tables and indexes (backfilling new
    /// indexes), drops indexes no longer declared, and installs validators.
    /// Refused, with nothing changed, if existing documents violate it or
    /// a table it omits still has documents.
    pub async fn apply_schema(&self, schema: Schema) -> Result<SchemaChange> {
        let (reply, response) = oneshot::channel();
        self.commits
            .send(Request::ApplySchema { schema, reply })
            .await
            .map_err(|_| Error::ShutDown)?;
        response.await.map_err(|_| Error::ShutDown)?
    }

    /// The receipt recorded under `key` by a committed transaction, with
    /// that commit's timestamp, unless it expired.
    pub fn receipt(&self, key: &[u8]) -> Result<Option<(Timestamp, Vec<u8>)>> {
        let Some(value) = self.shared.persistence.get(&keys::receipt_key(key))? else {
            return Ok(None);
        };
        let Some((ts, payload)) = value.split_first_chunk::<8>() else {
            return Err(Error::Corrupt(format!(
                "a receipt of {} bytes",
                value.len()
            )));
        };
        Ok(Some((
            Timestamp::new(u64::from_be_bytes(*ts)),
            payload.to_vec(),
        )))
    }

    /// On a shared engine, makes every commit any node made before this call
    /// visible here before returning (one round trip when there is none to
    /// learn), so that a call after another node's acknowledged write reads
    /// it. Immediate on an engine one process owns.
    pub async fn refresh(&self) -> Result<()> {
        let Some(clock) = &self.clock_reads else {
            return Ok(());
        };
        let target = clock.read().await?;
        let mut published = self.shared.published.subscribe();
        if *published.borrow_and_update() >= target {
            return Ok(());
        }
        self.commits
            .send(Request::CatchUp)
            .await
            .map_err(|_| Error::ShutDown)?;
        match tokio::time::timeout(REFRESH_WAIT, published.wait_for(|ts| *ts >= target)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(Error::ShutDown),
            Err(_) => Err(Error::Unavailable(
                "this node could not learn the database's newest commits in time".into(),
            )),
        }
    }

    /// Whether this node does the work that happens once across the nodes
    /// of a shared engine (collection, the scheduler); always on an engine
    /// one process owns.
    pub fn leads(&self) -> bool {
        self.shared
            .persistence
            .shared_log()
            .is_none_or(|log| log.leader())
    }

    /// Whether several nodes share this store's engine.
    pub fn is_shared(&self) -> bool {
        self.shared.persistence.shared_log().is_some()
    }

    /// The newest committed timestamp.
    pub fn latest_ts(&self) -> Timestamp {
        self.shared.latest_ts()
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.shared.catalog()
    }

    /// New commits as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<CommitEntry>> {
        self.shared.write_log.subscribe()
    }

    /// The remembered commits after `ts`, oldest first.
    pub fn commits_after(&self, ts: Timestamp) -> Result<Vec<Arc<CommitEntry>>, Truncated> {
        self.shared.write_log.after(ts)
    }

    /// How many commits and bytes the write log holds.
    pub fn write_log_usage(&self) -> write_log::Usage {
        self.shared.write_log.usage()
    }

    /// Removes versions that no open or future snapshot can see.
    pub fn collect_garbage(&self) -> Result<GcStats> {
        gc::collect(&self.shared)
    }

    /// Stops the committer and the collector and waits for them. Commits
    /// already acknowledged are durable; later calls fail with
    /// [`Error::ShutDown`].
    pub async fn close(&self) -> Result<()> {
        let (reply, done) = oneshot::channel();
        if self.commits.send(Request::Shutdown { reply }).await.is_ok() {
            let _ = done.await;
        }
        let committer = self
            .threads
            .committer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = committer {
            handle
                .join()
                .map_err(|_| Error::Storage("the committer panicked".into()))?;
        }
        let collector = self
            .threads
            .collector
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((stop, handle)) = collector {
            drop(stop);
            handle
                .join()
                .map_err(|_| Error::Storage("the collector panicked".into()))?;
        }
        self.shared.persistence.sync()
    }
}
