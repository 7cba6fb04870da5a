//! The scheduler loop: runs `_scheduled_functions` rows when they are due,
//! a bounded number at once.
//!
//! It keeps the pending rows in memory, earliest first ([`Queue`]): read
//! from the store at start (at most [`QUEUE_LIMIT`] of them; more are read
//! when those are done), then told of new rows by the commits that insert
//! them (a mutation's schedule becomes visible only with its commit).
//! Reading the store's pending range for every run would walk the index
//! entries every finished run left behind, until they are collected. It
//! sleeps until the earliest row is due, a new row commits, or a run ends.
//! At start, actions left `inProgress` by a stopped server are marked
//! failed: an action runs at most once. Pending rows due while the server
//! was down run at once.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use capstan_host::{Failure, FunctionKind, FunctionPath};
use capstan_protocol::Clock;
use capstan_store::{CommitEntry, Document, DocumentId, Store, TableNumber};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use super::jobs::{self, Ending};
use super::tables::SCHEDULED;
use crate::app::App;

/// Pending rows held in memory at most; past it, the rest are read from
/// the store once these are done.
const QUEUE_LIMIT: usize = 100_000;
/// Interrupted actions marked failed per transaction at start.
const RECOVERY_BATCH: usize = 256;
/// How long a stopping server waits for scheduled runs under way.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// The longest sleep, so a clock step never strands a job for long.
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// The pending rows, by due time (whole milliseconds) and id.
#[derive(Debug, Default)]
struct Queue {
    rows: BTreeSet<(i64, DocumentId)>,
    /// Whether `rows` holds every pending row; if not, the ones after the
    /// last are still to be read.
    complete: bool,
    /// The table's number, to tell its rows in commits.
    table: Option<TableNumber>,
}

impl Queue {
    /// Reads the pending rows from the store.
    fn load(store: &Store) -> Result<Queue, String> {
        let mut tx = store.begin();
        let table = tx.catalog().table(SCHEDULED).map(|entry| entry.number).ok();
        let pending = jobs::in_state(&mut tx, jobs::PENDING, None, QUEUE_LIMIT)?;
        Ok(Queue {
            complete: pending.len() < QUEUE_LIMIT,
            rows: pending
                .iter()
                .map(|job| (jobs::scheduled_time(job) as i64, job.id))
                .collect(),
            table,
        })
    }

    /// Takes in the rows a commit inserted; false if the queue must be read
    /// again (the schema changed).
    fn learn(&mut self, store: &Store, entry: &CommitEntry) -> bool {
        if entry.schema_changed || self.table.is_none() {
            return false;
        }
        let inserted = entry.writes.iter().filter(|write| {
            Some(write.id.table()) == self.table
                && !write.deleted
                && write.index_keys.iter().any(|key| key.old.is_none())
        });
        let mut tx = None;
        for write in inserted {
            let tx = tx.get_or_insert_with(|| store.begin());
            let Ok(Some(job)) = tx.get(write.id) else {
                continue;
            };
            if jobs::kind(&job) != jobs::PENDING {
                continue;
            }
            let key = (jobs::scheduled_time(&job) as i64, job.id);
            // Past the limit, a row later than every held one waits for the
            // next read of the store.
            let fits = self.complete || self.rows.last().is_some_and(|last| key < *last);
            if fits {
                self.rows.insert(key);
                if self.rows.len() > QUEUE_LIMIT {
                    self.rows.pop_last();
                    self.complete = false;
                }
            }
        }
        true
    }
}

/// Runs until `shutdown`.
pub async fn run(app: App, clock: Clock, concurrency: usize, shutdown: CancellationToken) {
    let store = app.store().clone();
    let now_ms = || clock.since_epoch().as_secs_f64() * 1000.0;
    // With several nodes, the one holding the leader lease runs the jobs.
    if !until_leader(&store, &shutdown).await {
        return;
    }
    if let Err(error) = recover(&store, now_ms()).await {
        tracing::error!(%error, "could not mark interrupted scheduled actions failed");
    }
    let mut commits = store.subscribe();
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let finished = Arc::new(Notify::new());
    let scheduled = app.services().scheduled.clone();
    let tasks = tokio_util::task::TaskTracker::new();
    // Rows being run: still pending until they end, so a fresh read of the
    // store finds them again.
    let running: Arc<Mutex<HashSet<DocumentId>>> = Arc::default();
    let mut queue: Option<Queue> = None;
    loop {
        if !store.leads() {
            tracing::warn!("no longer the leader: leaving scheduled functions to the node that is");
            queue = None;
            if !until_leader(&store, &shutdown).await {
                break;
            }
            // The previous leader's runs may have been cut short.
            if let Err(error) = recover(&store, now_ms()).await {
                tracing::error!(%error, "could not mark interrupted scheduled actions failed");
            }
        }
        let held = match queue.take() {
            Some(held) if !held.rows.is_empty() || held.complete => held,
            _ => match Queue::load(&store) {
                Ok(loaded) => loaded,
                Err(error) => {
                    tracing::error!(%error, "reading the scheduled functions failed");
                    Queue::default()
                }
            },
        };
        let mut held = held;
        let now = now_ms() as i64;
        while let Some(&(at, id)) = held.rows.first() {
            if at > now {
                break;
            }
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                break;
            };
            held.rows.pop_first();
            let fresh = running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(id);
            if !fresh {
                continue;
            }
            let (app, finished, running) = (app.clone(), finished.clone(), running.clone());
            tasks.spawn(async move {
                run_pending(&app, id).await;
                running
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&id);
                drop(permit);
                finished.notify_one();
            });
        }
        let load = &app.services().scheduler_load;
        load.pending
            .store(held.rows.len(), std::sync::atomic::Ordering::Relaxed);
        load.running.store(
            concurrency.max(1) - permits.available_permits(),
            std::sync::atomic::Ordering::Relaxed,
        );
        let sleep = match held.rows.first() {
            Some(&(at, _)) if permits.available_permits() > 0 => {
                Duration::from_millis(u64::try_from(at - now).unwrap_or(0))
            }
            _ => MAX_SLEEP,
        }
        .min(MAX_SLEEP);
        let reload = tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(sleep) => false,
            () = scheduled.notified() => false,
            () = finished.notified() => false,
            entry = commits.recv() => match entry {
                Ok(entry) => !held.learn(&store, &entry),
                // Missed commits: read the store again.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => true,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
        };
        if !reload {
            queue = Some(held);
        }
    }
    // Runs under way get a moment to end; an action still running after it
    // is failed at the next start, as after a crash.
    tasks.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("scheduled runs still going at shutdown were left to end with the process");
    }
}

