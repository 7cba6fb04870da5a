//! How long a function's recent runs took, which decides where its next
//! run goes (see [`crate::executor::Placement`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long a function's recent runs took. A query whose runs are quick on
/// average may run on the thread that asks for it, with no hand-off; any
/// other runs where a long run holds up no other task.
#[derive(Debug, Default)]
pub struct Pace {
    runs: AtomicU64,
    /// An exponentially weighted moving average of the run time, in
    /// microseconds (each run weighs 1/8), so one run slowed down by the
    /// machine does not change the verdict and a run of slow ones does.
    average: AtomicU64,
}

impl Pace {
    /// Whether the function has run, and on average in less than `quick`
    /// ([`crate::limits::ServerLimits::quick_run`]).
    pub fn quick(&self, quick: Duration) -> bool {
        self.runs.load(Ordering::Relaxed) > 0
            && self.average.load(Ordering::Relaxed) < quick.as_micros() as u64
    }

    pub fn record(&self, took: Duration) {
        let took = took.as_micros().min(u64::MAX.into()) as u64;
        let first = self.runs.fetch_add(1, Ordering::Relaxed) == 0;
        // Concurrent runs may lose an update to each other; the average
        // stays an average of recent runs.
        let average = self.average.load(Ordering::Relaxed);
        let next = if first {
            took
        } else {
            average - average / 8 + took / 8
        };
        self.average.store(next, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUICK: Duration = Duration::from_millis(1);

    #[test]
    fn a_function_is_quick_once_its_runs_average_under_the_limit() {
        let pace = Pace::default();
        // Nothing known yet.
        assert!(!pace.quick(QUICK));
        pace.record(Duration::from_micros(200));
        assert!(pace.quick(QUICK));
        // One run slowed down by the machine does not change the verdict.
        pace.record(Duration::from_millis(3));
        assert!(pace.quick(QUICK));
        // A run of slow ones does, and quick runs bring it back.
        for _ in 0..8 {
            pace.record(Duration::from_millis(5));
        }
        assert!(!pace.quick(QUICK));
        for _ in 0..40 {
            pace.record(Duration::from_micros(200));
        }
        assert!(pace.quick(QUICK));
        // A function that hangs is not quick again for a long while.
        pace.record(Duration::from_secs(1));
        for _ in 0..20 {
            pace.record(Duration::from_micros(200));
        }
        assert!(!pace.quick(QUICK));
    }
}
