//! The scheduler loop: runs `_scheduled_functions` rows when they are due,
//! a bounded number at once.
//!
//! It wakes for the earliest pending row's time, for every commit that
//! writes `_scheduled_functions` (a mutation's schedule becomes visible
//! only with its commit), and when a run ends. At start, actions left
//! `inProgress` by a stopped server are marked failed: an action runs at
//! most once. Pending rows due while the server was down run at once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use capstan_host::{Failure, FunctionKind, FunctionPath};
use capstan_protocol::Clock;
use capstan_store::{Document, DocumentId, Store};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use super::jobs::{self, Ending};
use super::tables::SCHEDULED;
use crate::app::App;

/// Rows read per pass.
const BATCH: usize = 256;
/// How long a stopping server waits for scheduled runs under way.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// The longest sleep, so a clock step never strands a job for long.
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// Runs until `shutdown`.
pub async fn run(app: App, clock: Clock, concurrency: usize, shutdown: CancellationToken) {
    let store = app.store().clone();
    let now_ms = || clock.since_epoch().as_secs_f64() * 1000.0;
    if let Err(error) = recover(&store, now_ms()).await {
        tracing::error!(%error, "could not mark interrupted scheduled actions failed");
    }
    let mut commits = store.subscribe();
    let running: Arc<Mutex<HashSet<DocumentId>>> = Arc::default();
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let finished = Arc::new(Notify::new());
    let scheduled = app.services().scheduled.clone();
    let tasks = tokio_util::task::TaskTracker::new();
    loop {
        let now = now_ms();
        let mut tx = store.begin();
        // Enough rows to fill every free place past the ones running (which
        // are still pending while they run).
        let running_now = running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len();
        let wanted = (running_now + permits.available_permits()).min(BATCH);
        let due = match jobs::in_state(&mut tx, jobs::PENDING, Some(now), wanted) {
            Ok(due) => due,
            Err(error) => {
                tracing::error!(%error, "reading due scheduled functions failed");
                Vec::new()
            }
        };
        let mut waiting_for_room = false;
        for job in due {
            if running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains(&job.id)
            {
                continue;
            }
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                waiting_for_room = true;
                break;
            };
            running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(job.id);
            let (app, running, finished) = (app.clone(), running.clone(), finished.clone());
            let now = now_ms();
            tasks.spawn(async move {
                let id = job.id;
                run_job(&app, job, now).await;
                running
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&id);
                drop(permit);
                finished.notify_one();
            });
        }
        let next = if waiting_for_room {
            None
        } else {
            next_due(&store, now).map(|at| Duration::from_secs_f64(((at - now) / 1000.0).max(0.0)))
        };
        let sleep = next.unwrap_or(MAX_SLEEP).min(MAX_SLEEP);
        let table = store
            .catalog()
            .table(SCHEDULED)
            .map(|entry| entry.number)
            .ok();
        let woken = async {
            loop {
                match commits.recv().await {
                    Ok(entry) => {
                        // A new row may be due; a run's end wakes the loop
                        // through `finished` instead.
                        let inserts = table.is_none()
                            || entry.schema_changed
                            || entry.writes.iter().any(|w| {
                                Some(w.id.table()) == table
                                    && !w.deleted
                                    && w.index_keys.iter().any(|key| key.old.is_none())
                            });
                        if inserts {
                            return;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        std::future::pending::<()>().await;
                    }
                }
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(sleep) => {}
            () = woken => {}
            () = scheduled.notified() => {}
            () = finished.notified() => {}
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

/// The time of the earliest pending row after `now`.
fn next_due(store: &Store, now: f64) -> Option<f64> {
    let mut tx = store.begin();
    if tx.catalog().table(SCHEDULED).is_err() {
        return None;
    }
    let query = capstan_store::Query::index(SCHEDULED, super::tables::BY_STATE)
        .eq("state.kind", jobs::PENDING)
        .gt("scheduledTime", now);
    tx.query(&query, Some(1))
        .ok()?
        .first()
        .map(jobs::scheduled_time)
}

/// Marks actions a stopped server left running as failed.
async fn recover(store: &Store, now: f64) -> Result<(), String> {
    loop {
        let mut tx = store.begin();
        let stranded = jobs::in_state(&mut tx, jobs::IN_PROGRESS, None, BATCH)?;
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
async fn run_job(app: &App, job: Document, now: f64) {
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
        && let Err(error) = finish(app.store(), id, &ending, now).await
    {
        tracing::error!(%error, %path, "could not record how a scheduled function ended");
    }
}

fn message(failure: Failure) -> String {
    failure.into_public().message
}

/// Marks a pending action in progress; false if it is no longer pending.
async fn claim(store: &Store, id: DocumentId) -> Result<bool, String> {
    loop {
        let mut tx = store.begin();
        let pending = tx
            .get(id)
            .map_err(|e| e.to_string())?
            .is_some_and(|row| jobs::kind(&row) == jobs::PENDING);
        if !pending {
            return Ok(false);
        }
        jobs::start(&mut tx, id)?;
        match store.commit(tx).await {
            Ok(Ok(_)) => return Ok(true),
            Ok(Err(_conflict)) => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Records a run's end, unless it was canceled or ended meanwhile.
async fn finish(
    store: &Store,
    id: DocumentId,
    ending: &Ending,
    _started: f64,
) -> Result<(), String> {
    loop {
        let mut tx = store.begin();
        let Some(row) = tx.get(id).map_err(|e| e.to_string())? else {
            return Ok(());
        };
        if !matches!(jobs::kind(&row), jobs::PENDING | jobs::IN_PROGRESS) {
            return Ok(());
        }
        let now = tx.now_ms();
        jobs::end(&mut tx, row, ending, now)?;
        match store.commit(tx).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(_conflict)) => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
}
