//! Where every guest call runs: admission (a bounded number of top-level
//! calls at once), placement (on the asking thread or the blocking pool),
//! and each function's pace, which placement reads.

use std::sync::Arc;

use capstan_host::{Call, Module, Outcome};
use capstan_protocol::ErrorCode;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::Error;
use crate::limits::ServerLimits;
use crate::pace::Pace;

/// Runs guest code. Guest code is synchronous and CPU-bound: it never runs
/// where it would hold up a runtime thread's other tasks.
#[derive(Debug)]
pub struct Executor {
    /// Bounds concurrent top-level calls; nested calls run under their
    /// action's permit, so actions cannot starve their own children.
    calls: Semaphore,
    /// Runs that average less are quick ([`Pace::quick`]).
    quick_run: std::time::Duration,
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
    pub fn new(limits: &ServerLimits) -> Executor {
        Executor {
            calls: Semaphore::new(limits.max_concurrent_calls.max(1)),
            quick_run: limits.quick_run,
        }
    }

    /// A place among the top-level calls running at once, held for the
    /// call's length.
    pub async fn admit(&self) -> Result<SemaphorePermit<'_>, Error> {
        self.calls
            .acquire()
            .await
            .map_err(|_| Error::new(ErrorCode::Unavailable, "the server is shutting down"))
    }

    /// Admits no more calls.
    pub fn close(&self) {
        self.calls.close();
    }

    /// Runs `call` where `placement` says; an in-place run is timed into
    /// the function's `pace`.
    pub async fn run(
        &self,
        module: Arc<Module>,
        call: Call,
        placement: Placement,
        pace: Option<&Pace>,
    ) -> Result<Outcome, Error> {
        match placement {
            Placement::InPlace => {
                let began = std::time::Instant::now();
                let quick = pace.is_some_and(|pace| pace.quick(self.quick_run));
                let outcome = run_in_place(module, call, quick).await?;
                if let Some(pace) = pace {
                    pace.record(began.elapsed());
                }
                Ok(outcome)
            }
            Placement::Pool => run_blocking(module, call).await,
        }
    }
}

/// Runs `call` on this thread: directly when it is known to be `quick`,
/// otherwise after handing the worker's other tasks to another thread. Off
/// a multi-threaded runtime, on the blocking pool.
async fn run_in_place(module: Arc<Module>, call: Call, quick: bool) -> Result<Outcome, Error> {
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
async fn run_blocking(module: Arc<Module>, call: Call) -> Result<Outcome, Error> {
    tokio::task::spawn_blocking(move || module.run(call))
        .await
        .map_err(|e| Error::internal(format!("function runner failed: {e}")))
}
