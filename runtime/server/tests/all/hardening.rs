//! Findings of a review of the server as an attacker reads it, each proved
//! fixed over real sockets and files.

use serde_json::json;

use crate::common::{TestServer, temp_dir};
use crate::socket::Client;

/// A stored mutation result is found only by the same call from the same
/// caller: another client that sends the same session and request id runs
/// its own call (and learns nothing of the first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_mutation_result_is_bound_to_its_caller_and_call() -> anyhow::Result<()> {
    let dir = temp_dir();
    let server = TestServer::with_guest(dir.path()).await?;
    let session = "7a9c1b2e-1111-4d8e-9a4f-2f6f0d1e5a11";
    let args = json!({"channel": "bound", "body": "the admin's"});

    let mut admin = Client::resume(&server, session).await?;
    admin
        .send(
            json!({"type": "Authenticate", "baseVersion": 0, "tokenType": "Admin",
                     "value": server.server.admin_key.expose()}),
        )
        .await?;
    admin.mutation(1, "api:send", args.clone()).await?;
    let original = admin.next_of("MutationResponse").await?;
    assert_eq!(original["success"], true, "{original}");

    // Another client, anonymous, with the same session and request id.
    let mut other = Client::resume(&server, session).await?;
    other.mutation(1, "api:send", args.clone()).await?;
    let own = other.next_of("MutationResponse").await?;
    assert_eq!(own["success"], true, "{own}");
    assert_ne!(
        own["result"], original["result"],
        "its own run, not the stored result"
    );

    // The same caller with other arguments under the same request id.
    let mut again = Client::resume(&server, session).await?;
    again
        .send(
            json!({"type": "Authenticate", "baseVersion": 0, "tokenType": "Admin",
                     "value": server.server.admin_key.expose()}),
        )
        .await?;
    again
        .mutation(1, "api:send", json!({"channel": "bound", "body": "other"}))
        .await?;
    let changed = again.next_of("MutationResponse").await?;
    assert_ne!(changed["result"], original["result"]);
    // And the very same call is answered from the record.
    again.mutation(1, "api:send", args).await?;
    let resent = again.next_of("MutationResponse").await?;
    assert_eq!(resent, original);

    let listed = server
        .value("query", "api:list", json!({"channel": "bound"}))
        .await?;
    assert_eq!(listed.as_array().map(Vec::len), Some(3), "{listed}");
    server.stop().await
}

/// The data directory and everything in it is its owner's only.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_is_its_owners_only() -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir();
    let data = dir.path().join("data");
    let server = TestServer::guest_with(crate::common::config(&data)).await?;
    let status = server
        .client
        .put(server.url("/api/env/GREETING"))
        .header("Authorization", server.admin())
        .json(&json!({"value": "hello"}))
        .send()
        .await?
        .status();
    assert!(status.is_success(), "{status}");
    server.stop().await?;

    let mut seen = 0;
    let mut pending = vec![data.clone()];
    while let Some(path) = pending.pop() {
        let metadata = std::fs::metadata(&path)?;
        let mode = metadata.permissions().mode() & 0o777;
        if metadata.is_dir() {
            // sled makes its own directories inside the store's.
            if path.parent() == Some(data.as_path()) || path == data {
                assert_eq!(mode, 0o700, "{}", path.display());
            }
            for entry in std::fs::read_dir(&path)? {
                pending.push(entry?.path());
            }
        } else if !path.starts_with(data.join("store")) {
            assert_eq!(mode, 0o600, "{}", path.display());
            seen += 1;
        }
    }
    for name in [
        "env.json",
        "admin_key",
        "seed_key",
        "deployment/manifest.json",
    ] {
        assert!(data.join(name).exists(), "{name}");
    }
    assert!(seen >= 5, "{seen} files checked");
    Ok(())
}

/// Reads from `stream` until the server closes it (or `within` passes):
/// whether it closed.
async fn closed_within(stream: &mut tokio::net::TcpStream, within: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buffer = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// A client that sends its headers a little at a time, or keeps an idle
/// connection, is cut off after the header timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_idle_connections_are_closed() -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let dir = temp_dir();
    let mut config = crate::common::config(dir.path());
    config.http.header_timeout = std::time::Duration::from_millis(500);
    let server = TestServer::spawn_with(config).await?;
    let address = server.server.addr;

    let mut slow = tokio::net::TcpStream::connect(address).await?;
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await?;
    let mut idle = tokio::net::TcpStream::connect(address).await?;
    assert!(closed_within(&mut slow, std::time::Duration::from_secs(10)).await);
    assert!(closed_within(&mut idle, std::time::Duration::from_secs(10)).await);

    // A prompt client is served.
    assert_eq!(server.health().await?["status"], "ok");
    server.stop().await
}

