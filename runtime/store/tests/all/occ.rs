use capstan_protocol::Value;
use capstan_store::{ConflictReason, Patch, Query};

use crate::common::*;

#[tokio::test]
async fn a_write_inside_a_read_range_conflicts() -> anyhow::Result<()> {
    let store = memory_store().await?;
    let mut reader = store.begin();
    reader.query(
        &Query::index("messages", "by_channel").eq("channel", "a"),
        None,
    )?;
    reader.insert("users", obj(serde_json::json!({"name": "r"})))?;

    insert(&store, "messages", serde_json::json!({"channel": "a"})).await?;

    let conflict = store.commit(reader).await?.expect_err("must conflict");
    assert_eq!(
        conflict.reason,
        ConflictReason::RangeChanged {
            table: "messages".into(),
            index: "by_channel".into()
        }
    );
    assert!(conflict.to_string().contains("by_channel"));
    Ok(())
}

#[tokio::test]
async fn a_write_outside_a_read_range_does_not_conflict() -> anyhow::Result<()> {
    let store = memory_store().await?;
    let mut reader = store.begin();
    reader.query(
        &Query::index("messages", "by_channel").eq("channel", "a"),
        None,
    )?;
    reader.insert("users", obj(serde_json::json!({"name": "r"})))?;

    insert(&store, "messages", serde_json::json!({"channel": "b"})).await?;
    insert(&store, "users", serde_json::json!({"name": "s"})).await?;

    store.commit(reader).await?.expect("no conflict");
    Ok(())
}

#[tokio::test]
async fn a_document_read_then_changed_conflicts() -> anyhow::Result<()> {
    let store = memory_store().await?;
    let doc = insert(&store, "users", serde_json::json!({"name": "a"})).await?;
    let mut reader = store.begin();
    reader.get(doc.id)?;
    reader.insert("users", obj(serde_json::json!({"name": "b"})))?;

    let mut writer = store.begin();
    writer.patch(
        doc.id,
        Patch::from([("name".into(), Some(Value::from("c")))]),
    )?;
    commit(&store, writer).await?;

    let conflict = store.commit(reader).await?.expect_err("must conflict");
    assert!(matches!(conflict.reason, ConflictReason::DocumentChanged { id, .. } if id == doc.id));
    Ok(())
}

#[tokio::test]
async fn a_limited_query_conflicts_only_with_writes_in_the_part_it_read() -> anyhow::Result<()> {
    let store = memory_store().await?;
    for n in 1..=5 {
        insert(&store, "messages", serde_json::json!({"n": n})).await?;
    }
    let first_two = |tx: &mut capstan_store::Transaction| -> anyhow::Result<()> {
        let read = tx.query(&Query::index("messages", "by_n"), Some(2))?;
        assert_eq!(read.len(), 2);
        tx.insert("users", obj(serde_json::json!({"name": "x"})))?;
        Ok(())
    };

    let mut reader = store.begin();
    first_two(&mut reader)?;
    insert(&store, "messages", serde_json::json!({"n": 4.5})).await?;
    store
        .commit(reader)
        .await?
        .expect("n=4.5 is past what was read");

    let mut reader = store.begin();
    first_two(&mut reader)?;
    insert(&store, "messages", serde_json::json!({"n": 1.5})).await?;
    store
        .commit(reader)
        .await?
        .expect_err("n=1.5 falls inside what was read");
    Ok(())
}

#[tokio::test]
async fn a_table_scan_conflicts_with_any_insert_into_the_table() -> anyhow::Result<()> {
    let store = memory_store().await?;
    let mut reader = store.begin();
    reader.query(&Query::full_table_scan("messages"), None)?;
    reader.insert("users", obj(serde_json::json!({"name": "x"})))?;
    insert(&store, "users", serde_json::json!({"name": "other table"})).await?;
    insert(&store, "messages", serde_json::json!({"n": 1})).await?;
    store
        .commit(reader)
        .await?
        .expect_err("the scanned table changed");
    Ok(())
}

#[tokio::test]
async fn a_transaction_begun_before_a_schema_change_conflicts() -> anyhow::Result<()> {
    let store = memory_store().await?;
    let mut tx = store.begin();
    tx.insert("users", obj(serde_json::json!({"name": "x"})))?;
    store
        .apply_schema(messages_schema().table("more", Default::default()))
        .await?;
    let conflict = store.commit(tx).await?.expect_err("schema changed");
    assert_eq!(conflict.reason, ConflictReason::SchemaChanged);
    Ok(())
}

#[tokio::test]
async fn read_only_transactions_commit_at_their_snapshot() -> anyhow::Result<()> {
    let store = memory_store().await?;
    let mut tx = store.begin();
    let snapshot = tx.snapshot_ts();
    tx.query(&Query::full_table_scan("users"), None)?;
    insert(&store, "users", serde_json::json!({"name": "x"})).await?;
    assert_eq!(store.commit(tx).await??, snapshot);
    Ok(())
}
