//! Live queries over WebSocket: the Convex sync protocol.
//!
//! - [`subscriptions`]: the manager of every live query, shared across
//!   sockets, re-run only when a commit touches what they read.
//! - [`worker`]: one socket's protocol state machine, over channels, so it
//!   is tested without a network.
//!
//! The axum glue (upgrade, receive and send loops, heartbeat) is in
//! `crate::ws`.

pub mod subscriptions;
pub mod worker;

use std::time::Duration;

pub use subscriptions::Subscriptions;
pub use worker::{Inbound, Outbound, SocketContext, run_socket};

pub use capstan_protocol::Identity;

/// Bounds on sockets, each reported to the client as a close reason, and
/// on the results kept for queries no socket holds any more.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncLimits {
    pub max_sockets: usize,
    pub max_queries_per_socket: usize,
    /// Largest inbound WebSocket message, in bytes.
    pub max_message_size: usize,
    pub max_actions_in_flight: usize,
    /// A Ping is sent after this long without any other message.
    #[serde(with = "humantime_seconds")]
    pub ping_interval: Duration,
    /// When the last socket drops a query, its result is kept (at most this
    /// many, the least recently dropped go first) until a commit writes
    /// something it read, so subscribing to it again is answered without
    /// running it. 0 keeps none.
    pub idle_queries: usize,
    /// The most bytes of results kept for idle queries.
    pub idle_query_bytes: usize,
    /// A query nobody holds yet runs on the socket that asks for it; when
    /// commits keep making those runs stale, after this many it is left to
    /// the manager's next refresh. 0 leaves every new query to the manager.
    pub socket_runs: usize,
}

impl Default for SyncLimits {
    fn default() -> Self {
        SyncLimits {
            max_sockets: 50_000,
            max_queries_per_socket: 4_096,
            max_message_size: 8 << 20,
            max_actions_in_flight: 64,
            ping_interval: Duration::from_secs(15),
            idle_queries: 1_000,
            idle_query_bytes: 64 << 20,
            socket_runs: 3,
        }
    }
}

mod humantime_seconds {
    use std::time::Duration;

    use serde::Deserialize;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let seconds = f64::deserialize(d)?;
        if !(seconds > 0.0 && seconds < 86_400.0) {
            return Err(serde::de::Error::custom(
                "ping_interval must be between 0 and 86400 seconds",
            ));
        }
        Ok(Duration::from_secs_f64(seconds))
    }
}
