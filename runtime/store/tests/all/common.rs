use std::path::Path;
use std::time::Duration;

use capstan_protocol::{Object, Timestamp, Value};
use capstan_store::{
    Conflict, Document, Schema, Store, StoreConfig, TableDefinition, Transaction, Validator,
};

/// A JSON literal as a document's fields.
pub fn obj(json: serde_json::Value) -> Object {
    match Value::from_json(&json).expect("valid value") {
        Value::Object(fields) => fields,
        other => panic!("not an object: {other:?}"),
    }
}

/// The configuration the tests use: no background collector, so collection
/// happens only when a test asks for it.
pub fn config() -> StoreConfig {
    StoreConfig {
        gc_interval: None,
        ..StoreConfig::default()
    }
}

pub fn messages_schema() -> Schema {
    Schema::new()
        .table(
            "messages",
            TableDefinition::default()
                .index("by_channel", &["channel"])
                .index("by_n", &["n"]),
        )
        .table(
            "users",
            TableDefinition::default().index("by_name", &["name"]),
        )
}

pub async fn memory_store() -> anyhow::Result<Store> {
    let store = Store::open_in_memory(config())?;
    store.apply_schema(messages_schema()).await?;
    Ok(store)
}

pub async fn sled_store(dir: &Path) -> anyhow::Result<Store> {
    let store = Store::open(dir, config())?;
    store.apply_schema(messages_schema()).await?;
    Ok(store)
}

/// A directory on the same disk as the build, not a tmpfs, so syncs are real.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir")
}

pub async fn commit(store: &Store, tx: Transaction) -> anyhow::Result<Timestamp> {
    Ok(store.commit(tx).await??)
}

pub async fn insert(
    store: &Store,
    table: &str,
    fields: serde_json::Value,
) -> anyhow::Result<Document> {
    let mut tx = store.begin();
    let id = tx.insert(table, obj(fields))?;
    commit(store, tx).await?;
    let mut tx = store.begin();
    Ok(tx.get(id)?.expect("just inserted"))
}

pub fn field<'a>(document: &'a Document, name: &str) -> &'a Value {
    document.fields.get(name).unwrap_or(&Value::Null)
}

/// How a transaction retried by [`run_with_retries`] went.
#[derive(Debug)]
pub struct Retried<T> {
    pub value: T,
    pub ts: Timestamp,
    pub conflicts: usize,
}

/// The caller-side OCC loop: run `body` in a fresh transaction, commit, and on
/// a conflict run it again, at most `max_attempts` times.
pub async fn run_with_retries<T>(
    store: &Store,
    max_attempts: usize,
    mut body: impl FnMut(&mut Transaction) -> capstan_store::Result<T>,
) -> anyhow::Result<Retried<T>> {
    let mut last: Option<Conflict> = None;
    for attempt in 0..max_attempts {
        let mut tx = store.begin();
        let value = body(&mut tx)?;
        match store.commit(tx).await? {
            Ok(ts) => {
                return Ok(Retried {
                    value,
                    ts,
                    conflicts: attempt,
                });
            }
            Err(conflict) => {
                last = Some(conflict);
                // A short, growing pause spreads contending writers out.
                tokio::time::sleep(Duration::from_micros(50 * (attempt as u64 + 1))).await;
            }
        }
    }
    anyhow::bail!("gave up after {max_attempts} attempts: {last:?}")
}

pub fn float_validator_schema() -> Schema {
    Schema::new().table(
        "scores",
        TableDefinition::default().document(
            serde_json::from_value::<Validator>(serde_json::json!({
                "type": "object",
                "value": {
                    "player": {"fieldType": {"type": "string"}},
                    "points": {"fieldType": {"type": "float64"}, "optional": true}
                }
            }))
            .expect("validator"),
        ),
    )
}
