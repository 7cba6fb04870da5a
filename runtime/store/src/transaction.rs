//! Transactions: reads at one snapshot, recorded in a read set; writes
//! buffered until the committer validates and applies them.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use capstan_protocol::key::prefix_successor;
use capstan_protocol::{Object, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::catalog::{Catalog, IndexInfo};
use crate::document::{Document, Patch, validate_fields};
use crate::error::{Error, Result};
use crate::id::DocumentId;
use crate::mvcc;
use crate::query::{Cursor, KeyRange, Order, Page, PaginationOptions, Query, plan_range};
use crate::read_set::ReadSet;
use crate::schema::{CREATION_TIME, ID};
use crate::store::{Shared, SnapshotGuard};

/// A unit of work against one snapshot. Reads see the snapshot plus this
/// transaction's own writes; nothing is visible to others until
/// [`crate::Store::commit`] succeeds. Dropping a transaction discards it.
pub struct Transaction {
    pub(crate) shared: Arc<Shared>,
    pub(crate) snapshot: SnapshotGuard,
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) reads: ReadSet,
    pub(crate) writes: BTreeMap<DocumentId, PendingWrite>,
    /// Receipts to write with the commit (see [`Transaction::record_receipt`]).
    pub(crate) receipts: Vec<(Vec<u8>, Vec<u8>)>,
    /// Source of new ids' random bits; seedable so deterministic functions
    /// can be replayed.
    rng: StdRng,
    /// The transaction's clock in milliseconds: `_creationTime` of inserts.
    now_ms: f64,
    usage: Usage,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("snapshot", &self.snapshot.ts)
            .field("writes", &self.writes.len())
            .finish_non_exhaustive()
    }
}

/// A buffered write: the document as the snapshot had it and as this
/// transaction leaves it (`None` = absent).
#[derive(Clone, Debug)]
pub struct PendingWrite {
    pub old: Option<Document>,
    pub new: Option<Document>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    documents_scanned: usize,
    bytes_read: usize,
    index_ranges: usize,
    bytes_written: usize,
}

struct Execution {
    documents: Vec<Document>,
    /// Sort key of the last entry examined, matching the filter or not.
    last_key: Option<Vec<u8>>,
}

impl Transaction {
    pub(crate) fn new(shared: Arc<Shared>, snapshot: SnapshotGuard, catalog: Arc<Catalog>) -> Self {
        let wall_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        let now_ms = wall_ms.max(snapshot.ts.millis_f64());
        Transaction {
            shared,
            snapshot,
            catalog,
            reads: ReadSet::default(),
            writes: BTreeMap::new(),
            receipts: Vec::new(),
            rng: StdRng::from_entropy(),
            now_ms,
            usage: Usage::default(),
        }
    }

    /// The timestamp this transaction reads at.
    pub fn snapshot_ts(&self) -> Timestamp {
        self.snapshot.ts
    }

    /// The transaction's clock, in milliseconds since the epoch.
    pub fn now_ms(&self) -> f64 {
        self.now_ms
    }

