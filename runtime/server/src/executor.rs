//! Where every guest call runs: admission (a bounded number of top-level
//! calls at once, and of actions among them), an instance (every run, top
//! level, nested or a subscription's, waits for one of the engine's
//! instances rather than failing when all are busy), placement (on the
//! asking thread or the blocking pool), and each function's pace, which
//! placement reads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use capstan_host::{Call, Failure, FunctionKind, Module, Outcome as RunOutcome};
use capstan_protocol::ErrorCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};

use crate::error::Error;
use crate::limits::ServerLimits;
use crate::metrics::{Metrics, Outcome};
use crate::pace::Pace;

/// Runs guest code. Guest code is synchronous and CPU-bound: it never runs
/// where it would hold up a runtime thread's other tasks.
#[derive(Debug)]
pub struct Executor {
    /// Bounds concurrent top-level calls; nested calls run under their
    /// action's permit, so actions cannot starve their own children.
    calls: Semaphore,
    /// Bounds the actions among them: an action holds its place for up to
    /// the action time limit, so actions alone never take every place.
    actions: Semaphore,
    /// One permit per instance the engine can hold: a run waits here for
    /// one instead of failing to instantiate.
    instances: Semaphore,
    /// How long a run waits for an instance before it is refused.
    instance_wait: Duration,
    /// Runs that average less are quick ([`Pace::quick`]).
    quick_run: Duration,
    /// Whether log lines stay in the outcome for the caller; they always
    /// go to the server's log.
    logs_to_clients: bool,
    /// Calls waiting for admission, at most `max_waiting`.
    waiting: std::sync::atomic::AtomicUsize,
    max_waiting: usize,
    max_calls: usize,
    max_instances: usize,
    metrics: Metrics,
    /// Each caller's share of the calls running at once: a client past it
    /// waits for its own calls, not for everyone's.
    shares: std::sync::Mutex<std::collections::HashMap<String, Arc<Semaphore>>>,
    per_caller: usize,
}

/// A top-level call's admission, held for its length.
#[derive(Debug)]
pub struct Admission<'a> {
    _share: Option<OwnedSemaphorePermit>,
    _call: SemaphorePermit<'a>,
    _action: Option<SemaphorePermit<'a>>,
}

/// Where a call's guest code runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// On the calling thread, for a single call whose latency someone waits
    /// on (a subscription's first result): no hand-off and wake-up on the
    /// way back. A function whose recent runs were all quick ([`Pace`])
    /// runs there directly; any other first hands the thread's other tasks
    /// to another thread.
    InPlace,
    /// On the blocking pool: for calls that run side by side.
    Pool,
}

impl Executor {
    pub fn new(
        limits: &ServerLimits,
        instances: u32,
        logs_to_clients: bool,
        metrics: Metrics,
    ) -> Executor {
        let calls = limits.max_concurrent_calls.max(1);
        Executor {
            waiting: Default::default(),
            max_waiting: limits.max_waiting_calls,
            max_calls: calls,
            max_instances: (instances as usize).max(1),
            metrics,
            shares: Default::default(),
            per_caller: limits.max_calls_per_caller.clamp(1, calls),
            calls: Semaphore::new(calls),
            actions: Semaphore::new(limits.max_concurrent_actions.clamp(1, calls)),
            instances: Semaphore::new((instances as usize).max(1)),
            instance_wait: limits.instance_wait,
            quick_run: limits.quick_run,
            logs_to_clients,
        }
    }

    /// A place among the top-level calls running at once (and, for an
    /// action, among the actions), held for the call's length. Callers
    /// wait their turn.
    pub async fn admit(
        &self,
        kind: Option<FunctionKind>,
        share: Option<String>,
    ) -> Result<Admission<'_>, Error> {
        use std::sync::atomic::Ordering;
        // The queue of waiting calls is bounded too: past it, refuse.
        if self.calls.available_permits() == 0
            && self.waiting.load(Ordering::Relaxed) >= self.max_waiting
        {
            self.metrics.refused("call_queue");
            return Err(Error::new(
                ErrorCode::TooManyConcurrentRequests,
                "the server is running and queueing as many calls as it holds; try again",
            ));
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let admitted = self.admit_waiting(kind, share).await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        admitted
    }

