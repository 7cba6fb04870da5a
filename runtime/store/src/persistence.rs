//! The seam between the store and the bytes on disk: an ordered key-value
//! map with atomic batches and an explicit sync. MVCC, indexes and
//! transactions are built above it, so every engine behaves the same.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::RwLock;

use capstan_protocol::Timestamp;

use crate::error::{Error, Result};

pub type KvPair = (Vec<u8>, Vec<u8>);
pub type KvIter<'a> = Box<dyn Iterator<Item = Result<KvPair>> + Send + 'a>;

/// One atomic group of writes.
#[derive(Debug, Default)]
pub struct Batch {
    pub ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Batch {
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push((key, Some(value)));
    }

    pub fn remove(&mut self, key: Vec<u8>) {
        self.ops.push((key, None));
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

pub trait Persistence: Send + Sync + 'static {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Entries with keys in `[start, end)`, ascending, or descending when
    /// `reverse`. The iterator reads a consistent view of each key but may
    /// observe batches applied while it runs; the MVCC layer above filters by
    /// timestamp, so that is harmless.
    fn scan(&self, start: Bound<Vec<u8>>, end: Bound<Vec<u8>>, reverse: bool) -> KvIter<'_>;

    /// Applies the batch atomically: after a crash, either all of it or
    /// none of it is present. Not durable until [`Persistence::sync`].
    fn write(&self, batch: Batch) -> Result<()>;

    /// Makes every write that returned before this call durable.
    fn sync(&self) -> Result<()>;

    /// For each `[start, end]` range, its first entry: what reading one
    /// version of each of many documents takes. One request on engines
    /// that [prefer batches](Persistence::prefers_batches).
    fn first_in_ranges(&self, ranges: &[(Vec<u8>, Vec<u8>)]) -> Result<Vec<Option<KvPair>>> {
        ranges
            .iter()
            .map(|(start, end)| {
                self.scan(
                    Bound::Included(start.clone()),
                    Bound::Included(end.clone()),
                    false,
                )
                .next()
                .transpose()
            })
            .collect()
    }

    /// Whether each read costs a round trip, so that readers should batch
    /// them ([`Persistence::first_in_ranges`]).
    fn prefers_batches(&self) -> bool {
        false
    }

    /// The commit log of an engine that several nodes share, which then
    /// orders every commit; `None` for an engine one process owns.
    fn shared_log(&self) -> Option<&dyn SharedLog> {
        None
    }
}

/// The serialisation point of an engine shared by several nodes: a lock on
/// the commit timestamp and a log of every commit, from every node.
///
/// A node commits by taking the lock ([`SharedLog::lock`]), which hands it
/// every commit after the newest it knows; it validates its transactions
/// against those, stamps them after the log's last timestamp, and writes
/// documents, index entries and log rows in the same database transaction
/// ([`LockedLog::commit`]). Commits are thus totally ordered by timestamp,
/// and the log read under the lock has no gaps.
pub trait SharedLog: Send + Sync {
    /// Takes the commit lock (waiting for other nodes' commits to finish).
    /// A holder idle for longer than `hold` loses it (a hung node must not
    /// stop the others); a schema change's backfill asks for longer.
    fn lock(&self, after: Timestamp, hold: std::time::Duration) -> Result<Box<dyn LockedLog + '_>>;

    /// The commits after `after` already made, oldest first, at most
    /// `limit`, without taking the lock.
    fn read_after(&self, after: Timestamp, limit: usize) -> Result<LogRead>;

    /// Waits until another node may have committed, or `timeout` passed.
    fn wait(&self, timeout: std::time::Duration);

    /// The newest timestamp in the log.
    fn last_ts(&self) -> Result<Timestamp>;

    /// The newest timestamp and the catalog in force at it, read together
    /// (what a node starts from).
    fn state(&self) -> Result<(Timestamp, Option<Vec<u8>>)>;

    /// Removes log rows older than `before`; readers that knew less than
    /// that will start over.
    fn prune(&self, before: Timestamp) -> Result<usize>;

