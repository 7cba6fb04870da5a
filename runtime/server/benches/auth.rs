//! Built-in auth benchmark, each figure next to its floor in the same run:
//! (a) password sign-ins per second over HTTP next to bare Argon2id checks
//!     of the same hash on both cores;
//! (b) refresh-token exchanges per second over HTTP next to bare RS256
//!     token signatures;
//! (c) the latency a Capstan-issued token adds to a query over HTTP.
//!
//! Run with `cargo bench -p capstan-server --bench auth`.

use std::time::{Duration, Instant};

use capstan_server::{Server, ServerConfig};
use serde_json::{Value, json};

const PHASE: Duration = Duration::from_secs(5);
const CONNECTIONS: usize = 8;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn sign_in(client: &reqwest::Client, url: &str, args: Value) -> Value {
    let response = client
        .post(format!("{url}/api/action"))
        .json(&json!({"path": "auth:signIn", "args": [args], "format": "convex_encoded_json"}))
        .send()
        .await
        .expect("request");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], "success", "{body}");
    body["value"].clone()
}

/// Calls per second of `work` on `threads` threads for `PHASE`.
fn bare(threads: usize, work: impl Fn() + Sync) -> f64 {
    let deadline = Instant::now() + PHASE;
    let started = Instant::now();
    let count: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut n = 0;
                    while Instant::now() < deadline {
                        work();
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).sum()
    });
    count as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let guest = std::fs::read(capstan_test_support::component_path(
        "capstan-test-guest",
        "test_guest",
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
    let server = Server::start(config).await?;
    let app_config = serde_json::from_value(json!({"auth": {"builtIn": {
        "providers": {"password": {"type": "password"}},
        "failedAttemptsPerHour": 1000000,
    }}}))?;
    server.app.deploy(vec![guest], app_config).await?;
    let url = server.url();
    let client = reqwest::Client::new();

    // (a) password sign-ins against bare Argon2id.
    for i in 0..CONNECTIONS {
        sign_in(
            &client,
            &url,
            json!({"provider": "password", "params": {"flow": "signUp", "email": format!("u{i}@bench.example"), "password": "correct horse battery"}}),
        )
        .await;
    }
    let deadline = Instant::now() + PHASE;
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let mut n = 0usize;
                while Instant::now() < deadline {
                    sign_in(
                        &client,
                        &url,
                        json!({"provider": "password", "params": {"flow": "signIn", "email": format!("u{i}@bench.example"), "password": "correct horse battery"}}),
                    )
                    .await;
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut signed_in = 0;
    for task in tasks {
        signed_in += task.await?;
    }
    let sign_ins = signed_in as f64 / started.elapsed().as_secs_f64();
    let hash = capstan_auth::password::hash("correct horse battery").map_err(anyhow::Error::msg)?;
    let floor = bare(2, || {
        let _ = capstan_auth::password::verify("correct horse battery", &hash);
    });
    println!(
        "(a) password sign-ins over HTTP, {CONNECTIONS} connections, next to bare Argon2id checks on 2 threads"
    );
    println!(
        "    sign-ins {sign_ins:>8.1}/s   bare Argon2id {floor:>8.1}/s   ratio {:.2}",
        sign_ins / floor
    );

    // (b) refresh exchanges against bare RS256 signatures.
    let mut refresh_tokens = Vec::new();
    for i in 0..CONNECTIONS {
        let value = sign_in(
            &client,
            &url,
            json!({"provider": "password", "params": {"flow": "signIn", "email": format!("u{i}@bench.example"), "password": "correct horse battery"}}),
        )
        .await;
        refresh_tokens.push(
            value["tokens"]["refreshToken"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    let deadline = Instant::now() + PHASE;
    let started = Instant::now();
    let tasks: Vec<_> = refresh_tokens
        .into_iter()
        .map(|mut token| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let mut n = 0usize;
                while Instant::now() < deadline {
                    let value = sign_in(&client, &url, json!({ "refreshToken": token })).await;
                    token = value["tokens"]["refreshToken"]
                        .as_str()
                        .expect("rotated")
                        .to_owned();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut refreshed = 0;
    for task in tasks {
        refreshed += task.await?;
    }
    let refreshes = refreshed as f64 / started.elapsed().as_secs_f64();
    let issuer = server.app.sign_in().issuer.clone();
    let floor = bare(2, || {
        let _ = issuer.sign("user|session", serde_json::Map::new(), 1, 3600);
    });
    println!(
        "(b) refresh exchanges over HTTP, {CONNECTIONS} connections, next to bare RS256 signatures on 2 threads"
    );
    println!(
        "    refreshes {refreshes:>8.1}/s   bare signatures {floor:>8.1}/s   ratio {:.2}",
        refreshes / floor
    );

    // (c) a query anonymous and with a Capstan token, one at a time.
    let token = sign_in(
        &client,
        &url,
        json!({"provider": "password", "params": {"flow": "signIn", "email": "u0@bench.example", "password": "correct horse battery"}}),
    )
    .await["tokens"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let query = json!({"path": "api:echo", "args": [{}], "format": "convex_encoded_json"});
    let mut rounds = (Vec::new(), Vec::new());
    for _ in 0..3 {
        rounds.0.push(sequential(&client, &url, &query, None).await);
        rounds
            .1
            .push(sequential(&client, &url, &query, Some(&token)).await);
    }
    rounds.0.sort_unstable();
    rounds.1.sort_unstable();
    let (anonymous, authenticated) = (rounds.0[1], rounds.1[1]);
    println!(
        "(c) /api/query one request at a time, anonymous and with a Capstan-issued RS256 token (median of 3 alternating rounds)"
    );
    println!(
        "    anonymous p50 {:>7.1} µs   with token p50 {:>7.1} µs   added {:>6.1} µs",
        anonymous.as_secs_f64() * 1e6,
        authenticated.as_secs_f64() * 1e6,
        (authenticated.as_secs_f64() - anonymous.as_secs_f64()) * 1e6
    );
    server.stop().await?;
    Ok(())
}

/// p50 of `PHASE` of requests one after another.
async fn sequential(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
    token: Option<&str>,
) -> Duration {
    let mut samples = Vec::new();
    let started = Instant::now();
    while started.elapsed() < PHASE / 2 {
        let began = Instant::now();
        let mut request = client.post(format!("{url}/api/query")).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        assert!(response.status().is_success(), "{}", response.status());
        let _ = response.bytes().await.expect("body");
        samples.push(began.elapsed());
    }
    samples.sort_unstable();
    percentile(&samples, 0.5)
}
