//! The one error type of the crate.
//!
//! Every message is written for an app developer who reads it in their
//! action's error: it names the limit, the host or the address, and never
//! quotes request headers or bodies, since those may hold secrets. URLs are
//! not quoted either, for the same reason (API keys in query strings).

use std::net::IpAddr;
use std::time::Duration;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an outbound request was refused or failed.
///
/// `Clone` because a refusal raised inside reqwest (by the resolver or the
/// redirect policy) travels back boxed in reqwest's error and is copied out
/// of it; every field is plain data for that reason.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The [`OutboundConfig`](crate::OutboundConfig) is invalid; raised by
    /// [`Outbound::new`](crate::Outbound::new) only.
    #[error("invalid outbound HTTP configuration: {0}")]
    Config(String),

    /// The request itself is malformed: unknown method, bad or forbidden
    /// header, unparsable URL.
    #[error("invalid outbound request: {0}")]
    InvalidRequest(String),

    /// The URL (or a redirect) uses a scheme other than http or https.
    #[error("URL scheme `{0}` is not allowed: outbound requests may only use http or https")]
    SchemeNotAllowed(String),

    /// The host is not in the configured `allowed_hosts`.
    #[error(
        "outbound requests to `{host}` are not allowed: the host is not in the server's \
         `[fetch] allowed_hosts`"
    )]
    HostNotAllowed {
        /// The host as it appears in the URL.
        host: String,
    },

    /// The host is, or resolves only to, an address that is not public.
    #[error(
        "refused to connect to `{host}` at {address}: the address is private, loopback, \
         link-local or otherwise not public; a server operator can allow its network with \
         `[fetch] allowed_networks`"
    )]
    PrivateAddress {
        /// The host as it appears in the URL.
        host: String,
        /// The refused address (for a name, the first one it resolved to).
        address: IpAddr,
    },

    /// The request body is over `max_request_bytes`; nothing was sent.
    #[error("request body is {size} bytes, over the {limit}-byte limit for outbound requests")]
    RequestTooLarge {
        /// Size of the refused body.
        size: usize,
        /// The configured `max_request_bytes`.
        limit: usize,
    },

    /// The response body is over `max_response_bytes`; reading stopped there.
    #[error("response body is over the {limit}-byte limit for outbound responses")]
    ResponseTooLarge {
        /// The configured `max_response_bytes`.
        limit: usize,
    },

    /// The request (connect, send and the whole body read) took too long.
    #[error("outbound request timed out after {limit:?}")]
    TimedOut {
        /// The limit that was hit: `timeout`, or `connect_timeout` when the
        /// connection could not be made in time.
        limit: Duration,
    },

    /// The redirect chain is longer than `max_redirects`.
    #[error("too many redirects: an outbound request may follow at most {limit}")]
    TooManyRedirects {
        /// The configured `max_redirects`.
        limit: usize,
    },

    /// The name did not resolve or no connection could be made. The message
    /// names the host and says why ("could not connect to `…`: …").
    #[error("{0}")]
    Connect(String),

    /// Any other failure of the HTTP exchange (protocol error, reset body).
    #[error("outbound HTTP request failed: {0}")]
    Http(String),
}

impl Error {
    /// Classifies an error from reqwest.
    ///
    /// Refusals raised inside reqwest (by the resolver or the redirect
    /// policy) come back boxed in its source chain and are returned as they
    /// were raised. The rest is described by its source chain without the
    /// URL, which may carry secrets; the host is named instead.
    pub(crate) fn from_reqwest(
        err: reqwest::Error,
        timeout: Duration,
        connect_timeout: Duration,
    ) -> Self {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(inner) = source {
            if let Some(ours) = inner.downcast_ref::<Error>() {
                return ours.clone();
            }
            source = inner.source();
        }
        if err.is_timeout() {
            let limit = if err.is_connect() {
                connect_timeout
            } else {
                timeout
            };
            return Error::TimedOut { limit };
        }
        let host = err
            .url()
            .and_then(crate::host::url_host_key)
            .unwrap_or_else(|| "the host".to_owned());
        let is_connect = err.is_connect();
        let err = err.without_url();
        // The innermost cause says what happened ("Connection refused",
        // "invalid peer certificate"); the layers between are reqwest's and
        // hyper's wrappers and add only noise.
        let mut innermost: &(dyn std::error::Error + 'static) = &err;
        while let Some(inner) = innermost.source() {
            innermost = inner;
        }
        if is_connect {
            Error::Connect(format!("could not connect to `{host}`: {innermost}"))
        } else if std::ptr::addr_eq(innermost, &err) {
            Error::Http(format!("`{host}`: {err}"))
        } else {
            Error::Http(format!("`{host}`: {err}: {innermost}"))
        }
    }
}
