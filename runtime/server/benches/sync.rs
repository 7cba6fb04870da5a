//! Sync-protocol benchmark:
//! (a) round trip of a one-shot indexed query returning 10 documents over one
//!     socket (Add → Transition with the result, then Remove), next to a bare
//!     tokio-tungstenite echo in the same run: a new query every time (it
//!     runs), then the same one (answered from the result kept when it was
//!     last removed);
//! (b) time from a mutation's commit until N = 1 000 and 10 000 sockets
//!     subscribed to the same query hold the new result, and how often the
//!     query ran;
//! (c) server memory per socket (connected, one subscription, idle).
//!
//! The sockets of (b) and (c) live in a child process (this binary run again
//! with `CAPSTAN_BENCH_CLIENTS`), so the server's memory and file
//! descriptors are its own.
//!
//! Run with `cargo bench -p capstan-server --bench sync`.

use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use capstan_protocol::Timestamp;
use capstan_server::{Server, ServerConfig};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const ROUND_TRIPS: usize = 3_000;
const FAN_OUT_ROUNDS: usize = 3;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn connect(url: &str) -> anyhow::Result<Socket> {
    // Small read buffers: the client side shares the machine with the server.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(4 << 10);
    let (socket, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true).await?;
    Ok(socket)
}

async fn send(socket: &mut Socket, message: Value) -> anyhow::Result<()> {
    socket.send(Message::text(message.to_string())).await?;
    Ok(())
}

/// The next Transition (Pings and responses skipped).
async fn transition(socket: &mut Socket) -> anyhow::Result<Value> {
    loop {
        let message: Value = serde_json::from_str(&next_text(socket).await?)?;
        if message["type"] == "Transition" {
            return Ok(message);
        }
    }
}

/// The next text frame.
async fn next_text(
    socket: &mut Socket,
) -> anyhow::Result<tokio_tungstenite::tungstenite::Utf8Bytes> {
    loop {
        let frame = socket
            .next()
            .await
            .ok_or_else(|| anyhow::anyhow!("closed"))??;
        if let Message::Text(text) = frame {
            return Ok(text);
        }
    }
}

/// For each modification of the next Transition, the length of its value
/// when that is an array; read without a JSON tree.
async fn transition_values(socket: &mut Socket) -> anyhow::Result<Vec<Option<usize>>> {
    #[derive(serde::Deserialize)]
    struct Modification {
        value: Option<Vec<serde::de::IgnoredAny>>,
    }
    #[derive(serde::Deserialize)]
    struct Frame<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        #[serde(default)]
        modifications: Vec<Modification>,
    }
    loop {
        let text = next_text(socket).await?;
        let frame: Frame<'_> = serde_json::from_str(&text)?;
        if frame.kind == "Transition" {
            return Ok(frame
                .modifications
                .into_iter()
                .map(|m| m.value.map(|v| v.len()))
                .collect());
        }
    }
}

/// The end timestamp of the next Transition that carries a modification,
/// read without building a JSON tree (the clients share the machine with
/// the server, so they keep their own work small).
async fn transition_ts(socket: &mut Socket) -> anyhow::Result<Timestamp> {
    #[derive(serde::Deserialize)]
    struct Version<'a> {
        ts: &'a str,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Frame<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        #[serde(borrow)]
        end_version: Option<Version<'a>>,
        #[serde(default)]
        modifications: Vec<serde::de::IgnoredAny>,
    }
    loop {
        let text = next_text(socket).await?;
        let frame: Frame<'_> = serde_json::from_str(&text)?;
        if let ("Transition", Some(end), false) = (
            frame.kind,
            frame.end_version,
            frame.modifications.is_empty(),
        ) {
            return Ok(Timestamp::from_wire(end.ts)?);
        }
    }
}

