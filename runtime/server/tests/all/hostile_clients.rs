//! Hostile clients against a real server on loopback, each bounded in time
//! and count: slowloris, thousands of sockets from one address, 8 MiB
//! mutations sent without reading, thousands of large queries on one
//! socket, a flood of actions. During each, a well-behaved client from
//! another address keeps subscribing and writing; its slowest answer must
//! stay under [`ANSWER_WITHIN`], and this process's resident memory (server
//! and hostile clients together) must grow by less than the case's stated
//! ceiling.

use std::future::Future;
use std::net::Ipv4Addr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{TestServer, temp_dir};
use crate::socket::Client;

/// The well-behaved client's slowest answer, under attack. Generous: it
/// fails only when the server is stuck, not when the machine is busy.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// The test config with the production caps and rates back.
fn config(data: &std::path::Path) -> capstan_server::ServerConfig {
    let mut config = crate::common::config(data);
    config.http.max_connections_per_ip =
        capstan_server::limits::HttpLimits::default().max_connections_per_ip;
    config.http.max_sockets_per_ip =
        capstan_server::limits::HttpLimits::default().max_sockets_per_ip;
    config.rate_limits = capstan_server::rate_limit::RateLimits::default();
    config
}

/// The well-behaved client's own address.
const GOOD: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// Runs `attack` while a good client subscribes and writes every 100 ms;
/// checks its slowest answer and the growth of resident memory against
/// `memory_ceiling`, and returns what the attack returned.
async fn under_attack<T>(
    server: &TestServer,
    memory_ceiling: u64,
    attack: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let before = capstan_test_support::resident_bytes();
    let mut good = Client::connect_from(server, GOOD).await?;
    good.subscribe(0, 0, "api:count_all", json!({})).await?;
    good.value_of(0).await?;
    let mut attack = std::pin::pin!(attack);
    let mut slowest = Duration::ZERO;
    let mut peak = before;
    let mut request = 1;
    let outcome = loop {
        let asked = tokio::time::Instant::now();
        good.mutation(
            request,
            "api:send",
            json!({"channel": "good", "body": "hello"}),
        )
        .await?;
        let answer = tokio::select! {
            answer = good.next_of("MutationResponse") => answer?,
            outcome = &mut attack => break outcome?,
        };
        assert_eq!(answer["success"], true, "{answer}");
        slowest = slowest.max(asked.elapsed());
        peak = peak.max(capstan_test_support::resident_bytes());
        request += 1;
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
            outcome = &mut attack => break outcome?,
        }
    };
    peak = peak.max(capstan_test_support::resident_bytes());
    // And it is still answered once the attack is over.
    good.mutation(
        request,
        "api:send",
        json!({"channel": "good", "body": "after"}),
    )
    .await?;
    assert_eq!(good.next_of("MutationResponse").await?["success"], true);
    let grown = peak.saturating_sub(before);
    eprintln!(
        "good client: {} answers, slowest {slowest:?}; resident memory grew {} MiB (ceiling {} MiB)",
        request,
        grown >> 20,
        memory_ceiling >> 20
    );
    assert!(slowest < ANSWER_WITHIN, "slowest answer {slowest:?}");
    assert!(grown < memory_ceiling, "memory grew {} MiB", grown >> 20);
    Ok(outcome)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris() -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let dir = temp_dir();
    let mut config = config(dir.path());
    config.http.header_timeout = Duration::from_secs(1);
    let server = TestServer::guest_with(config).await?;
    let address = server.server.addr;
    let cut_off = under_attack(&server, 64 << 20, async move {
        let mut attackers = tokio::task::JoinSet::new();
        for _ in 0..300 {
            attackers.spawn(async move {
                let Ok(mut stream) = tokio::net::TcpStream::connect(address).await else {
                    return true;
                };
                // A header byte every 100 ms, for up to 5 s.
                for byte in b"GET /health HTTP/1.1\r\nHost: capstan\r\nX-Slow: "
                    .iter()
                    .cycle()
                    .take(50)
                {
                    if stream.write_all(&[*byte]).await.is_err() {
                        return true;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                false
            });
        }
        let mut cut_off = 0;
        while let Some(done) = attackers.join_next().await {
            cut_off += usize::from(done?);
        }
        Ok(cut_off)
    })
    .await?;
    assert_eq!(cut_off, 300, "every slow client was cut off");
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_sockets_from_one_address() -> anyhow::Result<()> {
    let dir = temp_dir();
    let server = TestServer::guest_with(config(dir.path())).await?;
    let url = server.url("/api/1.48.0/sync").replacen("http", "ws", 1);
    let limit = server.server.config_http().max_sockets_per_ip;
    let (opened, held) = under_attack(&server, 256 << 20, async move {
        let mut opened = 0;
        let mut held = Vec::new();
        for _ in 0..50 {
            let mut batch = tokio::task::JoinSet::new();
            for _ in 0..100 {
                let url = url.clone();
                batch.spawn(async move { tokio_tungstenite::connect_async(url).await });
            }
            while let Some(done) = batch.join_next().await {
                if let Ok((socket, _)) = done? {
                    opened += 1;
                    held.push(socket);
                }
            }
        }
        Ok((opened, held))
    })
    .await?;
    assert!(
        opened <= limit,
        "{opened} sockets opened, the cap is {limit}"
    );
    assert!(opened > 0);
    drop(held);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_mebibyte_mutations_sent_without_reading() -> anyhow::Result<()> {
    let dir = temp_dir();
    let mut config = config(dir.path());
    config.sync.max_message_size = 9 << 20;
    let server = TestServer::guest_with(config).await?;
    let url = server.url("/api/1.48.0/sync").replacen("http", "ws", 1);
    let sent = under_attack(&server, 512 << 20, async move {
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await?;
        let body = "x".repeat(8 << 20);
        let mut sent = 0;
        // Never read; the server's back-pressure stops the writes.
        let writing = async {
            for request in 0..40 {
                let message = json!({"type": "Mutation", "requestId": request,
                    "udfPath": "api:send", "args": [{"channel": "big", "body": body}]});
                socket.send(Message::text(message.to_string())).await?;
                sent += 1;
            }
            anyhow::Ok(())
        };
        let _ = tokio::time::timeout(Duration::from_secs(15), writing).await;
        Ok(sent)
    })
    .await?;
    eprintln!("{sent} mutations of 8 MiB written before the server pushed back");
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_thousand_large_queries_on_one_socket() -> anyhow::Result<()> {
    let dir = temp_dir();
    let mut config = config(dir.path());
    config.host.max_instances = 16;
    let server = TestServer::guest_with(config).await?;
    let mut hostile = Client::connect(&server).await?;
    under_attack(&server, 768 << 20, async move {
        let mut id = 0;
        for version in 0..16u32 {
            let modifications: Vec<_> = (0..256)
                .map(|_| {
                    id += 1;
                    json!({"type": "Add", "queryId": id, "udfPath": "hostile:huge",
                           "args": [{"bytes": 20_000 + id}]})
                })
                .collect();
            hostile
                .send(json!({"type": "ModifyQuerySet", "baseVersion": version,
                             "newVersion": version + 1, "modifications": modifications}))
                .await?;
        }
        // Reads what comes for a while: failures past the socket's budget.
        let mut failed = 0;
        let until = tokio::time::Instant::now() + Duration::from_secs(10);
        while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(until, hostile.socket.next()).await
        {
            if let Message::Text(text) = frame {
                failed += text.matches("live results").count();
            }
        }
        eprintln!("{failed} queries refused for the socket's budget");
        Ok(())
    })
    .await?;
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_actions_from_one_client() -> anyhow::Result<()> {
    let dir = temp_dir();
    let mut config = config(dir.path());
    // A modest rate, so that a flood on this machine passes it.
    config.rate_limits.calls = capstan_server::rate_limit::Rate {
        per_second: 20.0,
        burst: 50.0,
    };
    let server = TestServer::guest_with(config).await?;
    let mut flooding = Client::connect(&server).await?;
    let (client, url) = (server.client.clone(), server.url("/api/action"));
    let limited = under_attack(&server, 256 << 20, async move {
        for request in 0..300 {
            flooding
                .send(json!({"type": "Action", "requestId": request,
                             "udfPath": "api:send_and_list",
                             "args": [{"channel": "flood", "body": "b"}]}))
                .await?;
        }
        let mut posts = tokio::task::JoinSet::new();
        for _ in 0..32 {
            let (client, url) = (client.clone(), url.clone());
            posts.spawn(async move {
                let mut limited = 0;
                for _ in 0..40 {
                    let response = client
                        .post(&url)
                        .json(&json!({"path": "api:send_and_list",
                                      "args": {"channel": "flood", "body": "b"}}))
                        .send()
                        .await?;
                    limited += usize::from(response.status() == 429);
                }
                anyhow::Ok(limited)
            });
        }
        let mut limited = 0;
        while let Some(done) = posts.join_next().await {
            limited += done??;
        }
        Ok(limited)
    })
    .await?;
    eprintln!("{limited} HTTP actions refused by the rate limit");
    assert!(limited > 0, "the flood met the rate limit");
    server.stop().await
}
