use std::collections::BTreeMap;

use capstan_protocol::{Object, Value};
use capstan_store::{DocumentId, Error, Limits, Patch, Query, StoreConfig, TableNumber};

use crate::common::*;

fn nested(depth: usize) -> Value {
    let mut value = Value::from(1.0);
    for _ in 0..depth {
        value = Value::Array(vec![value]);
    }
    value
}

fn with(name: &str, value: Value) -> Object {
    Object::from([(name.to_owned(), value)])
}

#[tokio::test]
async fn invalid_documents_are_refused_and_nothing_is_written() -> anyhow::Result<()> {
    let store = memory_store().await?;
    let before = store.latest_ts();
    let mut tx = store.begin();
    let cases: Vec<(Object, &str)> = vec![
        (with("$bad", Value::Null), "must not start with '$'"),
        (with("_reserved", Value::Null), "reserved for system fields"),
        (with("_id", Value::from("x")), "reserved for system fields"),
        (with("café", Value::Null), "printable ASCII"),
        (with("", Value::Null), "must not be empty"),
        (with(&"k".repeat(1025), Value::Null), "1024"),
        (
            with("ok", Value::Object(with("$nested", Value::Null))),
            "must not start with '$'",
        ),
        (with("deep", nested(16)), "levels deep"),
        (with("wide", Value::Array(vec![Value::Null; 8193])), "8192"),
        (
            with("big", Value::from("x".repeat(1 << 20))),
            "larger than the limit",
        ),
    ];
    for (fields, expected) in cases {
        let err = tx.insert("messages", fields).expect_err("invalid");
        assert!(
            err.to_string().contains(expected),
            "{err} should mention {expected:?}"
        );
    }
    // Just under the limits is fine.
    tx.insert("messages", with("deep", nested(15)))?;
    tx.insert("messages", with("big", Value::from("x".repeat(1_000_000))))?;
    drop(tx);
    assert_eq!(store.latest_ts(), before);
    assert!(
        store
            .begin()
            .query(&Query::full_table_scan("messages"), None)?
            .is_empty()
    );
    Ok(())
}

#[tokio::test]
async fn unknown_tables_ids_and_missing_documents_are_typed_errors() -> anyhow::Result<()> {
    let store = memory_store().await?;
    let doc = insert(&store, "users", serde_json::json!({"name": "a"})).await?;
    let mut tx = store.begin();
    assert!(matches!(
        tx.insert("nope", Object::new()),
        Err(Error::UnknownTable(_))
    ));
    assert!(matches!(
        tx.parse_id("garbage"),
        Err(Error::InvalidId { .. })
    ));
    let foreign = DocumentId::new(TableNumber(999), [7; 16]);
    assert!(matches!(tx.get(foreign), Err(Error::UnknownTable(_))));
    assert!(matches!(
        tx.parse_id(&foreign.to_string()),
        Err(Error::UnknownTable(_))
    ));

    let messages = tx.catalog().table("messages")?.number;
    let missing = DocumentId::new(messages, [1; 16]);
    assert!(tx.get(missing)?.is_none());
    assert!(matches!(
        tx.patch(missing, Patch::new()),
        Err(Error::DocumentNotFound(_))
    ));
    assert!(matches!(
        tx.replace(missing, Object::new()),
        Err(Error::DocumentNotFound(_))
    ));
    assert!(matches!(
        tx.delete(missing),
        Err(Error::DocumentNotFound(_))
    ));

    let change_id = Patch::from([("_id".into(), Some(Value::from("other")))]);
    assert!(matches!(
        tx.patch(doc.id, change_id),
        Err(Error::InvalidDocument(_))
    ));
    let change_time = obj(serde_json::json!({"_creationTime": 1.0}));
    assert!(matches!(
        tx.replace(doc.id, change_time),
        Err(Error::InvalidDocument(_))
    ));
    // Unchanged system fields are accepted, as Convex accepts them.
    let mut same = doc.to_value().as_object().cloned().unwrap_or_default();
    same.insert("name".into(), Value::from("b"));
    let replaced = tx.replace(doc.id, same)?;
    assert_eq!(field(&replaced, "name"), &Value::from("b"));
    assert!(!replaced.fields.contains_key("_id"));
    Ok(())
}

#[tokio::test]
async fn transaction_limits_are_enforced_with_clear_errors() -> anyhow::Result<()> {
    let store = test_store(StoreConfig {
        limits: Limits {
            max_documents_written: 3,
            max_documents_scanned: 5,
            max_index_ranges: 2,
            ..Limits::default()
        },
        ..config()
    })?;
    store.apply_schema(messages_schema()).await?;
    let mut tx = store.begin();
    for n in 0..3 {
        tx.insert("messages", obj(serde_json::json!({"n": n})))?;
    }
    let err = tx
        .insert("messages", Object::new())
        .expect_err("fourth write");
    assert!(
        matches!(
            err,
            Error::TransactionLimit {
                what: "documents written",
                limit: 3
            }
        ),
        "{err}"
    );
    commit(&store, tx).await?;
    for n in 3..6 {
        insert(&store, "messages", serde_json::json!({"n": n})).await?;
    }
    let mut tx = store.begin();
    let err = tx
        .query(&Query::full_table_scan("messages"), None)
        .expect_err("six scanned");
    assert!(err.to_string().contains("documents read"), "{err}");
    let mut tx = store.begin();
    tx.query(&Query::index("messages", "by_n"), Some(1))?;
    tx.query(&Query::index("messages", "by_n"), Some(1))?;
    let err = tx
        .query(&Query::index("messages", "by_n"), Some(1))
        .expect_err("third range");
    assert!(err.to_string().contains("index ranges"), "{err}");
    Ok(())
}

#[test]
fn errors_carry_stable_codes() {
    let codes: BTreeMap<&str, capstan_store::ErrorCode> = [
        ("table", Error::UnknownTable("t".into()).code()),
        (
            "limit",
            Error::TransactionLimit {
                what: "x",
                limit: 1,
            }
            .code(),
        ),
        ("cursor", Error::InvalidCursor("x".into()).code()),
    ]
    .into();
    assert_eq!(codes["table"], capstan_store::ErrorCode::BadRequest);
    assert_eq!(codes["limit"], capstan_store::ErrorCode::LimitExceeded);
    assert_eq!(codes["cursor"], capstan_store::ErrorCode::BadRequest);
}
