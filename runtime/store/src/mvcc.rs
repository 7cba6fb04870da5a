//! Reading the store as of one timestamp.

use std::ops::Bound;

use capstan_protocol::Timestamp;

use crate::catalog::{IndexInfo, IndexKind};
use crate::document::Document;
use crate::error::{Error, Result};
use crate::id::DocumentId;
use crate::keys;
use crate::persistence::{KvIter, Persistence};

/// The document `id` as of `ts`, or `None` if it did not exist then.
pub fn read_document(
    persistence: &dyn Persistence,
    id: DocumentId,
    ts: Timestamp,
) -> Result<Option<Document>> {
    let start = keys::document_key(&id, ts);
    let mut end = keys::document_prefix(&id);
    end.extend_from_slice(&[0xff; 8]);
    let mut versions = persistence.scan(Bound::Included(start), Bound::Included(end), false);
    match versions.next().transpose()? {
        None => Ok(None),
        Some((_, value)) => decode_version(id, &value),
    }
}

/// The documents `ids` as of `ts`, in order: one request to the engine.
pub fn read_documents(
    persistence: &dyn Persistence,
    ids: &[DocumentId],
    ts: Timestamp,
) -> Result<Vec<Option<Document>>> {
    let ranges: Vec<(Vec<u8>, Vec<u8>)> = ids
        .iter()
        .map(|id| {
            let mut end = keys::document_prefix(id);
            end.extend_from_slice(&[0xff; 8]);
            (keys::document_key(id, ts), end)
        })
        .collect();
    let found = persistence.first_in_ranges(&ranges)?;
    ids.iter()
        .zip(found)
        .map(|(id, version)| match version {
            None => Ok(None),
            Some((_, value)) => decode_version(*id, &value),
        })
        .collect()
}

/// Fills in the documents of index entries a batch at a time, for engines
/// where each read is a round trip ([`Persistence::prefers_batches`]). The
/// batch grows from 4 to 32 entries, so a query stopping at a small limit
/// reads little past it, and at most 32 documents wait in the buffer.
pub struct WithDocuments<'a, I> {
    inner: I,
    persistence: &'a dyn Persistence,
    ts: Timestamp,
    buffer: std::collections::VecDeque<Result<IndexEntry>>,
    batch: usize,
}

impl<I> std::fmt::Debug for WithDocuments<'_, I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WithDocuments")
            .field("buffered", &self.buffer.len())
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

impl<'a, I: Iterator<Item = Result<IndexEntry>>> WithDocuments<'a, I> {
    pub fn new(inner: I, persistence: &'a dyn Persistence, ts: Timestamp) -> Self {
        WithDocuments {
            inner,
            persistence,
            ts,
            buffer: std::collections::VecDeque::new(),
            batch: 4,
        }
    }

    fn fill(&mut self) {
        let mut entries = Vec::with_capacity(self.batch);
        for item in self.inner.by_ref() {
            let failed = item.is_err();
            entries.push(item);
            if failed || entries.len() >= self.batch {
                break;
            }
        }
        self.batch = (self.batch * 4).min(32);
        let missing: Vec<DocumentId> = entries
            .iter()
            .filter_map(|e| {
                e.as_ref()
                    .ok()
                    .filter(|e| e.document.is_none())
                    .map(|e| e.id)
            })
            .collect();
        if !missing.is_empty() {
            match read_documents(self.persistence, &missing, self.ts) {
                Ok(documents) => {
                    let mut documents = documents.into_iter();
                    for entry in entries.iter_mut().flatten() {
                        if entry.document.is_none() {
                            // A missing document stays `None`: the reader
                            // reports the broken index entry.
                            entry.document = documents.next().flatten();
                        }
                    }
                }
                Err(e) => entries.push(Err(e)),
            }
        }
        self.buffer.extend(entries);
    }
}

impl<I: Iterator<Item = Result<IndexEntry>>> Iterator for WithDocuments<'_, I> {
    type Item = Result<IndexEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buffer.is_empty() {
            self.fill();
        }
        self.buffer.pop_front()
    }
}

pub fn decode_version(id: DocumentId, value: &[u8]) -> Result<Option<Document>> {
    match value.split_first() {
        Some((&keys::DELETED, _)) => Ok(None),
        Some((&keys::PRESENT, bytes)) => Document::decode(id, bytes).map(Some),
        _ => Err(Error::Corrupt(format!(
            "document {id} has a bad version marker"
        ))),
    }
}

/// One live entry of an index at a snapshot: its sort key, the document id,
/// and the stored document when the scan already read it (`by_id` scans do).
#[derive(Debug)]
pub struct IndexEntry {
    pub sort_key: Vec<u8>,
    pub id: DocumentId,
    pub document: Option<Document>,
}

