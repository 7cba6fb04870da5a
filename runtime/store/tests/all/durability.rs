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
    let store = Store::open(dir.path(), config())?;
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
