//! The committer: one thread that validates transactions, assigns commit
//! timestamps, writes, syncs and publishes, in that order.
//!
//! Requests that queue up while one group is being synced form the next
//! group, so concurrent commits share a single sync (group commit) without
//! any added delay for a lone writer.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use capstan_protocol::Timestamp;
use tokio::sync::{mpsc, oneshot};

use crate::catalog::{Catalog, IndexEntry, IndexInfo, IndexKind, TableEntry};
use crate::commit_codec;
use crate::error::{Conflict, ConflictReason, Error, Result};
use crate::id::{DocumentId, IndexId, TableNumber};
use crate::keys;
use crate::mvcc;
use crate::persistence::{Batch, LockedLog, LogRead, Persistence};
use crate::read_set::{CommitEntry, DocumentWrite, IndexKeyChange, Intersection, ReadSet};
use crate::schema::Schema;
use crate::store::Shared;
use crate::transaction::{PendingWrite, Transaction};

pub(crate) type CommitReply = oneshot::Sender<Result<Result<Timestamp, Conflict>>>;

pub(crate) enum Request {
    Commit {
        request: CommitRequest,
        reply: CommitReply,
    },
    ApplySchema {
        schema: Schema,
        reply: oneshot::Sender<Result<SchemaChange>>,
    },
    /// Learn the commits other nodes made (a shared engine only).
    CatchUp,
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// What the committer needs of a transaction.
pub(crate) struct CommitRequest {
    snapshot_ts: Timestamp,
    catalog_version: u64,
    reads: ReadSet,
    writes: BTreeMap<DocumentId, PendingWrite>,
    receipts: Vec<(Vec<u8>, Vec<u8>)>,
}

impl From<Transaction> for CommitRequest {
    fn from(transaction: Transaction) -> Self {
        // The snapshot guard drops here: validation uses the write log, not
        // the snapshot's versions.
        CommitRequest {
            snapshot_ts: transaction.snapshot.ts,
            catalog_version: transaction.catalog.version,
            reads: transaction.reads,
            writes: transaction.writes,
            receipts: transaction.receipts,
        }
    }
}

/// What applying a schema changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchemaChange {
    /// The commit of the change; `None` when the schema was already in force.
    pub ts: Option<Timestamp>,
    pub tables_added: Vec<String>,
    pub tables_removed: Vec<String>,
    /// `table.index`
    pub indexes_added: Vec<String>,
    pub indexes_removed: Vec<String>,
    /// Documents written into new indexes.
    pub entries_backfilled: usize,
}

pub(crate) struct Committer {
    shared: Arc<Shared>,
    requests: mpsc::Receiver<Request>,
    last_ts: Timestamp,
    /// On a shared engine, the newest commit in the write log: every commit
    /// up to it, from any node, has been published here. (`last_ts` may be
    /// ahead of it after a commit whose outcome the database left unknown.)
    known: Timestamp,
}

/// Commits read from a shared log per catch-up query.
const CATCH_UP_PAGE: usize = 4096;

/// How long a node may hold a shared engine's commit lock idle: a group
/// commit, or a schema change that backfills indexes and checks documents.
const COMMIT_HOLD: std::time::Duration = std::time::Duration::from_secs(10);
const SCHEMA_HOLD: std::time::Duration = std::time::Duration::from_secs(600);