/// The live entries of `index` at `ts` whose sort keys lie in `[lo, hi)`, in
/// ascending order or descending when `reverse`.
///
/// Each entry is stored once per version; entries are grouped by sort key
/// and the newest version at or before `ts` decides whether the entry is
/// live. No sort key is a proper prefix of an upper bound built by the query
/// planner (encodings are prefix-free and sort keys end in a fixed-length
/// id), so `prefix ++ hi` bounds the scan exactly; bounds are still checked
/// per entry.
pub fn scan_index<'a>(
    persistence: &'a dyn Persistence,
    index: &IndexInfo,
    ts: Timestamp,
    lo: &[u8],
    hi: Option<&[u8]>,
    reverse: bool,
) -> impl Iterator<Item = Result<IndexEntry>> + 'a {
    let (prefix, by_id) = match index.kind {
        IndexKind::ById => (vec![keys::DOCUMENTS], true),
        IndexKind::Fields(_) => (keys::index_prefix(index.id), false),
    };
    let mut start = prefix.clone();
    start.extend_from_slice(lo);
    let end = match hi {
        Some(hi) => {
            let mut end = prefix.clone();
            end.extend_from_slice(hi);
            Bound::Excluded(end)
        }
        None => match capstan_protocol::key::prefix_successor(&prefix) {
            Some(end) => Bound::Excluded(end),
            None => Bound::Unbounded,
        },
    };
    let inner = persistence.scan(Bound::Included(start), end, reverse);
    Versions {
        inner,
        strip: prefix.len(),
        ts,
        lo: lo.to_vec(),
        hi: hi.map(<[u8]>::to_vec),
        current: None,
        by_id,
    }
}

/// A version: its commit timestamp and stored value.
type Version = (Timestamp, Vec<u8>);

struct Versions<'a> {
    inner: KvIter<'a>,
    strip: usize,
    ts: Timestamp,
    lo: Vec<u8>,
    hi: Option<Vec<u8>>,
    /// The group being read: its sort key and the newest version at or
    /// before `ts` seen so far.
    current: Option<(Vec<u8>, Option<Version>)>,
    by_id: bool,
}

impl Versions<'_> {
    fn finish_group(&self, group: Vec<u8>, best: Option<Version>) -> Result<Option<IndexEntry>> {
        let Some((_, value)) = best else {
            return Ok(None);
        };
        if group.as_slice() < self.lo.as_slice()
            || self.hi.as_deref().is_some_and(|hi| group.as_slice() >= hi)
        {
            return Ok(None);
        }
        if self.by_id {
            let id = DocumentId::from_bytes(&group)?;
            Ok(decode_version(id, &value)?.map(|document| IndexEntry {
                sort_key: group,
                id,
                document: Some(document),
            }))
        } else {
            match value.first() {
                Some(&keys::PRESENT) => Ok(Some(IndexEntry {
                    id: keys::id_of_sort_key(&group)?,
                    sort_key: group,
                    document: None,
                })),
                Some(&keys::DELETED) => Ok(None),
                _ => Err(Error::Corrupt("bad index entry marker".into())),
            }
        }
    }
}

impl Iterator for Versions<'_> {
    type Item = Result<IndexEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let item = match self.inner.next() {
                Some(item) => item,
                None => {
                    let (group, best) = self.current.take()?;
                    match self.finish_group(group, best) {
                        Ok(Some(entry)) => return Some(Ok(entry)),
                        Ok(None) => continue,
                        Err(e) => return Some(Err(e)),
                    }
                }
            };
            let (key, value) = match item {
                Ok(pair) => pair,
                Err(e) => return Some(Err(e)),
            };
            let (head, version_ts) = match keys::split_version(&key) {
                Ok(split) => split,
                Err(e) => return Some(Err(e)),
            };
            let group = &head[self.strip.min(head.len())..];
            let mut finished = None;
            match &mut self.current {
                Some((current, best)) if current.as_slice() == group => {
                    if version_ts <= self.ts && best.as_ref().is_none_or(|(t, _)| version_ts > *t) {
                        *best = Some((version_ts, value));
                    }
                }
                _ => {
                    let best = (version_ts <= self.ts).then_some((version_ts, value));
                    finished = self.current.replace((group.to_vec(), best));
                }
            }
            if let Some((group, best)) = finished {
                match self.finish_group(group, best) {
                    Ok(Some(entry)) => return Some(Ok(entry)),
                    Ok(None) => {}
                    Err(e) => return Some(Err(e)),
                }
            }
        }
    }
}
