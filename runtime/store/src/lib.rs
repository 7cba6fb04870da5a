//! Capstan's document store: documents in tables with indexes, read at MVCC
//! snapshots, written by serializable optimistic transactions that one
//! committer validates and makes durable with group commit, over sled (or
//! memory, for tests), or over PostgreSQL shared by several nodes, where a
//! lock in the database orders every node's commits.
//!
//! ```no_run
//! # async fn example() -> capstan_store::Result<()> {
//! use capstan_store::{Query, Schema, Store, StoreConfig, TableDefinition};
//! use capstan_protocol::{Object, Value};
//!
//! let store = Store::open(std::path::Path::new("data"), StoreConfig::default())?;
//! store
//!     .apply_schema(Schema::new().table("messages", TableDefinition::default().index("by_channel", &["channel"])))
//!     .await?;
//! let mut tx = store.begin();
//! let mut fields = Object::new();
//! fields.insert("channel".into(), Value::from("general"));
//! tx.insert("messages", fields)?;
//! match store.commit(tx).await? {
//!     Ok(ts) => println!("committed at {ts}"),
//!     Err(conflict) => println!("retry: {conflict}"),
//! }
//! let mut tx = store.begin();
//! let general = tx.query(&Query::index("messages", "by_channel").eq("channel", "general"), Some(10))?;
//! # let _ = general;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - [`store`]: [`Store`], the handle: open, begin, commit, apply a schema,
//!   subscribe to commits, collect garbage.
//! - [`transaction`]: [`Transaction`]: get, insert, patch, replace, delete,
//!   query, paginate; the read set and the write buffer.
//! - [`committer`]: the single committer thread: validation, timestamps,
//!   group commit, schema changes with index backfill.
//! - [`mvcc`]: reading documents and index ranges as of a timestamp.
//! - [`keys`]: how versions and index entries are laid out as keys.
//! - [`query`], [`filter`]: index ranges, orders, filters, cursors.
//! - [`read_set`]: read sets, write sets, and their intersection.
//! - [`write_log`]: recent commits, for validation and subscribers.
//! - [`gc`]: removal of versions past the retention window.
//! - [`catalog`], [`schema`], [`validator`]: tables, indexes, validators.
//! - [`document`], [`id`]: documents and their ids.
//! - [`persistence`], [`sled_engine`], [`postgres`]: the key-value seam and
//!   its engines; [`commit_codec`]: commits as a shared log holds them.
//! - [`limits`]: every tunable; [`error`]: [`Error`] and [`Conflict`].

pub mod catalog;
mod clock_reads;
pub mod commit_codec;
pub mod committer;
pub mod document;
pub mod error;
pub mod filter;
pub mod gc;
pub mod id;
pub mod keys;
pub mod limits;
pub mod mvcc;
pub mod persistence;
pub mod postgres;
pub mod query;
pub mod read_set;
pub mod schema;
pub mod sled_engine;
pub mod store;
pub mod transaction;
pub mod validator;
pub mod write_log;

pub use committer::SchemaChange;
pub use document::{Document, Patch};
pub use error::{Conflict, ConflictReason, Error, ErrorCode, Result};
pub use filter::Expression;
pub use gc::GcStats;
pub use id::{DocumentId, IndexId, TableNumber};
pub use limits::{Limits, StoreConfig};
pub use postgres::{PostgresConfig, PostgresPersistence};
pub use query::{Comparison, Order, Page, PaginationOptions, Query, RangeOp, Source};
pub use read_set::{CommitEntry, DocumentWrite, ReadSet};
pub use schema::{IndexDefinition, Schema, TableDefinition};
pub use store::Store;
pub use transaction::Transaction;
pub use validator::{FieldValidator, Validator};
