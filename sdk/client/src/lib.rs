//! A Rust client for Capstan, speaking the Convex sync protocol over
//! WebSocket: live query subscriptions as [`Stream`](futures_util::Stream)s,
//! mutations that resolve once their writes are visible (read-your-writes)
//! and run exactly once across reconnects, actions, and automatic reconnects
//! with backoff that resend the token, the query set and unfinished
//! mutations.
//!
//! - [`state`]: the protocol state machine, without I/O.
//! - [`auth`]: when to fetch, refresh and give up on auth tokens, without I/O.
//! - [`Client`] and [`Subscription`]: the driver task around it.
//!
//! ```no_run
//! # async fn example() -> Result<(), capstan_client::Error> {
//! use capstan_client::{Client, Value};
//! use futures_util::StreamExt;
//! use serde_json::json;
//!
//! let client = Client::new("http://127.0.0.1:3210")?;
//! let args = Value::from_json(&json!({"channel": "general"})).expect("valid args");
//! let mut messages = client.subscribe("messages:list", args).await?;
//! while let Some(result) = messages.next().await {
//!     println!("{:?}", result?);
//! }
//! # Ok(())
//! # }
//! ```

pub mod auth;
mod driver;
pub mod state;

pub use capstan_protocol::Value;
pub use driver::{Client, Subscription};

/// Why a call or subscription produced no value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The function failed; `data` is a ConvexError's data.
    #[error("{message}")]
    Function {
        message: String,
        data: Option<Value>,
    },
    /// The connection dropped while an action ran (actions are not resent).
    #[error("the connection was lost while the action was in flight")]
    ConnectionLost,
    /// The client's task ended.
    #[error("the client is closed")]
    Closed,
    #[error("invalid deployment address: {0}")]
    Address(String),
}
