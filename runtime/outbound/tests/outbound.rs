//! `Outbound` against real loopback servers: what gets through, what is
//! refused, and that each refusal is its own error variant.
//!
//! Loopback is a private address, so every test that expects a response
//! allows a loopback network explicitly; the refusal tests use the same
//! servers without it, which shows the guard (not an unreachable port) is
//! what refused them.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{any, get};
use capstan_outbound::{Error, Outbound, OutboundConfig, Request};
use futures_util::stream;
use tokio::task::JoinHandle;

/// An axum server on `ip:0`, aborted when dropped.
struct TestServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl TestServer {
    async fn spawn(ip: &str) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind((ip, 0))
            .await
            .with_context(|| format!("binding {ip}:0"))?;
        let addr = listener.local_addr()?;
        // Ended by `Drop` below, so a test never leaves a server behind.
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app()).await;
        });
        Ok(Self { addr, task })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn app() -> Router {
    Router::new()
        .route("/echo", any(echo))
        .route("/redirect", get(redirect))
        .route("/loop", get(|| async { Redirect::to("/loop") }))
        .route("/slow", get(slow))
        .route("/slow-body", get(slow_body))
        .route("/bytes/{n}", get(bytes))
        .route("/stream-forever", get(stream_forever))
}

/// Returns the method and the `x-test` header in headers, the body as body.
async fn echo(method: Method, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let x_test = headers
        .get("x-test")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (
        [
            ("x-echo-method", method.to_string()),
            ("x-echo-test", x_test),
        ],
        body,
    )
}

async fn redirect(Query(query): Query<HashMap<String, String>>) -> impl IntoResponse {
    let to = query.get("to").cloned().unwrap_or_default();
    (StatusCode::FOUND, [(header::LOCATION, to)])
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(5)).await;
    "late"
}

/// Headers and a first chunk at once, the rest far too late: the timeout
/// must cover the body read, not just the response head.
async fn slow_body() -> Body {
    let chunks = stream::unfold(0, |step| async move {
        match step {
            0 => Some((Ok::<_, Infallible>(Bytes::from_static(b"first")), 1)),
            1 => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Some((Ok(Bytes::from_static(b"late")), 2))
            }
            _ => None,
        }
    });
    Body::from_stream(chunks)
}

/// `n` bytes with a `Content-Length`.
async fn bytes(Path(n): Path<usize>) -> Vec<u8> {
    vec![b'x'; n]
}

/// An endless chunked body without `Content-Length`.
async fn stream_forever() -> Body {
    let chunk = Bytes::from(vec![b'x'; 16 * 1024]);
    Body::from_stream(stream::repeat_with(move || {
        Ok::<_, Infallible>(chunk.clone())
    }))
}

fn config(networks: &[&str]) -> OutboundConfig {
    OutboundConfig {
        allowed_networks: networks.iter().map(|s| s.to_string()).collect(),
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        ..OutboundConfig::default()
    }
}

