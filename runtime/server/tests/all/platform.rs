//! HTTP actions, outbound HTTP, the scheduler, crons and files, over real
//! sockets: the billing example and the platform test app.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::common::*;

fn platform_guest() -> Vec<u8> {
    component("capstan-platform-guest", "platform_guest")
}

fn loopback_config(data: &std::path::Path) -> capstan_server::ServerConfig {
    let mut config = config(data);
    config.platform.fetch.allowed_networks = vec!["127.0.0.0/8".into()];
    config
}

async fn platform_server(data: &std::path::Path) -> anyhow::Result<TestServer> {
    let server = TestServer::spawn_with(loopback_config(data)).await?;
    let (status, body) = server.deploy(&[platform_guest()]).await?;
    anyhow::ensure!(status == 200, "deploy failed: {body}");
    Ok(server)
}

/// Polls `check` until it holds, for at most `within`.
async fn until<F, Fut>(within: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let started = std::time::Instant::now();
    loop {
        if check().await? {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < within,
            "did not happen within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn hmac_hex(secret: &str, message: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::sign(&key, message)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn stripe_signature(secret: &str, timestamp: i64, body: &str) -> String {
    let signed = format!("{timestamp}.{body}");
    format!("t={timestamp},v1={}", hmac_hex(secret, signed.as_bytes()))
}

/// Marks left by runs, by key.
async fn marks(server: &TestServer) -> anyhow::Result<Vec<(String, f64)>> {
    let marks = server.value("query", "jobs:marks", json!({})).await?;
    Ok(marks
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| {
            (
                m["key"].as_str().unwrap_or_default().to_owned(),
                m["at"].as_f64().unwrap_or_default(),
            )
        })
        .collect())
}

async fn count_marks(server: &TestServer, key: &str) -> anyhow::Result<usize> {
    Ok(marks(server)
        .await?
        .iter()
        .filter(|(k, _)| k == key)
        .count())
}

/// A stand-in mail API on loopback: records what it is sent.
pub async fn mail_api() -> anyhow::Result<(String, Arc<Mutex<Vec<Value>>>)> {
    let sent: Arc<Mutex<Vec<Value>>> = Arc::default();
    let app = axum::Router::new().route(
        "/send",
        post({
            let sent = sent.clone();
            move |headers: axum::http::HeaderMap, body: axum::Json<Value>| {
                let sent = sent.clone();
                async move {
                    let authorised = headers
                        .get("authorization")
                        .is_some_and(|v| v.as_bytes() == b"Bearer mail-key");
                    if !authorised {
                        return axum::http::StatusCode::UNAUTHORIZED;
                    }
                    sent.lock().expect("lock").push(body.0);
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/send", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, sent))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_billing_example_records_signed_payments_once_and_emails_receipts() -> anyhow::Result<()>
{
    let dir = temp_dir();
    let server = TestServer::spawn_with(loopback_config(dir.path())).await?;
    let (status, body) = server.deploy(&[component("billing", "billing")]).await?;
    anyhow::ensure!(status == 200, "{body}");
    let (mail_url, sent) = mail_api().await?;
    server
        .set_env("PAYMENT_WEBHOOK_SECRET", "whsec_test")
        .await?;
    server.set_env("MAIL_API_URL", &mail_url).await?;
    server.set_env("MAIL_API_KEY", "mail-key").await?;
    let event = json!({
        "id": "evt_1", "type": "payment.succeeded",
        "data": {"email": "ada@example.com", "amount": 1250, "currency": "eur"}
    })
    .to_string();
    let post = |signature: Option<String>, body: String| {
        let mut request = server
            .client
            .post(server.url("/http/webhooks/payment"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(signature) = signature {
            request = request.header("Stripe-Signature", signature);
        }
        request.send()
    };
    // Refused, and nothing recorded: a wrong secret, a stale timestamp, no
    // header, a body changed after signing.
    for (signature, body) in [
        (
            Some(stripe_signature("whsec_other", unix_now(), &event)),
            event.clone(),
        ),
        (
            Some(stripe_signature("whsec_test", unix_now() - 600, &event)),
            event.clone(),
        ),
        (None, event.clone()),
        (
            Some(stripe_signature("whsec_test", unix_now(), &event)),
            event.replace("1250", "1"),
        ),
    ] {
        let response = post(signature, body).await?;
        assert_eq!(response.status(), 401, "{}", response.text().await?);
    }
    assert_eq!(
        server.value("query", "payments:list", json!({})).await?,
        json!([])
    );

    // Signed: recorded, and delivered twice, recorded once.
    for _ in 0..2 {
        let response = post(
            Some(stripe_signature("whsec_test", unix_now(), &event)),
            event.clone(),
        )
        .await?;
        assert_eq!(response.status(), 200, "{}", response.text().await?);
    }
    let payments = server.value("query", "payments:list", json!({})).await?;
    assert_eq!(payments.as_array().map(Vec::len), Some(1), "{payments}");
    // The scheduled receipt goes out through the mail API.
    until(Duration::from_secs(20), || async {
        let payments = server.value("query", "payments:list", json!({})).await?;
        Ok(payments[0]["receipt"] == "sent")
    })
    .await?;
    let mails = sent.lock().expect("lock").clone();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0]["to"], "ada@example.com");
    assert!(
        mails[0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("12.50 EUR")
    );

    // Avatars: upload through an upload URL, then served by a prefix route.
    server
        .value(
            "mutation",
            "members:join",
            json!({"name": "Ada", "email": "ada@example.com"}),
        )
        .await?;
    let upload = server
        .value("mutation", "members:generate_upload_url", json!({}))
        .await?;
    let uploaded: Value = server
        .client
        .post(upload.as_str().unwrap_or_default())
        .header("content-type", "image/png")
        .body(vec![7u8; 4096])
        .send()
        .await?
        .json()
        .await?;
    server
        .value(
            "mutation",
            "members:set_avatar",
            json!({"email": "ada@example.com", "storageId": uploaded["storageId"]}),
        )
        .await?;
    let picture = server
        .client
        .get(server.url("/http/avatars/ada@example.com"))
        .send()
        .await?;
    assert_eq!(picture.status(), 200);
    assert_eq!(picture.headers()["content-type"], "image/png");
    assert_eq!(picture.bytes().await?.len(), 4096);

    // The cron is listed for operators.
    let jobs: Value = server
        .client
        .get(server.url("/api/jobs"))
        .header("Authorization", server.admin())
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(jobs["crons"][0]["name"], "retry failed receipts", "{jobs}");
    assert!(jobs["crons"][0]["nextRun"].as_f64().is_some(), "{jobs}");
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_methods_prefixes_and_cors_resolve_as_documented() -> anyhow::Result<()> {
    let dir = temp_dir();
    let server = platform_server(dir.path()).await?;
    let client = &server.client;
    let echo: Value = client
        .get(server.url("/http/echo?q=hello%20there"))
        .header("x-test", "yes")
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["path"], "/http/echo");
    assert_eq!(echo["query"], "hello there");
    assert_eq!(echo["header"], "yes");
    let posted = client
        .post(server.url("/http/echo"))
        .body("a body")
        .send()
        .await?;
    assert_eq!(posted.headers()["x-answered-by"], "echo");
    assert_eq!(posted.json::<Value>().await?["body"], "a body");
    // HEAD is served by the GET route.
    assert_eq!(
        client.head(server.url("/http/echo")).send().await?.status(),
        200
    );
    let put = client.put(server.url("/http/echo")).send().await?;
    assert_eq!(put.status(), 405);
    assert_eq!(put.headers()["allow"], "GET, POST");
    for method in ["GET", "DELETE", "PATCH"] {
        let any = client
            .request(method.parse()?, server.url("/http/any"))
            .send()
            .await?;
        assert_eq!(any.status(), 200, "{method}");
    }
    for path in ["/http/files/a", "/http/files/a/b/c", "/http/files/deeper/x"] {
        let text = client.get(server.url(path)).send().await?.text().await?;
        assert_eq!(text, format!("prefixed {path}"));
    }
    // `/files` itself is not under the prefix `/files/`; `/echo/x` is not `/echo`.
    for path in ["/http/files", "/http/echo/x", "/http/nothing", "/http"] {
        assert_eq!(
            client.get(server.url(path)).send().await?.status(),
            404,
            "{path}"
        );
    }

    // CORS: a preflight from the allowed origin, and the response to it.
    let preflight = client
        .request(axum::http::Method::OPTIONS, server.url("/http/browser"))
        .header("Origin", "https://app.example.com")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await?;
    assert_eq!(preflight.status(), 204);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(preflight.headers()["access-control-allow-methods"], "POST");
    let other = client
        .request(axum::http::Method::OPTIONS, server.url("/http/browser"))
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await?;
    assert!(other.headers().get("access-control-allow-origin").is_none());
    let call = client
        .post(server.url("/http/browser"))
        .header("Origin", "https://app.example.com")
        .send()
        .await?;
    assert_eq!(
        call.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    // A route without CORS gives browsers nothing.
    let echo = client
        .post(server.url("/http/echo"))
        .header("Origin", "https://app.example.com")
        .send()
        .await?;
    assert!(echo.headers().get("access-control-allow-origin").is_none());

    // A bearer that is not a token the server knows (a shared secret)
    // leaves the caller anonymous.
    let who: Value = client
        .get(server.url("/http/whoami"))
        .header("Authorization", "Bearer not-a-jwt")
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(who["subject"], Value::Null);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_secrets_and_github_and_svix_signatures_guard_webhooks() -> anyhow::Result<()> {
    use base64::Engine as _;
    let dir = temp_dir();
    let server = platform_server(dir.path()).await?;
    server.set_env("WEBHOOK_TOKEN", "s3cret-token").await?;
    server
        .set_env("GITHUB_SECRET", "It's a Secret to Everybody")
        .await?;
    let svix_key = [9u8; 24];
    let svix_secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(svix_key)
    );
    server.set_env("SVIX_SECRET", &svix_secret).await?;
    let client = &server.client;
    let post = |path: &str| client.post(server.url(path)).body("Hello, World!");

    assert_eq!(
        post("/http/secret")
            .bearer_auth("wrong")
            .send()
            .await?
            .status(),
        401
    );
    assert_eq!(post("/http/secret").send().await?.status(), 401);
    assert_eq!(
        post("/http/secret")
            .bearer_auth("s3cret-token")
            .send()
            .await?
            .status(),
        200
    );

    let github = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert_eq!(
        post("/http/github")
            .header("X-Hub-Signature-256", github)
            .send()
            .await?
            .status(),
        200
    );
    assert_eq!(
        post("/http/github")
            .header("X-Hub-Signature-256", github.replace("75", "57"))
            .send()
            .await?
            .status(),
        401
    );
    assert_eq!(post("/http/github").send().await?.status(), 401);

    let svix = |timestamp: i64| {
        let signed = format!("msg_1.{timestamp}.Hello, World!");
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &svix_key);
        let signature = base64::engine::general_purpose::STANDARD
            .encode(ring::hmac::sign(&key, signed.as_bytes()));
        post("/http/svix")
            .header("svix-id", "msg_1")
            .header("svix-timestamp", timestamp.to_string())
            .header("svix-signature", format!("v1,{signature}"))
    };
    assert_eq!(svix(unix_now()).send().await?.status(), 200);
    assert_eq!(svix(unix_now() - 3600).send().await?.status(), 401);
    assert_eq!(svix(unix_now() + 3600).send().await?.status(), 401);

    let marks = marks(&server).await?;
    for (key, expected) in [("secret", 1), ("github", 1), ("svix", 1)] {
        assert_eq!(
            marks.iter().filter(|(k, _)| k == key).count(),
            expected,
            "{key}"
        );
    }
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_refused_without_being_read_whole() -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = temp_dir();
    let mut config = loopback_config(dir.path());
    config.platform.max_http_body = 1 << 20;
    let server = TestServer::spawn_with(config).await?;
    let (status, body) = server.deploy(&[platform_guest()]).await?;
    anyhow::ensure!(status == 200, "{body}");
    const TOTAL: usize = 50 << 20;
    for declared in [true, false] {
        let produced = Arc::new(AtomicUsize::new(0));
        let stream = futures_util::stream::unfold(0usize, {
            let produced = produced.clone();
            move |sent| {
                let produced = produced.clone();
                async move {
                    if sent >= TOTAL {
                        return None;
                    }
                    produced.fetch_add(64 << 10, Ordering::Relaxed);
                    Some((
                        Ok::<_, std::io::Error>(vec![b'x'; 64 << 10]),
                        sent + (64 << 10),
                    ))
                }
            }
        });
        let mut request = server
            .client
            .post(server.url("/http/echo"))
            .body(reqwest::Body::wrap_stream(stream));
        if declared {
            request = request.header("content-length", TOTAL.to_string());
        }
        // The server may close the connection while the body is still
        // being sent; what it answered, if it was read, is 413.
        if let Ok(response) = request.send().await {
            assert_eq!(response.status(), 413, "declared: {declared}");
        }
        let read = produced.load(Ordering::Relaxed);
        assert!(
            read < TOTAL,
            "declared: {declared}: the whole {read} bytes were sent"
        );
    }
    assert_eq!(count_marks(&server, "never").await?, 0);
    server.stop().await
}

/// A loopback server to fetch from: quick, slow and large answers.
async fn upstream() -> anyhow::Result<String> {
    let app = axum::Router::new()
        .route(
            "/ok",
            post(|headers: axum::http::HeaderMap, body: String| async move {
                let from = headers
                    .get("x-from")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                format!("got {body} from {from}")
            })
            .get(|| async { "hello" }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route("/big", get(|| async { vec![b'b'; 2 << 20] }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_fetch_within_the_deployments_rules() -> anyhow::Result<()> {
    let upstream = upstream().await?;
    let dir = temp_dir();
    let mut config = loopback_config(dir.path());
    config.platform.fetch.timeout = Duration::from_millis(500);
    config.platform.fetch.max_response_bytes = 1 << 20;
    let server = TestServer::spawn_with(config).await?;
    let (status, body) = server.deploy(&[platform_guest()]).await?;
    anyhow::ensure!(status == 200, "{body}");
    let fetched = server
        .value(
            "action",
            "web:fetch",
            json!({"url": format!("{upstream}/ok"), "method": "POST", "body": "ping"}),
        )
        .await?;
    assert_eq!(fetched["status"], json!(200.0));
    assert_eq!(fetched["body"], "got ping from capstan");

    let (_, slow) = server
        .call(
            "action",
            "web:fetch",
            json!({"url": format!("{upstream}/slow")}),
        )
        .await?;
    assert!(
        slow["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .contains("timed out"),
        "{slow}"
    );
    let (_, big) = server
        .call(
            "action",
            "web:fetch",
            json!({"url": format!("{upstream}/big")}),
        )
        .await?;
    assert!(
        big["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .contains("limit"),
        "{big}"
    );
    // Only actions fetch: a query or mutation has no `fetch` (the SDK has
    // none to call), and the host refuses one made by hand.
    server.stop().await?;

    // By default, loopback and private networks are out of reach.
    let dir = temp_dir();
    let server = TestServer::spawn(dir.path()).await?;
    let (status, body) = server.deploy(&[platform_guest()]).await?;
    anyhow::ensure!(status == 200, "{body}");
    for url in [
        format!("{upstream}/ok"),
        "http://localhost:1/".to_owned(),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://[::1]:1/".to_owned(),
        "http://10.0.0.1/".to_owned(),
    ] {
        let (_, refused) = server
            .call("action", "web:fetch", json!({"url": url}))
            .await?;
        let message = refused["errorMessage"].as_str().unwrap_or_default();
        assert!(message.contains("allowed_networks"), "{url}: {refused}");
    }
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduling_is_transactional_bounded_and_each_mutation_runs_once() -> anyhow::Result<()> {
    let dir = temp_dir();
    let server = platform_server(dir.path()).await?;
    // A mutation that fails schedules nothing.
    let (_, failed) = server
        .call(
            "mutation",
            "jobs:schedule_then_fail",
            json!({"key": "ghost"}),
        )
        .await?;
    assert_eq!(failed["status"], "error", "{failed}");
    // One call may schedule at most 1000.
    let (_, refused) = server.call("mutation", "jobs:too_many", json!({})).await?;
    assert!(
        refused["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .contains("at most 1000"),
        "{refused}"
    );
    // A system table is the server's to write.
    let (_, system) = server
        .call("mutation", "jobs:write_system_table", json!({}))
        .await?;
    assert!(
        system["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .contains("system table"),
        "{system}"
    );

    let ids = server
        .value(
            "mutation",
            "jobs:schedule_many",
            json!({"prefix": "n", "count": 1000, "delayMs": 0}),
        )
        .await?;
    assert_eq!(ids.as_array().map(Vec::len), Some(1000));
    until(Duration::from_secs(120), || async {
        Ok(marks(&server)
            .await?
            .iter()
            .filter(|(k, _)| k.starts_with('n'))
            .count()
            >= 1000)
    })
    .await?;
    // Settled: every one ran exactly once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let marks = marks(&server).await?;
    let mut keys: Vec<&str> = marks
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| k.starts_with('n'))
        .collect();
    assert_eq!(keys.len(), 1000);
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 1000, "a scheduled mutation ran twice");
    assert_eq!(marks.iter().filter(|(k, _)| k == "ghost").count(), 0);
    let jobs = server.value("query", "jobs:scheduled", json!({})).await?;
    let succeeded = jobs
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|job| job["name"] == "jobs:mark" && job["state"]["kind"] == "success")
        .count();
    assert_eq!(succeeded, 1000);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_functions_show_each_state_and_cancel_works() -> anyhow::Result<()> {
    let dir = temp_dir();
    let server = platform_server(dir.path()).await?;
    let slow = server
        .value(
            "mutation",
            "jobs:schedule_action",
            json!({"key": "slow", "delayMs": 0, "sleepMs": 1500}),
        )
        .await?;
    let failing = server
        .value(
            "mutation",
            "jobs:schedule_action",
            json!({"key": "fail", "delayMs": 0, "sleepMs": 0}),
        )
        .await?;
    let later = server
        .value(
            "mutation",
            "jobs:schedule_action",
            json!({"key": "later", "delayMs": 60000, "sleepMs": 0}),
        )
        .await?;
    let state = |id: Value| {
        let server = &server;
        async move {
            let jobs = server.value("query", "jobs:scheduled", json!({})).await?;
            let job = jobs
                .as_array()
                .and_then(|jobs| jobs.iter().find(|job| job["_id"] == id).cloned())
                .unwrap_or(Value::Null);
            anyhow::Ok(job)
        }
    };
    assert_eq!(state(later.clone()).await?["state"]["kind"], "pending");
    // Operators see what waits.
    until(Duration::from_secs(10), || async {
        let metrics = server
            .client
            .get(server.url("/metrics"))
            .bearer_auth(server.server.admin_key.expose())
            .send()
            .await?
            .text()
            .await?;
        Ok(metrics
            .lines()
            .filter_map(|line| line.strip_prefix("capstan_scheduled_pending "))
            .any(|n| n.trim().parse::<f64>().is_ok_and(|n| n >= 1.0)))
    })
    .await?;
    until(Duration::from_secs(20), || async {
        Ok(state(slow.clone()).await?["state"]["kind"] == "inProgress")
    })
    .await?;
    server
        .value("mutation", "jobs:cancel", json!({"id": later}))
        .await?;
    let canceled = state(later.clone()).await?;
    assert_eq!(canceled["state"]["kind"], "canceled");
    assert!(canceled["completedTime"].as_f64().is_some());
    until(Duration::from_secs(20), || async {
        Ok(state(slow.clone()).await?["state"]["kind"] == "success")
    })
    .await?;
    until(Duration::from_secs(20), || async {
        Ok(state(failing.clone()).await?["state"]["kind"] == "failed")
    })
    .await?;
    let failed = state(failing).await?;
    assert!(
        failed["state"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("failed on purpose"),
        "{failed}"
    );
    assert_eq!(
        state(slow).await?["args"],
        json!([{"key": "slow", "sleepMs": 1500.0}])
    );
    assert_eq!(count_marks(&server, "later-start").await?, 0);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crons_run_on_time_never_overlap_and_run_once_after_downtime() -> anyhow::Result<()> {
    let dir = temp_dir();
    let server = platform_server(dir.path()).await?;
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let ticks = count_marks(&server, "tick").await?;
    assert!(
        (3..=7).contains(&ticks),
        "{ticks} ticks in 5.5 s of a 1 s cron"
    );
    // The slow job (2.5 s every 1 s) ran, and no run began before the one
    // before it ended.
    let mut slow: Vec<(String, f64)> = marks(&server)
        .await?
        .into_iter()
        .filter(|(k, _)| k.starts_with("slow-"))
        .collect();
    slow.sort_by(|a, b| a.1.total_cmp(&b.1));
    assert!(
        slow.iter().filter(|(k, _)| k == "slow-start").count() >= 1,
        "{slow:?}"
    );
    for pair in slow.windows(2) {
        assert_ne!(
            pair[0].0, pair[1].0,
            "runs overlapped or a run was lost: {slow:?}"
        );
    }
    server.stop().await?;

    // Down for several ticks: back up, it runs once, then on its schedule.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let server = TestServer::spawn_with(loopback_config(dir.path())).await?;
    let before = count_marks(&server, "tick").await?;
    until(Duration::from_secs(10), || async {
        Ok(count_marks(&server, "tick").await? > before)
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        count_marks(&server, "tick").await?,
        before + 1,
        "missed ticks were run"
    );
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_upload_download_ranges_etags_and_delete() -> anyhow::Result<()> {
    let dir = temp_dir();
    let mut config = loopback_config(dir.path());
    config.platform.max_file_bytes = 1 << 20;
    let server = TestServer::spawn_with(config).await?;
    let (status, body) = server.deploy(&[platform_guest()]).await?;
    anyhow::ensure!(status == 200, "{body}");
    let client = &server.client;
    let upload = server
        .value("mutation", "web:upload_url", json!({}))
        .await?;
    let upload = upload.as_str().unwrap_or_default().to_owned();
    let content: Vec<u8> = (0..100_000u32).map(|n| (n % 251) as u8).collect();
    let answer: Value = client
        .post(&upload)
        .header("content-type", "application/octet-stream")
        .body(content.clone())
        .send()
        .await?
        .json()
        .await?;
    let id = answer["storageId"].clone();
    let files = server.value("query", "web:files", json!({})).await?;
    assert_eq!(files[0]["size"], json!(100_000.0));
    assert_eq!(files[0]["contentType"], "application/octet-stream");
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&content));
    assert_eq!(files[0]["sha256"], digest);

    let url = server
        .value("query", "web:file_url", json!({"id": id}))
        .await?;
    let url = url.as_str().unwrap_or_default().to_owned();
    let whole = client.get(&url).send().await?;
    assert_eq!(whole.status(), 200);
    let etag = whole.headers()["etag"].clone();
    assert_eq!(whole.bytes().await?.as_ref(), content.as_slice());
    let range = client
        .get(&url)
        .header("range", "bytes=1000-1999")
        .send()
        .await?;
    assert_eq!(range.status(), 206);
    assert_eq!(range.headers()["content-range"], "bytes 1000-1999/100000");
    assert_eq!(range.bytes().await?.as_ref(), &content[1000..2000]);
    let cached = client
        .get(&url)
        .header("if-none-match", etag)
        .send()
        .await?;
    assert_eq!(cached.status(), 304);
    // Browsers upload from the app's pages: a preflight is answered.
    let preflight = client
        .request(axum::http::Method::OPTIONS, &upload)
        .header("Origin", "http://localhost:5173")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await?;
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .is_some()
    );
    // A forged token reads nothing.
    let forged = url.replace("token=", "token=x");
    assert_eq!(client.get(&forged).send().await?.status(), 401);
    assert_eq!(
        client
            .post(upload.replace("token=", "token=1"))
            .body("x")
            .send()
            .await?
            .status(),
        401
    );

    // From an action: stored and read back.
    let stored = server
        .value("action", "web:store_text", json!({"text": "hello file"}))
        .await?;
    assert_eq!(
        server
            .value("action", "web:read_text", json!({"id": stored}))
            .await?,
        "hello file"
    );

    // Over the limit: refused, nothing recorded.
    let upload = server
        .value("mutation", "web:upload_url", json!({}))
        .await?;
    // Refused on its declared length, before it is read: the client may
    // see the connection close while it still sends.
    if let Ok(big) = client
        .post(upload.as_str().unwrap_or_default())
        .body(vec![0u8; (1 << 20) + 1])
        .send()
        .await
    {
        assert_eq!(big.status(), 413);
    }
    // Without a length, cut off at the limit.
    let chunks =
        futures_util::stream::iter((0..20).map(|_| Ok::<_, std::io::Error>(vec![1u8; 64 << 10])));
    if let Ok(streamed) = client
        .post(upload.as_str().unwrap_or_default())
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
    {
        assert_eq!(streamed.status(), 413);
    }
    assert_eq!(
        server
            .value("query", "web:files", json!({}))
            .await?
            .as_array()
            .map(Vec::len),
        Some(2)
    );

    // Deleted: no URL, and the old one finds nothing.
    server
        .value("mutation", "web:delete_file", json!({"id": id}))
        .await?;
    assert_eq!(
        server
            .value("query", "web:file_url", json!({"id": id}))
            .await?,
        Value::Null
    );
    assert_eq!(client.get(&url).send().await?.status(), 404);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_holds_every_table_and_its_files_in_convexs_layout() -> anyhow::Result<()> {
    use std::io::Read as _;
    let dir = temp_dir();
    let server = platform_server(dir.path()).await?;
    let stored = server
        .value("action", "web:store_text", json!({"text": "hello file"}))
        .await?;
    server
        .value(
            "mutation",
            "jobs:schedule_many",
            json!({"prefix": "e", "count": 3, "delayMs": 0}),
        )
        .await?;
    until(Duration::from_secs(20), || async {
        Ok(count_marks(&server, "e0").await? == 1)
    })
    .await?;
    let export = |files: bool| {
        server
            .client
            .get(server.url(&format!("/api/export?includeFileStorage={files}")))
            .header("Authorization", server.admin())
            .send()
    };
    assert_eq!(
        server
            .client
            .get(server.url("/api/export"))
            .send()
            .await?
            .status(),
        401
    );
    let response = export(true).await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/zip");
    let bytes = response.bytes().await?;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))?;
    let mut read = |name: &str| -> anyhow::Result<String> {
        let mut text = String::new();
        zip.by_name(name)?.read_to_string(&mut text)?;
        Ok(text)
    };
    let tables = read("_tables/documents.jsonl")?;
    for table in ["marks", "_storage", "_scheduled_functions"] {
        assert!(
            tables.contains(&format!("\"name\":\"{table}\"")),
            "{tables}"
        );
    }
    let marks: Vec<Value> = read("marks/documents.jsonl")?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert!(
        marks
            .iter()
            .any(|m| m["key"] == "e0" && m["_id"].is_string() && m["_creationTime"].is_number())
    );
    let files = read("_storage/documents.jsonl")?;
    assert_eq!(files.lines().count(), 1);
    assert_eq!(
        read(&format!("_storage/{}", stored.as_str().unwrap_or_default()))?,
        "hello file"
    );
    let meta: Value = serde_json::from_str(&read("capstan.json")?)?;
    assert_eq!(meta["format"], "convex-encoded-json");

    // Without files: the rows, not the bytes.
    let bytes = export(false).await?.bytes().await?;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))?;
    assert!(zip.by_name("_storage/documents.jsonl").is_ok());
    assert!(
        zip.by_name(&format!("_storage/{}", stored.as_str().unwrap_or_default()))
            .is_err()
    );
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_imported_into_a_fresh_deployment_gives_identical_documents_and_files()
-> anyhow::Result<()> {
    let billing = component("billing", "billing");
    let (dir_a, dir_b) = (temp_dir(), temp_dir());
    let a = TestServer::spawn_with(loopback_config(dir_a.path())).await?;
    let (status, body) = a.deploy(std::slice::from_ref(&billing)).await?;
    anyhow::ensure!(status == 200, "{body}");
    a.set_env("PAYMENT_WEBHOOK_SECRET", "whsec_test").await?;
    // Nothing listens there: each receipt's run ends marking it failed.
    a.set_env("MAIL_API_URL", "http://127.0.0.1:9/send").await?;
    for n in 0..3 {
        let event = json!({"id": format!("evt_{n}"), "type": "payment.succeeded",
            "data": {"email": "ada@example.com", "amount": 100 + n, "currency": "eur"}})
        .to_string();
        let response = a
            .client
            .post(a.url("/http/webhooks/payment"))
            .header(
                "Stripe-Signature",
                stripe_signature("whsec_test", unix_now(), &event),
            )
            .body(event)
            .send()
            .await?;
        assert_eq!(response.status(), 200);
    }
    a.value(
        "mutation",
        "members:join",
        json!({"name": "Ada", "email": "ada@example.com"}),
    )
    .await?;
    let upload = a
        .value("mutation", "members:generate_upload_url", json!({}))
        .await?;
    let picture: Vec<u8> = (0..10_000u32).map(|n| (n % 7) as u8).collect();
    let uploaded: Value = a
        .client
        .post(upload.as_str().unwrap_or_default())
        .header("content-type", "image/png")
        .body(picture.clone())
        .send()
        .await?
        .json()
        .await?;
    a.value(
        "mutation",
        "members:set_avatar",
        json!({"email": "ada@example.com", "storageId": uploaded["storageId"]}),
    )
    .await?;
    // The receipts' runs end.
    until(Duration::from_secs(20), || async {
        let payments = a.value("query", "payments:list", json!({})).await?;
        Ok(payments
            .as_array()
            .is_some_and(|p| p.iter().all(|p| p["receipt"] == "failed")))
    })
    .await?;
    let snapshot = a
        .client
        .get(a.url("/api/export?includeFileStorage=true"))
        .header("Authorization", a.admin())
        .send()
        .await?
        .bytes()
        .await?;

    let b = TestServer::spawn_with(loopback_config(dir_b.path())).await?;
    let (status, body) = b.deploy(&[billing]).await?;
    anyhow::ensure!(status == 200, "{body}");
    let import = |bytes: bytes::Bytes| {
        b.client
            .post(b.url("/api/import"))
            .header("Authorization", b.admin())
            .body(bytes)
            .send()
    };
    let imported = import(snapshot.clone()).await?;
    assert_eq!(imported.status(), 200);
    let imported: Value = imported.json().await?;
    assert_eq!(imported["files"], json!(1), "{imported}");
    for (path, args) in [
        ("payments:list", json!({})),
        ("members:get", json!({"email": "ada@example.com"})),
    ] {
        assert_eq!(
            a.value("query", path, args.clone()).await?,
            b.value("query", path, args).await?,
            "{path}"
        );
    }
    let url = b
        .value(
            "query",
            "members:avatar_url",
            json!({"email": "ada@example.com"}),
        )
        .await?;
    let downloaded = b
        .client
        .get(url.as_str().unwrap_or_default())
        .send()
        .await?;
    assert_eq!(downloaded.headers()["content-type"], "image/png");
    assert_eq!(downloaded.bytes().await?.as_ref(), picture.as_slice());
    // Twice is refused: the deployment is no longer fresh.
    let again = import(snapshot).await?;
    assert_eq!(again.status(), 400);
    assert!(again.text().await?.contains("already has documents"));
    a.stop().await?;
    b.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_live_in_an_s3_bucket_when_configured() -> anyhow::Result<()> {
    let s3 = capstan_test_support::S3Server::start("capstan-app");
    let dir = temp_dir();
    let mut config = loopback_config(dir.path());
    config.platform.s3 = Some(capstan_files::S3Config {
        bucket: s3.bucket.clone(),
        region: "us-east-1".into(),
        endpoint: Some(s3.endpoint.clone()),
        prefix: "deployment".into(),
        access_key_id: "testing".into(),
        secret_access_key: "testing".into(),
        allow_http: true,
    });
    let server = TestServer::spawn_with(config).await?;
    let (status, body) = server.deploy(&[platform_guest()]).await?;
    anyhow::ensure!(status == 200, "{body}");
    let upload = server
        .value("mutation", "web:upload_url", json!({}))
        .await?;
    let content: Vec<u8> = (0..300_000u32).map(|n| (n % 13) as u8).collect();
    let answer: Value = server
        .client
        .post(upload.as_str().unwrap_or_default())
        .header("content-type", "application/pdf")
        .body(content.clone())
        .send()
        .await?
        .json()
        .await?;
    let url = server
        .value("query", "web:file_url", json!({"id": answer["storageId"]}))
        .await?;
    let url = url.as_str().unwrap_or_default().to_owned();
    let whole = server.client.get(&url).send().await?;
    assert_eq!(whole.headers()["content-type"], "application/pdf");
    assert_eq!(whole.bytes().await?.as_ref(), content.as_slice());
    let part = server
        .client
        .get(&url)
        .header("range", "bytes=-10")
        .send()
        .await?;
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await?.as_ref(), &content[content.len() - 10..]);
    let stored = server
        .value("action", "web:store_text", json!({"text": "in a bucket"}))
        .await?;
    assert_eq!(
        server
            .value("action", "web:read_text", json!({"id": stored}))
            .await?,
        "in a bucket"
    );
    // Nothing landed in the data directory.
    assert!(!dir.path().join("files").exists());
    server.stop().await
}