/// `ROUND_TRIPS` one-shot queries of `path` (Add, wait for the result,
/// Remove), with the arguments `args` gives each; their round trips,
/// sorted. The client writes and reads frames without JSON trees, so the
/// figure is the server's more than the client's.
async fn one_shots(
    socket: &mut Socket,
    version: &mut u64,
    path: &str,
    args: impl Fn(usize) -> String,
) -> anyhow::Result<Vec<Duration>> {
    let mut trips = Vec::with_capacity(ROUND_TRIPS);
    for id in 0..ROUND_TRIPS {
        let v = *version;
        let args = args(id);
        let began = Instant::now();
        socket
            .send(Message::text(format!(
                r#"{{"type":"ModifyQuerySet","baseVersion":{v},"newVersion":{},"modifications":[{{"type":"Add","queryId":{v},"udfPath":"{path}","args":[{args}]}}]}}"#,
                v + 1
            )))
            .await?;
        let documents = transition_values(socket).await?;
        trips.push(began.elapsed());
        anyhow::ensure!(documents == [Some(10)], "{documents:?}");
        socket
            .send(Message::text(format!(
                r#"{{"type":"ModifyQuerySet","baseVersion":{},"newVersion":{},"modifications":[{{"type":"Remove","queryId":{v}}}]}}"#,
                v + 1,
                v + 2
            )))
            .await?;
        transition_values(socket).await?;
        *version += 2;
    }
    trips.sort_unstable();
    Ok(trips)
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// CPU time this process has used, user and system (clock-tick precision).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    Duration::from_secs_f64((ticks(11) + ticks(12)) as f64 / 100.0)
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match std::env::var("CAPSTAN_BENCH_CLIENTS") {
        Ok(count) => runtime.block_on(clients(count.parse()?)),
        Err(_) => runtime.block_on(server()),
    }
}

