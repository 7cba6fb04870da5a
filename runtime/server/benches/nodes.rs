//! Scale-out on PostgreSQL, each figure next to its floor in the same run:
//! - PostgreSQL's own rate of single-row `INSERT` commits (the floor of
//!   any durable write through it), 16 connections;
//! - durable mutations per second, and query latency, on sled with one
//!   node and on PostgreSQL with 1, 2 and 3 nodes (calls spread over them);
//! - the delay from a mutation on one node to a subscriber's update on
//!   another, next to a subscriber on the same node.
//!
//! Run with `cargo bench -p capstan-server --bench nodes` (starts Debian's
//! PostgreSQL on loopback, as the tests do).

mod common;

use std::time::{Duration, Instant};

use capstan_server::{Server, ServerConfig};
use capstan_test_support::Postgres;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};

const PHASE: Duration = Duration::from_secs(5);
const CONNECTIONS: usize = 16;
const LATENCY_SAMPLES: usize = 300;
const DELAY_SAMPLES: usize = 50;

fn config(dir: &std::path::Path, postgres: Option<&str>) -> anyhow::Result<ServerConfig> {
    let mut config = ServerConfig::new(dir, "127.0.0.1:0".parse()?);
    let unlimited = capstan_server::rate_limit::Rate {
        per_second: 0.0,
        burst: 1.0,
    };
    config.rate_limits.calls = unlimited;
    config.rate_limits.sockets = unlimited;
    config.http.max_connections_per_ip = 100_000;
    config.http.max_sockets_per_ip = 100_000;
    config.postgres = postgres.map(capstan_server::PostgresConfig::new);
    Ok(config)
}

