//! Writing a snapshot: every table read at one timestamp, page by page
//! (each page its own transaction at that timestamp, so no transaction's
//! read limits bind a whole table), into a ZIP written to a file.

use std::io::{Seek, Write};

use capstan_protocol::Timestamp;
use capstan_store::{Order, PaginationOptions, Query, Store};
use futures_util::StreamExt as _;
use serde_json::json;
use zip::write::SimpleFileOptions;

use crate::platform::files::{self, Files};
use crate::platform::tables::STORAGE;

/// Documents read per transaction.
const PAGE: usize = 1000;

/// What an export wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Exported {
    /// The snapshot's timestamp: every document as it was then.
    pub ts: u64,
    pub tables: usize,
    pub documents: usize,
    pub files: usize,
}

fn failed(e: impl std::fmt::Display) -> String {
    e.to_string()
}

const README: &str = "# Capstan snapshot export\n\n\
A ZIP of JSON Lines in Convex's export layout: `_tables/documents.jsonl` names each table and its \
number; `<table>/documents.jsonl` holds its documents, one per line, in Convex's encoded JSON \
(`{\"$integer\": ...}` for int64, `{\"$bytes\": ...}` for bytes); `_storage/<id>` holds a stored \
file's bytes when files were included. `capstan import` loads it into a deployment.\n";

/// Writes every table of `store` as of now (and, with `files`, every
/// stored file) to `out`.
pub async fn export<W: Write + Seek + Send + 'static>(
    store: &Store,
    files: Option<&Files>,
    out: W,
) -> Result<(W, Exported), String> {
    let ts: Timestamp = store.latest_ts();
    let catalog = store.catalog();
    let mut zip = zip::ZipWriter::new(out);
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    let mut exported = Exported {
        ts: ts.nanos(),
        ..Exported::default()
    };
    zip.start_file("README.md", options).map_err(failed)?;
    zip.write_all(README.as_bytes()).map_err(failed)?;
    zip.start_file("_tables/documents.jsonl", options)
        .map_err(failed)?;
    for (name, entry) in &catalog.tables {
        let line = json!({ "name": name, "id": entry.number.0 });
        writeln!(zip, "{line}").map_err(failed)?;
    }
    let mut storage_rows = Vec::new();
    for name in catalog.tables.keys() {
        zip.start_file(format!("{name}/documents.jsonl"), options)
            .map_err(failed)?;
        exported.tables += 1;
        let mut cursor = None;
        loop {
            let mut tx = store.begin_at(ts).map_err(failed)?;
            let query = Query::index(name, "by_creation_time").order(Order::Asc);
            let page = tx
                .paginate(
                    &query,
                    &PaginationOptions {
                        cursor: cursor.clone(),
                        num_items: PAGE,
                        end_cursor: None,
                    },
                )
                .map_err(failed)?;
            for document in &page.page {
                writeln!(zip, "{}", document.to_json_string()).map_err(failed)?;
                exported.documents += 1;
                if name == STORAGE && files.is_some() {
                    storage_rows.push(document.clone());
                }
            }
            if page.is_done {
                break;
            }
            cursor = Some(page.continue_cursor);
        }
    }
    if let Some(files) = files {
        for row in storage_rows {
            let Some((key, _)) = files::meta(&row) else {
                continue;
            };
            let Some(mut stream) = files.backend.read(&key, None).await.map_err(failed)? else {
                // Deleted since the snapshot; its row says it was there.
                continue;
            };
            zip.start_file(format!("{STORAGE}/{}", row.id), options)
                .map_err(failed)?;
            while let Some(chunk) = stream.next().await {
                zip.write_all(&chunk.map_err(failed)?).map_err(failed)?;
            }
            exported.files += 1;
        }
    }
    zip.start_file("capstan.json", options).map_err(failed)?;
    let meta = json!({
        "format": "convex-encoded-json",
        "snapshotTs": exported.ts,
        "tables": catalog.tables.keys().collect::<Vec<_>>(),
        "documents": exported.documents,
        "files": exported.files,
    });
    zip.write_all(meta.to_string().as_bytes()).map_err(failed)?;
    let out = zip.finish().map_err(failed)?;
    Ok((out, exported))
}
