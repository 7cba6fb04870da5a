//! What a transaction read, and what a commit wrote, in the terms needed to
//! decide whether the two intersect.

use std::collections::{BTreeMap, BTreeSet};

use capstan_protocol::Timestamp;

use crate::id::{DocumentId, IndexId};
use crate::query::KeyRange;

/// The reads of one transaction or query: documents read by id, and ranges
/// of index sort keys scanned. A later write that touches any of them could
/// change what was read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadSet {
    pub documents: BTreeSet<DocumentId>,
    pub ranges: BTreeMap<IndexId, Vec<KeyRange>>,
}

impl ReadSet {
    pub fn record_document(&mut self, id: DocumentId) {
        self.documents.insert(id);
    }

    pub fn record_range(&mut self, index: IndexId, range: KeyRange) {
        if !range.is_empty() {
            self.ranges.entry(index).or_default().push(range);
        }
    }

    pub fn range_count(&self) -> usize {
        self.ranges.values().map(Vec::len).sum()
    }

    /// The first write in `writes` that this read set depends on.
    pub fn intersection<'a>(&self, writes: &'a [DocumentWrite]) -> Option<Intersection<'a>> {
        for write in writes {
            if self.documents.contains(&write.id) {
                return Some(Intersection::Document(write.id));
            }
            for change in &write.index_keys {
                let Some(ranges) = self.ranges.get(&change.index) else {
                    continue;
                };
                let hit = ranges.iter().any(|range| {
                    change.old.as_deref().is_some_and(|k| range.contains(k))
                        || change.new.as_deref().is_some_and(|k| range.contains(k))
                });
                if hit {
                    return Some(Intersection::Range(change.index, &write.id));
                }
            }
        }
        None
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intersection<'a> {
    Document(DocumentId),
    Range(IndexId, &'a DocumentId),
}

/// One document written by a commit, with its sort key in every index of its
/// table before and after the write (`by_id` included), so that a reader's
/// ranges can be tested without reading the document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentWrite {
    pub id: DocumentId,
    /// `true` when the commit deleted the document.
    pub deleted: bool,
    pub index_keys: Vec<IndexKeyChange>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexKeyChange {
    pub index: IndexId,
    pub old: Option<Vec<u8>>,
    pub new: Option<Vec<u8>>,
}

/// One entry of the write log: what a commit wrote, at which timestamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitEntry {
    pub ts: Timestamp,
    pub writes: Vec<DocumentWrite>,
    /// The commit applied a new schema: every reader should start over.
    pub schema_changed: bool,
}

impl CommitEntry {
    /// Bytes the entry holds in memory, allocations included: what the write
    /// log counts against its byte budget.
    pub fn size(&self) -> usize {
        let key = |k: &Option<Vec<u8>>| k.as_ref().map_or(0, Vec::capacity);
        size_of::<Self>()
            + self
                .writes
                .iter()
                .map(|write| {
                    size_of::<DocumentWrite>()
                        + write
                            .index_keys
                            .iter()
                            .map(|change| {
                                size_of::<IndexKeyChange>() + key(&change.old) + key(&change.new)
                            })
                            .sum::<usize>()
                })
                .sum::<usize>()
    }
}
