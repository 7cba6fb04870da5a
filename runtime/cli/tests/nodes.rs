//! Three `capstan serve` processes on one PostgreSQL (Debian's, started on
//! loopback in a temporary directory): any node takes any call, every node's
//! subscribers see every node's writes, a node killed with SIGKILL or a
//! database restart loses no acknowledged write, and a snapshot moves an
//! app from sled to PostgreSQL and back.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use capstan_client::Client;
use capstan_test_support::Postgres;
use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};

/// A `capstan serve` on `port`, its store in the database at `url` (or
/// sled in `data` when `url` is `None`).
fn serve(data: &Path, port: u16, url: Option<&str>) -> Running {
    let mut command = capstan();
    command
        .args(["serve", "--data-dir"])
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env_remove("CAPSTAN_DATABASE_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let Some(url) = url {
        command.args(["--database-url", url]);
    }
    let server = Running(command.spawn().expect("capstan serve starts"));
    wait_for_health(port);
    server
}

struct Node {
    port: u16,
    server: Option<Running>,
    _data: tempfile::TempDir,
}

impl Node {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn admin_key(data: &Path) -> String {
    ok(capstan()
        .args(["keys", "--data-dir"])
        .arg(data)
        .output()
        .expect("runs"))
}

fn deploy(url: &str, key: &str) {
    let component = test_guest();
    ok(capstan()
        .args(["deploy", "--component"])
        .arg(&component)
        .args(["--url", url, "--admin-key", key])
        .output()
        .expect("runs"));
}

/// A call over HTTP: the status and the JSON answered.
async fn call(
    http: &reqwest::Client,
    node: &str,
    kind: &str,
    path: &str,
    args: Value,
) -> (u16, Value) {
    let response = http
        .post(format!("{node}/api/{kind}"))
        .json(&json!({"path": path, "args": args, "format": "json"}))
        .send()
        .await;
    match response {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

async fn value(http: &reqwest::Client, node: &str, kind: &str, path: &str, args: Value) -> Value {
    let (status, body) = call(http, node, kind, path, args).await;
    assert_eq!(status, 200, "{kind} {path} on {node}: {body}");
    assert_eq!(body["status"], "success", "{body}");
    body["value"].clone()
}

fn int64(value: &Value) -> i64 {
    match capstan_protocol::Value::from_json(value) {
        Ok(capstan_protocol::Value::Int64(n)) => n,
        other => panic!("not an int64: {other:?}"),
    }
}

async fn eventually(within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < within,
            "did not happen within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Three nodes on `postgres`, the test app deployed through the first.
async fn cluster(postgres: &Postgres, http: &reqwest::Client) -> (Vec<Node>, String) {
    let database = postgres.create_database();
    let nodes: Vec<Node> = (0..3)
        .map(|_| {
            let data = tempfile::tempdir().expect("temp dir");
            let port = free_port();
            let server = serve(data.path(), port, Some(&database));
            Node {
                port,
                server: Some(server),
                _data: data,
            }
        })
        .collect();
    let key = admin_key(nodes[0]._data.path());
    for node in &nodes[1..] {
        assert_eq!(
            admin_key(node._data.path()),
            key,
            "every node has the one admin key"
        );
    }
    deploy(&nodes[0].url(), &key);
    // Every node switches to the deployment the first took.
    for node in &nodes {
        let url = node.url();
        eventually(Duration::from_secs(30), async || {
            call(http, &url, "query", "api:count_all", json!({}))
                .await
                .0
                == 200
        })
        .await;
    }
    (nodes, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_serve_one_app_exactly_and_live() {
    let postgres = Postgres::start();
    let http = reqwest::Client::new();
    let (mut nodes, key) = cluster(&postgres, &http).await;
    let urls: Vec<String> = nodes.iter().map(Node::url).collect();

    // Shared state set through one node reaches the others: a variable,
    // and a rotated admin key (the old one then fails everywhere).
    ok(capstan()
        .args([
            "env",
            "set",
            "REGION",
            "eu-north",
            "--url",
            &urls[0],
            "--admin-key",
            &key,
        ])
        .output()
        .expect("runs"));
    for url in &urls {
        eventually(Duration::from_secs(15), async || {
            call(&http, url, "query", "api:env", json!({"name": "REGION"}))
                .await
                .1["value"]
                == "eu-north"
        })
        .await;
    }
    // Changes made one right after another on different nodes all hold:
    // none is built on a stale copy and lost.
    for (i, url) in urls.iter().enumerate() {
        ok(capstan()
            .args([
                "env",
                "set",
                &format!("NODE_{i}"),
                &format!("{i}"),
                "--url",
                url,
                "--admin-key",
                &key,
            ])
            .output()
            .expect("runs"));
    }
    for url in &urls {
        eventually(Duration::from_secs(15), async || {
            let mut all = true;
            for i in 0..3 {
                let (_, body) = call(
                    &http,
                    url,
                    "query",
                    "api:env",
                    json!({"name": format!("NODE_{i}")}),
                )
                .await;
                all &= body["value"] == json!(format!("{i}"));
            }
            all
        })
        .await;
    }
    let rotated = ok(capstan()
        .args(["keys", "rotate", "--url", &urls[1], "--admin-key", &key])
        .output()
        .expect("runs"));
    let rotated = rotated.lines().last().unwrap_or_default().trim().to_owned();
    for url in &urls {
        eventually(Duration::from_secs(15), async || {
            let env = |admin: &str| {
                capstan()
                    .args(["env", "list", "--url", url, "--admin-key", admin])
                    .output()
                    .expect("runs")
                    .status
                    .success()
            };
            env(&rotated) && !env(&key)
        })
        .await;
    }

    // Exactly one node holds the leader lease (collection, scheduler, crons).
    let mut leaders = 0;
    for url in &urls {
        let metrics = http
            .get(format!("{url}/metrics"))
            .bearer_auth(&rotated)
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        leaders += metrics
            .lines()
            .filter(|line| line.starts_with("capstan_leader "))
            .filter(|line| line.ends_with(" 1"))
            .count();
    }
    assert_eq!(leaders, 1, "one leader among three nodes");

    // A subscriber on each node.
    let mut subscriptions = Vec::new();
    for url in &urls {
        let client = Client::new(url).expect("client");
        let args = capstan_client::Value::from_json(&json!({"channel": "nodes"})).expect("args");
        let subscription = client
            .subscribe("api:list", args)
            .await
            .expect("subscribes");
        subscriptions.push((client, subscription));
    }

    // 300 increments of one counter, spread over the three nodes.
    let mut tasks = Vec::new();
    for i in 0..300 {
        let (http, url) = (http.clone(), urls[i % 3].clone());
        tasks.push(tokio::spawn(async move {
            value(
                &http,
                &url,
                "mutation",
                "api:increment",
                json!({"name": "hits"}),
            )
            .await
        }));
    }
    let mut counts = Vec::new();
    for task in tasks {
        counts.push(int64(&task.await.expect("task")));
    }
    counts.sort_unstable();
    assert_eq!(
        counts,
        (1..=300).collect::<Vec<_>>(),
        "each increment saw a distinct count"
    );
    // Exact, whichever node is asked next.
    for (i, url) in urls.iter().enumerate() {
        let count = value(
            &http,
            url,
            "mutation",
            "api:increment",
            json!({"name": "hits"}),
        )
        .await;
        assert_eq!(int64(&count), 301 + i as i64, "seen from {url}");
    }

    // Each node's mutations reach every node's subscriber.
    for (i, url) in urls.iter().enumerate() {
        value(
            &http,
            url,
            "mutation",
            "api:send",
            json!({"channel": "nodes", "body": format!("from {i}")}),
        )
        .await;
    }
    for (n, (_, subscription)) in subscriptions.iter_mut().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let update = tokio::time::timeout(remaining, subscription.next())
                .await
                .unwrap_or_else(|_| panic!("node {n}'s subscriber never saw all three messages"))
                .expect("subscription open")
                .expect("query succeeds")
                .to_json();
            let bodies: Vec<&str> = update
                .as_array()
                .map(|list| list.iter().filter_map(|m| m["body"].as_str()).collect())
                .unwrap_or_default();
            if ["from 0", "from 1", "from 2"]
                .iter()
                .all(|b| bodies.contains(b))
            {
                break;
            }
        }
    }

    // A stream of mutations to nodes 1 and 2 while node 1 is killed.
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for i in 0..200 {
        if i == 60 {
            let mut server = nodes[1].server.take().expect("running");
            server.0.kill().expect("SIGKILL");
            server.0.wait().expect("reaped");
        }
        let url = &urls[1 + i % 2];
        let (status, body) = call(
            &http,
            url,
            "mutation",
            "api:send",
            json!({"channel": "stream", "body": format!("m{i}")}),
        )
        .await;
        if status == 200 && body["status"] == "success" {
            acknowledged.push(body["value"].clone());
        } else {
            refused += 1;
        }
    }
    assert!(
        refused > 0 && refused <= 70,
        "only calls to the killed node failed: {refused}"
    );
    // The survivors serve, and hold every acknowledged write.
    for url in [&urls[0], &urls[2]] {
        for id in &acknowledged {
            let doc = value(&http, url, "query", "api:get", json!({"id": id})).await;
            assert!(doc.is_object(), "acknowledged {id} kept, seen from {url}");
        }
    }

    // The database restarts under load: calls fail cleanly, then recover.
    postgres.kill();
    let (status, body) = call(
        &http,
        &urls[0],
        "mutation",
        "api:send",
        json!({"channel": "outage", "body": "lost?"}),
    )
    .await;
    assert_eq!(
        status, 503,
        "a clean refusal while the database is down: {body}"
    );
    postgres.restart();
    eventually(Duration::from_secs(30), async || {
        let (status, _) = call(
            &http,
            &urls[2],
            "mutation",
            "api:send",
            json!({"channel": "outage", "body": "after"}),
        )
        .await;
        status == 200
    })
    .await;
    for url in [&urls[0], &urls[2]] {
        let after = value(
            &http,
            url,
            "query",
            "api:list",
            json!({"channel": "stream"}),
        )
        .await;
        assert_eq!(
            after.as_array().map(Vec::len),
            Some(acknowledged.len()),
            "nothing lost on {url}"
        );
        eventually(Duration::from_secs(15), async || {
            let (status, _) = call(
                &http,
                url,
                "mutation",
                "api:increment",
                json!({"name": "hits"}),
            )
            .await;
            status == 200
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_moves_an_app_from_sled_to_postgresql_and_back() {
    let postgres = Postgres::start();
    let http = reqwest::Client::new();
    let queries = [
        ("api:list", json!({"channel": "a"})),
        ("api:list", json!({"channel": "b"})),
        ("api:count_all", json!({})),
        (
            "api:page",
            json!({"channel": "b", "opts": {"numItems": 7, "cursor": null}}),
        ),
    ];
    let results = async |url: &str| {
        let mut out = Vec::new();
        for (path, args) in &queries {
            out.push(value(&http, url, "query", path, args.clone()).await);
        }
        out
    };

    // An app on sled, with some data.
    let sled_data = tempfile::tempdir().expect("temp dir");
    let sled_port = free_port();
    let _sled = serve(sled_data.path(), sled_port, None);
    let sled_url = format!("http://127.0.0.1:{sled_port}");
    let sled_key = admin_key(sled_data.path());
    deploy(&sled_url, &sled_key);
    for i in 0..40 {
        let channel = if i % 3 == 0 { "a" } else { "b" };
        value(
            &http,
            &sled_url,
            "mutation",
            "api:send",
            json!({"channel": channel, "body": format!("m{i}")}),
        )
        .await;
    }
    value(
        &http,
        &sled_url,
        "mutation",
        "api:increment",
        json!({"name": "hits"}),
    )
    .await;
    let on_sled = results(&sled_url).await;

    let snapshot = tempfile::tempdir().expect("temp dir");
    // `capstan export` or `capstan import` of `file` against `url`.
    let snapshot_command = |command: &str, url: &str, key: &str, file: &Path| {
        ok(capstan()
            .args([command, "--path"])
            .arg(file)
            .args(["--url", url, "--admin-key", key])
            .output()
            .expect("runs"));
    };
    let from_sled = snapshot.path().join("sled.zip");
    snapshot_command("export", &sled_url, &sled_key, &from_sled);

    // Into a deployment on PostgreSQL.
    let pg_data = tempfile::tempdir().expect("temp dir");
    let pg_port = free_port();
    let _pg = serve(pg_data.path(), pg_port, Some(&postgres.create_database()));
    let pg_url = format!("http://127.0.0.1:{pg_port}");
    let pg_key = admin_key(pg_data.path());
    deploy(&pg_url, &pg_key);
    snapshot_command("import", &pg_url, &pg_key, &from_sled);
    assert_eq!(
        results(&pg_url).await,
        on_sled,
        "identical query results on PostgreSQL"
    );

    // And back, into a fresh sled deployment.
    let from_pg = snapshot.path().join("postgres.zip");
    snapshot_command("export", &pg_url, &pg_key, &from_pg);
    let back_data = tempfile::tempdir().expect("temp dir");
    let back_port = free_port();
    let _back = serve(back_data.path(), back_port, None);
    let back_url = format!("http://127.0.0.1:{back_port}");
    let back_key = admin_key(back_data.path());
    deploy(&back_url, &back_key);
    snapshot_command("import", &back_url, &back_key, &from_pg);
    assert_eq!(
        results(&back_url).await,
        on_sled,
        "identical query results back on sled"
    );
    // The same documents, ids included.
    let documents = |url: String| {
        let http = http.clone();
        async move { value(&http, &url, "query", "api:list", json!({"channel": "a"})).await }
    };
    assert_eq!(documents(back_url).await, documents(sled_url).await);
}