async fn server() -> anyhow::Result<()> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let mut config = ServerConfig::new(dir.path(), "127.0.0.1:0".parse()?);
    config.sync.max_sockets = 20_000;
    // Every client of the bench is 127.0.0.1.
    config.http.max_connections_per_ip = 100_000;
    config.http.max_sockets_per_ip = 100_000;
    config.rate_limits.sockets.per_second = 0.0;
    config.rate_limits.calls.per_second = 0.0;
    let server = Server::start(config).await?;
    let component = capstan_test_support::component_path(
        "capstan-test-guest",
        "test_guest",
        capstan_test_support::Profile::Release,
    );
    server
        .app
        .deploy(vec![std::fs::read(component)?], Default::default())
        .await?;
    let http = reqwest::Client::new();
    for i in 0..10 {
        let response = http
            .post(format!("{}/api/mutation", server.url()))
            .json(&json!({"path": "api:send", "args": {"channel": "ten", "body": format!("message {i}")}}))
            .send()
            .await?;
        anyhow::ensure!(response.status().is_success());
    }
    let ws_url = format!("{}/api/1.48.0/sync", server.url().replacen("http", "ws", 1));

    // (a) one-shot query round trips, next to a bare echo.
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let echo_url = format!("ws://{}", echo.local_addr()?);
    // Ends with the process.
    tokio::spawn(async move {
        while let Ok((stream, _)) = echo.accept().await {
            tokio::spawn(async move {
                let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(message)) = socket.next().await {
                    if message.is_text() && socket.send(message).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let mut socket = connect(&echo_url).await?;
    let mut echoes = Vec::with_capacity(ROUND_TRIPS);
    let probe =
        json!({"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": []})
            .to_string();
    for _ in 0..ROUND_TRIPS {
        let began = Instant::now();
        socket.send(Message::text(probe.clone())).await?;
        socket
            .next()
            .await
            .ok_or_else(|| anyhow::anyhow!("closed"))??;
        echoes.push(began.elapsed());
    }
    echoes.sort_unstable();

    let mut socket = connect(&ws_url).await?;
    let mut version = 0;
    // First a query nobody ran before on every round trip (`list_round`
    // reads what `list` reads; its argument `round` makes each query new),
    // then the same query each time,
    // which the server answers from the result it kept when the previous
    // round trip dropped it.
    let cpu_before = cpu_time();
    let wall_before = Instant::now();
    let runs = one_shots(&mut socket, &mut version, "api:list_round", |id| {
        format!(r#"{{"channel":"ten","round":{id}}}"#)
    })
    .await?;
    let cpu = cpu_time() - cpu_before;
    let wall = wall_before.elapsed();
    let kept = one_shots(&mut socket, &mut version, "api:list", |_| {
        r#"{"channel":"ten"}"#.into()
    })
    .await?;
    println!("(a) one-shot indexed query, 10 documents, one socket ({ROUND_TRIPS} round trips)");
    println!(
        "    bare tokio-tungstenite echo:              p50 {:>7.1} µs   p99 {:>7.1} µs",
        micros(percentile(&echoes, 0.5)),
        micros(percentile(&echoes, 0.99))
    );
    println!(
        "    capstan Add → Transition, query runs:     p50 {:>7.1} µs   p99 {:>7.1} µs",
        micros(percentile(&runs, 0.5)),
        micros(percentile(&runs, 0.99))
    );
    println!(
        "    capstan Add → Transition, result kept:    p50 {:>7.1} µs   p99 {:>7.1} µs",
        micros(percentile(&kept, 0.5)),
        micros(percentile(&kept, 0.99))
    );
    println!(
        "    CPU per Add + Remove that runs, server and client together: {:.1} µs ({:.0} % of the wall time)",
        micros(cpu) / ROUND_TRIPS as f64,
        cpu.as_secs_f64() / wall.as_secs_f64() * 100.0
    );
    drop(socket);
    if std::env::var("CAPSTAN_BENCH_ONE_SHOT_ONLY").is_ok_and(|v| v == "1") {
        return server.stop().await.map_err(Into::into);
    }

    // (b) and (c): sockets in a child process, first against a bare
    // tokio-tungstenite fan-out (the floor on this machine), then Capstan.
    let bare_url = bare_fan_out().await?;
    // Three rounds each (the machine is shared and noisy); the median round
    // is the figure.
    for count in [1_000usize, 10_000] {
        let executions = &server.subscriptions.stats().executions;
        let mut capstan = Vec::new();
        let mut bare = Vec::new();
        let mut per_socket = f64::NAN;
        let mut runs = Vec::new();
        for round in 0..FAN_OUT_ROUNDS {
            // Capstan first: the bare run's freed memory would hide Capstan's.
            let (report, memory, ran) = fan_out(count, &ws_url, executions).await?;
            if round == 0 {
                per_socket = memory;
            }
            runs.push(ran);
            capstan.push(report);
            bare.push(fan_out(count, &bare_url, executions).await?.0);
        }
        let ms = |report: &Value, key: &str| report[key].as_f64().unwrap_or(f64::NAN);
        let median = |reports: &[Value], key: &str| {
            let mut values: Vec<f64> = reports.iter().map(|r| ms(r, key)).collect();
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        let rounds = |reports: &[Value]| {
            reports
                .iter()
                .map(|r| format!("{:.1}", ms(r, "p99_ms")))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "(b) {count} sockets on one query, one mutation (commit → every socket has the result), median of {FAN_OUT_ROUNDS} rounds"
        );
        println!(
            "    bare tokio-tungstenite fan-out: p50 {:>7.1} ms   p99 {:>7.1} ms   (p99 by round: {})",
            median(&bare, "p50_ms"),
            median(&bare, "p99_ms"),
            rounds(&bare),
        );
        println!(
            "    capstan:                        p50 {:>7.1} ms   p99 {:>7.1} ms   (p99 by round: {}; {:.2}× bare; query runs per round: {runs:?})",
            median(&capstan, "p50_ms"),
            median(&capstan, "p99_ms"),
            rounds(&capstan),
            median(&capstan, "p99_ms") / median(&bare, "p99_ms"),
        );
        println!(
            "(c) server memory per socket (connected, one subscription, idle): {:.1} KiB",
            per_socket / 1024.0
        );
    }
    server.stop().await?;
    Ok(())
}

/// Runs `count` client sockets against `url` in a child process: the
/// fan-out report, this process's memory growth per socket while they were
/// connected and idle, and how often `executions` grew during the fan-out.
async fn fan_out(
    count: usize,
    url: &str,
    executions: &AtomicU64,
) -> anyhow::Result<(Value, f64, u64)> {
    let before_rss = rss_bytes();
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .env("CAPSTAN_BENCH_CLIENTS", count.to_string())
        .env("CAPSTAN_BENCH_URL", url)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (line, mut lines) = tokio::task::spawn_blocking(move || {
        let line = lines.next();
        (line, lines)
    })
    .await?;
    anyhow::ensure!(
        line.transpose()?.as_deref() == Some("ready"),
        "the client process failed"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per_socket = rss_bytes().saturating_sub(before_rss) as f64 / count as f64;
    let runs_before = executions.load(Ordering::SeqCst);
    child.stdin.take().expect("stdin").write_all(b"go\n")?;
    let report = tokio::task::spawn_blocking(move || lines.next())
        .await?
        .transpose()?
        .unwrap_or_default();
    child.wait()?;
    let runs = executions.load(Ordering::SeqCst) - runs_before;
    Ok((serde_json::from_str(&report)?, per_socket, runs))
}

/// A bare tokio-tungstenite server that answers every ModifyQuerySet with a
/// Transition and, on any Mutation, sends every socket one pre-rendered
/// Transition stamped with the time: the cost of the fan-out itself.
async fn bare_fan_out() -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}", listener.local_addr()?);
    let (updates, _) = tokio::sync::broadcast::channel::<std::sync::Arc<str>>(4);
    let transition = |ts: u64| {
        json!({"type": "Transition", "endVersion": {"ts": Timestamp::new(ts).to_wire()},
            "modifications": [{"type": "QueryUpdated", "queryId": 0, "value": [], "logLines": []}]})
        .to_string()
    };
    // Ends with the process.
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let updates = updates.clone();
            let mut receiver = updates.subscribe();
            tokio::spawn(async move {
                let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
                    .read_buffer_size(2 << 10)
                    .write_buffer_size(0);
                let Ok(mut socket) =
                    tokio_tungstenite::accept_async_with_config(stream, Some(config)).await
                else {
                    return;
                };
                loop {
                    tokio::select! {
                        frame = socket.next() => {
                            let Some(Ok(Message::Text(text))) = frame else { return };
                            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
                            let reply = transition(now.as_nanos() as u64);
                            if text.contains("\"Mutation\"") {
                                let _ = updates.send(reply.into());
                            } else if socket.send(Message::text(reply)).await.is_err() {
                                return;
                            }
                        }
                        update = receiver.recv() => {
                            let Ok(update) = update else { return };
                            if socket.send(Message::text(update.to_string())).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    Ok(url)
}

/// The child: `count` sockets subscribed to one query; on "go", one
/// mutation, then the delay from its commit until each socket had the result.
async fn clients(count: usize) -> anyhow::Result<()> {
    let url = std::env::var("CAPSTAN_BENCH_URL")?;
    let channel = format!("fan-{count}");
    let add = json!({"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1,
        "modifications": [{"type": "Add", "queryId": 0, "udfPath": "api:list", "args": [{"channel": channel}]}]});
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        let mut socket = connect(&url).await?;
        send(&mut socket, add.clone()).await?;
        sockets.push(socket);
    }
    for socket in &mut sockets {
        transition(socket).await?;
    }
    println!("ready");
    std::io::stdout().flush()?;
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)
    })
    .await??;

    let waits = sockets.into_iter().map(|mut socket| {
        tokio::spawn(async move {
            let ts = transition_ts(&mut socket).await?;
            let received = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64;
            // The socket stays open until every socket has its result.
            anyhow::Ok((
                Duration::from_nanos(received.saturating_sub(ts.nanos())),
                socket,
            ))
        })
    });
    let waits: Vec<_> = waits.collect();
    let mut writer = connect(&url).await?;
    send(&mut writer, json!({"type": "Mutation", "requestId": 0, "udfPath": "api:send", "args": [{"channel": channel, "body": "fan-out"}]})).await?;
    let mut delays = Vec::with_capacity(count);
    let mut open = Vec::with_capacity(count);
    for wait in waits {
        let (delay, socket) = wait.await??;
        delays.push(delay);
        open.push(socket);
    }
    delays.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{}",
        json!({
            "p50_ms": ms(percentile(&delays, 0.5)),
            "p99_ms": ms(percentile(&delays, 0.99)),
            "max_ms": ms(delays[delays.len() - 1]),
        })
    );
    Ok(())
}
