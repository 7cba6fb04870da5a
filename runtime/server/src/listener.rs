//! The accept loop, in front of the router: a cap on the connections one
//! client address holds, TLS when configured, a deadline for the handshake
//! and for a request's headers (which also closes idle keep-alive
//! connections), and a graceful stop that lets the requests in flight
//! finish. Each request carries its peer's address
//! (`ConnectInfo`), from which [`crate::client_ip`] finds the client.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::client_ip::TrustedProxies;
use crate::client_slots::ClientSlots;
use crate::metrics::Metrics;

/// What the accept loop enforces.
#[derive(Clone)]
pub struct Admission {
    /// Connections per client address; trusted proxies are not capped here
    /// (their clients are, per socket, by the address they forward).
    pub connections: ClientSlots,
    pub trusted: TrustedProxies,
    /// A request's headers (and a TLS handshake) must arrive within this,
    /// and an idle keep-alive connection is closed after it.
    pub header_timeout: Duration,
    /// Set when the server terminates TLS itself.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("connections", &self.connections)
            .field("trusted", &self.trusted)
            .field("header_timeout", &self.header_timeout)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then
/// waits for the requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    admission: Admission,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(admission.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(admission.header_timeout)
        .keep_alive_timeout(admission.header_timeout);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, most likely: pause rather
                    // than spin, and let connections close.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let slot = if admission.trusted.contains(peer.ip()) {
            None
        } else {
            match admission.connections.try_take(peer.ip()) {
                Some(slot) => Some(slot),
                None => {
                    metrics.refused("connections_per_client");
                    tracing::debug!(%peer, "refused: too many connections from one address");
                    continue;
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(peer));
            router.clone().oneshot(request)
        });
        let (builder, watcher, tls) = (builder.clone(), graceful.watcher(), admission.tls.clone());
        let handshake_timeout = admission.header_timeout;
        tokio::spawn(async move {
            // Held until the connection ends (or is upgraded to a socket,
            // which then holds a slot of its own).
            let _slot = slot;
            // A connection that sends nothing at all is closed after the
            // header timeout too (hyper's starts at the first byte).
            let mut first = [0u8; 1];
            if !matches!(
                tokio::time::timeout(handshake_timeout, stream.peek(&mut first)).await,
                Ok(Ok(1))
            ) {
                return;
            }
            match tls {
                None => serve_io(&builder, watcher, TokioIo::new(stream), service).await,
                Some(tls) => {
                    match tokio::time::timeout(handshake_timeout, tls.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            serve_io(&builder, watcher, TokioIo::new(stream), service).await
                        }
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "tls handshake failed"),
                        Err(_) => tracing::debug!(%peer, "tls handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Serves one connection's requests, upgrades included, until it ends or
/// the server stops (then after its requests in flight).
async fn serve_io<IO, S>(
    builder: &auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    io: TokioIo<IO>,
    service: S,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<
            hyper::Request<Incoming>,
            Response = hyper::Response<axum::body::Body>,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let connection = builder
        .serve_connection_with_upgrades(io, service)
        .into_owned();
    let _ = watcher.watch(connection).await;
}
