//! The manager's task: after each batch of commits it re-runs the live
//! queries whose read sets the commits' writes intersect, runs the
//! subscriptions left to it, and publishes every result at one timestamp.
//! A query the server failed to run is run again after a back-off, until
//! it runs.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use capstan_protocol::Timestamp;
use capstan_protocol::sync::QueryOutcome;
use capstan_protocol::{ErrorCode, FunctionFailure};
use capstan_store::ReadSet;
use capstan_store::read_set::CommitEntry;
use tokio::sync::{broadcast, watch};

use super::{Pending, QueryHandle, QueryKey, Shared, Stats};
use crate::app::{App, Caller, QueryRun, public_result};
use crate::executor::Placement;
use capstan_host::Failure;

/// The manager's task: re-runs the queries each batch of commits affects.
pub(super) struct Manager {
    pub(super) app: App,
    pub(super) commits: broadcast::Receiver<Arc<CommitEntry>>,
    pub(super) generations: watch::Receiver<u64>,
    pub(super) shared: Arc<Shared>,
    pub(super) retries: Retries,
}

/// The live queries the server failed to run, and when each runs again.
#[derive(Default)]
pub(super) struct Retries {
    due: HashMap<QueryHandle, (u32, tokio::time::Instant)>,
}

impl Retries {
    const FIRST: std::time::Duration = std::time::Duration::from_millis(100);
    const LONGEST: std::time::Duration = std::time::Duration::from_secs(30);

    /// Another failure of `handle`: its next run waits twice as long as
    /// the last, up to [`Retries::LONGEST`].
    fn failed(&mut self, handle: QueryHandle) {
        let now = tokio::time::Instant::now();
        let (attempts, at) = self.due.entry(handle).or_insert((0, now));
        let wait = Self::FIRST
            .saturating_mul(1 << (*attempts).min(16))
            .min(Self::LONGEST);
        *attempts += 1;
        *at = now + wait;
    }

    fn succeeded(&mut self, handle: QueryHandle) {
        self.due.remove(&handle);
    }

    fn next(&self) -> Option<tokio::time::Instant> {
        self.due.values().map(|(_, at)| *at).min()
    }

    /// The handles due now.
    fn take_due(&mut self) -> Vec<QueryHandle> {
        let now = tokio::time::Instant::now();
        self.due
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(handle, _)| *handle)
            .collect()
    }
}

/// What invalidated the published results.
enum Invalidation {
    /// Commits up to `ts`, with their writes.
    Commits(Timestamp, Vec<Arc<CommitEntry>>),
    /// Everything must run again at the store's latest timestamp.
    All,
    /// Nothing changed; subscriptions are pending.
    Pending,
    /// Queries the server failed to run are due to run again.
    Retry(Vec<QueryHandle>),
}

impl Manager {
    pub(super) async fn run(mut self) {
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
                () = sleep_until(self.retries.next()), if self.retries.next().is_some() => {
                    Invalidation::Retry(self.retries.take_due())
                }
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
                Invalidation::Retry(handles) => {
                    for handle in &handles {
                        if !state.queries.contains_key(handle) {
                            self.retries.succeeded(*handle);
                        }
                    }
                    (self.published_ts(), handles)
                }
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
                // read before, so that the next commit there runs it again,
                // and runs again after a back-off anyway.
                match read_set {
                    Some(read_set) => {
                        self.retries.succeeded(handle);
                        state.index.remove(handle, &query.read_set);
                        state.index.insert(handle, &read_set);
                        query.read_set = read_set;
                    }
                    None => self.retries.failed(handle),
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
                    None => {
                        let handle = state.insert(
                            &self.shared,
                            key.clone(),
                            &waiting.subscriber,
                            outcome.clone(),
                            read_set.clone().unwrap_or_default(),
                        );
                        // Nothing it read is known: only a retry runs it.
                        if read_set.is_none() {
                            self.retries.failed(handle);
                        }
                        handle
                    }
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
pub(super) type Run = (QueryOutcome, Option<ReadSet>);

/// Runs the query of `key` at `ts`.
pub(super) async fn execute(
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
        // The server's own failure inside the run (a store fault) says
        // nothing of the data either.
        Ok(QueryRun {
            result: Err(Failure::Internal(error)),
            ..
        }) => {
            tracing::error!(path = %key.path, %error, "a subscribed query failed in the server");
            (server_error(), None)
        }
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

/// Sleeps until `at`; with no time set, forever.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