/// Waits until this node leads (at once with one node); `false` at
/// shutdown.
pub(crate) async fn until_leader(store: &Store, shutdown: &CancellationToken) -> bool {
    while !store.leads() {
        tokio::select! {
            () = shutdown.cancelled() => return false,
            () = tokio::time::sleep(LEADER_POLL) => {}
        }
    }
    !shutdown.is_cancelled()
}

/// How often a node that does not lead checks whether it now does.
const LEADER_POLL: Duration = Duration::from_millis(500);

/// Runs the row `id` if it is still pending.
async fn run_pending(app: &App, id: DocumentId) {
    let job = match app.store().begin().get(id) {
        Ok(Some(job)) if jobs::kind(&job) == jobs::PENDING => job,
        Ok(_) => return,
        Err(error) => {
            tracing::error!(%error, "reading a scheduled function failed");
            return;
        }
    };
    run_job(app, job).await;
}

/// Marks actions a stopped server left running as failed.
async fn recover(store: &Store, now: f64) -> Result<(), String> {
    loop {
        let mut tx = store.begin();
        let stranded = jobs::in_state(&mut tx, jobs::IN_PROGRESS, None, RECOVERY_BATCH)?;
        if stranded.is_empty() {
            return Ok(());
        }
        let count = stranded.len();
        for job in stranded {
            let ending = Ending::Failed(
                "the server stopped while this action ran; it was not run again".into(),
            );
            jobs::end(&mut tx, job, &ending, now)?;
        }
        match store.commit(tx).await {
            Ok(Ok(_)) => tracing::warn!(count, "marked interrupted scheduled actions failed"),
            Ok(Err(_conflict)) => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Runs one due job and records how it ended.
async fn run_job(app: &App, job: Document) {
    let (path, args) = jobs::call(&job);
    let path = FunctionPath::parse(&path);
    let id = job.id;
    let kind = app
        .deployment()
        .and_then(|deployment| deployment.function(&path).map(|(_, info)| info.kind));
    let ending = match kind {
        None => Some(Ending::Failed(format!("{path} no longer exists"))),
        Some(FunctionKind::Query) => Some(Ending::Failed(format!("{path} is a query"))),
        Some(FunctionKind::Action) => {
            // Marked in progress first: a crash from here on leaves it
            // marked, and it is never run twice.
            match claim(app.store(), id).await {
                Ok(true) => match app.run_job(FunctionKind::Action, &path, args, id).await {
                    Ok(result) => Some(match result.result {
                        Ok(_) => Ending::Success,
                        Err(failure) => Ending::Failed(message(failure)),
                    }),
                    Err(error) => Some(Ending::Failed(error.public_message().to_owned())),
                },
                Ok(false) => None,
                Err(error) => {
                    tracing::error!(%error, %path, "could not start a scheduled action");
                    None
                }
            }
        }
        Some(FunctionKind::Mutation) => {
            match app.run_job(FunctionKind::Mutation, &path, args, id).await {
                // Its success was recorded in its own commit.
                Ok(result) if result.result.is_ok() => None,
                Ok(result) => match result.result {
                    Err(Failure::Function { message, .. })
                        if message == "the scheduled run was canceled" =>
                    {
                        None
                    }
                    Err(failure) => Some(Ending::Failed(message(failure))),
                    Ok(_) => None,
                },
                Err(error) if error.code() == capstan_protocol::ErrorCode::Unavailable => {
                    // Shutting down: it stays pending and runs after the restart.
                    None
                }
                Err(error) => Some(Ending::Failed(error.public_message().to_owned())),
            }
        }
    };
    if let Some(ending) = ending
        && let Err(error) = finish(app.store(), id, &ending).await
    {
        tracing::error!(%error, %path, "could not record how a scheduled function ended");
    }
}

fn message(failure: Failure) -> String {
    failure.into_public().message
}

/// Marks a pending action in progress; false if it is no longer pending.
async fn claim(store: &Store, id: DocumentId) -> Result<bool, String> {
    super::transact(store, |tx| {
        let pending = tx
            .get(id)
            .map_err(|e| e.to_string())?
            .is_some_and(|row| jobs::kind(&row) == jobs::PENDING);
        if pending {
            jobs::start(tx, id)?;
        }
        Ok(pending)
    })
    .await
}

/// Records a run's end, unless it was canceled or ended meanwhile.
async fn finish(store: &Store, id: DocumentId, ending: &Ending) -> Result<(), String> {
    super::transact(store, |tx| {
        let Some(row) = tx.get(id).map_err(|e| e.to_string())? else {
            return Ok(());
        };
        if matches!(jobs::kind(&row), jobs::PENDING | jobs::IN_PROGRESS) {
            let now = tx.now_ms();
            jobs::end(tx, row, ending, now)?;
        }
        Ok(())
    })
    .await
}
