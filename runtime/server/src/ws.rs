//! The sync endpoint `GET /api/{client_version}/sync`: upgrades to a
//! WebSocket and runs three futures per socket, joined: receive (frames into
//! the worker's channel), send (the worker's frames out, with an app-level
//! Ping when idle), and the worker itself.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use capstan_protocol::sync::ServerMessage;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::error::Error;
use crate::sync::{Inbound, Outbound, SocketContext, run_socket};
use capstan_protocol::ErrorCode;

#[derive(Clone, Debug)]
pub struct SyncState {
    pub context: SocketContext,
    pub sockets: Arc<Semaphore>,
}

impl SyncState {
    pub fn new(context: SocketContext) -> SyncState {
        SyncState {
            sockets: Arc::new(Semaphore::new(context.limits.max_sockets)),
            context,
        }
    }
}

pub async fn sync(
    State(state): State<SyncState>,
    Path(_client_version): Path<String>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Ok(permit) = state.sockets.clone().try_acquire_owned() else {
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
            tasks.track_future(serve(socket, state.context, permit))
        })
}

async fn serve(socket: WebSocket, context: SocketContext, _permit: OwnedSemaphorePermit) {
    let ping_interval = context.limits.ping_interval;
    let (mut sink, mut stream) = socket.split();
    let (inbound, inbound_receiver) = mpsc::channel(context.limits.inbound_queue.max(1));
    let (outbound_sender, mut outbound) =
        mpsc::channel::<Outbound>(context.limits.outbound_queue.max(1));

    let receive = async move {
        while let Some(frame) = stream.next().await {
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
    // their room twice in this future, which every socket holds.
    let worker = Box::pin(run_socket(context, inbound_receiver, outbound_sender));
    let send = Box::pin(send);
    // When the client goes away the receive loop ends and drops `inbound`,
    // which ends the worker, which drops its sender, which ends the send
    // loop. When the worker closes the socket first, the receive loop is
    // dropped.
    let mut rest = std::pin::pin!(async { tokio::join!(worker, send) });
    tokio::select! {
        _ = &mut rest => return,
        () = receive => {}
    }
    rest.await;
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