fn get_request(url: impl Into<String>) -> Request {
    Request {
        method: "GET".into(),
        url: url.into(),
        headers: Vec::new(),
        body: Vec::new(),
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Asserts `result` is a `PrivateAddress` refusal for `host`, returning the
/// refused address.
fn expect_private<T: std::fmt::Debug>(
    result: Result<T, Error>,
    host: &str,
) -> anyhow::Result<IpAddr> {
    match result {
        Err(Error::PrivateAddress { host: h, address }) => {
            assert_eq!(h, host);
            Ok(address)
        }
        other => bail!("expected PrivateAddress for {host}, got {other:?}"),
    }
}

#[tokio::test]
async fn get_and_post_round_trip_when_loopback_is_allowed() -> anyhow::Result<()> {
    let server = TestServer::spawn("127.0.0.1").await?;
    let outbound = Outbound::new(config(&["127.0.0.0/8"]))?;

    let response = outbound
        .send(Request {
            headers: vec![("X-Test".into(), "hello".into())],
            ..get_request(server.url("/echo"))
        })
        .await?;
    assert_eq!(response.status, 200);
    assert_eq!(header(&response.headers, "x-echo-method"), Some("GET"));
    assert_eq!(header(&response.headers, "x-echo-test"), Some("hello"));
    assert_eq!(response.url, server.url("/echo"));
    assert!(response.body.is_empty());

    let response = outbound
        .send(Request {
            method: "post".into(),
            url: server.url("/echo"),
            headers: vec![("x-test".into(), "posted".into())],
            body: b"{\"n\":1}".to_vec(),
        })
        .await?;
    assert_eq!(response.status, 200);
    assert_eq!(header(&response.headers, "x-echo-method"), Some("POST"));
    assert_eq!(header(&response.headers, "x-echo-test"), Some("posted"));
    assert_eq!(response.body, b"{\"n\":1}");
    Ok(())
}

#[tokio::test]
async fn loopback_server_is_refused_when_its_network_is_not_allowed() -> anyhow::Result<()> {
    let server = TestServer::spawn("127.0.0.1").await?;
    let outbound = Outbound::new(config(&[]))?;
    let result = outbound.send(get_request(server.url("/echo"))).await;
    let address = expect_private(result, "127.0.0.1")?;
    assert_eq!(address, IpAddr::from([127, 0, 0, 1]));
    Ok(())
}

#[tokio::test]
async fn private_address_error_names_the_host_and_the_config_option() -> anyhow::Result<()> {
    let outbound = Outbound::new(config(&[]))?;
    let err = match outbound
        .send(get_request(
            "http://169.254.169.254/latest/meta-data/?token=secret",
        ))
        .await
    {
        Err(err) => err,
        Ok(response) => bail!("metadata address reached: {response:?}"),
    };
    let message = err.to_string();
    assert!(message.contains("169.254.169.254"), "{message}");
    assert!(message.contains("[fetch] allowed_networks"), "{message}");
    assert!(!message.contains("secret"), "{message}");
    Ok(())
}

#[tokio::test]
async fn localhost_by_name_is_refused_by_the_resolver() -> anyhow::Result<()> {
    let server = TestServer::spawn("127.0.0.1").await?;
    let url = format!("http://localhost:{}/echo", server.addr.port());

    let refused = Outbound::new(config(&[]))?.send(get_request(&url)).await;
    let address = expect_private(refused, "localhost")?;
    assert!(address.is_loopback(), "{address}");

    // The same name goes through once loopback is allowed, so it was the
    // guard that refused it above.
    let allowed = Outbound::new(config(&["127.0.0.0/8", "::1/128"]))?;
    assert_eq!(allowed.send(get_request(&url)).await?.status, 200);
    Ok(())
}

#[tokio::test]
async fn ip_literals_of_special_addresses_are_refused() -> anyhow::Result<()> {
    let outbound = Outbound::new(config(&[]))?;
    let cases: &[(&str, &str, &str)] = &[
        ("http://[::1]/", "::1", "::1"),
        ("http://0.0.0.0/", "0.0.0.0", "0.0.0.0"),
        (
            "http://169.254.169.254/",
            "169.254.169.254",
            "169.254.169.254",
        ),
        (
            "http://[::ffff:127.0.0.1]/",
            "::ffff:127.0.0.1",
            "::ffff:127.0.0.1",
        ),
        (
            "http://[64:ff9b::7f00:1]/",
            "64:ff9b::7f00:1",
            "64:ff9b::7f00:1",
        ),
        (
            "http://[2002:a9fe:a9fe::]/",
            "2002:a9fe:a9fe::",
            "2002:a9fe:a9fe::",
        ),
        ("http://[fe80::1]/", "fe80::1", "fe80::1"),
        ("http://10.0.0.1/", "10.0.0.1", "10.0.0.1"),
        // Spellings the url crate normalises to 127.0.0.1.
        ("http://2130706433/", "127.0.0.1", "127.0.0.1"),
        ("http://0177.0.0.1/", "127.0.0.1", "127.0.0.1"),
        ("http://0x7f.1/", "127.0.0.1", "127.0.0.1"),
        ("http://127.1/", "127.0.0.1", "127.0.0.1"),
    ];
    for (url, host, address) in cases {
        let refused = expect_private(outbound.send(get_request(*url)).await, host)
            .with_context(|| url.to_string())?;
        assert_eq!(refused, address.parse::<IpAddr>()?, "{url}");
    }
    Ok(())
}

#[tokio::test]
async fn redirect_to_a_disallowed_loopback_address_is_refused() -> anyhow::Result<()> {
    let allowed = TestServer::spawn("127.0.0.1").await?;
    let other = TestServer::spawn("127.0.0.2").await?;
    let target = other.url("/echo");
    let url = format!("{}?to={target}", allowed.url("/redirect"));

    let refused = Outbound::new(config(&["127.0.0.1/32"]))?
        .send(get_request(&url))
        .await;
    let address = expect_private(refused, "127.0.0.2")?;
    assert_eq!(address, IpAddr::from([127, 0, 0, 2]));

    // With the whole of 127/8 allowed the same chain ends at the second
    // server: it was reachable, the guard refused it.
    let response = Outbound::new(config(&["127.0.0.0/8"]))?
        .send(get_request(&url))
        .await?;
    assert_eq!(response.status, 200);
    assert_eq!(response.url, target);
    Ok(())
}

#[tokio::test]
async fn redirect_loop_stops_at_max_redirects() -> anyhow::Result<()> {
    let server = TestServer::spawn("127.0.0.1").await?;
    let outbound = Outbound::new(OutboundConfig {
        max_redirects: 3,
        ..config(&["127.0.0.0/8"])
    })?;
    match outbound.send(get_request(server.url("/loop"))).await {
        Err(Error::TooManyRedirects { limit }) => assert_eq!(limit, 3),
        other => bail!("expected TooManyRedirects, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn zero_max_redirects_returns_the_redirect_as_is() -> anyhow::Result<()> {
    let server = TestServer::spawn("127.0.0.1").await?;
    let outbound = Outbound::new(OutboundConfig {
        max_redirects: 0,
        ..config(&["127.0.0.0/8"])
    })?;
    let response = outbound.send(get_request(server.url("/loop"))).await?;
    // axum's `Redirect::to` answers 303 See Other.
    assert_eq!(response.status, 303);
    assert_eq!(header(&response.headers, "location"), Some("/loop"));
    Ok(())
}

#[tokio::test]
async fn slow_server_times_out() -> anyhow::Result<()> {
    let server = TestServer::spawn("127.0.0.1").await?;
    let limit = Duration::from_millis(300);
    let outbound = Outbound::new(OutboundConfig {
        timeout: limit,
        ..config(&["127.0.0.0/8"])
    })?;
    for path in ["/slow", "/slow-body"] {
        let started = tokio::time::Instant::now();
        match outbound.send(get_request(server.url(path))).await {
            Err(Error::TimedOut { limit: got }) => assert_eq!(got, limit, "{path}"),
            other => bail!("{path}: expected TimedOut, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(3), "{path}");
    }
    Ok(())
}

#[tokio::test]
async fn response_over_the_limit_is_refused() -> anyhow::Result<()> {
    let server = TestServer::spawn("127.0.0.1").await?;
    let limit = 64 * 1024;
    let outbound = Outbound::new(OutboundConfig {
        max_response_bytes: limit,
        ..config(&["127.0.0.0/8"])
    })?;

    // Exactly at the limit is fine.
    let response = outbound
        .send(get_request(server.url(&format!("/bytes/{limit}"))))
        .await?;
    assert_eq!(response.body.len(), limit);

    // Declared too large by Content-Length; an endless chunked body, which
    // only terminates because the read stops at the limit.
    let over = format!("/bytes/{}", limit + 1);
    for path in [over.as_str(), "/stream-forever"] {
        match outbound.send(get_request(server.url(path))).await {
            Err(Error::ResponseTooLarge { limit: got }) => assert_eq!(got, limit, "{path}"),
            other => bail!("{path}: expected ResponseTooLarge, got {other:?}"),
        }
    }
    Ok(())
}

#[tokio::test]
async fn allowed_hosts_refuse_other_hosts_on_every_hop() -> anyhow::Result<()> {
    let server = TestServer::spawn("127.0.0.1").await?;
    let outbound = Outbound::new(OutboundConfig {
        allowed_hosts: Some(vec!["localhost".into()]),
        ..config(&["127.0.0.0/8", "::1/128"])
    })?;
    let by_name = format!("http://localhost:{}", server.addr.port());

    assert_eq!(
        outbound
            .send(get_request(format!("{by_name}/echo")))
            .await?
            .status,
        200
    );

    match outbound.send(get_request(server.url("/echo"))).await {
        Err(Error::HostNotAllowed { host }) => assert_eq!(host, "127.0.0.1"),
        other => bail!("expected HostNotAllowed, got {other:?}"),
    }

    let hop = format!("{by_name}/redirect?to={}", server.url("/echo"));
    match outbound.send(get_request(hop)).await {
        Err(Error::HostNotAllowed { host }) => assert_eq!(host, "127.0.0.1"),
        other => bail!("expected HostNotAllowed on the redirect, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn malformed_requests_are_refused_before_sending() -> anyhow::Result<()> {
    let outbound = Outbound::new(OutboundConfig {
        max_request_bytes: 1024,
        ..config(&[])
    })?;
    let with_header = |name: &str, value: &str| Request {
        headers: vec![(name.into(), value.into())],
        ..get_request("https://api.example.com/")
    };
    let invalid = [
        Request {
            method: "TRACE".into(),
            ..get_request("https://api.example.com/")
        },
        get_request("not a url"),
        get_request("/relative"),
        with_header("Host", "internal.example"),
        with_header("transfer-encoding", "chunked"),
        with_header("Connection", "upgrade"),
        with_header("Upgrade", "websocket"),
        with_header("Proxy-Authorization", "Basic c2VjcmV0"),
        with_header("Content-Length", "3"),
        with_header("bad name", "v"),
        with_header("x-api-key", "sk_live_123\r\nInjected: yes"),
    ];
    for request in invalid {
        match outbound.send(request.clone()).await {
            Err(err @ Error::InvalidRequest(_)) => {
                assert!(!err.to_string().contains("sk_live"), "{err}");
            }
            other => bail!("{request:?}: expected InvalidRequest, got {other:?}"),
        }
    }

    for url in [
        "ftp://example.com/",
        "file:///etc/passwd",
        "gopher://localhost/",
    ] {
        match outbound.send(get_request(url)).await {
            Err(Error::SchemeNotAllowed(_)) => {}
            other => bail!("{url}: expected SchemeNotAllowed, got {other:?}"),
        }
    }

    let big = Request {
        method: "POST".into(),
        body: vec![0; 1025],
        ..get_request("https://api.example.com/")
    };
    match outbound.send(big).await {
        Err(Error::RequestTooLarge { size, limit }) => assert_eq!((size, limit), (1025, 1024)),
        other => bail!("expected RequestTooLarge, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn closed_port_is_a_connect_error() -> anyhow::Result<()> {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.local_addr()?.port()
    };
    let outbound = Outbound::new(config(&["127.0.0.0/8"]))?;
    match outbound
        .send(get_request(format!("http://127.0.0.1:{port}/?key=secret")))
        .await
    {
        Err(err @ Error::Connect(_)) => {
            let message = err.to_string();
            assert!(message.contains("127.0.0.1"), "{message}");
            assert!(!message.contains("secret"), "{message}");
        }
        other => bail!("expected Connect, got {other:?}"),
    }
    Ok(())
}

#[test]
fn bad_configuration_is_refused() {
    let cases = [
        OutboundConfig {
            allowed_networks: vec!["10.0.0.0/33".into()],
            ..OutboundConfig::default()
        },
        OutboundConfig {
            allowed_networks: vec!["10.1.2.3/16".into()],
            ..OutboundConfig::default()
        },
        OutboundConfig {
            allowed_hosts: Some(vec!["*.*.example.com".into()]),
            ..OutboundConfig::default()
        },
        OutboundConfig {
            timeout: Duration::ZERO,
            ..OutboundConfig::default()
        },
        OutboundConfig {
            user_agent: "Capstan\r\nX-Injected: 1".into(),
            ..OutboundConfig::default()
        },
    ];
    for config in cases {
        let debug = format!("{config:?}");
        match Outbound::new(config) {
            Err(Error::Config(_)) => {}
            other => panic!("{debug}: expected Config, got {other:?}"),
        }
    }
}