/// Single-row insert commits per second straight through the driver.
async fn postgres_floor(url: &str) -> anyhow::Result<f64> {
    let (setup, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    setup
        .batch_execute("CREATE TABLE floor (id bigserial PRIMARY KEY, body bytea NOT NULL)")
        .await?;
    let deadline = Instant::now() + PHASE;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        tasks.push(tokio::spawn(async move {
            let statement = client
                .prepare("INSERT INTO floor (body) VALUES ($1)")
                .await
                .expect("prepares");
            let body = vec![7u8; 100];
            let mut n = 0u64;
            while Instant::now() < deadline {
                client.execute(&statement, &[&body]).await.expect("inserts");
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await?;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

async fn post(client: &reqwest::Client, url: &str, kind: &str, path: &str, args: Value) -> Value {
    let response = client
        .post(format!("{url}/api/{kind}"))
        .json(&json!({"path": path, "args": args, "format": "json"}))
        .send()
        .await
        .expect("request");
    assert!(response.status().is_success(), "{}", response.status());
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], "success", "{body}");
    body["value"].clone()
}

/// Mutations per second on `CONNECTIONS` connections spread over `urls`.
async fn mutation_rate(urls: &[String]) -> f64 {
    let (client, urls) = (reqwest::Client::new(), urls.to_vec());
    common::rate(CONNECTIONS, PHASE, move |c| {
        let (client, url) = (client.clone(), urls[c % urls.len()].clone());
        async move {
            let args = json!({"channel": format!("load{c}"), "body": "x".repeat(100)});
            post(&client, &url, "mutation", "api:send", args).await;
        }
    })
    .await
}

/// Median and 99th percentile of one query's latency, one at a time,
/// round-robin over `urls`.
async fn query_latency(urls: &[String], id: &Value) -> (Duration, Duration) {
    let client = reqwest::Client::new();
    let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
    for i in 0..LATENCY_SAMPLES {
        let started = Instant::now();
        post(
            &client,
            &urls[i % urls.len()],
            "query",
            "api:get",
            json!({"id": id}),
        )
        .await;
        samples.push(started.elapsed());
    }
    samples.sort();
    (
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100],
    )
}

/// The time from sending a mutation to `writer` until a subscriber on
/// `reader` holds its result (median).
async fn update_delay(writer: &str, reader: &str) -> anyhow::Result<Duration> {
    let ws = format!(
        "{}/api/{}/sync",
        reader.replace("http://", "ws://"),
        "1.48.0"
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(ws).await?;
    let channel = format!("delay-{}", rand_suffix());
    let connect = json!({"type": "Connect", "sessionId": "00000000-0000-4000-8000-000000000000", "connectionCount": 0, "lastCloseReason": null, "maxObservedTimestamp": null});
    socket.send(connect.to_string().into()).await?;
    let modify = json!({"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": [
        {"type": "Add", "queryId": 0, "udfPath": "api:list", "args": [{"channel": channel}]}
    ]});
    socket.send(modify.to_string().into()).await?;
    let client = reqwest::Client::new();
    let mut samples = Vec::with_capacity(DELAY_SAMPLES);
    let mut expected = 0usize;
    // The first transition holds the empty list.
    wait_for_length(&mut socket, expected).await?;
    for n in 0..DELAY_SAMPLES {
        let started = Instant::now();
        post(
            &client,
            writer,
            "mutation",
            "api:send",
            json!({"channel": channel, "body": format!("{n}")}),
        )
        .await;
        expected += 1;
        wait_for_length(&mut socket, expected).await?;
        samples.push(started.elapsed());
    }
    samples.sort();
    Ok(samples[samples.len() / 2])
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Reads transitions until the subscribed list holds `length` messages.
async fn wait_for_length<S>(socket: &mut S, length: usize) -> anyhow::Result<()>
where
    S: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("socket closed"))??;
        let Ok(text) = message.into_text() else {
            continue;
        };
        let Ok(value) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if value["type"] != "Transition" {
            continue;
        }
        for modification in value["modifications"].as_array().into_iter().flatten() {
            if modification["value"].as_array().map(Vec::len) == Some(length) {
                return Ok(());
            }
        }
    }
}

struct Cluster {
    nodes: Vec<Server>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Cluster {
    async fn start(count: usize, postgres: Option<&str>, guest: &[u8]) -> anyhow::Result<Cluster> {
        let mut nodes: Vec<Server> = Vec::new();
        let mut dirs = Vec::new();
        for _ in 0..count {
            let dir = tempfile::tempdir()?;
            nodes.push(Server::start(config(dir.path(), postgres)?).await?);
            dirs.push(dir);
        }
        nodes[0]
            .app
            .deploy(vec![guest.to_vec()], Default::default())
            .await?;
        // Every node serves the deployment before the clock starts.
        let client = reqwest::Client::new();
        for node in &nodes {
            loop {
                let response = client
                    .post(format!("{}/api/query", node.url()))
                    .json(&json!({"path": "api:count_all", "args": {}, "format": "json"}))
                    .send()
                    .await?;
                if response.status().is_success() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(Cluster { nodes, _dirs: dirs })
    }

    fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Server::url).collect()
    }

    async fn stop(self) -> anyhow::Result<()> {
        for node in self.nodes {
            node.stop().await?;
        }
        Ok(())
    }
}

async fn measure(label: &str, cluster: &Cluster) -> anyhow::Result<()> {
    let urls = cluster.urls();
    let client = reqwest::Client::new();
    let id = post(
        &client,
        &urls[0],
        "mutation",
        "api:send",
        json!({"channel": "read", "body": "read me"}),
    )
    .await;
    let rate = mutation_rate(&urls).await;
    let (p50, p99) = query_latency(&urls, &id).await;
    println!(
        "{label:<28} {rate:>8.0} mutations/s   query p50 {:>6.2} ms  p99 {:>6.2} ms",
        p50.as_secs_f64() * 1000.0,
        p99.as_secs_f64() * 1000.0
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let guest = std::fs::read(capstan_test_support::component_path(
        "capstan-test-guest",
        "test_guest",
        capstan_test_support::Profile::Release,
    ))?;
    let postgres = Postgres::start();
    println!(
        "(PostgreSQL {} on loopback, fsync on; {CONNECTIONS} connections)",
        postgres.psql("SHOW server_version")
    );

    let floor = postgres_floor(&postgres.create_database()).await?;
    println!(
        "{:<28} {floor:>8.0} commits/s (single-row INSERT, autocommit)",
        "PostgreSQL floor"
    );

    let sled = Cluster::start(1, None, &guest).await?;
    measure("sled, 1 node", &sled).await?;
    sled.stop().await?;

    for count in 1..=3 {
        let database = postgres.create_database();
        let cluster = Cluster::start(count, Some(&database), &guest).await?;
        measure(&format!("PostgreSQL, {count} node(s)"), &cluster).await?;
        if count >= 2 {
            let urls = cluster.urls();
            let same = update_delay(&urls[0], &urls[0]).await?;
            let other = update_delay(&urls[0], &urls[1]).await?;
            println!(
                "{:<28} same node {:>6.2} ms, another node {:>6.2} ms (median, mutation sent → update received)",
                "  commit → subscriber",
                same.as_secs_f64() * 1000.0,
                other.as_secs_f64() * 1000.0
            );
        }
        cluster.stop().await?;
    }
    Ok(())
}