/// One address holds at most its share of connections; others are not
/// held up by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_its_share_of_connections() -> anyhow::Result<()> {
    let dir = temp_dir();
    let mut config = crate::common::config(dir.path());
    config.http.max_connections_per_ip = 4;
    let server = TestServer::spawn_with(config).await?;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tokio::net::TcpStream::connect(server.server.addr).await?);
    }
    let mut extra = tokio::net::TcpStream::connect(server.server.addr).await?;
    assert!(
        closed_within(&mut extra, std::time::Duration::from_secs(5)).await,
        "the fifth connection is closed at once"
    );
    drop(held);
    // Given back when they close.
    let mut served = false;
    for _ in 0..50 {
        if server.health().await.is_ok() {
            served = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(served);
    server.stop().await
}

/// A socket whose client stops answering is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_stops_answering_is_closed() -> anyhow::Result<()> {
    let dir = temp_dir();
    let mut config = crate::common::config(dir.path());
    config.sync.ping_interval = std::time::Duration::from_millis(200);
    config.sync.idle_timeout = std::time::Duration::from_millis(800);
    let server = TestServer::guest_with(config).await?;
    let url = server.url("/api/1.48.0/sync").replacen("http", "ws", 1);
    let (mut silent, _) = tokio_tungstenite::connect_async(&url).await?;
    // Not read (so not answered) for longer than the idle timeout.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let mut closed = false;
    while let Ok(Some(frame)) = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        futures_util::StreamExt::next(&mut silent),
    )
    .await
    {
        if matches!(
            frame,
            Err(_) | Ok(tokio_tungstenite::tungstenite::Message::Close(_))
        ) {
            closed = true;
            break;
        }
    }
    assert!(closed, "the silent socket was closed");

    // A client that reads (and so answers pings) stays.
    let mut live = Client::connect(&server).await?;
    live.subscribe(0, 0, "api:count_all", json!({})).await?;
    live.value_of(0).await?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(std::time::Duration::from_millis(100), live.next()).await {
            Ok(result) => {
                result?;
            }
            Err(_) => continue,
        }
    }
    live.mutation(1, "api:send", json!({"channel": "c", "body": "b"}))
        .await?;
    // (The subscription's new value may come first.)
    live.next_of("MutationResponse").await?;
    server.stop().await
}

/// A socket's live results are bounded: a query whose result would pass
/// the socket's budget fails with a message saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sockets_live_results_are_bounded() -> anyhow::Result<()> {
    let dir = temp_dir();
    let mut config = crate::common::config(dir.path());
    config.sync.max_socket_result_bytes = 100_000;
    let server = TestServer::guest_with(config).await?;
    let mut client = Client::connect(&server).await?;
    client
        .subscribe(0, 0, "hostile:huge", json!({"bytes": 60_000}))
        .await?;
    assert_eq!(
        client.value_of(0).await?.as_str().map(str::len),
        Some(60_000)
    );
    client
        .subscribe(1, 1, "hostile:huge", json!({"bytes": 60_001}))
        .await?;
    let transition = client.expect("Transition").await?;
    let change = &transition["modifications"][0];
    assert_eq!(change["type"], "QueryFailed", "{change}");
    assert!(
        change["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .contains("live results"),
        "{change}"
    );
    server.stop().await
}

/// Past its share of actions a socket's messages wait; none is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_past_its_share_of_actions_waits_and_is_answered() -> anyhow::Result<()> {
    let dir = temp_dir();
    let mut config = crate::common::config(dir.path());
    config.sync.max_actions_in_flight = 2;
    let server = TestServer::guest_with(config).await?;
    let mut client = Client::connect(&server).await?;
    for request in 0..12 {
        client
            .send(
                json!({"type": "Action", "requestId": request, "udfPath": "api:send_and_list",
                         "args": [{"channel": "acts", "body": "b"}]}),
            )
            .await?;
    }
    let mut answered = 0;
    while answered < 12 {
        let message = client.next().await?;
        if message["type"] == "ActionResponse" {
            assert_eq!(message["success"], true, "{message}");
            answered += 1;
        }
    }
    server.stop().await
}

