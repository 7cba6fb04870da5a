//! The commits the manager processed lately, against which a result
//! computed on a socket is checked before it is taken.

use std::collections::VecDeque;
use std::sync::Arc;

use capstan_protocol::Timestamp;
use capstan_store::ReadSet;
use capstan_store::read_set::CommitEntry;

/// The commits the manager processed since `floor`, for checking results
/// computed on sockets; bounded by `max_commits` and `max_writes`
/// ([`crate::limits::SyncLimits::history_commits`] and `history_writes`).
pub(super) struct History {
    pub(super) commits: VecDeque<Arc<CommitEntry>>,
    pub(super) writes: usize,
    pub(super) max_commits: usize,
    pub(super) max_writes: usize,
    /// Every processed commit after this is in `commits`.
    pub(super) floor: Timestamp,
}

impl History {
    pub(super) fn new(max_commits: usize, max_writes: usize) -> History {
        History {
            commits: VecDeque::new(),
            writes: 0,
            max_commits,
            max_writes,
            floor: Timestamp::default(),
        }
    }

    pub(super) fn push(&mut self, entry: Arc<CommitEntry>) {
        self.writes += entry.writes.len();
        self.commits.push_back(entry);
        while self.commits.len() > self.max_commits || self.writes > self.max_writes {
            let Some(oldest) = self.commits.pop_front() else {
                break;
            };
            self.writes -= oldest.writes.len();
            self.floor = self.floor.max(oldest.ts);
        }
    }

    /// Forgets everything up to `ts`: every result is computed afresh.
    pub(super) fn restart(&mut self, ts: Timestamp) {
        self.commits.clear();
        self.writes = 0;
        self.floor = ts;
    }

    /// Whether a result computed at `ts` with `read_set` is still valid
    /// after every commit processed so far.
    pub(super) fn still_valid(&self, ts: Timestamp, read_set: &ReadSet) -> bool {
        ts >= self.floor
            && self
                .commits
                .iter()
                .rev()
                .take_while(|entry| entry.ts > ts)
                .all(|entry| {
                    !entry.schema_changed && read_set.intersection(&entry.writes).is_none()
                })
    }
}

#[cfg(test)]
mod tests {
    const HISTORY_COMMITS: usize = 1024;
    const HISTORY_WRITES: usize = 64 * 1024;

    use capstan_store::DocumentId;
    use capstan_store::read_set::DocumentWrite;

    use super::*;

    fn commit(ts: u64, ids: &[DocumentId]) -> Arc<CommitEntry> {
        Arc::new(CommitEntry {
            ts: Timestamp::new(ts),
            writes: ids
                .iter()
                .map(|id| DocumentWrite {
                    id: *id,
                    deleted: false,
                    index_keys: Vec::new(),
                })
                .collect(),
            schema_changed: false,
        })
    }

    #[test]
    fn a_result_is_taken_only_if_no_later_commit_wrote_what_it_read() {
        let table = capstan_store::TableNumber(1);
        let (read, other) = (
            DocumentId::new(table, [1; 16]),
            DocumentId::new(table, [2; 16]),
        );
        let mut read_set = ReadSet::default();
        read_set.record_document(read);
        let mut history = History::new(HISTORY_COMMITS, HISTORY_WRITES);
        history.push(commit(10, &[read]));
        history.push(commit(20, &[other]));
        // Computed after the commit that wrote it, or before one that did
        // not: still valid.
        assert!(history.still_valid(Timestamp::new(10), &read_set));
        assert!(history.still_valid(Timestamp::new(15), &read_set));
        // Computed before a commit that wrote it: stale.
        assert!(!history.still_valid(Timestamp::new(5), &read_set));
        // A schema change makes every earlier result stale.
        history.push(Arc::new(CommitEntry {
            schema_changed: true,
            ..(*commit(30, &[])).clone()
        }));
        assert!(!history.still_valid(Timestamp::new(20), &read_set));
        assert!(history.still_valid(Timestamp::new(30), &read_set));
        // After a restart nothing earlier is known, so nothing earlier is
        // taken.
        history.restart(Timestamp::new(40));
        assert!(!history.still_valid(Timestamp::new(35), &ReadSet::default()));
        assert!(history.still_valid(Timestamp::new(40), &read_set));
    }

    #[test]
    fn the_history_forgets_its_oldest_commits_and_what_they_covered() {
        let id = DocumentId::new(capstan_store::TableNumber(1), [1; 16]);
        let mut history = History::new(HISTORY_COMMITS, HISTORY_WRITES);
        for ts in 1..=HISTORY_COMMITS as u64 + 10 {
            history.push(commit(ts, &[]));
        }
        assert_eq!(history.commits.len(), HISTORY_COMMITS);
        assert_eq!(history.floor, Timestamp::new(10));
        // Before the floor, a result cannot be checked: it is not taken.
        assert!(!history.still_valid(Timestamp::new(9), &ReadSet::default()));
        assert!(history.still_valid(Timestamp::new(10), &ReadSet::default()));
        // Bounded by writes too.
        history.push(commit(5_000, &[id]));
        history.push(commit(5_001, &vec![id; HISTORY_WRITES]));
        assert_eq!(history.commits.len(), 1);
        assert_eq!(history.writes, HISTORY_WRITES);
        assert_eq!(history.floor, Timestamp::new(5_000));
    }
}
