//! Read sets indexed by what they read: documents read by id in a map from
//! id to queries, index ranges per index ordered by their lower bound, so a
//! commit touches only the queries that read what it wrote (and, for
//! ranges, those on the same index starting at or before the written key).

use std::collections::{BTreeMap, HashMap, HashSet};

use capstan_store::read_set::DocumentWrite;
use capstan_store::{DocumentId, IndexId, ReadSet};

use super::QueryHandle;

/// The ranges read on one index, keyed by (lower bound, query, position in
/// the query's read set), with their upper bounds.
pub(super) type RangesOnIndex = BTreeMap<(Vec<u8>, QueryHandle, usize), Option<Vec<u8>>>;

/// Read sets indexed by what they read.
#[derive(Default)]
pub(super) struct ReadSetIndex {
    pub(super) documents: HashMap<DocumentId, HashSet<QueryHandle>>,
    /// Per index: ranges keyed by (lower bound, query, position).
    pub(super) ranges: HashMap<IndexId, RangesOnIndex>,
}

impl ReadSetIndex {
    pub(super) fn insert(&mut self, handle: QueryHandle, read_set: &ReadSet) {
        for id in &read_set.documents {
            self.documents.entry(*id).or_default().insert(handle);
        }
        for (index, ranges) in &read_set.ranges {
            let entries = self.ranges.entry(*index).or_default();
            for (position, range) in ranges.iter().enumerate() {
                entries.insert((range.lo.clone(), handle, position), range.hi.clone());
            }
        }
    }

    pub(super) fn remove(&mut self, handle: QueryHandle, read_set: &ReadSet) {
        for id in &read_set.documents {
            if let Some(handles) = self.documents.get_mut(id) {
                handles.remove(&handle);
                if handles.is_empty() {
                    self.documents.remove(id);
                }
            }
        }
        for (index, ranges) in &read_set.ranges {
            if let Some(entries) = self.ranges.get_mut(index) {
                for (position, range) in ranges.iter().enumerate() {
                    entries.remove(&(range.lo.clone(), handle, position));
                }
                if entries.is_empty() {
                    self.ranges.remove(index);
                }
            }
        }
    }

    /// Adds to `affected` every query that read something in `writes`.
    pub(super) fn affected(&self, writes: &[DocumentWrite], affected: &mut HashSet<QueryHandle>) {
        for write in writes {
            if let Some(handles) = self.documents.get(&write.id) {
                affected.extend(handles.iter().copied());
            }
            for change in &write.index_keys {
                let Some(entries) = self.ranges.get(&change.index) else {
                    continue;
                };
                for key in [change.old.as_deref(), change.new.as_deref()]
                    .into_iter()
                    .flatten()
                {
                    // Ranges starting at or before `key` that end after it.
                    let upper = (key.to_vec(), QueryHandle::MAX, usize::MAX);
                    for ((_, handle, _), hi) in entries.range(..=upper) {
                        if hi.as_deref().is_none_or(|hi| key < hi) {
                            affected.insert(*handle);
                        }
                    }
                }
            }
        }
    }
}
