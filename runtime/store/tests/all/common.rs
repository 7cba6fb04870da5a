use std::path::Path;
use std::time::Duration;

use capstan_protocol::{Object, Timestamp, Value};
use capstan_store::{
    Conflict, Document, PostgresConfig, Schema, Store, StoreConfig, TableDefinition, Transaction,
    Validator,
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

/// A fresh store for a test: in memory, or in a new PostgreSQL database
/// when the suite runs on PostgreSQL (`CAPSTAN_TEST_ENGINE=postgres`).
pub fn test_store(config: StoreConfig) -> anyhow::Result<Store> {
    if capstan_test_support::engine_is_postgres() {
        let url = capstan_test_support::Postgres::shared().create_database();
        return postgres_store(&url, config);
    }
    Ok(Store::open_in_memory(config)?)
}

/// A node on the database at `url`; it has taken the leader lease when
/// it is the only node.
pub fn postgres_store(url: &str, config: StoreConfig) -> anyhow::Result<Store> {
    Ok(Store::open_postgres(&PostgresConfig::new(url), config)?)
}

/// Waits (at most 10 s) until `store` leads, as a lone node soon does.
pub async fn until_leader(store: &Store) {
    for _ in 0..200 {
        if store.leads() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the store never took the leader lease");
}

pub async fn memory_store() -> anyhow::Result<Store> {
    let store = test_store(config())?;
    store.apply_schema(messages_schema()).await?;
    Ok(store)
}

/// Opens the store kept in `dir` (or its database) again.
pub fn reopen(dir: &Path, config: StoreConfig) -> anyhow::Result<Store> {
    if capstan_test_support::engine_is_postgres() {
        let url = capstan_test_support::Postgres::shared().database_for(&dir.display().to_string());
        return postgres_store(&url, config);
    }
    Ok(Store::open(dir, config)?)
}

/// A store kept in `dir`, or, on PostgreSQL, in the database named after
/// `dir`: opening it again reopens the same data.
pub async fn sled_store(dir: &Path) -> anyhow::Result<Store> {
    let store = reopen(dir, config())?;
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
