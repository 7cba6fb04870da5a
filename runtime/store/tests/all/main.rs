//! The store's integration tests: one binary, real sled stores in temporary
//! directories, and the in-memory engine where durability is not the point.

mod bad_input;
mod common;
mod concurrency;
mod crash;
mod durability;
mod gc;
mod mvcc;
mod nodes;
mod occ;
mod pagination;
mod queries;
mod schema;
mod write_log;