/// Actions may call actions only so deep; the refusal comes back up the
/// chain as the action's failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_nest_only_so_deep() -> anyhow::Result<()> {
    let dir = temp_dir();
    let server = TestServer::with_guest(dir.path()).await?;
    let (status, body) = server
        .call("action", "hostile:nest", json!({"depth": 1}))
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "error", "{body}");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .contains("deep"),
        "{body}"
    );
    server.stop().await
}

/// A subscription the server failed to run (every instance busy) is run
/// again until it runs, not left failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_the_server_failed_to_run_is_retried() -> anyhow::Result<()> {
    let dir = temp_dir();
    let mut config = crate::common::config(dir.path());
    config.host.max_instances = 1;
    config.limits.instance_wait = std::time::Duration::from_millis(20);
    let server = TestServer::guest_with(config).await?;
    // The one instance is busy spinning for the query time limit.
    let spinning = {
        let (client, url) = (server.client.clone(), server.url("/api/query"));
        tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({"path": "hostile:spin", "args": {}}))
                .send()
                .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut client = Client::connect(&server).await?;
    client.subscribe(0, 0, "api:count_all", json!({})).await?;
    let first = client.expect("Transition").await?;
    let _ = spinning.await;
    let mut change = first["modifications"][0].clone();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while change["type"] != "QueryUpdated" {
        let transition = tokio::time::timeout_at(deadline, client.next_of("Transition")).await??;
        change = transition["modifications"][0].clone();
    }
    assert_eq!(change["value"].as_f64(), Some(0.0), "{change}");
    server.stop().await
}

/// Browsers may call the function API only from the allowed origins,
/// never with credentials, and the admin API from none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_listed_origins_for_functions_and_none_for_admin() -> anyhow::Result<()> {
    let dir = temp_dir();
    let mut config = crate::common::config(dir.path());
    config.http.allowed_origins = vec!["https://app.example.com".into()];
    let server = TestServer::guest_with(config).await?;
    let preflight = |path: &str, origin: &str| {
        server
            .client
            .request(reqwest::Method::OPTIONS, server.url(path))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type, authorization",
            )
            .send()
    };
    let allowed = preflight("/api/query", "https://app.example.com").await?;
    let headers = allowed.headers();
    assert_eq!(
        headers
            .get("access-control-allow-origin")
            .map(|v| v.as_bytes()),
        Some(&b"https://app.example.com"[..])
    );
    assert!(headers.get("access-control-allow-credentials").is_none());
    let other = preflight("/api/query", "https://evil.example").await?;
    assert!(other.headers().get("access-control-allow-origin").is_none());
    for path in ["/api/deploy", "/api/env", "/api/service_keys", "/metrics"] {
        let admin = preflight(path, "https://app.example.com").await?;
        assert!(
            admin.headers().get("access-control-allow-origin").is_none(),
            "{path} answers browsers"
        );
    }
    // Sockets from other origins are refused.
    let url = server.url("/api/1.48.0/sync").replacen("http", "ws", 1);
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            url.as_str(),
        )?;
    request
        .headers_mut()
        .insert("origin", "https://evil.example".parse()?);
    assert!(tokio_tungstenite::connect_async(request).await.is_err());
    server.stop().await
}

