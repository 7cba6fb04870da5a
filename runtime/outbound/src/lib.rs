//! Outbound HTTP for app actions.
//!
//! Actions are untrusted code on a server exposed to the internet, so every
//! request they make goes through [`Outbound`], which refuses to reach
//! anything that is not public (SSRF: loopback, private networks, cloud
//! metadata at 169.254.169.254, …) unless the operator allowed its network,
//! optionally restricts the hosts that may be called, and bounds the request
//! and response sizes, the time taken and the redirects followed.
//!
//! The guard holds on every redirect hop and against DNS tricks: names are
//! resolved by our own resolver, which drops every address that is not
//! allowed, and reqwest connects only to the addresses it returns.
//!
//! ```no_run
//! # async fn demo() -> capstan_outbound::Result<()> {
//! use capstan_outbound::{Outbound, OutboundConfig, Request};
//!
//! let outbound = Outbound::new(OutboundConfig::default())?;
//! let response = outbound
//!     .send(Request {
//!         method: "GET".into(),
//!         url: "https://api.example.com/v1/items".into(),
//!         headers: vec![("accept".into(), "application/json".into())],
//!         body: Vec::new(),
//!     })
//!     .await?;
//! assert!(response.body.len() <= outbound.config().max_response_bytes);
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! - `config`: [`OutboundConfig`], the operator's knobs and their defaults.
//! - `client`: [`Outbound`], the reqwest client with the guard wired into its
//!   resolver and redirect policy.
//! - `request` / `response`: [`Request`] validation (method, headers, body
//!   size) and the bounded read of a [`Response`].
//! - `guard`: the one place that decides whether a URL or address may be
//!   reached.
//! - `address`: which IP addresses are public; CIDR networks.
//! - `host`: `allowed_hosts` patterns.
//! - `resolver`: the DNS resolver that filters addresses through the guard.
//! - `error`: [`Error`], one variant per way a request is refused or fails.

mod address;
mod client;
mod config;
mod error;
mod guard;
mod host;
mod request;
mod resolver;
mod response;

pub use client::Outbound;
pub use config::OutboundConfig;
pub use error::{Error, Result};
pub use request::Request;
pub use response::Response;
