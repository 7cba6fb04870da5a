//! The write log: the recent commits in timestamp order, for validating
//! transactions and for subscribers (reactive queries) that need to know
//! what changed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    bounds: Bounds,
}

/// When commits leave the log: whichever bound is passed first.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub entries: usize,
    pub bytes: usize,
    pub max_age: Duration,
}

/// What the log holds now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub entries: usize,
    pub bytes: usize,
}

#[derive(Debug)]
struct LogInner {
    entries: VecDeque<Arc<CommitEntry>>,
    /// The sum of the entries' [`CommitEntry::size`].
    bytes: usize,
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
    pub fn new(bounds: Bounds, opened_at: Timestamp) -> Self {
        WriteLog {
            inner: Mutex::new(LogInner {
                entries: VecDeque::new(),
                bytes: 0,
                forgotten_through: opened_at,
            }),
            sender: broadcast::channel(SUBSCRIBER_BUFFER).0,
            bounds: Bounds {
                entries: bounds.entries.max(1),
                ..bounds
            },
        }
    }

    /// Appends a commit (the committer's job alone, in timestamp order) and
    /// tells subscribers.
    pub fn append(&self, entry: Arc<CommitEntry>) {
        {
            let mut inner = self.lock();
            inner.bytes += entry.size();
            inner.entries.push_back(entry.clone());
            let max_age = u64::try_from(self.bounds.max_age.as_nanos()).unwrap_or(u64::MAX);
            let oldest_kept = entry.ts.nanos().saturating_sub(max_age);
            // The newest entry always stays: it is what subscribers are told.
            while inner.entries.len() > 1
                && (inner.entries.len() > self.bounds.entries
                    || inner.bytes > self.bounds.bytes
                    || inner
                        .entries
                        .front()
                        .is_some_and(|e| e.ts.nanos() < oldest_kept))
            {
                if let Some(old) = inner.entries.pop_front() {
                    inner.bytes -= old.size();
                    inner.forgotten_through = old.ts;
                }
            }
        }
        // No receivers is fine: nobody is subscribed yet.
        let _ = self.sender.send(entry);
    }

    /// Forgets every commit: those up to `ts` can no longer be told apart.
    /// Subscribers get a schema-change entry at `ts`, so they start over.
    pub fn restart_at(&self, ts: Timestamp) {
        {
            let mut inner = self.lock();
            inner.entries.clear();
            inner.bytes = 0;
            inner.forgotten_through = inner.forgotten_through.max(ts);
        }
        let _ = self.sender.send(Arc::new(CommitEntry {
            ts,
            writes: Vec::new(),
            schema_changed: true,
        }));
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

    /// How many commits and bytes the log holds.
    pub fn usage(&self) -> Usage {
        let inner = self.lock();
        Usage {
            entries: inner.entries.len(),
            bytes: inner.bytes,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{DocumentId, IndexId, TableNumber};
    use crate::read_set::{DocumentWrite, IndexKeyChange};

    fn entry(seconds: u64, key_bytes: usize) -> Arc<CommitEntry> {
        Arc::new(CommitEntry {
            ts: Timestamp::new(seconds * 1_000_000_000),
            writes: vec![DocumentWrite {
                id: DocumentId::new(TableNumber(1), [7; 16]),
                deleted: false,
                index_keys: vec![IndexKeyChange {
                    index: IndexId(1),
                    old: None,
                    new: Some(vec![0; key_bytes]),
                }],
            }],
            schema_changed: false,
        })
    }

    fn log(entries: usize, bytes: usize, max_age: u64) -> WriteLog {
        WriteLog::new(
            Bounds {
                entries,
                bytes,
                max_age: Duration::from_secs(max_age),
            },
            Timestamp::MIN,
        )
    }

    #[test]
    fn commits_older_than_the_age_bound_leave() {
        let log = log(1000, usize::MAX, 10);
        for second in 1..=30 {
            log.append(entry(second, 8));
        }
        assert_eq!(log.usage().entries, 11, "seconds 20..=30 stay");
        assert_eq!(
            log.after(Timestamp::new(5_000_000_000)),
            Err(Truncated {
                oldest_known: Timestamp::new(19_000_000_000)
            })
        );
        assert_eq!(
            log.after(Timestamp::new(25_000_000_000)).map(|e| e.len()),
            Ok(5)
        );
    }

    #[test]
    fn the_byte_bound_holds_and_the_count_follows_what_is_kept() {
        let size = entry(1, 1000).size();
        let log = log(1000, size * 4, 3600);
        for second in 1..=100 {
            log.append(entry(second, 1000));
        }
        assert_eq!(
            log.usage(),
            Usage {
                entries: 4,
                bytes: size * 4
            }
        );
        // A single commit larger than the budget is still kept: it is the
        // newest, and subscribers must be able to read it.
        log.append(entry(101, size * 8));
        assert_eq!(log.usage().entries, 1);
    }

    #[test]
    fn the_entry_bound_holds() {
        let log = log(3, usize::MAX, 3600);
        for second in 1..=10 {
            log.append(entry(second, 8));
        }
        assert_eq!(log.usage().entries, 3);
        assert!(log.after(Timestamp::new(7_000_000_000)).is_ok());
        assert!(log.after(Timestamp::new(6_000_000_000)).is_err());
    }
}