/// Without a commit learnt for this long, a node catches up before it
/// takes the commit lock.
const QUIET: std::time::Duration = std::time::Duration::from_secs(1);

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl Committer {
    pub fn new(shared: Arc<Shared>, requests: mpsc::Receiver<Request>, last_ts: Timestamp) -> Self {
        Committer {
            shared,
            requests,
            last_ts,
            known: last_ts,
        }
    }

    pub fn run(mut self) {
        let max_group = self.shared.config.max_group_size.max(1);
        while let Some(first) = self.requests.blocking_recv() {
            let mut group = vec![first];
            while group.len() < max_group {
                match self.requests.try_recv() {
                    Ok(request) => group.push(request),
                    Err(_) => break,
                }
            }
            let mut commits = Vec::new();
            for request in group {
                match request {
                    Request::Commit { request, reply } => commits.push((request, reply)),
                    Request::ApplySchema { schema, reply } => {
                        self.commit_group(std::mem::take(&mut commits));
                        let _ = reply.send(self.apply_schema(&schema));
                    }
                    Request::CatchUp => {
                        self.commit_group(std::mem::take(&mut commits));
                        self.catch_up();
                    }
                    Request::Shutdown { reply } => {
                        self.commit_group(std::mem::take(&mut commits));
                        let _ = reply.send(());
                        return;
                    }
                }
            }
            self.commit_group(commits);
        }
    }

    /// `max(now, last + 1)`: close to wall-clock time, strictly increasing,
    /// and never behind a timestamp persisted before a restart.
    fn next_ts(&mut self) -> Timestamp {
        let now = now_nanos();
        self.last_ts = Timestamp::new(now).max(self.last_ts.succ());
        self.last_ts
    }

    fn commit_group(&mut self, commits: Vec<(CommitRequest, CommitReply)>) {
        if commits.is_empty() {
            return;
        }
        if let Some(failure) = self.shared.failure() {
            for (_, reply) in commits {
                let _ = reply.send(Err(Error::Failed(failure.clone())));
            }
            return;
        }
        let shared = self.shared.clone();
        let locked = match self.lock_shared(&shared, COMMIT_HOLD) {
            Ok(locked) => locked,
            Err(e) => {
                for (_, reply) in commits {
                    let _ = reply.send(Err(Error::Unavailable(e.to_string())));
                }
                return;
            }
        };
        let catalog = self.shared.catalog();
        let mut batch = Batch::default();
        let mut accepted: Vec<(Arc<CommitEntry>, CommitReply)> = Vec::new();
        for (request, reply) in commits {
            match self.validate(&request, &catalog, &accepted) {
                Some(conflict) => {
                    let _ = reply.send(Ok(Err(conflict)));
                }
                None => {
                    let ts = self.next_ts();
                    for (key, payload) in &request.receipts {
                        let mut value = ts.nanos().to_be_bytes().to_vec();
                        value.extend_from_slice(payload);
                        batch.put(keys::receipt_key(key), value);
                    }
                    match apply_writes(&catalog, &request.writes, ts, &mut batch) {
                        Ok(writes) => accepted.push((
                            Arc::new(CommitEntry {
                                ts,
                                writes,
                                schema_changed: false,
                            }),
                            reply,
                        )),
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                    }
                }
            }
        }
        if accepted.is_empty() {
            return;
        }
        let written = match locked {
            Some(locked) => {
                let log = accepted
                    .iter()
                    .map(|(entry, _)| (entry.ts, commit_codec::encode(entry, None)))
                    .collect();
                locked
                    .commit(batch, log)
                    .map_err(|e| Error::Unavailable(e.to_string()))
            }
            None => {
                batch.put(
                    keys::LAST_TS.to_vec(),
                    self.last_ts.nanos().to_be_bytes().to_vec(),
                );
                self.write_durably(batch)
                    .map_err(|e| Error::Failed(e.to_string()))
            }
        };
        if let Err(e) = written {
            for (_, reply) in accepted {
                let _ = reply.send(Err(match &e {
                    Error::Unavailable(m) => Error::Unavailable(m.clone()),
                    other => Error::Failed(other.to_string()),
                }));
            }
            return;
        }
        self.known = self.last_ts;
        self.shared.publish(self.last_ts, None);
        for (entry, reply) in accepted {
            let ts = entry.ts;
            self.shared.write_log.append(entry);
            let _ = reply.send(Ok(Ok(ts)));
        }
    }

    fn write_durably(&self, batch: Batch) -> Result<()> {
        let persistence = &self.shared.persistence;
        let result = persistence.write(batch).and_then(|()| persistence.sync());
        if let Err(e) = &result {
            self.shared.fail(e.to_string());
        }
        result
    }

    /// On a shared engine, takes the commit lock and first publishes every
    /// commit other nodes made since the newest this node knows, so that
    /// validation sees all of them and the next timestamp follows theirs.
    fn lock_shared<'a>(
        &mut self,
        shared: &'a Shared,
        hold: std::time::Duration,
    ) -> Result<Option<Box<dyn LockedLog + 'a>>> {
        let Some(log) = shared.persistence.shared_log() else {
            return Ok(None);
        };
        // After a quiet spell (or a lost connection), learn what other nodes
        // did before taking the lock, so that little is read while holding it.
        if now_nanos().saturating_sub(self.known.nanos()) > QUIET.as_nanos() as u64 {
            self.catch_up();
        }
        let mut locked = log.lock(self.known, hold)?;
        let read = locked.read()?;
        self.absorb(read)?;
        self.last_ts = self.last_ts.max(locked.last_ts());
        Ok(Some(locked))
    }

    /// Publishes the commits other nodes made, without taking the lock.
    fn catch_up(&mut self) {
        let shared = self.shared.clone();
        let Some(log) = shared.persistence.shared_log() else {
            return;
        };
        loop {
            let read = match log.read_after(self.known, CATCH_UP_PAGE) {
                Ok(read) => read,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot read other nodes' commits yet");
                    return;
                }
            };
            let full = read.commits.len() >= CATCH_UP_PAGE;
            if let Err(e) = self.absorb(read) {
                tracing::error!(error = %e, "cannot apply another node's commit");
                return;
            }
            if !full {
                return;
            }
        }
    }

    /// Appends commits read from the shared log (oldest first) to the write
    /// log and publishes them, as if this node had made them.
    fn absorb(&mut self, read: LogRead) -> Result<()> {
        if read.pruned_through > self.known {
            // Commits this node never saw have left the log: what they
            // changed cannot be told, so every reader starts over, from the
            // database's newest timestamp and the catalog in force at it.
            let shared = self.shared.clone();
            let Some(log) = shared.persistence.shared_log() else {
                return Err(Error::Corrupt(
                    "a pruned log on an engine without one".into(),
                ));
            };
            let (ts, catalog) = log.state()?;
            let catalog = match catalog {
                Some(bytes) => parse_catalog(&bytes)?,
                None => Catalog::default(),
            };
            self.known = self.known.max(ts);
            self.last_ts = self.last_ts.max(self.known);
            self.shared.publish(self.known, Some(Arc::new(catalog)));
            self.shared.write_log.restart_at(self.known);
        }
        for bytes in read.commits {
            let logged = commit_codec::decode(&bytes)?;
            let ts = logged.entry.ts;
            if ts <= self.known {
                continue;
            }
            let catalog = match logged.catalog {
                None => None,
                Some(json) => Some(Arc::new(parse_catalog(&json)?)),
            };
            self.shared.publish(ts, catalog);
            self.shared.write_log.append(Arc::new(logged.entry));
            self.known = ts;
            self.last_ts = self.last_ts.max(ts);
        }
        Ok(())
    }

    /// The conflict that prevents `request` from committing, if any: a
    /// commit after its snapshot (already published, or accepted earlier in
    /// this group) wrote something it read.
    fn validate(
        &self,
        request: &CommitRequest,
        catalog: &Catalog,
        accepted: &[(Arc<CommitEntry>, CommitReply)],
    ) -> Option<Conflict> {
        if request.catalog_version != catalog.version {
            return Some(Conflict {
                conflicting_ts: None,
                reason: ConflictReason::SchemaChanged,
            });
        }
        let describe = |entry: &CommitEntry| {
            if entry.schema_changed {
                return Some(Conflict {
                    conflicting_ts: Some(entry.ts),
                    reason: ConflictReason::SchemaChanged,
                });
            }
            request
                .reads
                .intersection(&entry.writes)
                .map(|hit| Conflict {
                    conflicting_ts: Some(entry.ts),
                    reason: match hit {
                        Intersection::Document(id) => ConflictReason::DocumentChanged {
                            table: catalog.table_of(&id).unwrap_or("?").to_owned(),
                            id,
                        },
                        Intersection::Range(index, _) => {
                            let (table, index) = catalog.index_names(index);
                            ConflictReason::RangeChanged {
                                table: table.to_owned(),
                                index: index.to_owned(),
                            }
                        }
                    },
                })
        };
        match self
            .shared
            .write_log
            .find_after(request.snapshot_ts, describe)
        {
            Err(_) => {
                return Some(Conflict {
                    conflicting_ts: None,
                    reason: ConflictReason::SnapshotTooOld,
                });
            }
            Ok(Some(conflict)) => return Some(conflict),
            Ok(None) => {}
        }
        accepted.iter().find_map(|(entry, _)| describe(entry))
    }

    fn apply_schema(&mut self, schema: &Schema) -> Result<SchemaChange> {
        if let Some(failure) = self.shared.failure() {
            return Err(Error::Failed(failure));
        }
        schema.validate()?;
        let shared = self.shared.clone();
        let locked = self.lock_shared(&shared, SCHEMA_HOLD)?;
        let current = self.shared.catalog();
        let latest = self.shared.latest_ts();
        let persistence = &*shared.persistence;
        let mut next = (*current).clone();
        let mut change = SchemaChange::default();
        let mut dropped: Vec<IndexId> = Vec::new();
        let mut backfill: Vec<IndexInfo> = Vec::new();

        for (name, entry) in &current.tables {
            if schema.tables.contains_key(name) {
                continue;
            }
            let by_id = current.index(name, crate::schema::BY_ID)?;
            let (lo, hi) = table_range(entry.number);
            if mvcc::scan_index(persistence, &by_id, latest, &lo, Some(&hi), false)
                .next()
                .transpose()?
                .is_some()
            {
                return Err(Error::InvalidSchema(format!(
                    "table {name:?} still has documents; keep it in the schema or delete its documents first"
                )));
            }
            next.tables.remove(name);
            dropped.extend([entry.by_id, entry.by_creation_time]);
            dropped.extend(entry.indexes.values().map(|i| i.id));
            change.tables_removed.push(name.clone());
        }

        for (name, definition) in &schema.tables {
            let table = match next.tables.get_mut(name) {
                Some(table) => table,
                None => {
                    let number = TableNumber(next.next_table);
                    let by_id = IndexId(next.next_index);
                    let by_creation_time = IndexId(next.next_index + 1);
                    next.next_table += 1;
                    next.next_index += 2;
                    change.tables_added.push(name.clone());
                    next.tables.entry(name.clone()).or_insert(TableEntry {
                        number,
                        by_id,
                        by_creation_time,
                        indexes: BTreeMap::new(),
                        document: None,
                    })
                }
            };
            table.document = definition.document.clone();
            let mut indexes = BTreeMap::new();
            for index in &definition.indexes {
                let kept = table
                    .indexes
                    .get(&index.name)
                    .filter(|existing| existing.fields == index.fields)
                    .cloned();
                let entry = match kept {
                    Some(entry) => entry,
                    None => {
                        let id = IndexId(next.next_index);
                        next.next_index += 1;
                        change.indexes_added.push(format!("{name}.{}", index.name));
                        backfill.push(IndexInfo {
                            id,
                            table: table.number,
                            table_name: name.clone(),
                            name: index.name.clone(),
                            kind: IndexKind::Fields(index.fields.clone()),
                        });
                        IndexEntry {
                            id,
                            fields: index.fields.clone(),
                        }
                    }
                };
                indexes.insert(index.name.clone(), entry);
            }
            for (old_name, old) in &table.indexes {
                if indexes.get(old_name).is_none_or(|kept| kept.id != old.id) {
                    dropped.push(old.id);
                    change.indexes_removed.push(format!("{name}.{old_name}"));
                }
            }
            table.indexes = indexes;
        }
        next.reindex();

        let validators_changed = schema.tables.iter().any(|(name, definition)| {
            current.tables.get(name).map(|t| &t.document) != Some(&definition.document)
        });
        if change == SchemaChange::default() && !validators_changed {
            return Ok(change);
        }

        // Existing documents must satisfy the new validators, and new
        // indexes get an entry for each of them.
        let mut batch = Batch::default();
        let ts = self.next_ts();
        for (name, definition) in &schema.tables {
            let Some(old_table) = current.tables.get(name) else {
                continue;
            };
            let validate = definition
                .document
                .as_ref()
                .filter(|v| old_table.document.as_ref() != Some(*v));
            let new_indexes: Vec<&IndexInfo> =
                backfill.iter().filter(|i| &i.table_name == name).collect();
            if validate.is_none() && new_indexes.is_empty() {
                continue;
            }
            let by_id = current.index(name, crate::schema::BY_ID)?;
            let (lo, hi) = table_range(old_table.number);
            for entry in mvcc::scan_index(persistence, &by_id, latest, &lo, Some(&hi), false) {
                let document = entry?
                    .document
                    .ok_or_else(|| Error::Corrupt("by_id scan without document".into()))?;
                if let Some(validator) = validate {
                    validator
                        .check(&document.to_value(), &next)
                        .map_err(|reason| Error::SchemaViolation {
                            table: name.clone(),
                            id: document.id.to_string(),
                            reason,
                        })?;
                }
                for index in &new_indexes {
                    batch.put(
                        keys::index_key(index.id, &index.sort_key(&document), ts),
                        vec![keys::PRESENT],
                    );
                    change.entries_backfilled += 1;
                }
            }
        }
        for index in dropped {
            let prefix = keys::index_prefix(index);
            let end = capstan_protocol::key::prefix_successor(&prefix)
                .map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
            for item in persistence.scan(std::ops::Bound::Included(prefix), end, false) {
                batch.remove(item?.0);
            }
        }
        next.version += 1;
        next.since = ts.nanos();
        let encoded = serde_json::to_vec(&next).map_err(|e| Error::Storage(e.to_string()))?;
        batch.put(keys::CATALOG.to_vec(), encoded.clone());
        let entry = CommitEntry {
            ts,
            writes: Vec::new(),
            schema_changed: true,
        };
        match locked {
            Some(locked) => {
                let logged = commit_codec::encode(&entry, Some(&encoded));
                locked.commit(batch, vec![(ts, logged)])?;
                self.known = ts;
            }
            None => {
                batch.put(keys::LAST_TS.to_vec(), ts.nanos().to_be_bytes().to_vec());
                self.write_durably(batch)?;
            }
        }
        self.shared.publish(ts, Some(Arc::new(next)));
        self.shared.write_log.append(Arc::new(entry));
        change.ts = Some(ts);
        Ok(change)
    }
}

