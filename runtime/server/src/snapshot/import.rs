//! Loading a snapshot into a deployment: the app is deployed first (its
//! schema names the tables), the tables the snapshot fills must be empty
//! (but `_scheduled_functions`, where the new deployment's crons may
//! already have runs; `_cron_jobs` is not loaded, as the app declares it),
//! and every document keeps its id (its random bits, under the target
//! table's number, which is the same when both deployments run the same
//! app) and `_creationTime`. Ids inside documents are renumbered the same
//! way. A stored file's bytes go to the file store under a new key.
//!
//! Documents are read as Convex's encoded JSON; Convex's own exports
//! (plain JSON) read the same, except that their int64 and bytes values,
//! written there as strings, stay strings.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Seek};
use std::str::FromStr;

use capstan_protocol::{Object, Value};
use capstan_store::{DocumentId, Query, Store, TableNumber, Transaction};

use crate::platform::files::Files;
use crate::platform::tables::{CRONS, SCHEDULED, STORAGE};

/// Documents written per transaction.
const BATCH: usize = 500;

/// What an import loaded.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Imported {
    pub tables: usize,
    pub documents: usize,
    pub files: usize,
}

fn failed(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Loads the snapshot in `zip` into `store` (and its files into `files`).
/// Runs on a blocking thread; `runtime` runs the file store's async work.
pub fn import<R: Read + Seek>(
    store: &Store,
    files: &Files,
    runtime: &tokio::runtime::Handle,
    zip: R,
) -> Result<Imported, String> {
    let mut zip = zip::ZipArchive::new(zip).map_err(|e| format!("not a snapshot ZIP: {e}"))?;
    let mut numbers: HashMap<TableNumber, String> = HashMap::new();
    {
        let tables = zip
            .by_name("_tables/documents.jsonl")
            .map_err(|_| "not a snapshot: it has no _tables/documents.jsonl".to_owned())?;
        for line in BufReader::new(tables).lines() {
            let line = line.map_err(failed)?;
            if line.trim().is_empty() {
                continue;
            }
            let entry: serde_json::Value = serde_json::from_str(&line).map_err(failed)?;
            let (Some(name), Some(id)) = (entry["name"].as_str(), entry["id"].as_u64()) else {
                return Err(format!("_tables/documents.jsonl: a bad line: {line}"));
            };
            numbers.insert(
                TableNumber(u32::try_from(id).map_err(failed)?),
                name.to_owned(),
            );
        }
    }
    // The tables with documents, and where they go.
    let catalog = store.catalog();
    let mut present: Vec<String> = Vec::new();
    for name in numbers.values() {
        // The cron jobs' state is the deployment's own, from its app.
        if name == CRONS {
            continue;
        }
        if zip.by_name(&format!("{name}/documents.jsonl")).is_ok() {
            present.push(name.clone());
        }
    }
    let missing: Vec<&String> = present
        .iter()
        .filter(|name| catalog.table(name).is_err())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the deployment's schema has no table {missing:?}: deploy the app the snapshot is from first"
        ));
    }
    let renumber: HashMap<TableNumber, TableNumber> = numbers
        .iter()
        .filter_map(|(from, name)| Some((*from, catalog.table(name).ok()?.number)))
        .collect();
    // The app's tables and files must be empty; scheduled runs the new
    // deployment's crons already made sit beside the snapshot's.
    for name in present.iter().filter(|name| *name != SCHEDULED) {
        let mut tx = store.begin();
        if !tx
            .query(&Query::index(name, "by_creation_time"), Some(1))
            .map_err(failed)?
            .is_empty()
        {
            return Err(format!(
                "table {name:?} already has documents: import into a fresh deployment"
            ));
        }
    }
    let mut imported = Imported::default();
    for name in &present {
        let mut documents = Vec::new();
        {
            let entry = zip
                .by_name(&format!("{name}/documents.jsonl"))
                .map_err(failed)?;
            for line in BufReader::new(entry).lines() {
                let line = line.map_err(failed)?;
                if line.trim().is_empty() {
                    continue;
                }
                documents.push(document(name, &line, &renumber)?);
                // `_storage` rows wait for their files, read after this entry.
                if documents.len() == BATCH && name != STORAGE {
                    write(store, name, &std::mem::take(&mut documents))?;
                }
                imported.documents += 1;
            }
        }
        if name == STORAGE {
            // Each file's bytes, under a new key, before its row.
            let mut rows = Vec::new();
            for (random, time, mut fields, source) in documents.drain(..) {
                if let Ok(mut entry) = zip.by_name(&format!("{STORAGE}/{source}")) {
                    let mut bytes = Vec::new();
                    entry.read_to_end(&mut bytes).map_err(failed)?;
                    let stream: capstan_files::ByteStream =
                        Box::pin(futures_util::stream::once(async move {
                            Ok::<_, std::io::Error>(bytes::Bytes::from(bytes))
                        }));
                    let content_type = fields
                        .get("contentType")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    let stored = runtime
                        .block_on(files.put(stream, content_type))
                        .map_err(|e| format!("storing file {source}: {e:?}"))?;
                    if let Some(key) = stored.get("key") {
                        fields.insert("key".into(), key.clone());
                    }
                    imported.files += 1;
                }
                rows.push((random, time, fields, source));
            }
            documents = rows;
        }
        for batch in documents.chunks(BATCH) {
            write(store, name, batch)?;
        }
        imported.tables += 1;
    }
    Ok(imported)
}

