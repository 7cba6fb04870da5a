//! The soak: mixed traffic for `CAPSTAN_SOAK_SECONDS` (120 in CI; 1800 for
//! the long run) from this Rust client and the unmodified `convex` npm
//! client (`tests/conformance/soak.mjs`), both reconnecting every 15 s,
//! with a deploy in the middle. No call may fail, every acknowledged
//! increment must be counted exactly once, and resident memory must stay
//! flat once warm.
//!
//! `CAPSTAN_SOAK_SECONDS=1800 cargo test -p capstan-client --test soak -- --nocapture`

use std::time::Duration;

use capstan_client::{Client, Value};
use capstan_server::{Server, ServerConfig};
use serde_json::json;

fn value(json: serde_json::Value) -> Value {
    Value::from_json(&json).expect("a valid value")
}

/// Increments `name` until `deadline` from a fresh client every 15 s,
/// holding a subscription: (acknowledged, errors).
async fn rust_side(
    url: String,
    name: String,
    deadline: tokio::time::Instant,
) -> (u64, Vec<String>) {
    let (mut acknowledged, mut errors) = (0, Vec::new());
    while tokio::time::Instant::now() < deadline {
        let client = match Client::new(&url) {
            Ok(client) => client,
            Err(error) => {
                errors.push(error.to_string());
                break;
            }
        };
        let subscription = client.subscribe("api:count_all", value(json!({}))).await;
        if let Err(error) = &subscription {
            errors.push(error.to_string());
        }
        let until = deadline.min(tokio::time::Instant::now() + Duration::from_secs(15));
        while tokio::time::Instant::now() < until {
            match client
                .mutation("api:increment", value(json!({ "name": name })))
                .await
            {
                Ok(_) => acknowledged += 1,
                Err(error) => errors.push(error.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(subscription);
        drop(client);
    }
    (acknowledged, errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_traffic_with_reconnects_and_a_deploy() -> anyhow::Result<()> {
    let seconds: u64 = std::env::var("CAPSTAN_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let suite = capstan_test_support::root().join("tests/conformance");
    anyhow::ensure!(
        suite.join("node_modules/convex/package.json").exists(),
        "the convex npm package is not installed: run `npm ci` in {} (./tests/run does)",
        suite.display()
    );
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let mut config = ServerConfig::new(dir.path(), "127.0.0.1:0".parse()?);
    // To see what of the growth is the store's page cache filling up.
    if let Some(mib) = std::env::var("CAPSTAN_SOAK_CACHE_MIB")
        .ok()
        .and_then(|m| m.parse::<u64>().ok())
    {
        config.store.cache_bytes = mib << 20;
    }
    // To see what of it is the exactly-once receipts.
    if let Some(seconds) = std::env::var("CAPSTAN_SOAK_RECEIPT_SECONDS")
        .ok()
        .and_then(|m| m.parse::<u64>().ok())
    {
        config.store.receipt_retention = Duration::from_secs(seconds);
        config.store.gc_interval = Some(Duration::from_secs(10));
    }
    let server = Server::start(config).await?;
    let guest = capstan_test_support::component("capstan-test-guest", "test_guest");
    server
        .app
        .deploy(vec![guest.clone()], Default::default())
        .await?;
    let url = server.url();
    let started = tokio::time::Instant::now();
    let deadline = started + Duration::from_secs(seconds);

    let node = tokio::process::Command::new("node")
        .arg("soak.mjs")
        .current_dir(&suite)
        .env("CAPSTAN_URL", &url)
        .env("SOAK_SECONDS", seconds.to_string())
        .env("SOAK_COUNTER", "soak-node")
        .kill_on_drop(true)
        .output();
    let node = tokio::spawn(node);
    let rust: Vec<_> = (0..2)
        .map(|i| tokio::spawn(rust_side(url.clone(), format!("soak-rust-{i}"), deadline)))
        .collect();

    // Sample memory every second: warm at a quarter, a deploy at half,
    // the peak after warming.
    let (warm_at, deploy_at) = (
        started + Duration::from_secs(seconds / 4),
        started + Duration::from_secs(seconds / 2),
    );
    let (mut warm, mut peak, mut deployed) = (None, 0, false);
    let mut reported = started;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = tokio::time::Instant::now();
        let resident = capstan_test_support::resident_bytes();
        if now >= warm_at {
            warm.get_or_insert(resident);
            peak = peak.max(resident);
        }
        if now >= deploy_at && !deployed {
            server
                .app
                .deploy(vec![guest.clone()], Default::default())
                .await?;
            deployed = true;
        }
        if now - reported >= Duration::from_secs(60) {
            reported = now;
            let log = server.app.store().write_log_usage();
            eprintln!(
                "soak: {} s, resident {} MiB, write log {} commits / {} KiB",
                (now - started).as_secs(),
                resident >> 20,
                log.entries,
                log.bytes >> 10
            );
        }
    }
    anyhow::ensure!(deployed, "the run ended before the deploy");
    let warm = warm.unwrap_or(peak);

    let mut counted = Vec::new();
    for (i, side) in rust.into_iter().enumerate() {
        let (acknowledged, errors) = side.await?;
        assert!(errors.is_empty(), "rust client {i}: {errors:?}");
        counted.push((format!("soak-rust-{i}"), acknowledged));
    }
    let output = tokio::time::timeout(Duration::from_secs(60), node).await???;
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).map_err(|e| {
        anyhow::anyhow!(
            "node printed no report ({e}):\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    assert_eq!(report["errors"], 0, "npm client: {report}");
    assert!(report["reconnects"].as_u64() >= Some(1), "{report}");
    counted.push((
        "soak-node".to_owned(),
        report["acknowledged"].as_u64().unwrap_or(0),
    ));

    // Every acknowledged increment counted once: the next one reads one more.
    let checker = Client::new(&url)?;
    for (name, acknowledged) in &counted {
        let next = checker
            .mutation("api:increment", value(json!({ "name": name })))
            .await?;
        assert_eq!(
            next.to_json(),
            json!({"$integer": base64_of(*acknowledged as i64 + 1)}),
            "{name}: {acknowledged} acknowledged"
        );
    }
    let grown = peak.saturating_sub(warm);
    eprintln!(
        "soak: {seconds} s, increments {counted:?}, resident memory warm {} MiB, peak {} MiB",
        warm >> 20,
        peak >> 20
    );
    assert!(
        grown < 64 << 20,
        "memory grew {} MiB after warming up",
        grown >> 20
    );
    drop(checker);
    server.stop().await?;
    Ok(())
}

/// An int64 as Convex JSON writes it: little-endian bytes in base64.
fn base64_of(n: i64) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(n.to_le_bytes())
}
