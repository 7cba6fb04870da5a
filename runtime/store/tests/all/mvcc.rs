use capstan_protocol::Value;
use capstan_store::{Error, Patch, Query};

use crate::common::*;

#[tokio::test]
async fn a_snapshot_sees_exactly_the_commits_at_or_before_it() -> anyhow::Result<()> {
    let store = memory_store().await?;
    let doc = insert(
        &store,
        "messages",
        serde_json::json!({"channel": "a", "n": 1}),
    )
    .await?;
    let t1 = store.latest_ts();

    let mut old_reader = store.begin();
    let mut tx = store.begin();
    tx.patch(
        doc.id,
        Patch::from([("n".into(), Some(Value::Float64(2.0)))]),
    )?;
    let t2 = commit(&store, tx).await?;
    assert!(t2 > t1);

    assert_eq!(
        field(&old_reader.get(doc.id)?.expect("exists at t1"), "n"),
        &Value::Float64(1.0)
    );
    assert_eq!(
        field(&store.begin().get(doc.id)?.expect("exists"), "n"),
        &Value::Float64(2.0)
    );

    let mut tx = store.begin();
    tx.delete(doc.id)?;
    let t3 = commit(&store, tx).await?;
    assert!(store.begin().get(doc.id)?.is_none());
    assert_eq!(
        field(
            &store.begin_at(t2)?.get(doc.id)?.expect("exists at t2"),
            "n"
        ),
        &Value::Float64(2.0)
    );
    assert!(store.begin_at(t3)?.get(doc.id)?.is_none());
    // The old reader still sees its snapshot after everything that followed.
    assert_eq!(
        field(&old_reader.get(doc.id)?.expect("exists at t1"), "n"),
        &Value::Float64(1.0)
    );
    Ok(())
}

#[tokio::test]
async fn index_reads_follow_the_snapshot_when_a_key_changes() -> anyhow::Result<()> {
    let store = memory_store().await?;
    let doc = insert(&store, "messages", serde_json::json!({"channel": "a"})).await?;
    let mut old_reader = store.begin();

    let mut tx = store.begin();
    tx.patch(
        doc.id,
        Patch::from([("channel".into(), Some(Value::from("b")))]),
    )?;
    commit(&store, tx).await?;

    let in_a = Query::index("messages", "by_channel").eq("channel", "a");
    let in_b = Query::index("messages", "by_channel").eq("channel", "b");
    assert_eq!(old_reader.query(&in_a, None)?.len(), 1);
    assert_eq!(old_reader.query(&in_b, None)?.len(), 0);
    let mut now = store.begin();
    assert_eq!(now.query(&in_a, None)?.len(), 0);
    assert_eq!(now.query(&in_b, None)?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_transaction_reads_its_own_writes_through_indexes() -> anyhow::Result<()> {
    let store = memory_store().await?;
    let existing = insert(
        &store,
        "messages",
        serde_json::json!({"channel": "a", "n": 1}),
    )
    .await?;
    let mut tx = store.begin();
    let added = tx.insert("messages", obj(serde_json::json!({"channel": "a", "n": 2})))?;
    let in_a = Query::index("messages", "by_channel").eq("channel", "a");
    let ids: Vec<_> = tx.query(&in_a, None)?.into_iter().map(|d| d.id).collect();
    assert_eq!(ids, vec![existing.id, added]);

    tx.patch(
        existing.id,
        Patch::from([("channel".into(), Some(Value::from("z")))]),
    )?;
    let ids: Vec<_> = tx.query(&in_a, None)?.into_iter().map(|d| d.id).collect();
    assert_eq!(ids, vec![added]);

    tx.delete(added)?;
    assert!(tx.query(&in_a, None)?.is_empty());
    assert!(tx.get(added)?.is_none());
    // Nothing is visible outside until the commit.
    assert_eq!(store.begin().query(&in_a, None)?.len(), 1);
    commit(&store, tx).await?;
    assert!(store.begin().query(&in_a, None)?.is_empty());
    Ok(())
}

#[tokio::test]
async fn snapshots_older_than_the_schema_are_refused() -> anyhow::Result<()> {
    let store = memory_store().await?;
    let before = store.latest_ts();
    store
        .apply_schema(messages_schema().table("extra", Default::default()))
        .await?;
    assert!(matches!(
        store.begin_at(before),
        Err(Error::SnapshotTooOld { .. })
    ));
    Ok(())
}
