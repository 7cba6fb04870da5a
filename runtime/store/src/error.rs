//! The store's errors, each with a stable code.

use std::fmt;

use capstan_protocol::{Timestamp, ValueError};

use crate::id::DocumentId;

/// Everything that can go wrong in the store, other than a transaction
/// conflict (see [`Conflict`]), which is not an error but an outcome the
/// caller retries.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    InvalidValue(#[from] ValueError),
    #[error("invalid document: {0}")]
    InvalidDocument(String),
    #[error("document is {size} bytes, larger than the limit of {max} bytes")]
    DocumentTooLarge { size: usize, max: usize },
    #[error("table {0:?} is not in the schema")]
    UnknownTable(String),
    #[error("index {table}.{index} is not in the schema")]
    UnknownIndex { table: String, index: String },
    #[error("invalid index range on {index}: {reason}")]
    InvalidIndexRange { index: String, reason: String },
    #[error("invalid filter: {0}")]
    InvalidFilter(String),
    #[error("invalid cursor: {0}")]
    InvalidCursor(String),
    #[error("invalid document id {id:?}: {reason}")]
    InvalidId { id: String, reason: &'static str },
    #[error("document {0} does not exist")]
    DocumentNotFound(DocumentId),
    #[error("document {id} in table {table:?} does not match the schema: {reason}")]
    SchemaViolation {
        table: String,
        id: String,
        reason: String,
    },
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    #[error("transaction limit exceeded: {what} (limit {limit})")]
    TransactionLimit { what: &'static str, limit: usize },
    #[error("snapshot at {requested} is no longer readable; the oldest readable is {oldest}")]
    SnapshotTooOld {
        requested: Timestamp,
        oldest: Timestamp,
    },
    #[error("storage error: {0}")]
    Storage(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("the store has stopped accepting commits after a storage failure: {0}")]
    Failed(String),
    #[error("the store is shut down")]
    ShutDown,
    /// The database could not be reached or failed a statement; nothing
    /// is known to be lost, and the call may be tried again.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A stable, machine-readable classification of an [`Error`], which the
/// server maps to an HTTP status, a close frame and a client message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BadRequest,
    NotFound,
    SchemaViolation,
    LimitExceeded,
    Unavailable,
    Internal,
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidValue(_)
            | Error::InvalidDocument(_)
            | Error::DocumentTooLarge { .. }
            | Error::UnknownTable(_)
            | Error::UnknownIndex { .. }
            | Error::InvalidIndexRange { .. }
            | Error::InvalidFilter(_)
            | Error::InvalidCursor(_)
            | Error::InvalidId { .. }
            | Error::InvalidSchema(_) => ErrorCode::BadRequest,
            Error::DocumentNotFound(_) => ErrorCode::NotFound,
            Error::SchemaViolation { .. } => ErrorCode::SchemaViolation,
            Error::TransactionLimit { .. } => ErrorCode::LimitExceeded,
            Error::SnapshotTooOld { .. } | Error::ShutDown | Error::Unavailable(_) => {
                ErrorCode::Unavailable
            }
            Error::Storage(_) | Error::Corrupt(_) | Error::Failed(_) => ErrorCode::Internal,
        }
    }
}

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        Error::Storage(e.to_string())
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Storage(e.to_string())
    }
}

/// A transaction could not commit because something it read changed after
/// its snapshot. Nothing was written; running the transaction again at a
/// newer snapshot may succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The commit that invalidated the read, if it is known.
    pub conflicting_ts: Option<Timestamp>,
    pub reason: ConflictReason,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConflictReason {
    /// A document the transaction read was written by a later commit.
    DocumentChanged { table: String, id: DocumentId },
    /// A later commit wrote inside an index range the transaction read.
    RangeChanged { table: String, index: String },
    /// The schema changed after the transaction began.
    SchemaChanged,
    /// The snapshot is older than the commits the store still remembers, so
    /// the read set cannot be validated.
    SnapshotTooOld,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            ConflictReason::DocumentChanged { table, id } => write!(
                f,
                "document {id} in table {table:?} changed while this transaction was running"
            ),
            ConflictReason::RangeChanged { table, index } => write!(
                f,
                "documents read through index {table}.{index} changed while this transaction was running"
            ),
            ConflictReason::SchemaChanged => {
                f.write_str("the schema changed while this transaction was running")
            }
            ConflictReason::SnapshotTooOld => {
                f.write_str("the transaction ran too long to be validated")
            }
        }
    }
}

impl std::error::Error for Conflict {}
