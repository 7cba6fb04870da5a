use std::time::Duration;

use capstan_protocol::Value;
use capstan_store::{Error, Patch, Query, StoreConfig};

use crate::common::*;

#[tokio::test]
async fn collection_removes_old_versions_without_disturbing_open_readers() -> anyhow::Result<()> {
    let store = test_store(StoreConfig {
        retention: Duration::ZERO,
        ..config()
    })?;
    store.apply_schema(messages_schema()).await?;
    let doc = insert(
        &store,
        "messages",
        serde_json::json!({"n": 0, "channel": "c0"}),
    )
    .await?;
    let set = |n: f64| {
        Patch::from([
            ("n".into(), Some(Value::Float64(n))),
            ("channel".into(), Some(Value::from(format!("c{n}")))),
        ])
    };

    for n in 1..=3 {
        let mut tx = store.begin();
        tx.patch(doc.id, set(f64::from(n)))?;
        commit(&store, tx).await?;
    }
    let mut reader = store.begin();
    let reader_ts = reader.snapshot_ts();
    for n in 4..=6 {
        let mut tx = store.begin();
        tx.patch(doc.id, set(f64::from(n)))?;
        commit(&store, tx).await?;
    }

    until_leader(&store).await;
    let stats = store.collect_garbage()?;
    assert_eq!(
        stats.horizon, reader_ts,
        "the open reader holds the horizon back"
    );
    assert_eq!(
        stats.document_versions_removed, 3,
        "versions 0..=2 are gone"
    );
    assert!(stats.index_entries_removed > 0);

    // The reader still sees its snapshot, by id and through the indexes.
    assert_eq!(
        field(&reader.get(doc.id)?.expect("exists"), "n"),
        &Value::Float64(3.0)
    );
    let by_channel = Query::index("messages", "by_channel").eq("channel", "c3");
    assert_eq!(reader.query(&by_channel, None)?.len(), 1);
    assert_eq!(
        reader.query(&Query::index("messages", "by_n"), None)?.len(),
        1
    );
    drop(reader);

    until_leader(&store).await;
    let stats = store.collect_garbage()?;
    assert_eq!(stats.document_versions_removed, 3);
    assert!(matches!(
        store.begin_at(reader_ts),
        Err(Error::SnapshotTooOld { .. })
    ));
    let mut now = store.begin();
    assert_eq!(
        field(&now.get(doc.id)?.expect("exists"), "n"),
        &Value::Float64(6.0)
    );
    assert_eq!(now.query(&Query::index("messages", "by_n"), None)?.len(), 1);
    assert_eq!(
        now.query(
            &Query::index("messages", "by_channel").eq("channel", "c6"),
            None
        )?
        .len(),
        1
    );

    drop(now);

    // A deleted document leaves nothing behind once past the horizon.
    let mut tx = store.begin();
    tx.delete(doc.id)?;
    commit(&store, tx).await?;
    until_leader(&store).await;
    let stats = store.collect_garbage()?;
    assert_eq!(
        stats.document_versions_removed, 2,
        "the last version and the deletion"
    );
    let again = store.collect_garbage()?;
    assert_eq!(
        (again.document_versions_removed, again.index_entries_removed),
        (0, 0)
    );
    assert!(store.begin().get(doc.id)?.is_none());
    assert!(
        store
            .begin()
            .query(&Query::full_table_scan("messages"), None)?
            .is_empty()
    );
    Ok(())
}

#[tokio::test]
async fn versions_inside_the_retention_window_are_kept() -> anyhow::Result<()> {
    let store = memory_store().await?;
    let doc = insert(&store, "users", serde_json::json!({"name": "a"})).await?;
    let first = store.latest_ts();
    let mut tx = store.begin();
    tx.patch(
        doc.id,
        Patch::from([("name".into(), Some(Value::from("b")))]),
    )?;
    commit(&store, tx).await?;
    until_leader(&store).await;
    let stats = store.collect_garbage()?;
    assert_eq!(stats.document_versions_removed, 0);
    assert_eq!(
        field(&store.begin_at(first)?.get(doc.id)?.expect("kept"), "name"),
        &Value::from("a")
    );
    Ok(())
}
