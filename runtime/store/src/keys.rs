//! The layout of the store's keys in the persistence engine.
//!
//! ```text
//! D table[4] random[16] !ts[8]          → 00 (deleted) | 01 document        document versions
//! I index[4] sort_key   !ts[8]          → 00 (removed) | 01 (present)        index entries
//! M name                                → metadata (last commit ts, catalog)
//! R key                                 → ts[8] payload                     receipts
//! ```
//!
//! Timestamps are stored inverted (`!ts`, big-endian) so that a key's versions
//! sort newest first: the version visible at `T` is the first entry at or
//! after `prefix ++ !T`. A field index's sort key is
//! `key(fields…) ++ key(_creationTime) ++ id`; see [`crate::catalog::IndexInfo`].

use capstan_protocol::Timestamp;

use crate::error::{Error, Result};
use crate::id::{DocumentId, ID_BYTES, IndexId, TableNumber};

pub const DOCUMENTS: u8 = b'D';
pub const INDEXES: u8 = b'I';
pub const RECEIPTS: u8 = b'R';
pub const LAST_TS: &[u8] = b"M/last_ts";
pub const CATALOG: &[u8] = b"M/catalog";

pub const DELETED: u8 = 0;
pub const PRESENT: u8 = 1;

pub fn receipt_key(key: &[u8]) -> Vec<u8> {
    let mut full = Vec::with_capacity(1 + key.len());
    full.push(RECEIPTS);
    full.extend_from_slice(key);
    full
}

pub fn inverted(ts: Timestamp) -> [u8; 8] {
    (!ts.nanos()).to_be_bytes()
}

pub fn document_prefix(id: &DocumentId) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + ID_BYTES + 8);
    key.push(DOCUMENTS);
    key.extend_from_slice(&id.to_bytes());
    key
}

pub fn document_key(id: &DocumentId, ts: Timestamp) -> Vec<u8> {
    let mut key = document_prefix(id);
    key.extend_from_slice(&inverted(ts));
    key
}

pub fn table_prefix(table: TableNumber) -> Vec<u8> {
    let mut key = vec![DOCUMENTS];
    key.extend_from_slice(&table.0.to_be_bytes());
    key
}

pub fn index_prefix(index: IndexId) -> Vec<u8> {
    let mut key = vec![INDEXES];
    key.extend_from_slice(&index.0.to_be_bytes());
    key
}

pub fn index_key(index: IndexId, sort_key: &[u8], ts: Timestamp) -> Vec<u8> {
    let mut key = index_prefix(index);
    key.extend_from_slice(sort_key);
    key.extend_from_slice(&inverted(ts));
    key
}

/// Splits a versioned key into the part before the timestamp and the
/// timestamp.
pub fn split_version(key: &[u8]) -> Result<(&[u8], Timestamp)> {
    if key.len() < 8 {
        return Err(Error::Corrupt("versioned key is too short".into()));
    }
    let (head, tail) = key.split_at(key.len() - 8);
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(tail);
    Ok((head, Timestamp::new(!u64::from_be_bytes(bytes))))
}

/// The document id at the end of an index sort key.
pub fn id_of_sort_key(sort_key: &[u8]) -> Result<DocumentId> {
    if sort_key.len() < ID_BYTES {
        return Err(Error::Corrupt("index entry is too short".into()));
    }
    DocumentId::from_bytes(&sort_key[sort_key.len() - ID_BYTES..])
}
