//! The platform's benchmark, each figure next to its floor in the same run:
//! (a) scheduled mutations run per second by the scheduler next to the same
//!     mutation called directly, as many at once as the scheduler runs;
//! (b) HTTP action requests per second next to `/api/action` with the same
//!     body;
//! (c) upload and download throughput next to a plain file copy (and one
//!     with an fsync) on the same disk.
//!
//! Run with `cargo bench -p capstan-server --bench platform`.

mod common;

use std::time::{Duration, Instant};

use capstan_host::{FunctionKind, FunctionPath};
use capstan_protocol::Identity;
use capstan_server::{Caller, Server, ServerConfig};
use serde_json::{Value, json};

const PHASE: Duration = Duration::from_secs(5);
const CONNECTIONS: usize = 8;
const SCHEDULED: u32 = 5000;
const FILE: usize = 256 << 20;

fn admin() -> Caller {
    Caller::new(Identity::Admin {
        impersonating: None,
    })
}

/// Whether a run of `jobs:mark` is still pending: read from the store
/// directly, so the polling costs the scheduler next to nothing.
fn marks_pending(server: &Server) -> anyhow::Result<bool> {
    let mut tx = server.app.store().begin();
    let query =
        capstan_store::Query::index("_scheduled_functions", "by_state").eq("state.kind", "pending");
    let pending = tx.query(&query, Some(64))?;
    Ok(pending.iter().any(|job| {
        job.fields
            .get("name")
            .and_then(capstan_protocol::Value::as_str)
            == Some("jobs:mark")
    }))
}

