//! What an action asks to send, and its validation into a reqwest request.

use std::fmt;

use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use url::Url;

use crate::config::OutboundConfig;
use crate::error::{Error, Result};

/// An outbound HTTP request as an action describes it.
///
/// `Debug` shows the method, the URL without its query, the header names
/// and the body's length: values, query strings and bodies carry API keys.
#[derive(Clone)]
pub struct Request {
    /// One of GET HEAD POST PUT PATCH DELETE OPTIONS (any case).
    pub method: String,
    /// An absolute http or https URL.
    pub url: String,
    /// Sent as given, repeated names included. `Host`, `Content-Length`
    /// and hop-by-hop headers are refused: the client derives them itself.
    pub headers: Vec<(String, String)>,
    /// At most `max_request_bytes`.
    pub body: Vec<u8>,
}

/// Headers the client must own. `Host` decides which virtual host a shared
/// front end routes to, so letting it differ from the checked URL would
/// reopen what `allowed_hosts` closes; `Content-Length` comes from the body
/// and a mismatched one desynchronises the connection; the rest are
/// hop-by-hop (RFC 9110 §7.6.1) and describe our connection, not the
/// action's. `Proxy-*` is matched by prefix below.
const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &without_query(&self.url))
            .field("headers", &redacted_headers(&self.headers))
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .finish()
    }
}

/// `url` up to its query or fragment, which is where keys tend to travel.
pub(crate) fn without_query(url: &str) -> String {
    match url.find(['?', '#']) {
        Some(cut) => format!("{}…", &url[..cut]),
        None => url.to_owned(),
    }
}

/// Header names with their values replaced, for `Debug` output.
pub(crate) fn redacted_headers(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(name, _)| (name.as_str(), "…"))
        .collect()
}

/// Longest piece of action input quoted back in an error, so a huge header
/// name cannot make a huge error.
const QUOTE_LIMIT: usize = 64;

impl Request {
    /// Checks everything that needs no network and builds the reqwest
    /// request. The URL's host is checked by the guard afterwards.
    pub(crate) fn into_reqwest(self, config: &OutboundConfig) -> Result<reqwest::Request> {
        let method = parse_method(&self.method)?;
        if self.body.len() > config.max_request_bytes {
            return Err(Error::RequestTooLarge {
                size: self.body.len(),
                limit: config.max_request_bytes,
            });
        }
        // The parse error names what is wrong without echoing the URL,
        // whose query string may carry a key.
        let url = Url::parse(&self.url)
            .map_err(|e| Error::InvalidRequest(format!("the URL is not valid: {e}")))?;
        let headers = parse_headers(&self.headers)?;

        let mut request = reqwest::Request::new(method.clone(), url);
        *request.headers_mut() = headers;
        // An empty body is left out for methods that normally have none, so
        // a GET does not go out with `Content-Length: 0`; the body-carrying
        // methods keep it so servers that demand a length get one.
        let carries_body = matches!(method, Method::POST | Method::PUT | Method::PATCH);
        if !self.body.is_empty() || carries_body {
            *request.body_mut() = Some(self.body.into());
        }
        Ok(request)
    }
}

fn parse_method(method: &str) -> Result<Method> {
    Ok(match method.to_ascii_uppercase().as_str() {
        "GET" => Method::GET,
        "HEAD" => Method::HEAD,
        "POST" => Method::POST,
        "PUT" => Method::PUT,
        "PATCH" => Method::PATCH,
        "DELETE" => Method::DELETE,
        "OPTIONS" => Method::OPTIONS,
        _ => {
            return Err(Error::InvalidRequest(format!(
                "method `{}` is not allowed; use GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS",
                quote(method)
            )));
        }
    })
}

fn parse_headers(headers: &[(String, String)]) -> Result<HeaderMap> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            Error::InvalidRequest(format!("`{}` is not a valid header name", quote(name)))
        })?;
        let lower = header.as_str();
        if FORBIDDEN_HEADERS.contains(&lower) || lower.starts_with("proxy-") {
            return Err(Error::InvalidRequest(format!(
                "header `{lower}` may not be set by an action; the HTTP client sets it"
            )));
        }
        // Bytes rather than `from_str` so UTF-8 passes; CR, LF and other
        // control characters are still refused. The value is never quoted.
        let value = HeaderValue::from_bytes(value.as_bytes()).map_err(|_| {
            Error::InvalidRequest(format!(
                "the value of header `{lower}` is not valid (control characters and line \
                 breaks are not allowed)"
            ))
        })?;
        map.append(header, value);
    }
    Ok(map)
}

/// `text` cut to [`QUOTE_LIMIT`] characters.
fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE_LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_header_values_query_and_body() {
        let request = Request {
            method: "POST".into(),
            url: "https://api.example.com/v1/charge?key=sk_live_1#frag".into(),
            headers: vec![("authorization".into(), "Bearer sk_live_2".into())],
            body: b"card=sk_live_3".to_vec(),
        };
        let debug = format!("{request:?}");
        assert!(!debug.contains("sk_live"), "{debug}");
        assert!(
            debug.contains("https://api.example.com/v1/charge"),
            "{debug}"
        );
        assert!(debug.contains("authorization"), "{debug}");
        assert!(debug.contains("<14 bytes>"), "{debug}");
    }
}
