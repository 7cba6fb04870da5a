//! A raw sync protocol client over a real WebSocket, which checks that
//! every Transition starts where the last one ended.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::common::TestServer;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// A raw protocol client that checks version chaining on every Transition.
pub(crate) struct Client {
    pub(crate) socket: Socket,
    pub(crate) version: Value,
}

impl Client {
    /// A client with a session of its own.
    pub(crate) async fn connect(server: &TestServer) -> anyhow::Result<Client> {
        static SESSIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let session = format!(
            "5d8f9a2e-0000-4000-8000-{:012}",
            SESSIONS.fetch_add(1, Ordering::Relaxed)
        );
        Client::resume(server, &session).await
    }

    /// A client of its own session from the local address `from` (any of
    /// 127.0.0.0/8 on Linux): another client address to the server.
    pub(crate) async fn connect_from(
        server: &TestServer,
        from: std::net::Ipv4Addr,
    ) -> anyhow::Result<Client> {
        let url = server.url("/api/1.48.0/sync").replacen("http", "ws", 1);
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind((from, 0).into())?;
        let stream = socket.connect(server.server.addr).await?;
        let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
        let (socket, _) = tokio_tungstenite::client_async(url, stream).await?;
        Client::start(socket, "5d8f9a2e-0000-4000-8000-ffffffffffff").await
    }

    /// A client continuing `session`, as after a reconnect.
    pub(crate) async fn resume(server: &TestServer, session: &str) -> anyhow::Result<Client> {
        let url = server.url("/api/1.48.0/sync").replacen("http", "ws", 1);
        let (socket, _) = tokio_tungstenite::connect_async(url).await?;
        Client::start(socket, session).await
    }

    async fn start(socket: Socket, session: &str) -> anyhow::Result<Client> {
        let mut client = Client {
            socket,
            version: json!({"querySet": 0, "identity": 0, "ts": "AAAAAAAAAAA="}),
        };
        client
            .send(json!({
                "type": "Connect", "sessionId": session,
                "connectionCount": 0, "lastCloseReason": "InitialConnect", "clientTs": 0,
            }))
            .await?;
        Ok(client)
    }

    pub(crate) async fn send(&mut self, message: Value) -> anyhow::Result<()> {
        self.socket.send(Message::text(message.to_string())).await?;
        Ok(())
    }

    /// The next message other than Ping.
    pub(crate) async fn next(&mut self) -> anyhow::Result<Value> {
        // One deadline for the message, however many pings come first.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next())
                .await?
                .ok_or_else(|| anyhow::anyhow!("the socket closed"))??;
            // WebSocket pings are answered by the library.
            if matches!(frame, Message::Ping(_) | Message::Pong(_)) {
                continue;
            }
            let Message::Text(text) = frame else {
                anyhow::bail!("unexpected frame {frame:?}");
            };
            let message: Value = serde_json::from_str(&text)?;
            if message["type"] == "Ping" {
                continue;
            }
            if message["type"] == "Transition" {
                anyhow::ensure!(
                    message["startVersion"] == self.version,
                    "transition {message} does not start at {}",
                    self.version
                );
                self.version = message["endVersion"].clone();
            }
            return Ok(message);
        }
    }

    /// The next message of type `kind`, skipping others.
    pub(crate) async fn next_of(&mut self, kind: &str) -> anyhow::Result<Value> {
        loop {
            let message = self.next().await?;
            if message["type"] == kind {
                return Ok(message);
            }
        }
    }

    pub(crate) async fn expect(&mut self, kind: &str) -> anyhow::Result<Value> {
        let message = self.next().await?;
        anyhow::ensure!(message["type"] == kind, "expected {kind}, got {message}");
        Ok(message)
    }

    /// Reads Transitions until query `id` has a value, and returns it.
    pub(crate) async fn value_of(&mut self, id: u32) -> anyhow::Result<Value> {
        loop {
            let transition = self.expect("Transition").await?;
            for change in transition["modifications"].as_array().into_iter().flatten() {
                if change["queryId"] == id {
                    anyhow::ensure!(change["type"] == "QueryUpdated", "{change}");
                    return Ok(change["value"].clone());
                }
            }
        }
    }

    /// The close frame the server sends next (Pings skipped).
    pub(crate) async fn closed(&mut self) -> anyhow::Result<Option<(CloseCode, String)>> {
        loop {
            let frame = tokio::time::timeout(WAIT, self.socket.next()).await?;
            match frame {
                Some(Ok(Message::Close(frame))) => {
                    return Ok(frame.map(|f| (f.code, f.reason.to_string())));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Ok(None),
            }
        }
    }

    pub(crate) async fn subscribe(
        &mut self,
        base: u32,
        id: u32,
        path: &str,
        args: Value,
    ) -> anyhow::Result<()> {
        self.send(json!({
            "type": "ModifyQuerySet", "baseVersion": base, "newVersion": base + 1,
            "modifications": [{"type": "Add", "queryId": id, "udfPath": path, "args": [args]}],
        }))
        .await
    }

    pub(crate) async fn mutation(
        &mut self,
        request_id: u32,
        path: &str,
        args: Value,
    ) -> anyhow::Result<()> {
        self.send(
            json!({"type": "Mutation", "requestId": request_id, "udfPath": path, "args": [args]}),
        )
        .await
    }

    /// Runs a mutation and waits for its response and the Transition that
    /// covers it (sent once the manager has published past its commit).
    pub(crate) async fn mutation_covered(
        &mut self,
        request_id: u32,
        path: &str,
        args: Value,
    ) -> anyhow::Result<Value> {
        self.mutation(request_id, path, args).await?;
        let response = self.expect("MutationResponse").await?;
        self.expect("Transition").await?;
        Ok(response)
    }
}