/// A document to insert: its id's random bits, `_creationTime`, fields,
/// and its id in the snapshot.
type Incoming = ([u8; 16], f64, Object, String);

fn document(
    table: &str,
    line: &str,
    renumber: &HashMap<TableNumber, TableNumber>,
) -> Result<Incoming, String> {
    let bad = |why: &str| format!("{table}/documents.jsonl: {why}");
    let Value::Object(mut fields) = Value::from_json_str(line).map_err(|e| bad(&e.to_string()))?
    else {
        return Err(bad("a line is not an object"));
    };
    let source = match fields.remove("_id") {
        Some(Value::String(id)) => id,
        _ => return Err(bad("a document has no _id")),
    };
    let id = DocumentId::from_str(&source).map_err(|e| bad(&e.to_string()))?;
    let time = match fields.remove("_creationTime") {
        Some(Value::Float64(time)) => time,
        Some(Value::Int64(time)) => time as f64,
        _ => return Err(bad("a document has no _creationTime")),
    };
    let fields = fields
        .into_iter()
        .map(|(name, value)| (name, renumbered(value, renumber)))
        .collect();
    Ok((id.random(), time, fields, source))
}

/// `value` with every id of a snapshot table renumbered for its target.
fn renumbered(value: Value, renumber: &HashMap<TableNumber, TableNumber>) -> Value {
    match value {
        Value::String(text) if text.len() == 36 => match DocumentId::from_str(&text) {
            Ok(id) => match renumber.get(&id.table()) {
                Some(to) => Value::String(DocumentId::new(*to, id.random()).to_string()),
                None => Value::String(text),
            },
            Err(_) => Value::String(text),
        },
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| renumbered(item, renumber))
                .collect(),
        ),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(name, value)| (name, renumbered(value, renumber)))
                .collect(),
        ),
        other => other,
    }
}

/// Inserts `documents` into `table` in one transaction.
fn write(store: &Store, table: &str, documents: &[Incoming]) -> Result<(), String> {
    if documents.is_empty() {
        return Ok(());
    }
    for _ in 0..16 {
        let mut tx: Transaction = store.begin();
        for (random, time, fields, _) in documents {
            tx.insert_as(table, *random, *time, fields.clone())
                .map_err(|e| format!("{table}: {e}"))?;
        }
        match store.commit_blocking(tx).map_err(failed)? {
            Ok(_) => return Ok(()),
            Err(_conflict) => continue,
        }
    }
    Err(format!(
        "{table}: the import kept conflicting with other writes"
    ))
}