    /// Whether this node may run work that must happen once across all
    /// nodes (collection, the scheduler): a lease held while it lives.
    fn leader(&self) -> bool;
}

/// Commits read from a shared log.
#[derive(Debug, Default)]
pub struct LogRead {
    /// Encoded with [`crate::commit_codec`], oldest first.
    pub commits: Vec<Vec<u8>>,
    /// Rows at or before this were pruned: a reader that knew less than it
    /// missed some.
    pub pruned_through: Timestamp,
}

/// The commit lock, held; dropping it without committing rolls back.
pub trait LockedLog {
    /// The newest timestamp committed by any node.
    fn last_ts(&self) -> Timestamp;

    /// Every commit after the `after` given to [`SharedLog::lock`].
    fn read(&mut self) -> Result<LogRead>;

    /// Writes `batch` and the encoded `log` rows (`(ts, entry)`, ascending)
    /// and releases the lock. An error leaves it unknown whether the
    /// commit happened; a later read of the log tells.
    fn commit(self: Box<Self>, batch: Batch, log: Vec<(Timestamp, Vec<u8>)>) -> Result<()>;
}

/// A scan read a page at a time: `fetch(lower, upper, limit)` answers up to
/// `limit` entries in scan order, and the next page resumes after the last
/// key; `next_limit(limit, page)` sizes each page after the one before.
pub(crate) fn paged_scan<'a>(
    start: Bound<Vec<u8>>,
    end: Bound<Vec<u8>>,
    reverse: bool,
    first_limit: usize,
    mut fetch: impl FnMut(Bound<Vec<u8>>, Bound<Vec<u8>>, usize) -> Result<Vec<KvPair>> + Send + 'a,
    mut next_limit: impl FnMut(usize, &[KvPair]) -> usize + Send + 'a,
) -> KvIter<'a> {
    let (mut lower, mut upper) = (start, end);
    let mut limit = first_limit.max(1);
    let mut buffer: std::vec::IntoIter<KvPair> = Vec::new().into_iter();
    let mut done = false;
    Box::new(std::iter::from_fn(move || {
        loop {
            if let Some(pair) = buffer.next() {
                return Some(Ok(pair));
            }
            if done {
                return None;
            }
            let page = match fetch(lower.clone(), upper.clone(), limit) {
                Ok(page) => page,
                Err(e) => {
                    done = true;
                    return Some(Err(e));
                }
            };
            done = page.len() < limit;
            limit = next_limit(limit, &page).max(1);
            if let Some((last, _)) = page.last() {
                if reverse {
                    upper = Bound::Excluded(last.clone());
                } else {
                    lower = Bound::Excluded(last.clone());
                }
            }
            buffer = page.into_iter();
        }
    }))
}

/// An in-memory engine for unit tests. Nothing survives the process.
#[derive(Debug, Default)]
pub struct MemoryPersistence {
    map: RwLock<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemoryPersistence {
    pub fn new() -> Self {
        MemoryPersistence::default()
    }
}

/// How many entries a memory scan copies per lock acquisition.
const CHUNK: usize = 128;

impl Persistence for MemoryPersistence {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let map = self
            .map
            .read()
            .map_err(|_| Error::Storage("lock poisoned".into()))?;
        Ok(map.get(key).cloned())
    }

    fn scan(&self, start: Bound<Vec<u8>>, end: Bound<Vec<u8>>, reverse: bool) -> KvIter<'_> {
        // Copies a chunk at a time under the lock and resumes after the last
        // key, so no lock is held while the caller iterates.
        let fetch = move |lower: Bound<Vec<u8>>, upper: Bound<Vec<u8>>, limit: usize| {
            let map = self
                .map
                .read()
                .map_err(|_| Error::Storage("lock poisoned".into()))?;
            let range = map.range::<Vec<u8>, _>((lower, upper));
            let copy = |(k, v): (&Vec<u8>, &Vec<u8>)| (k.clone(), v.clone());
            Ok(if reverse {
                range.rev().take(limit).map(copy).collect()
            } else {
                range.take(limit).map(copy).collect()
            })
        };
        paged_scan(start, end, reverse, CHUNK, fetch, |_, _| CHUNK)
    }

    fn write(&self, batch: Batch) -> Result<()> {
        let mut map = self
            .map
            .write()
            .map_err(|_| Error::Storage("lock poisoned".into()))?;
        for (key, value) in batch.ops {
            match value {
                Some(value) => map.insert(key, value),
                None => map.remove(&key),
            };
        }
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }
}
