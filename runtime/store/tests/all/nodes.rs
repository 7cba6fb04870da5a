//! Several nodes on one PostgreSQL database: each a [`Store`] of its own,
//! sharing nothing but the database, as separate processes would.

use std::time::Duration;

use capstan_protocol::Value;
use capstan_store::{Error, ErrorCode, Patch, PostgresConfig, Query, Store};
use capstan_test_support::Postgres;

use crate::common::*;

async fn nodes(url: &str, count: usize) -> anyhow::Result<Vec<Store>> {
    let first = postgres_store(url, config())?;
    first.apply_schema(messages_schema()).await?;
    let mut nodes = vec![first];
    for _ in 1..count {
        let node = postgres_store(url, config())?;
        node.apply_schema(messages_schema()).await?;
        nodes.push(node);
    }
    Ok(nodes)
}

fn number(value: &Value) -> i64 {
    match value {
        Value::Float64(n) => *n as i64,
        Value::Int64(n) => *n,
        other => panic!("not a number: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_increments_spread_over_three_nodes_end_exact() -> anyhow::Result<()> {
    let url = Postgres::shared().create_database();
    let nodes = nodes(&url, 3).await?;
    let counter = insert(&nodes[0], "messages", serde_json::json!({"n": 0}))
        .await?
        .id;
    let mut tasks = Vec::new();
    for i in 0..300 {
        let node = nodes[i % 3].clone();
        tasks.push(tokio::spawn(async move {
            node.refresh().await?;
            run_with_retries(&node, 500, |tx| {
                let current = tx.get(counter)?.expect("the counter exists");
                let n = number(field(&current, "n"));
                tx.patch(
                    counter,
                    Patch::from([("n".into(), Some(Value::Float64((n + 1) as f64)))]),
                )
            })
            .await
        }));
    }
    let mut conflicts = 0;
    for task in tasks {
        conflicts += task.await??.conflicts;
    }
    // Every node converges on the database's value.
    for node in &nodes {
        let n = eventually(
            node,
            |tx| {
                let doc = tx.get(counter)?.expect("the counter exists");
                Ok(number(field(&doc, "n")))
            },
            300,
        )
        .await?;
        assert_eq!(n, 300);
    }
    assert!(
        conflicts > 0,
        "three nodes incrementing one counter must have conflicted"
    );
    Ok(())
}

/// Reads on `node` until `read` gives `expected` (other nodes' commits
/// arrive by notification), at most 10 s.
async fn eventually<T: PartialEq + std::fmt::Debug>(
    node: &Store,
    mut read: impl FnMut(&mut capstan_store::Transaction) -> capstan_store::Result<T>,
    expected: T,
) -> anyhow::Result<T> {
    let mut last = None;
    for _ in 0..1000 {
        let mut tx = node.begin();
        let value = read(&mut tx)?;
        if value == expected {
            return Ok(value);
        }
        last = Some(value);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    anyhow::bail!("expected {expected:?}, still {last:?}")
}

#[tokio::test]
async fn write_skew_between_nodes_is_refused_as_a_conflict() -> anyhow::Result<()> {
    // Two doctors on call; each node takes one off call only if the other
    // is still on. Serializable execution keeps at least one on call.
    let url = Postgres::shared().create_database();
    let nodes = nodes(&url, 2).await?;
    let alice = insert(
        &nodes[0],
        "users",
        serde_json::json!({"name": "alice", "on_call": true}),
    )
    .await?
    .id;
    let bob = insert(
        &nodes[0],
        "users",
        serde_json::json!({"name": "bob", "on_call": true}),
    )
    .await?
    .id;
    for node in &nodes {
        eventually(node, |tx| Ok(tx.get(bob)?.is_some()), true).await?;
    }
    let on_call = |tx: &mut capstan_store::Transaction| -> capstan_store::Result<usize> {
        let all = tx.query(&Query::full_table_scan("users"), None)?;
        Ok(all
            .iter()
            .filter(|d| d.fields.get("on_call") == Some(&Value::Boolean(true)))
            .count())
    };
    let mut first = nodes[0].begin();
    let mut second = nodes[1].begin();
    assert_eq!(on_call(&mut first)?, 2);
    assert_eq!(on_call(&mut second)?, 2);
    first.patch(
        alice,
        Patch::from([("on_call".into(), Some(Value::Boolean(false)))]),
    )?;
    second.patch(
        bob,
        Patch::from([("on_call".into(), Some(Value::Boolean(false)))]),
    )?;
    let a = nodes[0].commit(first).await?;
    let b = nodes[1].commit(second).await?;
    assert!(a.is_ok(), "the first commit wins");
    assert!(b.is_err(), "the second read what the first changed: {b:?}");
    // Retried, it sees one doctor on call and leaves him there.
    let retried = run_with_retries(&nodes[1], 50, |tx| {
        if on_call(tx)? > 1 {
            tx.patch(
                bob,
                Patch::from([("on_call".into(), Some(Value::Boolean(false)))]),
            )?;
        }
        Ok(())
    })
    .await?;
    assert!(retried.conflicts <= 1);
    let mut tx = nodes[1].begin();
    assert_eq!(on_call(&mut tx)?, 1);
    Ok(())
}

#[tokio::test]
async fn a_subscriber_on_each_node_sees_every_other_nodes_commits() -> anyhow::Result<()> {
    let url = Postgres::shared().create_database();
    let nodes = nodes(&url, 3).await?;
    let mut receivers: Vec<_> = nodes.iter().map(Store::subscribe).collect();
    let mut written = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        for n in 0..5 {
            let doc = insert(
                node,
                "messages",
                serde_json::json!({"n": n, "channel": format!("node{i}")}),
            )
            .await?;
            written.push((i, doc.id));
        }
    }
    for (r, receiver) in receivers.iter_mut().enumerate() {
        let mut seen = std::collections::HashSet::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while seen.len() < written.len() {
            let entry = tokio::time::timeout_at(deadline, receiver.recv()).await??;
            for write in &entry.writes {
                seen.insert(write.id);
            }
        }
        for (_, id) in &written {
            assert!(seen.contains(id), "node {r} was told of every insert");
        }
        // And reads at its latest timestamp see all of them.
        let mut tx = nodes[r].begin();
        assert_eq!(
            tx.query(&Query::full_table_scan("messages"), None)?.len(),
            15
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_schema_applied_on_one_node_reaches_the_others() -> anyhow::Result<()> {
    let url = Postgres::shared().create_database();
    let nodes = nodes(&url, 2).await?;
    let schema = messages_schema().table(
        "scores",
        capstan_store::TableDefinition::default().index("by_points", &["points"]),
    );
    nodes[0].apply_schema(schema).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !nodes[1].catalog().tables.contains_key("scores") {
        assert!(
            std::time::Instant::now() < deadline,
            "node 1 never saw the new table"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    insert(&nodes[1], "scores", serde_json::json!({"points": 3})).await?;
    eventually(
        &nodes[0],
        |tx| Ok(tx.query(&Query::full_table_scan("scores"), None)?.len()),
        1,
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_database_restart_fails_calls_cleanly_then_they_recover_with_nothing_lost()
-> anyhow::Result<()> {
    let server = Postgres::start();
    let nodes = nodes(&server.url, 2).await?;
    let mut acknowledged = Vec::new();
    let mut failed = 0;
    for i in 0..400 {
        if i == 100 {
            server.kill();
        }
        if i == 200 {
            server.restart();
        }
        let node = &nodes[i % 2];
        let mut tx = node.begin();
        let id = tx.insert("messages", obj(serde_json::json!({"n": i})));
        let id = match id {
            Ok(id) => id,
            Err(e) => {
                assert_eq!(e.code(), ErrorCode::Unavailable, "{e}");
                failed += 1;
                continue;
            }
        };
        match node.commit(tx).await {
            Ok(Ok(_)) => acknowledged.push(id),
            Ok(Err(conflict)) => panic!("no conflicts here: {conflict}"),
            Err(Error::Unavailable(_)) => failed += 1,
            Err(e) => panic!("a database outage is Unavailable, not {e}"),
        }
    }
    assert!(failed > 0, "calls failed while the database was down");
    assert!(
        acknowledged.len() >= 200,
        "calls recovered after the restart"
    );
    for node in &nodes {
        node.refresh().await?;
        let mut tx = node.begin();
        for id in &acknowledged {
            assert!(tx.get(*id)?.is_some(), "acknowledged write {id} kept");
        }
    }
    Ok(())
}

#[tokio::test]
async fn nodes_reach_the_database_over_verified_tls() -> anyhow::Result<()> {
    let server = Postgres::start();
    let (authority, certificate, key) = capstan_test_support::signed_certificate();
    server.enable_tls(&certificate, &key);
    let dir = temp_dir();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, authority)?;
    let url = format!("{}?sslmode=require", server.url);

    // The database's certificate is checked: without its authority among
    // the roots, the connection is refused.
    let untrusted = Store::open_postgres(&PostgresConfig::new(url.clone()), config());
    let error = untrusted
        .expect_err("an unknown authority is refused")
        .to_string();
    assert!(
        error.contains("certificate") || error.contains("Certificate"),
        "{error}"
    );

    let mut postgres = PostgresConfig::new(url);
    postgres.ca_file = Some(ca_file);
    let store = Store::open_postgres(&postgres, config())?;
    store.apply_schema(messages_schema()).await?;
    let doc = insert(&store, "messages", serde_json::json!({"n": 1})).await?;
    assert_eq!(store.begin().get(doc.id)?.as_ref(), Some(&doc));
    let encrypted = server.psql(
        "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
         WHERE ssl AND application_name = 'capstan'",
    );
    assert_ne!(encrypted, "0", "the store's connections use TLS");
    let plain = server.psql(
        "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
         WHERE NOT ssl AND application_name = 'capstan'",
    );
    assert_eq!(plain, "0", "and none goes without");
    Ok(())
}

#[tokio::test]
async fn the_schema_is_created_once_and_a_newer_one_is_refused() -> anyhow::Result<()> {
    let server = Postgres::shared();
    let url = server.create_database();
    let name = url.rsplit('/').next().unwrap_or_default().to_owned();
    // Two nodes starting at once both migrate; the lock makes it once.
    let (a, b) = tokio::join!(
        tokio::task::spawn_blocking({
            let url = url.clone();
            move || postgres_store(&url, config())
        }),
        tokio::task::spawn_blocking({
            let url = url.clone();
            move || postgres_store(&url, config())
        }),
    );
    let (a, b) = (a??, b??);
    let sql = |sql: &str| server.psql_in(&name, sql);
    assert_eq!(
        sql("SELECT count(*), max(version) FROM capstan_migrations"),
        format!("{0}|{0}", capstan_store::postgres::SCHEMA_VERSION)
    );
    drop((a, b));
    sql("INSERT INTO capstan_migrations (version) VALUES (999)");
    let error = postgres_store(&url, config()).expect_err("a newer schema is refused");
    assert!(error.to_string().contains("upgrade Capstan"), "{error}");
    Ok(())
}
