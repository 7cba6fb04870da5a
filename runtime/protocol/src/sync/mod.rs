//! The messages of the Convex sync protocol, both directions, with their
//! exact field names (`specs/sync-protocol.md` §2, §3): what the server
//! reads and the Rust client writes, and what the server writes and the
//! Rust client reads.
//!
//! - [`client_message`]: [`ClientMessage`] and its parts.
//! - [`server_message`]: [`ServerMessage`]: Transitions (whole or in
//!   chunks), call responses, auth errors, pings.

pub mod client_message;
pub mod server_message;

use serde::{Deserialize, Serialize};

use crate::timestamp::Timestamp;

pub use client_message::{AuthToken, ClientMessage, FunctionCall, QuerySetModification};
pub use server_message::{
    ActionResponse, AuthError, FatalError, MutationResponse, QueryOutcome, ServerMessage,
    StateModification, Transition, TransitionChunk,
};

/// A subscription's id, chosen by the client: unique over the client's
/// life, kept across its sockets.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct QueryId(pub u32);

/// A mutation's or action's id, chosen by the client (one counter for
/// both); with the session id it makes a mutation's exactly-once key.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct RequestId(pub u32);

impl std::fmt::Display for QueryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a socket's state stands: `{"querySet", "identity", "ts"}`. Each
/// Transition goes from one to the next.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateVersion {
    /// The last ModifyQuerySet's `newVersion` the state includes.
    pub query_set: u32,
    /// The number of Authenticate messages accepted on the socket.
    pub identity: u32,
    /// The snapshot every result of the state was computed at.
    pub ts: Timestamp,
}
