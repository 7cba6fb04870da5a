use std::sync::Arc;

use capstan_protocol::Timestamp;
use capstan_store::persistence::{Batch, MemoryPersistence, Persistence};
use capstan_store::{Query, Store};

use crate::common::*;

#[tokio::test]
async fn data_schema_and_timestamps_survive_a_restart() -> anyhow::Result<()> {
    let dir = temp_dir();
    let (doc, last) = {
        let store = sled_store(dir.path()).await?;
        let doc = insert(
            &store,
            "users",
            serde_json::json!({"name": "kept", "big": "x".repeat(300_000)}),
        )
        .await?;
        let last = store.latest_ts();
        store.close().await?;
        (doc, last)
    };
    let store = reopen(dir.path(), config())?;
    assert_eq!(store.latest_ts(), last);
    let mut tx = store.begin();
    assert_eq!(tx.get(doc.id)?.as_ref(), Some(&doc));
    assert_eq!(
        tx.query(&Query::index("users", "by_name").eq("name", "kept"), None)?
            .len(),
        1
    );
    drop(tx);
    let next = insert(&store, "users", serde_json::json!({"name": "next"})).await?;
    assert!(store.latest_ts() > last);
    assert!(next.creation_time >= doc.creation_time);
    Ok(())
}

#[tokio::test]
async fn timestamps_never_go_backwards_even_when_the_clock_does() -> anyhow::Result<()> {
    // A store whose last commit is an hour in the future, as after the
    // clock was set back.
    let persistence = Arc::new(MemoryPersistence::new());
    let future = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64
        + 3_600_000_000_000;
    let mut batch = Batch::default();
    batch.put(
        capstan_store::keys::LAST_TS.to_vec(),
        future.to_be_bytes().to_vec(),
    );
    persistence.write(batch)?;
    let store = Store::with_persistence(persistence, config())?;
    store.apply_schema(messages_schema()).await?;
    let mut previous = Timestamp::new(future);
    for n in 0..20 {
        insert(&store, "messages", serde_json::json!({"n": n})).await?;
        let ts = store.latest_ts();
        assert!(ts > previous, "{ts} after {previous}");
        previous = ts;
    }
    Ok(())
}

#[tokio::test]
async fn receipts_commit_with_their_transaction_survive_a_restart_and_expire() -> anyhow::Result<()>
{
    let dir = temp_dir();
    let (ts, doc) = {
        let store = sled_store(dir.path()).await?;
        // A receipt alone makes a transaction a write.
        let mut tx = store.begin();
        tx.record_receipt(b"session/1", b"first".to_vec());
        let first = commit(&store, tx).await?;
        assert_eq!(
            store.receipt(b"session/1")?,
            Some((first, b"first".to_vec()))
        );

        // Written with the documents, stamped with their commit.
        let mut tx = store.begin();
        let doc = tx.insert("users", obj(serde_json::json!({"name": "r"})))?;
        tx.record_receipt(b"session/2", b"second".to_vec());
        let ts = commit(&store, tx).await?;

        // A dropped or conflicting transaction leaves no receipt.
        let mut dropped = store.begin();
        dropped.record_receipt(b"session/3", b"never".to_vec());
        drop(dropped);
        assert_eq!(store.receipt(b"session/3")?, None);
        store.close().await?;
        (ts, doc)
    };
    {
        let store = reopen(dir.path(), config())?;
        assert_eq!(store.receipt(b"session/2")?, Some((ts, b"second".to_vec())));
        assert!(store.begin().get(doc)?.is_some());
        store.close().await?;
    }

    let store = reopen(
        dir.path(),
        capstan_store::StoreConfig {
            receipt_retention: std::time::Duration::ZERO,
            ..config()
        },
    )?;
    until_leader(&store).await;
    let stats = store.collect_garbage()?;
    assert_eq!(stats.receipts_removed, 2);
    assert_eq!(store.receipt(b"session/2")?, None);
    Ok(())
}

/// sled 0.34 writes a snapshot to `snap.<lsn>.generating` and renames it
/// when complete, but on open it reads the newest `snap.*` file, unfinished
/// ones included (its issue #1527). A kill while a snapshot is written must
/// not leave a store that refuses to open.
#[tokio::test]
async fn an_unfinished_snapshot_file_does_not_stop_the_store_from_opening() -> anyhow::Result<()> {
    let dir = temp_dir();
    let doc = {
        // sled's own files: this test is for the embedded engine alone.
        let store = Store::open(dir.path(), config())?;
        store.apply_schema(messages_schema()).await?;
        let doc = insert(&store, "users", serde_json::json!({"name": "kept"})).await?;
        store.close().await?;
        doc
    };
    // What a kill in the middle of writing a snapshot leaves behind.
    std::fs::write(
        dir.path().join("snap.7FFFFFFFFFFFFFFF.generating"),
        vec![7u8; 100],
    )?;
    let store = Store::open(dir.path(), config())?;
    let mut tx = store.begin();
    assert_eq!(tx.get(doc.id)?.as_ref(), Some(&doc));
    drop(tx);
    assert!(!dir.path().join("snap.7FFFFFFFFFFFFFFF.generating").exists());
    Ok(())
}
