//! The write log: the recent commits in timestamp order, for validating
//! transactions and for subscribers (reactive queries) that need to know
//! what changed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use capstan_protocol::Timestamp;
use tokio::sync::broadcast;

use crate::read_set::CommitEntry;

/// How many commits a slow subscriber may fall behind before it is told it
/// lagged (and must recompute from a fresh snapshot).
const SUBSCRIBER_BUFFER: usize = 4096;

#[derive(Debug)]
pub struct WriteLog {
    inner: Mutex<LogInner>,
    sender: broadcast::Sender<Arc<CommitEntry>>,
    capacity: usize,
}

#[derive(Debug)]
struct LogInner {
    entries: VecDeque<Arc<CommitEntry>>,
    /// Every commit at or before this timestamp has left the log (or
    /// happened before the store opened).
    forgotten_through: Timestamp,
}

/// The log no longer holds every commit after the requested timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Truncated {
    pub oldest_known: Timestamp,
}

impl WriteLog {
    pub fn new(capacity: usize, opened_at: Timestamp) -> Self {
        WriteLog {
            inner: Mutex::new(LogInner {
                entries: VecDeque::new(),
                forgotten_through: opened_at,
            }),
            sender: broadcast::channel(SUBSCRIBER_BUFFER).0,
            capacity: capacity.max(1),
        }
    }

    /// Appends a commit (the committer's job alone, in timestamp order) and
    /// tells subscribers.
    pub fn append(&self, entry: Arc<CommitEntry>) {
        {
            let mut inner = self.lock();
            inner.entries.push_back(entry.clone());
            while inner.entries.len() > self.capacity {
                if let Some(old) = inner.entries.pop_front() {
                    inner.forgotten_through = old.ts;
                }
            }
        }
        // No receivers is fine: nobody is subscribed yet.
        let _ = self.sender.send(entry);
    }

    /// Every commit with a timestamp after `ts`, oldest first.
    pub fn after(&self, ts: Timestamp) -> Result<Vec<Arc<CommitEntry>>, Truncated> {
        let inner = self.lock();
        if ts < inner.forgotten_through {
            return Err(Truncated {
                oldest_known: inner.forgotten_through,
            });
        }
        let start = inner.entries.partition_point(|e| e.ts <= ts);
        Ok(inner.entries.range(start..).cloned().collect())
    }

    /// Calls `f` on each commit after `ts` without copying the list; stops at
    /// the first `Some`.
    pub fn find_after<T>(
        &self,
        ts: Timestamp,
        mut f: impl FnMut(&CommitEntry) -> Option<T>,
    ) -> Result<Option<T>, Truncated> {
        let inner = self.lock();
        if ts < inner.forgotten_through {
            return Err(Truncated {
                oldest_known: inner.forgotten_through,
            });
        }
        let start = inner.entries.partition_point(|e| e.ts <= ts);
        Ok(inner.entries.range(start..).find_map(|e| f(e)))
    }

    /// New commits as they happen. A receiver that falls more than a few
    /// thousand commits behind gets `RecvError::Lagged` and should catch up
    /// with [`WriteLog::after`] or start over.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<CommitEntry>> {
        self.sender.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogInner> {
        // The critical sections cannot panic; recover the data if one did.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