/// The server terminates TLS itself and serves a renewed certificate as
/// soon as its files change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_served_and_a_renewed_certificate_is_picked_up() -> anyhow::Result<()> {
    let dir = temp_dir();
    let (first_authority, first, first_key) = capstan_test_support::signed_certificate();
    let (second_authority, second, second_key) = capstan_test_support::signed_certificate();
    let (certificate, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&certificate, &first)?;
    std::fs::write(&key, &first_key)?;
    let mut config = crate::common::config(&dir.path().join("data"));
    config.tls = Some(capstan_server::tls::TlsConfig {
        certificate: certificate.clone(),
        private_key: key.clone(),
    });
    let server = TestServer::spawn_with(config).await?;
    let url = server.url("/health");
    assert!(url.starts_with("https://"), "{url}");
    let trusting = |authority: &str| -> anyhow::Result<reqwest::Client> {
        Ok(reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(authority.as_bytes())?)
            .build()?)
    };
    let (first_client, second_client) = (trusting(&first_authority)?, trusting(&second_authority)?);
    assert!(first_client.get(&url).send().await?.status().is_success());
    assert!(second_client.get(&url).send().await.is_err());

    std::fs::write(&key, &second_key)?;
    std::fs::write(&certificate, &second)?;
    let mut renewed = false;
    for _ in 0..100 {
        if second_client.get(&url).send().await.is_ok() {
            renewed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(renewed, "the renewed certificate is served");
    // Plain HTTP gets no answer from a TLS port.
    assert!(
        reqwest::get(url.replacen("https", "http", 1))
            .await
            .is_err()
    );
    server.stop().await
}

/// `/metrics` answers the admin key with calls, refusals and gauges; the
/// audit log holds the deploy and a variable's change with where they
/// came from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_scraped_and_admin_actions_audited() -> anyhow::Result<()> {
    let dir = temp_dir();
    let server = TestServer::with_guest(dir.path()).await?;
    server.value("query", "api:count_all", json!({})).await?;
    server
        .value("mutation", "api:send", json!({"channel": "m", "body": "b"}))
        .await?;
    let status = server
        .client
        .put(server.url("/api/env/REGION"))
        .header("Authorization", server.admin())
        .json(&json!({"value": "eu"}))
        .send()
        .await?
        .status();
    assert!(status.is_success(), "{status}");

    let anonymous = server.client.get(server.url("/metrics")).send().await?;
    assert_eq!(anonymous.status(), 401);
    let text = server
        .client
        .get(server.url("/metrics"))
        .header("Authorization", server.admin())
        .send()
        .await?
        .text()
        .await?;
    for expected in [
        "capstan_calls_total{function=\"api:count_all\",kind=\"query\",outcome=\"success\"} 1",
        "capstan_calls_total{function=\"api:send\",kind=\"mutation\",outcome=\"success\"} 1",
        "capstan_commits_total 1",
        "capstan_call_duration_seconds_bucket",
        "capstan_sockets ",
        "capstan_instances_in_use ",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from\n{text}");
    }

    let entries: serde_json::Value = server
        .client
        .get(server.url("/api/audit"))
        .header("Authorization", server.admin())
        .send()
        .await?
        .json()
        .await?;
    let entries = entries.as_array().cloned().unwrap_or_default();
    let actions: Vec<_> = entries.iter().map(|e| e["action"].clone()).collect();
    assert_eq!(actions, [json!("deploy"), json!("env.set")], "{entries:?}");
    for entry in &entries {
        assert_eq!(entry["source"], "127.0.0.1", "{entry}");
        assert_eq!(entry["outcome"], "ok", "{entry}");
    }
    assert_eq!(entries[1]["target"], "REGION");
    server.stop().await
}

/// What only the operator should read stays on the server: a function's
/// log lines (unless the server is told to send them, as `capstan dev`
/// does) and why an issuer's keys could not be fetched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_key_fetch_failures_stay_on_the_server() -> anyhow::Result<()> {
    use base64::Engine as _;
    let dir = temp_dir();
    let mut config = crate::common::config(dir.path());
    config.logs_to_clients = false;
    let server = TestServer::spawn_with(config).await?;
    // An issuer nobody answers for.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let issuer = format!("http://{dead}");
    let app_config = json!({"auth": {"providers": [{"domain": issuer, "applicationID": "app"}]}});
    let (status, body) = server
        .deploy_with(&[crate::common::test_guest()], app_config)
        .await?;
    assert_eq!(status, 200, "{body}");

    let (status, body) = server.call("query", "api:logs", json!({})).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["logLines"], json!([]), "{body}");
    let mut client = Client::connect(&server).await?;
    client.subscribe(0, 0, "api:logs", json!({})).await?;
    let transition = client.next_of("Transition").await?;
    assert_eq!(transition["modifications"][0]["logLines"], json!([]));

    let part = |value: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
    };
    let token = format!(
        "{}.{}.{}",
        part(json!({"alg": "RS256", "kid": "k", "typ": "JWT"})),
        part(json!({"iss": issuer, "aud": "app", "sub": "u", "exp": 4_000_000_000u64})),
        part(json!("not a signature")),
    );
    let response = server
        .client
        .post(server.url("/api/query"))
        .bearer_auth(&token)
        .json(&json!({"path": "auth:whoami", "args": {}}))
        .send()
        .await?;
    let status = response.status();
    let text = response.text().await?;
    assert_eq!(status, 503, "{text}");
    assert!(
        !text.contains(&dead.to_string()),
        "the issuer's address leaked: {text}"
    );
    assert!(
        !text.to_lowercase().contains("connect"),
        "the failure leaked: {text}"
    );
    server.stop().await
}
