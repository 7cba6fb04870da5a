//! The operator's knobs for outbound HTTP, with their defaults.

use std::time::Duration;

use crate::error::{Error, Result};

/// Limits and allow-lists for outbound requests.
///
/// Carried by [`Outbound`](crate::Outbound), validated once by
/// [`Outbound::new`](crate::Outbound::new).
#[derive(Clone, Debug)]
pub struct OutboundConfig {
    /// Bound on the whole request: connect, send, and reading the full
    /// response body, so a server that trickles bytes cannot hold an action
    /// forever. Default 30 s.
    pub timeout: Duration,
    /// Bound on DNS plus TCP (and TLS) connection set-up, shorter than
    /// `timeout` so an unreachable host fails fast. Default 10 s.
    pub connect_timeout: Duration,
    /// Largest request body an action may send. Default 8 MiB.
    pub max_request_bytes: usize,
    /// Largest response body read into memory; the read stops at the first
    /// byte over it. Default 16 MiB.
    pub max_response_bytes: usize,
    /// Redirects followed per request, every hop checked like the first
    /// URL. 0 returns a redirect response to the action as it is. Default 5.
    pub max_redirects: usize,
    /// Networks (CIDR strings parsed at `Outbound::new`, e.g. "127.0.0.0/8",
    /// "10.1.0.0/16", "::1/128"; a bare address means that one address)
    /// reachable even though private/loopback/link-local. Empty by default:
    /// only public addresses are reachable.
    pub allowed_networks: Vec<String>,
    /// If Some, only these hosts may be called: exact names
    /// (case-insensitive) or "*.example.com" (any subdomain, not the apex).
    /// Applies to every redirect hop too. IP literals may be listed as-is.
    pub allowed_hosts: Option<Vec<String>>,
    /// `User-Agent` sent unless the request sets its own. Default "Capstan".
    pub user_agent: String,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_request_bytes: 8 * 1024 * 1024,
            max_response_bytes: 16 * 1024 * 1024,
            max_redirects: 5,
            allowed_networks: Vec::new(),
            allowed_hosts: None,
            user_agent: "Capstan".to_owned(),
        }
    }
}

impl OutboundConfig {
    /// Checks the scalar knobs; the allow-lists are parsed by the guard.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.timeout.is_zero() {
            return Err(Error::Config(
                "`timeout` must be greater than zero".to_owned(),
            ));
        }
        if self.connect_timeout.is_zero() {
            return Err(Error::Config(
                "`connect_timeout` must be greater than zero".to_owned(),
            ));
        }
        if reqwest::header::HeaderValue::from_str(&self.user_agent).is_err() {
            return Err(Error::Config(
                "`user_agent` must be printable ASCII without line breaks".to_owned(),
            ));
        }
        Ok(())
    }
}
