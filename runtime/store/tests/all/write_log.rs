use capstan_protocol::Value;
use capstan_store::{Patch, Query};

use crate::common::*;

#[tokio::test]
async fn subscribers_receive_every_commit_in_order_with_its_write_set() -> anyhow::Result<()> {
    let store = memory_store().await?;
    let start = store.latest_ts();
    let mut commits = store.subscribe();

    let doc = insert(&store, "messages", serde_json::json!({"channel": "a"})).await?;
    let mut tx = store.begin();
    tx.patch(
        doc.id,
        Patch::from([("channel".into(), Some(Value::from("b")))]),
    )?;
    let patched_at = commit(&store, tx).await?;

    let first = commits.recv().await?;
    let second = commits.recv().await?;
    assert!(first.ts < second.ts);
    assert_eq!(second.ts, patched_at);
    assert_eq!(first.writes.len(), 1);
    assert_eq!(first.writes[0].id, doc.id);

    let catalog = store.catalog();
    let by_channel = catalog.index("messages", "by_channel")?;
    let change = second.writes[0]
        .index_keys
        .iter()
        .find(|c| c.index == by_channel.id)
        .expect("by_channel key change");
    assert_ne!(change.old, change.new);
    assert!(change.old.is_some() && change.new.is_some());

    // A reader's range over channel "a" intersects the patch (the old key);
    // one over channel "c" does not.
    let mut reader = store.begin_at(first.ts)?;
    reader.query(
        &Query::index("messages", "by_channel").eq("channel", "a"),
        None,
    )?;
    assert!(reader.read_set().intersection(&second.writes).is_some());
    let mut other = store.begin_at(first.ts)?;
    other.query(
        &Query::index("messages", "by_channel").eq("channel", "c"),
        None,
    )?;
    assert!(other.read_set().intersection(&second.writes).is_none());

    let replay = store
        .commits_after(start)
        .map_err(|t| anyhow::anyhow!("{t:?}"))?;
    assert_eq!(
        replay.iter().map(|c| c.ts).collect::<Vec<_>>(),
        [first.ts, second.ts]
    );
    assert_eq!(
        store
            .commits_after(second.ts)
            .map_err(|t| anyhow::anyhow!("{t:?}"))?
            .len(),
        0
    );
    Ok(())
}