/// The catalog as the persistence holds it (the empty one for a new store).
pub(crate) fn load_catalog(persistence: &dyn Persistence) -> Result<Catalog> {
    match persistence.get(keys::CATALOG)? {
        None => Ok(Catalog::default()),
        Some(bytes) => parse_catalog(&bytes),
    }
}

pub(crate) fn parse_catalog(bytes: &[u8]) -> Result<Catalog> {
    let mut catalog: Catalog =
        serde_json::from_slice(bytes).map_err(|e| Error::Corrupt(format!("catalog: {e}")))?;
    catalog.reindex();
    Ok(catalog)
}

/// The `by_id` sort-key range of one table.
fn table_range(table: TableNumber) -> (Vec<u8>, Vec<u8>) {
    let lo = table.0.to_be_bytes().to_vec();
    let hi = capstan_protocol::key::prefix_successor(&lo).unwrap_or_else(|| vec![0xff; 5]);
    (lo, hi)
}

/// Adds a transaction's writes at `ts` to `batch` and describes them for the
/// write log.
fn apply_writes(
    catalog: &Catalog,
    writes: &BTreeMap<DocumentId, PendingWrite>,
    ts: Timestamp,
    batch: &mut Batch,
) -> Result<Vec<DocumentWrite>> {
    let mut indexes_by_table: HashMap<TableNumber, Vec<IndexInfo>> = HashMap::new();
    let mut out = Vec::with_capacity(writes.len());
    for (id, write) in writes {
        if write.old.is_none() && write.new.is_none() {
            continue;
        }
        let indexes = match indexes_by_table.entry(id.table()) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(catalog.indexes_of(catalog.table_of(id)?)?)
            }
        };
        let value = match &write.new {
            Some(document) => {
                let mut value = vec![keys::PRESENT];
                value.extend_from_slice(&document.encode());
                value
            }
            None => vec![keys::DELETED],
        };
        batch.put(keys::document_key(id, ts), value);
        let mut index_keys = Vec::with_capacity(indexes.len());
        for index in indexes.iter() {
            let old = write.old.as_ref().map(|d| index.sort_key(d));
            let new = write.new.as_ref().map(|d| index.sort_key(d));
            if index.kind != IndexKind::ById && old != new {
                if let Some(old) = &old {
                    batch.put(keys::index_key(index.id, old, ts), vec![keys::DELETED]);
                }
                if let Some(new) = &new {
                    batch.put(keys::index_key(index.id, new, ts), vec![keys::PRESENT]);
                }
            }
            index_keys.push(IndexKeyChange {
                index: index.id,
                old,
                new,
            });
        }
        out.push(DocumentWrite {
            id: *id,
            deleted: write.new.is_none(),
            index_keys,
        });
    }
    Ok(out)
}
