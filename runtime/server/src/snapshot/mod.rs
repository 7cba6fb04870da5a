//! Snapshots of a deployment's data, in Convex's export layout: a ZIP of
//! JSON Lines, one folder per table, files beside their `_storage` rows.
//!
//! ```text
//! README.md
//! capstan.json                 format, snapshot timestamp, the schema
//! _tables/documents.jsonl      {"name": "messages", "id": 10001} per table
//! <table>/documents.jsonl      one document per line, `_id` and `_creationTime` included
//! _storage/documents.jsonl     the files' rows
//! _storage/<id>                a file's bytes (with --include-file-storage)
//! ```
//!
//! Documents are written in Convex's encoded JSON (`{"$integer": …}` for
//! an int64, `{"$bytes": …}` for bytes), so every value survives the trip
//! whole; `capstan.json` says so.
//!
//! # Layout
//! - [`export`]: a consistent snapshot of every table (and file) into a ZIP.
//! - [`import`]: loading one into a deployment that runs the same app.
//! - [`routes`]: the admin endpoints, `GET /api/export`, `POST /api/import`.

pub mod export;
pub mod import;
pub mod routes;
