//! The sync endpoint `GET /api/{client_version}/sync`: upgrades to a
//! WebSocket and runs three futures per socket, joined: receive (frames into
//! the worker's channel), send (the worker's frames out, with an app-level
//! Ping when idle), and the worker itself.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use capstan_protocol::sync::ServerMessage;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use tracing::Instrument as _;

use crate::client_ip::TrustedProxies;
use crate::client_slots::{ClientSlot, ClientSlots};
use crate::error::Error;
use crate::limits::HttpLimits;
use crate::sync::{Inbound, Outbound, SocketContext, run_socket};
use capstan_protocol::ErrorCode;

#[derive(Clone, Debug)]
pub struct SyncState {
    pub context: SocketContext,
    pub sockets: Arc<Semaphore>,
    /// Sockets per client address.
    pub per_client: ClientSlots,
    pub trusted: TrustedProxies,
    /// Origins browsers may open sockets from; empty: any.
    pub allowed_origins: Vec<String>,
}

impl SyncState {
    pub fn new(context: SocketContext, http: &HttpLimits, trusted: TrustedProxies) -> SyncState {
        SyncState {
            sockets: Arc::new(Semaphore::new(context.limits.max_sockets)),
            per_client: ClientSlots::new(http.max_sockets_per_ip),
            trusted,
            allowed_origins: http.allowed_origins.clone(),
            context,
        }
    }

    /// Sockets open now.
    pub fn open(&self) -> usize {
        self.context.limits.max_sockets - self.sockets.available_permits()
    }
}

pub async fn sync(
    State(state): State<SyncState>,
    Path(_client_version): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    // A browser says where the page came from; other clients send no Origin.
    if let Some(origin) = headers.get(header::ORIGIN)
        && !state.allowed_origins.is_empty()
        && !state
            .allowed_origins
            .iter()
            .any(|allowed| allowed.as_bytes() == origin.as_bytes())
    {
        state.context.metrics.refused("origin");
        return Error::new(
            ErrorCode::Forbidden,
            "this origin may not open sockets to this server",
        )
        .into_response();
    }
    let client = state.trusted.client(peer, &headers);
    if let Err(wait) = state
        .context
        .limiters
        .sockets
        .take(&[&format!("ip:{client}")])
    {
        state.context.metrics.refused("socket_rate");
        return crate::rate_limit::refusal("new sockets from this address", wait);
    }
    let Some(slot) = state.per_client.try_take(client) else {
        state.context.metrics.refused("sockets_per_client");
        return Error::new(
            ErrorCode::TooManyConcurrentRequests,
            format!(
                "one address may hold at most {} sockets",
                state.per_client.limit()
            ),
        )
        .into_response();
    };
    let Ok(permit) = state.sockets.clone().try_acquire_owned() else {
        state.context.metrics.refused("sockets");
        return Error::new(
            ErrorCode::TooManyConcurrentRequests,
            format!(
                "this server holds at most {} sockets",
                state.context.limits.max_sockets
            ),
        )
        .into_response();
    };
    let limit = state.context.limits.max_message_size;
    upgrade
        // Small buffers that grow with the message keep idle sockets cheap.
        .read_buffer_size(2 << 10)
        .write_buffer_size(0)
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| {
            let tasks = state.context.tasks.clone();
            let span = tracing::debug_span!("socket", %client);
            tasks
                .track_future(serve(socket, state.context, client, (permit, slot)).instrument(span))
        })
}

/// The socket's future. Everything is set up here, before it starts, so
/// that the future every socket holds keeps only what it waits on: the
/// socket itself lives once, behind its split halves, and the worker and
/// the send loop are boxed.
fn serve(
    socket: WebSocket,
    context: SocketContext,
    client: std::net::IpAddr,
    held: (OwnedSemaphorePermit, ClientSlot),
) -> impl Future<Output = ()> + Send {
    let ping_interval = context.limits.ping_interval;
    let idle_timeout = context.limits.idle_timeout;
    let (mut sink, mut stream) = socket.split();
    let (inbound, inbound_receiver) = mpsc::channel(context.limits.inbound_queue.max(1));
    let (outbound_sender, mut outbound) =
        mpsc::channel::<Outbound>(context.limits.outbound_queue.max(1));

    let receive = async move {
        // A client that sends nothing, not even the answers to our pings,
        // for `idle_timeout` has stopped reading or vanished.
        while let Ok(Some(frame)) = tokio::time::timeout(idle_timeout, stream.next()).await {
            let frame = match frame {
                Ok(Message::Text(text)) => Inbound::Text(text.to_string()),
                Ok(Message::Binary(_)) => Inbound::Binary,
                Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                Ok(Message::Close(_)) => break,
                Err(error) => {
                    let error = error.to_string();
                    if error.contains("too long") || error.contains("too big") {
                        let _ = inbound.send(Inbound::TooLarge).await;
                    }
                    break;
                }
            };
            if inbound.send(frame).await.is_err() {
                break;
            }
        }
    };

    let send = async move {
        // Idleness is checked every half interval rather than with a timer
        // armed per message: a Ping goes out after between half and all of
        // `ping_interval` without a message.
        let half = (ping_interval / 2).max(std::time::Duration::from_millis(1));
        let mut check = tokio::time::interval_at(tokio::time::Instant::now() + half, half);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_sent = tokio::time::Instant::now();
        loop {
            let frame = tokio::select! {
                biased;
                frame = outbound.recv() => match frame {
                    Some(frame) => frame,
                    None => break,
                },
                _ = check.tick() => {
                    if last_sent.elapsed() < half {
                        continue;
                    }
                    // A protocol Ping for the client's own liveness check,
                    // and a WebSocket ping that clients answer by
                    // themselves, which shows they still read.
                    if sink.send(Message::Ping(Default::default())).await.is_err() {
                        break;
                    }
                    Outbound::Text(ServerMessage::Ping.to_json())
                }
            };
            last_sent = tokio::time::Instant::now();
            let message = match frame {
                Outbound::Text(text) => Message::Text(text.into()),
                Outbound::Close { code, reason } => {
                    let frame = code.map(|code| CloseFrame {
                        code,
                        reason: truncate(&reason, 123).into(),
                    });
                    let _ = sink.send(Message::Close(frame)).await;
                    break;
                }
            };
            if sink.send(message).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    };

    // Boxed, both: moved into `rest` below, they would otherwise take
    // their room twice in the future every socket holds.
    let worker = Box::pin(run_socket(
        context,
        client,
        inbound_receiver,
        outbound_sender,
    ));
    let send = Box::pin(send);
    // Boxed too: captured here and then polled in `select!`, it would take
    // its room twice.
    let receive = Box::pin(receive);
    async move {
        let _held = held;
        // When the client goes away the receive loop ends and drops
        // `inbound`, which ends the worker, which drops its sender, which
        // ends the send loop. When the worker closes the socket first, the
        // receive loop is dropped.
        let mut rest = std::pin::pin!(async { tokio::join!(worker, send) });
        tokio::select! {
            _ = &mut rest => return,
            () = receive => {}
        }
        rest.await;
    }
}

/// At most `max` bytes of `text`, cut at a character boundary (close
/// reasons are limited to 123 bytes).
fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}
