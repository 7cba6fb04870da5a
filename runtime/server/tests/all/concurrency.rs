use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_increments_end_exact() -> anyhow::Result<()> {
    let dir = temp_dir();
    let server = std::sync::Arc::new(TestServer::with_guest(dir.path()).await?);
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            server
                .value("mutation", "api:increment", json!({"name": "hits"}))
                .await
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await??);
    }
    let mut values: Vec<i64> = results
        .iter()
        .map(|v| match capstan_protocol::Value::from_json(v) {
            Ok(capstan_protocol::Value::Int64(n)) => n,
            other => panic!("{other:?}"),
        })
        .collect();
    values.sort_unstable();
    assert_eq!(
        values,
        (1..=200).collect::<Vec<_>>(),
        "every increment saw a distinct count"
    );
    let server = std::sync::Arc::into_inner(server).expect("tasks done");
    server.stop().await
}
