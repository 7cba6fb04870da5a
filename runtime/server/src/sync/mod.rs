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

pub use subscriptions::Subscriptions;
pub use worker::{Inbound, Outbound, SocketContext, run_socket};

pub use crate::limits::SyncLimits;
pub use capstan_protocol::Identity;
