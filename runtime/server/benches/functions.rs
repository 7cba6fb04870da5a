//! Function-call benchmark:
//! (a) a trivial query through the host (fresh store, WASI, limits,
//!     transaction, values) next to bare wasmtime instantiate + call of the
//!     same component;
//! (a') an indexed query returning 10 documents through the host;
//! (b) `/api/query` with 64 concurrent connections on loopback next to a bare
//!     axum handler returning the same JSON;
//! (c) durable mutations per second over HTTP with 64 connections;
//! (d) the latency a user token adds to a query over HTTP.
//!
//! Run with `cargo bench -p capstan-server`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use capstan_host::{Access, Call, HostEngine, HostLimits, Module};
use capstan_server::{Server, ServerConfig};
use capstan_store::{Store, StoreConfig};
use serde_json::json;

const PHASE: Duration = Duration::from_secs(3);
const CONNECTIONS: usize = 64;

fn release_component(package: &str, file: &str) -> Vec<u8> {
    let path =
        capstan_test_support::component_path(package, file, capstan_test_support::Profile::Release);
    std::fs::read(&path).expect("component")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn measure(mut call: impl FnMut()) -> (f64, Duration) {
    for _ in 0..200 {
        call();
    }
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed() < PHASE {
        let began = Instant::now();
        call();
        samples.push(began.elapsed());
    }
    samples.sort_unstable();
    (
        samples.len() as f64 / start.elapsed().as_secs_f64(),
        percentile(&samples, 0.5),
    )
}

async fn load(
    client: &reqwest::Client,
    url: &str,
    body: serde_json::Value,
) -> (f64, Duration, Duration) {
    let deadline = Instant::now() + PHASE;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let client = client.clone();
        let url = url.to_owned();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            while Instant::now() < deadline {
                let began = Instant::now();
                let response = client.post(&url).json(&body).send().await.expect("request");
                assert!(response.status().is_success());
                let _ = response.bytes().await.expect("body");
                samples.push(began.elapsed());
            }
            samples
        }));
    }
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await.expect("task"));
    }
    let elapsed = started.elapsed();
    samples.sort_unstable();
    (
        samples.len() as f64 / elapsed.as_secs_f64(),
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let bytes = release_component("capstan-test-guest", "test_guest");

    // (a) the host against bare wasmtime.
    let engine = HostEngine::new(HostLimits::default())?;
    let (module, _) = Module::load(&engine, &bytes, None)?;
    let module = Arc::new(module);
    let store = Store::open_in_memory(StoreConfig {
        gc_interval: None,
        ..StoreConfig::default()
    })?;
    store.apply_schema(module.schema().clone()).await?;
    let (_, instantiate_p50) = measure(|| {
        module.run_bare("", "{}").expect("bare instantiate");
    });
    let (bare_rate, bare_p50) = measure(|| {
        module.run_bare("api:echo", "{}").expect("bare call");
    });
    let counter = Module::load(&engine, &release_component("counter", "counter"), None)?.0;
    let (_, counter_p50) = measure(|| {
        counter.run_bare("", "{}").expect("bare instantiate");
    });
    let (host_rate, host_p50) = measure(|| {
        let outcome = module.run(Call {
            path: "api:echo".into(),
            args: "{}".into(),
            access: Access::Query(store.begin()),
            environment: Arc::default(),
            identity: Default::default(),
            deadline: None,
            platform: None,
        });
        outcome.result.expect("host call");
    });
    println!("(a) trivial query, one thread");
    println!(
        "    bare wasmtime instantiate + call: {bare_rate:>9.0} /s   p50 {:>6.1} µs",
        bare_p50.as_secs_f64() * 1e6
    );
    println!(
        "    through the host:                 {host_rate:>9.0} /s   p50 {:>6.1} µs",
        host_p50.as_secs_f64() * 1e6
    );
    println!(
        "    host / bare at p50: {:.2}x",
        host_p50.as_secs_f64() / bare_p50.as_secs_f64()
    );
    println!(
        "    bare instantiate alone: p50 {:.1} µs; the counter example's: {:.1} µs",
        instantiate_p50.as_secs_f64() * 1e6,
        counter_p50.as_secs_f64() * 1e6
    );

    // The one-shot query of the sync bench, without the socket: an indexed
    // query returning 10 documents (among 100 in the table), on sled.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let store = Store::open(
        dir.path(),
        StoreConfig {
            gc_interval: None,
            ..StoreConfig::default()
        },
    )?;
    store.apply_schema(module.schema().clone()).await?;
    for n in 0..100 {
        let mut transaction = store.begin();
        let mut fields = capstan_protocol::Object::new();
        let channel = if n % 10 == 0 {
            "ten".to_owned()
        } else {
            format!("other {n}")
        };
        fields.insert("channel".into(), capstan_protocol::Value::String(channel));
        fields.insert(
            "body".into(),
            capstan_protocol::Value::String(format!("message {n}")),
        );
        transaction.insert("messages", fields)?;
        store
            .commit(transaction)
            .await?
            .map_err(|c| anyhow::anyhow!("{c:?}"))?;
    }
    let (list_rate, list_p50) = measure(|| {
        let outcome = module.run(Call {
            path: "api:list".into(),
            args: r#"{"channel":"ten"}"#.into(),
            access: Access::Query(store.begin()),
            environment: Arc::default(),
            identity: Default::default(),
            deadline: None,
            platform: None,
        });
        let list = outcome.result.expect("host call");
        assert!(list.matches("\"body\"").count() == 10, "{list}");
    });
    println!(
        "(a') indexed query returning 10 documents, through the host: {list_rate:>7.0} /s   p50 {:>6.1} µs",
        list_p50.as_secs_f64() * 1e6
    );
    drop(store);
    if std::env::var_os("CAPSTAN_BENCH_HOST_ONLY").is_some() {
        return Ok(());
    }

    // (b) and (c): a real server on loopback.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let mut config = ServerConfig::new(dir.path(), "127.0.0.1:0".parse()?);
    // The load comes from one address: the per-client rate is not measured.
    config.rate_limits.calls.per_second = 0.0;
    config.http.max_connections_per_ip = 100_000;
    let server = Server::start(config).await?;
    let (issuer_key, issuer_config) = es256_issuer();
    server
        .app
        .deploy(vec![bytes], serde_json::from_value(issuer_config)?)
        .await?;
    let bare = axum::Router::new().route(
        "/api/query",
        axum::routing::post(|| async {
            axum::Json(json!({"status": "success", "value": {}, "logLines": []}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let bare_addr = listener.local_addr()?;
    // Ends with the process.
    tokio::spawn(async move { axum::serve(listener, bare).await });

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .build()?;
    let query = json!({"path": "api:echo", "args": [{}], "format": "convex_encoded_json"});
    let (bare_rate, bare_p50, bare_p99) = load(
        &client,
        &format!("http://{bare_addr}/api/query"),
        query.clone(),
    )
    .await;
    let (rate, p50, p99) = load(&client, &format!("{}/api/query", server.url()), query).await;
    println!("(b) /api/query, {CONNECTIONS} connections on loopback");
    println!(
        "    bare axum handler: {bare_rate:>8.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms",
        bare_p50.as_secs_f64() * 1e3,
        bare_p99.as_secs_f64() * 1e3
    );
    println!(
        "    capstan:           {rate:>8.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   ({:.0}% of bare)",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        100.0 * rate / bare_rate
    );

    let mutation = json!({"path": "api:send", "args": [{"channel": "bench", "body": "x"}], "format": "convex_encoded_json"});
    let (rate, p50, p99) = load(&client, &format!("{}/api/mutation", server.url()), mutation).await;
    println!("(c) durable mutations over HTTP, {CONNECTIONS} connections");
    println!(
        "    {rate:>8.0} mutations/s   p50 {:>7.2} ms   p99 {:>7.2} ms",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );

    // (d) the same query anonymous and with a user token (ES256, keys cached
    // after the first call), one connection, one request at a time.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            kid: Some("bench".into()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256)
        },
        &json!({"iss": "https://auth.example.com", "sub": "user_1", "aud": "bench",
                "iat": now, "exp": now + 3600, "email": "ada@example.com"}),
        &issuer_key,
    )?;
    let url = format!("{}/api/query", server.url());
    let query = json!({"path": "api:echo", "args": [{}], "format": "convex_encoded_json"});
    // Alternating rounds, the median of each: neighbours on this machine
    // shift single phases.
    let mut anonymous = Vec::new();
    let mut authenticated = Vec::new();
    for _ in 0..3 {
        anonymous.push(sequential(&client, &url, &query, None).await);
        authenticated.push(sequential(&client, &url, &query, Some(&token)).await);
    }
    anonymous.sort_unstable();
    authenticated.sort_unstable();
    let (anonymous, authenticated) = (anonymous[1], authenticated[1]);
    println!(
        "(d) /api/query one request at a time, anonymous and with an ES256 user token (median of 3 alternating rounds)"
    );
    for (label, (p50, p99)) in [("anonymous", anonymous), ("user token", authenticated)] {
        println!(
            "    {label:<11} p50 {:>7.1} µs   p99 {:>7.1} µs",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6
        );
    }
    println!(
        "    added by the token at p50: {:.1} µs",
        (authenticated.0.as_secs_f64() - anonymous.0.as_secs_f64()) * 1e6
    );
    server.stop().await?;
    Ok(())
}

/// p50 and p99 of `PHASE` of requests one after another.
async fn sequential(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
    token: Option<&str>,
) -> (Duration, Duration) {
    let mut samples = Vec::new();
    let started = Instant::now();
    while started.elapsed() < PHASE {
        let began = Instant::now();
        let mut request = client.post(url).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        assert!(response.status().is_success(), "{}", response.status());
        let _ = response.bytes().await.expect("body");
        samples.push(began.elapsed());
    }
    samples.sort_unstable();
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

/// An ES256 signing key and an app config trusting it.
fn es256_issuer() -> (jsonwebtoken::EncodingKey, serde_json::Value) {
    use base64::Engine as _;
    use ring::signature::KeyPair as _;
    let rng = ring::rand::SystemRandom::new();
    let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("key");
    let pair = ring::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("key");
    let point = pair.public_key().as_ref();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let config = json!({"auth": {"providers": [{
        "type": "customJwt", "issuer": "https://auth.example.com", "algorithm": "ES256",
        "applicationID": "bench",
        "jwks": {"keys": [{"kty": "EC", "crv": "P-256", "kid": "bench",
                           "x": b64(&point[1..33]), "y": b64(&point[33..65])}]},
    }]}});
    (
        jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref()),
        config,
    )
}