    /// Makes new ids come from `seed` (for deterministic replay). Ids stay
    /// unguessable only if the seed is.
    pub fn seed_ids(&mut self, seed: [u8; 32]) {
        self.rng = StdRng::from_seed(seed);
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn read_set(&self) -> &ReadSet {
        &self.reads
    }

    /// Ends the transaction, keeping what it read (a subscription's
    /// dependencies).
    pub fn into_read_set(self) -> ReadSet {
        self.reads
    }

    pub fn is_read_only(&self) -> bool {
        self.writes.is_empty() && self.receipts.is_empty()
    }

    /// Writes `payload` under `key` atomically with this transaction's
    /// commit, stamped with the commit's timestamp; read back with
    /// [`crate::Store::receipt`]. Receipts are how a mutation is made
    /// exactly-once: its result is recorded in the commit that applied it.
    /// They expire after [`crate::StoreConfig::receipt_retention`].
    pub fn record_receipt(&mut self, key: &[u8], payload: Vec<u8>) {
        self.receipts.push((key.to_vec(), payload));
    }

    /// Parses an id string and checks that its table exists.
    pub fn parse_id(&self, text: &str) -> Result<DocumentId> {
        let id: DocumentId = text.parse()?;
        self.catalog.table_of(&id)?;
        Ok(id)
    }

    pub fn get(&mut self, id: DocumentId) -> Result<Option<Document>> {
        self.catalog.table_of(&id)?;
        self.reads.record_document(id);
        if let Some(write) = self.writes.get(&id) {
            return Ok(write.new.clone());
        }
        let document = mvcc::read_document(&*self.shared.persistence, id, self.snapshot.ts)?;
        self.count_read(document.as_ref())?;
        Ok(document)
    }

    pub fn insert(&mut self, table: &str, fields: Object) -> Result<DocumentId> {
        let number = self.catalog.table(table)?.number;
        let size = validate_fields(&fields, &self.shared.config.limits)?;
        let id = DocumentId::new(number, self.rng.r#gen());
        let document = Document {
            id,
            creation_time: self.now_ms,
            fields,
        };
        self.check_schema(table, &document)?;
        self.count_write(id, size)?;
        self.writes.insert(
            id,
            PendingWrite {
                old: None,
                new: Some(document),
            },
        );
        Ok(id)
    }

    /// Inserts a document as it was elsewhere: with its own id (re-numbered
    /// for `table`) and `_creationTime`. For imports; an id already present
    /// is an error.
    pub fn insert_as(
        &mut self,
        table: &str,
        random: [u8; 16],
        creation_time: f64,
        fields: Object,
    ) -> Result<DocumentId> {
        let number = self.catalog.table(table)?.number;
        let id = DocumentId::new(number, random);
        if self.get(id)?.is_some() {
            return Err(Error::InvalidDocument(format!(
                "document {id} is already in table {table:?}"
            )));
        }
        let size = validate_fields(&fields, &self.shared.config.limits)?;
        let document = Document {
            id,
            creation_time,
            fields,
        };
        self.check_schema(table, &document)?;
        self.count_write(id, size)?;
        self.writes.insert(
            id,
            PendingWrite {
                old: None,
                new: Some(document),
            },
        );
        Ok(id)
    }

    /// Shallow merge: sets the `Some` fields and removes the `None` ones.
    /// `_id` and `_creationTime` may appear only with their current values.
    pub fn patch(&mut self, id: DocumentId, patch: Patch) -> Result<Document> {
        let current = self.get(id)?.ok_or(Error::DocumentNotFound(id))?;
        let mut fields = current.fields.clone();
        for (name, value) in patch {
            if name == ID || name == CREATION_TIME {
                check_system_field(&current, &name, value.as_ref())?;
                continue;
            }
            match value {
                Some(value) => fields.insert(name, value),
                None => fields.remove(&name),
            };
        }
        self.write_existing(current, fields)
    }

    /// Replaces every user field. `_id` and `_creationTime` may appear only
    /// with their current values.
    pub fn replace(&mut self, id: DocumentId, mut fields: Object) -> Result<Document> {
        let current = self.get(id)?.ok_or(Error::DocumentNotFound(id))?;
        for name in [ID, CREATION_TIME] {
            if let Some(value) = fields.remove(name) {
                check_system_field(&current, name, Some(&value))?;
            }
        }
        self.write_existing(current, fields)
    }

    pub fn delete(&mut self, id: DocumentId) -> Result<Document> {
        let current = self.get(id)?.ok_or(Error::DocumentNotFound(id))?;
        self.count_write(id, 0)?;
        self.buffer(current.clone(), None);
        Ok(current)
    }

    fn write_existing(&mut self, current: Document, fields: Object) -> Result<Document> {
        let size = validate_fields(&fields, &self.shared.config.limits)?;
        let document = Document {
            id: current.id,
            creation_time: current.creation_time,
            fields,
        };
        let table = self.catalog.table_of(&current.id)?.to_owned();
        self.check_schema(&table, &document)?;
        self.count_write(current.id, size)?;
        self.buffer(current, Some(document.clone()));
        Ok(document)
    }

    /// Buffers `new` as the document's state. `current` is what `get` just
    /// returned: the snapshot's version unless this transaction already
    /// wrote the document.
    fn buffer(&mut self, current: Document, new: Option<Document>) {
        match self.writes.get_mut(&current.id) {
            Some(write) => write.new = new,
            None => {
                let id = current.id;
                self.writes.insert(
                    id,
                    PendingWrite {
                        old: Some(current),
                        new,
                    },
                );
            }
        }
    }

    fn check_schema(&self, table: &str, document: &Document) -> Result<()> {
        let Some(validator) = &self.catalog.table(table)?.document else {
            return Ok(());
        };
        validator
            .check(&document.to_value(), &*self.catalog)
            .map_err(|reason| Error::SchemaViolation {
                table: table.to_owned(),
                id: document.id.to_string(),
                reason,
            })
    }

    /// The documents of `query`, at most `limit` of them.
    pub fn query(&mut self, query: &Query, limit: Option<usize>) -> Result<Vec<Document>> {
        let index = self.catalog.index(&query.table, query.index_name())?;
        let range = plan_range(&index, query.range())?;
        Ok(self.execute(query, &index, range, limit, false)?.documents)
    }

    /// One page of `query`. The cursor is a position in the index, so
    /// documents inserted between pages are neither skipped nor repeated:
    /// those sorting after the cursor appear on later pages.
    pub fn paginate(&mut self, query: &Query, options: &PaginationOptions) -> Result<Page> {
        let index = self.catalog.index(&query.table, query.index_name())?;
        let mut range = plan_range(&index, query.range())?;
        let cursor = match &options.cursor {
            None => None,
            Some(text) => own_cursor(text, &index, query)?.after,
        };
        if let Some(after) = &cursor {
            match query.order {
                Order::Asc => {
                    let mut start = after.clone();
                    start.push(0);
                    range.lo = range.lo.max(start);
                }
                Order::Desc => {
                    range.hi = Some(match range.hi {
                        Some(hi) => hi.min(after.clone()),
                        None => after.clone(),
                    });
                }
            }
        }
        if let Some(text) = &options.end_cursor {
            // The page a client read before, to its end and no further.
            let end = own_cursor(text, &index, query)?;
            if let Some(last) = &end.after {
                match query.order {
                    Order::Asc => {
                        // Every stored entry of `last`, whatever follows it.
                        if let Some(past) = prefix_successor(last) {
                            range.hi = Some(match range.hi {
                                Some(hi) => hi.min(past),
                                None => past,
                            });
                        }
                    }
                    Order::Desc => range.lo = range.lo.max(last.clone()),
                }
            }
            let execution = self.execute(query, &index, range, None, false)?;
            return Ok(Page {
                page: execution.documents,
                is_done: end.after.is_none(),
                continue_cursor: end.encode(),
            });
        }
        let num_items = options.num_items.max(1);
        let execution = self.execute(query, &index, range, Some(num_items), true)?;
        let is_done = execution.documents.len() < num_items;
        let continue_cursor = Cursor {
            index: index.id,
            order: query.order,
            after: execution.last_key.or(cursor),
        };
        Ok(Page {
            page: execution.documents,
            is_done,
            continue_cursor: continue_cursor.encode(),
        })
    }

    /// Scans `range` of `index`, merging this transaction's own writes into
    /// the snapshot, and records what it read. With `peek`, a full page also
    /// looks at the next entry so that the caller can tell whether more
    /// follow; the read range then covers that entry too.
    fn execute(
        &mut self,
        query: &Query,
        index: &IndexInfo,
        range: KeyRange,
        limit: Option<usize>,
        peek: bool,
    ) -> Result<Execution> {
        if let Some(filter) = &query.filter {
            filter.validate()?;
        }
        self.usage.index_ranges += 1;
        let limits = &self.shared.config.limits;
        if self.usage.index_ranges > limits.max_index_ranges {
            return Err(Error::TransactionLimit {
                what: "index ranges read",
                limit: limits.max_index_ranges,
            });
        }
        let reverse = query.order == Order::Desc;
        let mut pending: Vec<(Vec<u8>, Document)> = self
            .writes
            .values()
            .filter_map(|w| w.new.as_ref())
            .filter(|d| d.id.table() == index.table)
            .map(|d| (index.sort_key(d), d.clone()))
            .filter(|(key, _)| range.contains(key))
            .collect();
        pending.sort_by(|a, b| {
            if reverse {
                b.0.cmp(&a.0)
            } else {
                a.0.cmp(&b.0)
            }
        });
        let mut pending: VecDeque<_> = pending.into();

        let shared = self.shared.clone();
        let ts = self.snapshot.ts;
        let written: std::collections::HashSet<DocumentId> = self.writes.keys().copied().collect();
        let mut snapshot: Box<dyn Iterator<Item = Result<mvcc::IndexEntry>> + '_> =
            if range.is_empty() {
                Box::new(std::iter::empty())
            } else {
                let entries = mvcc::scan_index(
                    &*shared.persistence,
                    index,
                    ts,
                    &range.lo,
                    range.hi.as_deref(),
                    reverse,
                )
                // This transaction's writes replace the snapshot's versions.
                .filter(|entry| !entry.as_ref().is_ok_and(|e| written.contains(&e.id)));
                if shared.persistence.prefers_batches() {
                    Box::new(mvcc::WithDocuments::new(entries, &*shared.persistence, ts))
                } else {
                    Box::new(entries)
                }
            };
        let mut head = snapshot.next().transpose()?;

        let mut documents = Vec::new();
        let mut last_key: Option<Vec<u8>> = None;
        loop {
            let take_pending = match (&head, pending.front()) {
                (None, None) => break,
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (Some(entry), Some((key, _))) => (*key < entry.sort_key) != reverse,
            };
            if limit.is_some_and(|limit| documents.len() >= limit) {
                let read_through = match (peek, take_pending) {
                    (false, _) => last_key.clone(),
                    (true, true) => pending.front().map(|(key, _)| key.clone()),
                    (true, false) => head.as_ref().map(|entry| entry.sort_key.clone()),
                };
                self.record_partial_range(index, &range, read_through, reverse);
                return Ok(Execution {
                    documents,
                    last_key,
                });
            }
            let (key, document) = match (take_pending, head.take()) {
                (true, entry) => {
                    head = entry;
                    let Some(next) = pending.pop_front() else {
                        break;
                    };
                    next
                }
                (false, None) => break,
                (false, Some(entry)) => {
                    head = snapshot.next().transpose()?;
                    let document = match entry.document {
                        Some(document) => document,
                        None => mvcc::read_document(&*shared.persistence, entry.id, ts)?
                            .ok_or_else(|| {
                                Error::Corrupt(format!(
                                    "index {} names missing document {}",
                                    index.name, entry.id
                                ))
                            })?,
                    };
                    self.count_read(Some(&document))?;
                    (entry.sort_key, document)
                }
            };
            last_key = Some(key);
            let keep = match &query.filter {
                Some(filter) => filter.matches(&document.to_value())?,
                None => true,
            };
            if keep {
                documents.push(document);
            }
        }
        self.reads.record_range(index.id, range);
        Ok(Execution {
            documents,
            last_key,
        })
    }

    /// Records the part of `range` read up to and including `through`.
    fn record_partial_range(
        &mut self,
        index: &IndexInfo,
        range: &KeyRange,
        through: Option<Vec<u8>>,
        reverse: bool,
    ) {
        let Some(through) = through else {
            return;
        };
        let read = if reverse {
            KeyRange {
                lo: through,
                hi: range.hi.clone(),
            }
        } else {
            let mut end = through;
            end.push(0);
            KeyRange {
                lo: range.lo.clone(),
                hi: Some(end),
            }
        };
        self.reads.record_range(index.id, read);
    }

    fn count_read(&mut self, document: Option<&Document>) -> Result<()> {
        let limits = &self.shared.config.limits;
        self.usage.documents_scanned += 1;
        self.usage.bytes_read += document.map_or(0, Document::size);
        if self.usage.documents_scanned > limits.max_documents_scanned {
            return Err(Error::TransactionLimit {
                what: "documents read",
                limit: limits.max_documents_scanned,
            });
        }
        if self.usage.bytes_read > limits.max_bytes_read {
            return Err(Error::TransactionLimit {
                what: "bytes read",
                limit: limits.max_bytes_read,
            });
        }
        Ok(())
    }

    fn count_write(&mut self, id: DocumentId, size: usize) -> Result<()> {
        let limits = &self.shared.config.limits;
        self.usage.bytes_written += size;
        let count = self.writes.len() + usize::from(!self.writes.contains_key(&id));
        if count > limits.max_documents_written {
            return Err(Error::TransactionLimit {
                what: "documents written",
                limit: limits.max_documents_written,
            });
        }
        if self.usage.bytes_written > limits.max_bytes_written {
            return Err(Error::TransactionLimit {
                what: "bytes written",
                limit: limits.max_bytes_written,
            });
        }
        Ok(())
    }
}

fn check_system_field(
    current: &Document,
    name: &str,
    value: Option<&capstan_protocol::Value>,
) -> Result<()> {
    let unchanged = match (name, value) {
        (ID, Some(capstan_protocol::Value::String(text))) => *text == current.id.to_string(),
        (CREATION_TIME, Some(capstan_protocol::Value::Float64(t))) => *t == current.creation_time,
        _ => false,
    };
    if unchanged {
        Ok(())
    } else {
        Err(Error::InvalidDocument(format!(
            "system field {name} cannot be changed"
        )))
    }
}

/// `text` decoded, if it is a cursor of `query` over `index`.
fn own_cursor(text: &str, index: &IndexInfo, query: &Query) -> Result<Cursor> {
    let cursor = Cursor::decode(text)?;
    if cursor.index != index.id || cursor.order != query.order {
        return Err(Error::InvalidCursor(
            "the cursor belongs to a different query".to_owned(),
        ));
    }
    Ok(cursor)
}
