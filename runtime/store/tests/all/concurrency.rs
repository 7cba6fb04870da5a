use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use capstan_protocol::Value;
use capstan_store::{Patch, Query};

use crate::common::*;

const TASKS: usize = 8;
const INCREMENTS: usize = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_tasks_incrementing_one_counter_lose_no_update() -> anyhow::Result<()> {
    let dir = temp_dir();
    let store = sled_store(dir.path()).await?;
    let counter = insert(
        &store,
        "users",
        serde_json::json!({"name": "counter", "count": {"$integer": "AAAAAAAAAAA="}}),
    )
    .await?;
    let conflicts = Arc::new(AtomicUsize::new(0));

    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let store = store.clone();
        let conflicts = conflicts.clone();
        let id = counter.id;
        tasks.push(tokio::spawn(async move {
            let mut last_ts = capstan_protocol::Timestamp::MIN;
            for _ in 0..INCREMENTS {
                let done = run_with_retries(&store, 1000, |tx| {
                    let current = tx.get(id)?.expect("counter exists");
                    let Value::Int64(count) = field(&current, "count") else {
                        panic!("count is an int64");
                    };
                    tx.patch(
                        id,
                        Patch::from([("count".into(), Some(Value::Int64(count + 1)))]),
                    )?;
                    Ok(())
                })
                .await?;
                assert!(
                    done.ts > last_ts,
                    "each task's commits move forward in time"
                );
                last_ts = done.ts;
                conflicts.fetch_add(done.conflicts, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }

    let final_count = field(&store.begin().get(counter.id)?.expect("exists"), "count").clone();
    assert_eq!(final_count, Value::Int64((TASKS * INCREMENTS) as i64));
    let conflicts = conflicts.load(Ordering::Relaxed);
    assert!(
        conflicts > 0,
        "contending writers must have conflicted and retried"
    );
    eprintln!(
        "{} increments committed after {conflicts} conflicts were retried",
        TASKS * INCREMENTS
    );

    // Unrelated documents written concurrently do not conflict at all.
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for i in 0..20 {
                let done = run_with_retries(&store, 10, |tx| {
                    tx.insert(
                        "messages",
                        obj(serde_json::json!({"channel": format!("c{task}"), "n": i})),
                    )
                })
                .await?;
                assert_eq!(
                    done.value.table(),
                    store.catalog().table("messages")?.number
                );
                conflicts += done.conflicts;
            }
            anyhow::Ok(conflicts)
        }));
    }
    for task in tasks {
        assert_eq!(task.await??, 0);
    }
    assert_eq!(
        store
            .begin()
            .query(&Query::full_table_scan("messages"), None)?
            .len(),
        TASKS * 20
    );
    Ok(())
}
