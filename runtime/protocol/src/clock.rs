//! Where time comes from: the system, or, in tests, a hand that moves it,
//! so that token expiry and key caching are tested without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The wall clock and the monotonic clock of whatever holds it. Cheap to
/// clone; clones share the time.
#[derive(Clone, Default)]
pub struct Clock {
    /// `None`: the system's clocks.
    manual: Option<Arc<Manual>>,
}

#[derive(Debug)]
struct Manual {
    wall: SystemTime,
    monotonic: Instant,
    /// How far the hand moved the clock, in nanoseconds.
    advanced: AtomicU64,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.manual {
            None => f.write_str("Clock::System"),
            Some(manual) => f
                .debug_struct("Clock::Manual")
                .field("advanced", &manual.advanced())
                .finish(),
        }
    }
}

impl Manual {
    fn advanced(&self) -> Duration {
        Duration::from_nanos(self.advanced.load(Ordering::SeqCst))
    }
}

impl Clock {
    /// The system's clocks.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// The wall-clock time.
    pub fn now(&self) -> SystemTime {
        match &self.manual {
            None => SystemTime::now(),
            Some(manual) => manual.wall + manual.advanced(),
        }
    }

    /// The monotonic time, for measuring how long something has been.
    pub fn instant(&self) -> Instant {
        match &self.manual {
            None => Instant::now(),
            Some(manual) => manual.monotonic + manual.advanced(),
        }
    }

    /// Time since the Unix epoch (zero for a clock set before it).
    pub fn since_epoch(&self) -> Duration {
        self.now().duration_since(UNIX_EPOCH).unwrap_or_default()
    }

    /// Whole seconds since the Unix epoch, the unit of a JWT's times.
    pub fn unix_seconds(&self) -> u64 {
        self.since_epoch().as_secs()
    }
}

/// A clock that stands still until told to move: tests hand
/// [`ManualClock::clock`] to what they test and call
/// [`ManualClock::advance`] where they would otherwise sleep.
#[derive(Clone, Debug)]
pub struct ManualClock {
    manual: Arc<Manual>,
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl ManualClock {
    /// Starts at the system's time now.
    pub fn new() -> ManualClock {
        ManualClock {
            manual: Arc::new(Manual {
                wall: SystemTime::now(),
                monotonic: Instant::now(),
                advanced: AtomicU64::new(0),
            }),
        }
    }

    pub fn clock(&self) -> Clock {
        Clock {
            manual: Some(self.manual.clone()),
        }
    }

    /// Moves both clocks forward by `by`.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.manual.advanced.fetch_add(nanos, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced() {
        let hand = ManualClock::new();
        let clock = hand.clock();
        let (wall, monotonic) = (clock.now(), clock.instant());
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!((clock.now(), clock.instant()), (wall, monotonic));
        hand.advance(Duration::from_secs(3));
        assert_eq!(clock.now(), wall + Duration::from_secs(3));
        assert_eq!(clock.instant() - monotonic, Duration::from_secs(3));
        assert!(Clock::system().unix_seconds() > 1_600_000_000);
    }
}