/// Requests per second of `request` on `CONNECTIONS` connections.
async fn rate(make: impl Fn() -> reqwest::RequestBuilder + Send + Sync + Clone + 'static) -> f64 {
    common::rate(CONNECTIONS, PHASE, move |_| {
        let request = make();
        async move {
            let response = request.send().await.expect("request");
            assert!(response.status().is_success(), "{}", response.status());
            let _ = response.bytes().await.expect("body");
        }
    })
    .await
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let guest = std::fs::read(capstan_test_support::component_path(
        "capstan-platform-guest",
        "platform_guest",
        capstan_test_support::Profile::Release,
    ))?;
    let dir = tempfile::tempdir()?;
    let mut config = ServerConfig::new(dir.path(), "127.0.0.1:0".parse()?);
    let unlimited = capstan_server::rate_limit::Rate {
        per_second: 0.0,
        burst: 1.0,
    };
    config.rate_limits.calls = unlimited;
    config.rate_limits.sockets = unlimited;
    if let Ok(concurrency) = std::env::var("CAPSTAN_BENCH_SCHEDULER_CONCURRENCY") {
        config.platform.scheduler_concurrency = concurrency.parse()?;
    }
    let concurrency = config.platform.scheduler_concurrency;
    let server = Server::start(config).await?;
    server.app.deploy(vec![guest], Default::default()).await?;
    let url = server.url();
    let client = reqwest::Client::new();
    println!("(the platform test app runs two 1-second crons throughout)");

    // (a) scheduled against direct.
    let started = Instant::now();
    for batch in 0..SCHEDULED / 1000 {
        server
            .app
            .call(
                Some(FunctionKind::Mutation),
                &FunctionPath::parse("jobs:schedule_many"),
                json!({"prefix": format!("s{batch}-"), "count": 1000, "delayMs": 0}).to_string(),
                admin(),
            )
            .await?
            .result
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    let scheduling = started.elapsed();
    while marks_pending(&server)? {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let scheduled = f64::from(SCHEDULED) / started.elapsed().as_secs_f64();
    println!(
        "    scheduling took {} ms, running {} ms",
        scheduling.as_millis(),
        (started.elapsed() - scheduling).as_millis()
    );
    let started = Instant::now();
    let per_task = SCHEDULED as usize / concurrency;
    let tasks: Vec<_> = (0..concurrency)
        .map(|task| {
            let app = server.app.clone();
            tokio::spawn(async move {
                for n in 0..per_task {
                    app.call(
                        Some(FunctionKind::Mutation),
                        &FunctionPath::parse("jobs:mark"),
                        json!({"key": format!("d{task}-{n}")}).to_string(),
                        admin(),
                    )
                    .await
                    .expect("call")
                    .result
                    .expect("runs");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await?;
    }
    let direct = (per_task * concurrency) as f64 / started.elapsed().as_secs_f64();
    println!(
        "(a) scheduled mutations: {scheduled:.0}/s run by the scheduler ({SCHEDULED} scheduled by 5 mutations, from scheduling to the last run); \
         the same mutation called directly, {concurrency} at once: {direct:.0}/s (ratio {:.2})",
        scheduled / direct
    );

    if std::env::var_os("CAPSTAN_BENCH_SCHEDULER_ONLY").is_some() {
        let metrics = client
            .get(format!("{url}/metrics"))
            .bearer_auth(server.admin_key.expose())
            .send()
            .await?
            .text()
            .await?;
        for line in metrics
            .lines()
            .filter(|l| l.contains("conflict") || l.starts_with("capstan_commits"))
        {
            println!("    {line}");
        }
        return server.stop().await.map_err(Into::into);
    }

    // (b) an HTTP action against /api/action with the same body.
    let body = "x".repeat(1024);
    let http = rate({
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        move || client.post(format!("{url}/http/echo")).body(body.clone())
    })
    .await;
    let action = rate({
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        move || {
            client.post(format!("{url}/api/action")).json(&json!({
                "path": "web:echo_body", "args": [{"body": body}], "format": "convex_encoded_json"
            }))
        }
    })
    .await;
    println!(
        "(b) HTTP action: {http:.0} requests/s; /api/action with the same 1 KiB body: {action:.0}/s (ratio {:.2}); {CONNECTIONS} connections",
        http / action
    );

    // (c) uploads and downloads against a file copy on the same disk.
    let upload_url: String = {
        let result = server
            .app
            .call(
                Some(FunctionKind::Mutation),
                &FunctionPath::parse("web:upload_url"),
                "{}".into(),
                admin(),
            )
            .await?
            .result
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        serde_json::from_str(&result)?
    };
    let chunk = bytes::Bytes::from(vec![7u8; 1 << 20]);
    let started = Instant::now();
    let chunks = futures_util::stream::iter(
        (0..FILE >> 20).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
    );
    let answer: Value = client
        .post(&upload_url)
        .header("content-length", FILE.to_string())
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await?
        .json()
        .await?;
    let upload = FILE as f64 / started.elapsed().as_secs_f64() / f64::from(1 << 20);
    let file_url: String = {
        let result = server
            .app
            .call(
                Some(FunctionKind::Query),
                &FunctionPath::parse("web:file_url"),
                json!({"id": answer["storageId"]}).to_string(),
                admin(),
            )
            .await?
            .result
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        serde_json::from_str(&result)?
    };
    let started = Instant::now();
    let mut response = client.get(&file_url).send().await?;
    let mut read = 0;
    while let Some(chunk) = response.chunk().await? {
        read += chunk.len();
    }
    anyhow::ensure!(read == FILE, "downloaded {read} bytes");
    let download = FILE as f64 / started.elapsed().as_secs_f64() / f64::from(1 << 20);
    let source = dir.path().join("copy-source");
    std::fs::write(&source, vec![7u8; FILE])?;
    let copy = |sync: bool| -> anyhow::Result<f64> {
        let target = dir.path().join("copy-target");
        let started = Instant::now();
        std::fs::copy(&source, &target)?;
        if sync {
            std::fs::File::open(&target)?.sync_all()?;
        }
        let rate = FILE as f64 / started.elapsed().as_secs_f64() / f64::from(1 << 20);
        std::fs::remove_file(&target)?;
        Ok(rate)
    };
    // The best of three each: the first copy also warms the page cache.
    let best = |sync: bool| -> anyhow::Result<f64> {
        Ok((0..3)
            .map(|_| copy(sync))
            .collect::<anyhow::Result<Vec<f64>>>()?
            .into_iter()
            .fold(0.0, f64::max))
    };
    let (plain, synced) = (best(false)?, best(true)?);
    println!(
        "(c) 256 MiB: upload {upload:.0} MiB/s, download {download:.0} MiB/s over HTTP on loopback; \
         a file copy on the same disk {plain:.0} MiB/s, with an fsync {synced:.0} MiB/s \
         (upload/synced copy {:.2}, download/copy {:.2})",
        upload / synced,
        download / plain
    );
    server.stop().await?;
    Ok(())
}
