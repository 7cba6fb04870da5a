//! What an action gets back, read with a bound on its size.

use std::fmt;

use crate::error::{Error, Result};
use crate::request::{redacted_headers, without_query};

/// An outbound HTTP response, body read in full.
///
/// `Debug` shows the status, the URL without its query, the header names and
/// the body's length, since a response can carry tokens (`Set-Cookie`, an
/// OAuth token body) that must not reach logs.
#[derive(Clone)]
pub struct Response {
    /// The status of the last hop (a 3xx only if `max_redirects` is 0 or the
    /// redirect had no usable `Location`).
    pub status: u16,
    /// Lower-case names in received order; repeated names stay repeated. A
    /// value that is not UTF-8 is decoded lossily.
    pub headers: Vec<(String, String)>,
    /// At most `max_response_bytes`.
    pub body: Vec<u8>,
    /// The URL after redirects.
    pub url: String,
}

impl Response {
    /// Reads `response` whole, refusing it as soon as it is known to be
    /// over `limit` bytes: up front when its length is declared, otherwise
    /// at the first chunk that crosses the limit, so a hostile server can
    /// cost at most `limit` bytes of memory plus one chunk.
    pub(crate) async fn read(
        mut response: reqwest::Response,
        limit: usize,
        classify: impl Fn(reqwest::Error) -> Error,
    ) -> Result<Self> {
        let too_large = Error::ResponseTooLarge { limit };
        let declared = response.content_length();
        if declared.is_some_and(|len| len > limit as u64) {
            return Err(too_large);
        }
        let status = response.status().as_u16();
        let url = response.url().as_str().to_owned();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect();
        // The declared length is at most `limit` here, so trusting it for
        // the allocation is bounded even if it lies.
        let capacity = declared.map_or(0, |len| usize::try_from(len).unwrap_or(0));
        let mut body = Vec::with_capacity(capacity);
        while let Some(chunk) = response.chunk().await.map_err(&classify)? {
            if chunk.len() > limit - body.len() {
                return Err(too_large);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Self {
            status,
            headers,
            body,
            url,
        })
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("url", &without_query(&self.url))
            .field("headers", &redacted_headers(&self.headers))
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .finish()
    }
}