    /// The semaphore of one caller's share; callers with nothing running
    /// are forgotten when the table grows.
    fn share(&self, key: String) -> Arc<Semaphore> {
        let mut shares = self.shares.lock().unwrap_or_else(|e| e.into_inner());
        if shares.len() >= 4096 && !shares.contains_key(&key) {
            shares.retain(|_, share| Arc::strong_count(share) > 1);
        }
        shares
            .entry(key)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_caller)))
            .clone()
    }

    /// Top-level calls running now, waiting now, and instances in use.
    pub fn load(&self) -> (usize, usize, usize) {
        (
            self.max_calls - self.calls.available_permits(),
            self.waiting.load(std::sync::atomic::Ordering::Relaxed),
            self.max_instances - self.instances.available_permits(),
        )
    }

    async fn admit_waiting(
        &self,
        kind: Option<FunctionKind>,
        share: Option<String>,
    ) -> Result<Admission<'_>, Error> {
        let closed = |_| Error::new(ErrorCode::Unavailable, "the server is shutting down");
        let share = match share {
            Some(key) => Some(self.share(key).acquire_owned().await.map_err(closed)?),
            None => None,
        };
        let action = match kind {
            Some(FunctionKind::Action) => Some(self.actions.acquire().await.map_err(closed)?),
            _ => None,
        };
        let call = self.calls.acquire().await.map_err(closed)?;
        Ok(Admission {
            _share: share,
            _call: call,
            _action: action,
        })
    }

    /// Admits no more calls.
    pub fn close(&self) {
        self.calls.close();
        self.actions.close();
        self.instances.close();
    }

    /// An instance for one run: waited for, up to the instance wait or the
    /// call's deadline, whichever comes first.
    async fn instance(&self, deadline: Option<Instant>) -> Result<SemaphorePermit<'_>, Error> {
        let wait = deadline.map_or(self.instance_wait, |deadline| {
            self.instance_wait
                .min(deadline.saturating_duration_since(Instant::now()))
        });
        match tokio::time::timeout(wait, self.instances.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(Error::new(
                ErrorCode::Unavailable,
                "the server is shutting down",
            )),
            Err(_) => Err({
                self.metrics.refused("instances");
                Error::new(
                    ErrorCode::TooManyConcurrentRequests,
                    format!(
                        "every function instance stayed busy for {} ms; try again",
                        wait.as_millis()
                    ),
                )
            }),
        }
    }

    /// Runs `call` where `placement` says; an in-place run is timed into
    /// the function's `pace`.
    pub async fn run(
        &self,
        module: Arc<Module>,
        call: Call,
        placement: Placement,
        pace: Option<&Pace>,
    ) -> Result<RunOutcome, Error> {
        let _instance = self.instance(call.deadline).await?;
        let path = call.path.clone();
        let kind = call.access.kind();
        let began = Instant::now();
        let mut outcome = match placement {
            Placement::InPlace => {
                let quick = pace.is_some_and(|pace| pace.quick(self.quick_run));
                let outcome = run_in_place(module, call, quick).await?;
                if let Some(pace) = pace {
                    pace.record(began.elapsed());
                }
                outcome
            }
            Placement::Pool => run_blocking(module, call).await?,
        };
        let ended = match &outcome.result {
            Ok(_) => Outcome::success,
            Err(Failure::Internal(_)) => Outcome::fault,
            Err(_) => Outcome::failure,
        };
        self.metrics
            .call(path.as_str(), kind, ended, began.elapsed());
        for line in &outcome.log_lines {
            tracing::info!(target: "capstan::function", function = %path, "{line}");
        }
        if !self.logs_to_clients {
            outcome.log_lines.clear();
        }
        Ok(outcome)
    }
}

impl Executor {
    /// Runs an HTTP action on the blocking pool, as [`Executor::run`] runs
    /// a function.
    pub async fn run_http(
        &self,
        module: Arc<Module>,
        call: Call,
        request: capstan_host::HttpRequest,
    ) -> Result<capstan_host::HttpOutcome, Error> {
        let _instance = self.instance(call.deadline).await?;
        let path = call.path.clone();
        let began = Instant::now();
        let mut outcome = tokio::task::spawn_blocking(move || module.run_http(call, request))
            .await
            .map_err(|e| Error::internal(format!("function runner failed: {e}")))?;
        let ended = match &outcome.result {
            Ok(_) => Outcome::success,
            Err(Failure::Internal(_)) => Outcome::fault,
            Err(_) => Outcome::failure,
        };
        self.metrics
            .call(path.as_str(), FunctionKind::Action, ended, began.elapsed());
        for line in &outcome.log_lines {
            tracing::info!(target: "capstan::function", function = %path, "{line}");
        }
        if !self.logs_to_clients {
            outcome.log_lines.clear();
        }
        Ok(outcome)
    }
}

/// Runs `call` on this thread: directly when it is known to be `quick`,
/// otherwise after handing the worker's other tasks to another thread. Off
/// a multi-threaded runtime, on the blocking pool.
async fn run_in_place(module: Arc<Module>, call: Call, quick: bool) -> Result<RunOutcome, Error> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    if Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread {
        // A panic stays this call's failure, as it would on the pool, and
        // does not unwind into the task that asked.
        let run = std::panic::AssertUnwindSafe(|| module.run(call));
        let outcome = if quick {
            std::panic::catch_unwind(run)
        } else {
            tokio::task::block_in_place(|| std::panic::catch_unwind(run))
        };
        outcome.map_err(|_| Error::internal("function runner failed: it panicked"))
    } else {
        run_blocking(module, call).await
    }
}

/// Runs `call` on the blocking pool.
async fn run_blocking(module: Arc<Module>, call: Call) -> Result<RunOutcome, Error> {
    tokio::task::spawn_blocking(move || module.run(call))
        .await
        .map_err(|e| Error::internal(format!("function runner failed: {e}")))
}
