//! The client against a real server serving the test guest.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use capstan_client::{Client, Error, Value};
use capstan_server::{Server, ServerConfig};
use futures_util::{FutureExt, StreamExt};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

fn value(json: serde_json::Value) -> Value {
    Value::from_json(&json).expect("a valid value")
}

fn bodies(list: &Value) -> Vec<String> {
    match list.to_json() {
        serde_json::Value::Array(items) => items
            .iter()
            .map(|m| m["body"].as_str().unwrap_or_default().to_owned())
            .collect(),
        other => panic!("not a list: {other}"),
    }
}

async fn server(dir: &std::path::Path, listen: &str) -> anyhow::Result<Server> {
    let server = Server::start(ServerConfig::new(dir, listen.parse()?)).await?;
    let guest = capstan_test_support::component("capstan-test-guest", "test_guest");
    server.app.deploy(vec![guest], Default::default()).await?;
    Ok(server)
}

async fn next(subscription: &mut capstan_client::Subscription) -> anyhow::Result<Value> {
    Ok(tokio::time::timeout(WAIT, subscription.next())
        .await?
        .ok_or_else(|| anyhow::anyhow!("the subscription ended"))??)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_mutations_and_actions() -> anyhow::Result<()> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let server = server(dir.path(), "127.0.0.1:0").await?;
    let client = Client::new(&server.url())?;
    let other = Client::new(&server.url())?;

    let mut list = client
        .subscribe("api:list", value(json!({"channel": "c"})))
        .await?;
    assert_eq!(bodies(&next(&mut list).await?), Vec::<String>::new());

    // Another client's mutation reaches the subscription.
    other
        .mutation("api:send", value(json!({"channel": "c", "body": "one"})))
        .await?;
    assert_eq!(bodies(&next(&mut list).await?), ["one"]);

    // Read-your-writes: when the mutation resolves, the new result is
    // already waiting in the stream.
    client
        .mutation("api:send", value(json!({"channel": "c", "body": "two"})))
        .await?;
    let ready = list
        .next()
        .now_or_never()
        .flatten()
        .expect("an update is ready")?;
    assert_eq!(bodies(&ready), ["one", "two"]);

    // Errors carry ConvexError data.
    let error = client
        .query("api:fail", value(json!({})))
        .await
        .unwrap_err();
    let Error::Function {
        data: Some(data), ..
    } = error
    else {
        panic!("expected a function error with data, got {error:?}");
    };
    assert_eq!(data.to_json()["code"], json!("TOO_MANY"));
    let failed = client
        .mutation("api:missing", value(json!({})))
        .await
        .unwrap_err();
    assert!(matches!(failed, Error::Function { .. }), "{failed:?}");

    // Actions.
    let sent = client
        .action(
            "api:send_and_list",
            value(json!({"channel": "c", "body": "three"})),
        )
        .await?;
    assert_eq!(sent.to_json()["count"], json!(3.0));
    assert_eq!(bodies(&next(&mut list).await?), ["one", "two", "three"]);
    drop(list);
    server.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reconnects_resubscribes_and_resends_mutations() -> anyhow::Result<()> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let first = server(dir.path(), "127.0.0.1:0").await?;
    let addr = first.addr;
    let client = Client::new(&first.url())?;
    let mut list = client
        .subscribe("api:list", value(json!({"channel": "r"})))
        .await?;
    assert_eq!(bodies(&next(&mut list).await?), Vec::<String>::new());

    // The server goes away; a mutation issued meanwhile waits for it.
    first.stop().await?;
    let pending = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .mutation("api:send", value(json!({"channel": "r", "body": "queued"})))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = server(dir.path(), &addr.to_string()).await?;
    tokio::time::timeout(WAIT, pending).await???;
    // The subscription came back on the new socket and saw the write once.
    let mut seen = next(&mut list).await?;
    while bodies(&seen).is_empty() {
        seen = next(&mut list).await?;
    }
    assert_eq!(bodies(&seen), ["queued"]);
    drop(list);
    second.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tokens_are_retried_fresh_then_the_client_carries_on_signed_out()
-> anyhow::Result<()> {
    // This server has no identity provider configured: it refuses every
    // user token with AuthError and closes the socket.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let server = server(dir.path(), "127.0.0.1:0").await?;
    let client = Client::new(&server.url())?;
    let mut list = client
        .subscribe("api:list", value(json!({"channel": "a"})))
        .await?;
    assert_eq!(bodies(&next(&mut list).await?), Vec::<String>::new());

    let fetches = Arc::new(Mutex::new(Vec::new()));
    let log = fetches.clone();
    client.set_auth(move |fresh| {
        let log = log.clone();
        async move {
            let mut log = log.lock().expect("unpoisoned");
            log.push(fresh);
            Some(format!("token-{}", log.len()))
        }
    })?;
    let mutation = client
        .mutation("api:send", value(json!({"channel": "a", "body": "once"})))
        .await?;
    drop(mutation);
    let mut seen = next(&mut list).await?;
    while bodies(&seen).is_empty() {
        seen = next(&mut list).await?;
    }
    assert_eq!(bodies(&seen), ["once"]);
    // One cached token, then two fresh ones; after the third refusal the
    // client stops asking.
    let deadline = tokio::time::Instant::now() + WAIT;
    while fetches.lock().expect("unpoisoned").len() < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(*fetches.lock().expect("unpoisoned"), [false, true, true]);
    assert!(!*client.auth_state().borrow());
    // Signed out, the connection still works.
    client
        .mutation("api:send", value(json!({"channel": "a", "body": "after"})))
        .await?;
    assert_eq!(
        bodies(
            &client
                .query("api:list", value(json!({"channel": "a"})))
                .await?
        ),
        ["once", "after"]
    );
    drop(list);
    server.stop().await?;
    Ok(())
}

/// A stand-in server that accepts any token: it confirms every Authenticate
/// with an identity-bump Transition and reports the tokens it got.
async fn accepting_server() -> anyhow::Result<(String, tokio::sync::mpsc::UnboundedReceiver<String>)>
{
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (tokens, received) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tokens = tokens.clone();
            tokio::spawn(async move {
                let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                let (mut query_set, mut identity) = (0u64, 0u64);
                while let Some(Ok(Message::Text(text))) = socket.next().await {
                    let message: serde_json::Value = serde_json::from_str(&text).expect("JSON");
                    let start =
                        json!({"querySet": query_set, "identity": identity, "ts": "AAAAAAAAAAA="});
                    match message["type"].as_str() {
                        Some("ModifyQuerySet") => query_set += 1,
                        Some("Authenticate") => {
                            assert_eq!(message["baseVersion"], json!(identity));
                            let _ = tokens.send(message["value"].as_str().unwrap_or("").to_owned());
                            identity += 1;
                        }
                        _ => continue,
                    }
                    let end =
                        json!({"querySet": query_set, "identity": identity, "ts": "AAAAAAAAAAA="});
                    let transition = json!({"type": "Transition", "startVersion": start,
                        "endVersion": end, "modifications": []});
                    if socket
                        .send(Message::text(transition.to_string()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Ok((url, received))
}

fn jwt(exp: u64, n: usize) -> String {
    use base64::Engine as _;
    let encode = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    format!(
        "{}.{}.sig",
        encode(json!({"alg": "RS256", "typ": "JWT"})),
        encode(json!({"sub": "user", "n": n, "exp": exp}))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_refreshed_before_they_expire() -> anyhow::Result<()> {
    let (url, mut received) = accepting_server().await?;
    let client = Client::new(&url)?;
    let count = Arc::new(Mutex::new(0usize));
    let counter = count.clone();
    client.set_auth(move |_fresh| {
        let counter = counter.clone();
        async move {
            let mut n = counter.lock().expect("unpoisoned");
            *n += 1;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970")
                .as_secs();
            // Two seconds to live: refreshed about a second in.
            Some(jwt(now + 2, *n))
        }
    })?;
    let mut state = client.auth_state();
    tokio::time::timeout(WAIT, state.wait_for(|yes| *yes)).await??;
    // The cached token, the fresh one fetched right after it was
    // confirmed, then refreshes before each expires.
    let began = tokio::time::Instant::now();
    let mut tokens = Vec::new();
    while tokens.len() < 4 {
        tokens.push(
            tokio::time::timeout(WAIT, received.recv())
                .await?
                .ok_or_else(|| anyhow::anyhow!("the server went away"))?,
        );
    }
    assert!(
        began.elapsed() >= Duration::from_millis(900),
        "refreshed too early"
    );
    let distinct: std::collections::HashSet<_> = tokens.iter().collect();
    assert_eq!(distinct.len(), 4, "each Authenticate carried a new token");
    assert!(*client.auth_state().borrow());

    // Signing out sends `None` and stops the refreshes.
    client.clear_auth()?;
    state.wait_for(|yes| !*yes).await?;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let mut later = Vec::new();
    while let Ok(token) = received.try_recv() {
        later.push(token);
    }
    assert!(
        later.iter().all(String::is_empty),
        "no refresh after sign-out: {later:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_subscription_delivers_the_error_with_its_data() -> anyhow::Result<()> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let server = server(dir.path(), "127.0.0.1:0").await?;
    let client = Client::new(&server.url())?;
    let mut failing = client.subscribe("api:fail", value(json!({}))).await?;
    let first = tokio::time::timeout(WAIT, failing.next())
        .await?
        .ok_or_else(|| anyhow::anyhow!("the subscription ended"))?;
    let Err(Error::Function {
        data: Some(data), ..
    }) = first
    else {
        panic!("expected the query's error, got {first:?}");
    };
    assert_eq!(data.to_json()["code"], json!("TOO_MANY"));
    drop(failing);
    server.stop().await?;
    Ok(())
}

/// A TCP proxy in front of `target` that, when armed, cuts the connection
/// instead of delivering the next MutationResponse (server frames are not
/// masked, so the JSON is visible in the stream). Returns its address, the
/// arming switch, and how many connections it cut.
async fn cutting_proxy(
    target: std::net::SocketAddr,
) -> anyhow::Result<(
    String,
    Arc<std::sync::atomic::AtomicBool>,
    Arc<std::sync::atomic::AtomicUsize>,
)> {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = format!("http://{}", listener.local_addr()?);
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cuts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (armed_switch, cut_count) = (armed.clone(), cuts.clone());
    tokio::spawn(async move {
        while let Ok((downstream, _)) = listener.accept().await {
            let Ok(upstream) = tokio::net::TcpStream::connect(target).await else {
                continue;
            };
            let (mut down_read, mut down_write) = downstream.into_split();
            let (mut up_read, mut up_write) = upstream.into_split();
            let (armed, cuts) = (armed.clone(), cuts.clone());
            let to_server = tokio::spawn(async move {
                let _ = tokio::io::copy(&mut down_read, &mut up_write).await;
            });
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 64 << 10];
                while let Ok(n) = up_read.read(&mut buffer).await {
                    if n == 0 {
                        break;
                    }
                    let chunk = &buffer[..n];
                    if chunk.windows(16).any(|w| w == b"MutationResponse")
                        && armed.swap(false, Ordering::SeqCst)
                    {
                        cuts.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                    if down_write.write_all(chunk).await.is_err() {
                        break;
                    }
                }
                // Dropping both halves closes both connections.
                to_server.abort();
            });
        }
    });
    Ok((address, armed_switch, cut_count))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutation_in_flight_when_the_socket_drops_is_applied_exactly_once() -> anyhow::Result<()>
{
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let server = server(dir.path(), "127.0.0.1:0").await?;
    let (proxy, armed, cuts) = cutting_proxy(server.addr).await?;
    let client = Client::new(&proxy)?;
    let mut list = client
        .subscribe("api:list", value(json!({"channel": "cut"})))
        .await?;
    assert_eq!(bodies(&next(&mut list).await?), Vec::<String>::new());

    armed.store(true, Ordering::SeqCst);
    // The server commits and answers; the answer is lost with the socket;
    // the client reconnects and sends the mutation again with the same id.
    let id = tokio::time::timeout(
        WAIT,
        client.mutation("api:send", value(json!({"channel": "cut", "body": "once"}))),
    )
    .await??;
    assert_eq!(cuts.load(Ordering::SeqCst), 1, "the connection was cut");
    let direct = Client::new(&server.url())?;
    let stored = direct
        .query("api:list", value(json!({"channel": "cut"})))
        .await?;
    assert_eq!(bodies(&stored), ["once"]);
    assert_eq!(
        stored.to_json()[0]["_id"],
        id.to_json(),
        "the resent mutation returned the first run's result"
    );
    drop(list);
    server.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_clients_with_five_subscriptions_each_converge_under_a_stream_of_mutations()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let server = server(dir.path(), "127.0.0.1:0").await?;
    let channels: Vec<String> = (0..5).map(|n| format!("stream {n}")).collect();
    let mut readers = Vec::new();
    for _ in 0..20 {
        let client = Client::new(&server.url())?;
        let mut subscriptions = Vec::new();
        for channel in &channels {
            subscriptions.push(
                client
                    .subscribe("api:list", value(json!({"channel": channel})))
                    .await?,
            );
        }
        readers.push((client, subscriptions));
    }
    // Three writers, 60 mutations spread over the channels, concurrently.
    let writers: Vec<_> = (0..3)
        .map(|writer| {
            let url = server.url();
            let channels = channels.clone();
            tokio::spawn(async move {
                let client = Client::new(&url)?;
                for n in 0..20 {
                    let channel = &channels[(writer + n) % channels.len()];
                    client
                        .mutation(
                            "api:send",
                            value(json!({"channel": channel, "body": format!("{writer}-{n}")})),
                        )
                        .await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for writer in writers {
        writer.await??;
    }
    let oracle = Client::new(&server.url())?;
    let mut expected = Vec::new();
    for channel in &channels {
        let mut list = bodies(
            &oracle
                .query("api:list", value(json!({"channel": channel})))
                .await?,
        );
        list.sort();
        expected.push(list);
    }
    assert_eq!(expected.iter().map(Vec::len).sum::<usize>(), 60);
    // Every subscription's latest result settles on the database's.
    for (_client, subscriptions) in &mut readers {
        for (subscription, want) in subscriptions.iter_mut().zip(&expected) {
            loop {
                let mut got = bodies(&next(subscription).await?);
                got.sort();
                if got == *want {
                    break;
                }
                assert!(got.len() < want.len(), "overshot: {got:?} vs {want:?}");
            }
        }
    }
    drop(readers);
    server.stop().await?;
    Ok(())
}
