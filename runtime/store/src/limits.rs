//! Every tunable of the store, with its default and the reason for it.
//!
//! The document and transaction limits follow Convex's published limits so
//! that apps moving between the two behave the same.

use std::time::Duration;

/// Bounds on documents and transactions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest document, measured by [`capstan_protocol::Value::size`].
    pub max_document_size: usize,
    /// Deepest nesting of arrays and objects inside a document.
    pub max_nesting_depth: usize,
    /// Most fields in one object.
    pub max_object_fields: usize,
    /// Most elements in one array.
    pub max_array_len: usize,
    /// Most documents one transaction may scan (read through indexes or by id).
    pub max_documents_scanned: usize,
    /// Most bytes of documents one transaction may read.
    pub max_bytes_read: usize,
    /// Most index ranges one transaction may read (each query is one range).
    pub max_index_ranges: usize,
    /// Most documents one transaction may write.
    pub max_documents_written: usize,
    /// Most bytes of documents one transaction may write.
    pub max_bytes_written: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_document_size: 1 << 20,
            max_nesting_depth: 16,
            max_object_fields: 1024,
            max_array_len: 8192,
            max_documents_scanned: 32_000,
            max_bytes_read: 16 << 20,
            max_index_ranges: 4096,
            max_documents_written: 16_000,
            max_bytes_written: 16 << 20,
        }
    }
}

/// How the store runs.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub limits: Limits,
    /// How long superseded versions stay readable. Readers with an open
    /// snapshot keep their versions regardless; this bounds how far back a
    /// new snapshot may be opened with `begin_at`.
    pub retention: Duration,
    /// How long receipts ([`crate::Transaction::record_receipt`]) are kept.
    pub receipt_retention: Duration,
    /// How often the background collector removes versions past the
    /// retention window; `None` leaves collection to explicit calls.
    pub gc_interval: Option<Duration>,
    /// How many recent commits the write log keeps for validating
    /// transactions and for subscribers catching up. A transaction whose
    /// snapshot is older than the oldest remembered commit must retry.
    pub write_log_capacity: usize,
    /// Most bytes of commits the write log holds; past it the oldest commits
    /// leave even when fewer than `write_log_capacity` are kept.
    pub write_log_bytes: usize,
    /// Commits older than this (measured from the newest) leave the write
    /// log: no transaction or subscriber needs to look that far back.
    pub write_log_max_age: Duration,
    /// Bytes of the engine's page cache (sled's `cache_capacity`).
    pub cache_bytes: u64,
    /// Most transactions committed together with one sync.
    pub max_group_size: usize,
    /// Queued commits waiting for the committer.
    pub commit_queue: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            limits: Limits::default(),
            retention: Duration::from_secs(300),
            // Long enough for a client to come back from a dropped
            // connection or a short sleep and resend; the store's memory
            // grows with mutations per second times this.
            receipt_retention: Duration::from_secs(10 * 60),
            gc_interval: Some(Duration::from_secs(60)),
            write_log_capacity: 65_536,
            write_log_bytes: 32 << 20,
            write_log_max_age: Duration::from_secs(120),
            cache_bytes: 128 << 20,
            max_group_size: 1024,
            commit_queue: 4096,
        }
    }
}
