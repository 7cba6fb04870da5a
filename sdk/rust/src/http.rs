//! HTTP requests and responses: what an HTTP action receives and returns,
//! and what an action sends with [`ActionCtx::fetch`](crate::ActionCtx::fetch).

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::capstan::runtime::http_types;
use crate::error::{Error, Result};
use crate::webhook::{self, WebhookError};

/// An HTTP method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The value of header `name` (case-insensitive) among `headers`.
fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

fn text_of(body: &[u8]) -> Result<&str> {
    std::str::from_utf8(body).map_err(|_| Error::new("the body is not UTF-8 text"))
}

fn json_of<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body)
        .map_err(|e| Error::new(format!("the body is not the JSON expected: {e}")))
}

/// An HTTP request: the one an HTTP action answers, or one an action sends.
///
/// ```
/// use capstan::http::HttpRequest;
/// let request = HttpRequest::post("https://api.example.com/mail")
///     .with_header("authorization", "Bearer secret")
///     .with_json(&capstan::json!({"to": "ada@example.com"}))
///     .unwrap();
/// assert_eq!(request.header("Content-Type"), Some("application/json"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl fmt::Debug for HttpRequest {
    // Headers may carry credentials, and bodies secrets: neither is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl HttpRequest {
    pub fn new(method: Method, url: impl Into<String>) -> HttpRequest {
        HttpRequest {
            method: method.as_str().to_owned(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn get(url: impl Into<String>) -> HttpRequest {
        HttpRequest::new(Method::Get, url)
    }

    pub fn post(url: impl Into<String>) -> HttpRequest {
        HttpRequest::new(Method::Post, url)
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// `value` as a JSON body, with its content type.
    pub fn with_json<T: Serialize + ?Sized>(self, value: &T) -> Result<Self> {
        let body = serde_json::to_vec(value).map_err(|e| Error::new(e.to_string()))?;
        Ok(self
            .with_header("content-type", "application/json")
            .with_body(body))
    }

    /// `GET`, `POST`, …
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The whole URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL's path, without the query string.
    pub fn path(&self) -> &str {
        let after_scheme = self
            .url
            .split_once("://")
            .map_or(&*self.url, |(_, rest)| rest);
        let path = after_scheme.find('/').map_or("/", |at| &after_scheme[at..]);
        path.split(['?', '#']).next().unwrap_or("/")
    }

    /// The path an HTTP action's route matched: [`HttpRequest::path`]
    /// without the `/http` the server serves HTTP actions under
    /// (`/webhooks/payment`), as Convex's site URL would give it.
    pub fn route_path(&self) -> &str {
        let path = self.path();
        match path.strip_prefix("/http") {
            Some("") => "/",
            Some(rest) if rest.starts_with('/') => rest,
            _ => path,
        }
    }

    /// The first value of query parameter `name`, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.url.split_once('?')?.1.split('#').next()?;
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key) == name).then(|| decode(value))
        })
    }

    /// The value of header `name`, case-insensitive.
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The bearer token of the `Authorization` header.
    pub fn bearer_token(&self) -> Option<&str> {
        let value = self.header("authorization")?;
        let (scheme, token) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    pub fn text(&self) -> Result<&str> {
        text_of(&self.body)
    }

    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        json_of(&self.body)
    }

    /// Checks a Stripe signature (`Stripe-Signature`) made with `secret`,
    /// within five minutes of now. Verify before parsing the body.
    pub fn verify_stripe(&self, secret: &str) -> Result<(), WebhookError> {
        webhook::verify_stripe(
            secret,
            self.header("stripe-signature"),
            &self.body,
            std::time::SystemTime::now(),
            webhook::DEFAULT_TOLERANCE,
        )
    }

    /// Checks a GitHub signature (`X-Hub-Signature-256`) made with `secret`.
    pub fn verify_github(&self, secret: &str) -> Result<(), WebhookError> {
        webhook::verify_github(secret, self.header("x-hub-signature-256"), &self.body)
    }

    /// Checks a Svix / Standard Webhooks signature (Clerk, Resend, …) made
    /// with `secret` (`whsec_…`), within five minutes of now.
    pub fn verify_svix(&self, secret: &str) -> Result<(), WebhookError> {
        webhook::verify_svix(
            secret,
            webhook::SvixHeaders::from_lookup(|name| self.header(name)),
            &self.body,
            std::time::SystemTime::now(),
            webhook::DEFAULT_TOLERANCE,
        )
    }
}

/// Percent-decoding of a query string component (`+` is a space).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(high), Some(low)) => {
                        out.push((high * 16 + low) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An HTTP response: what an HTTP action returns, or what a fetch got.
///
/// ```
/// use capstan::http::HttpResponse;
/// let response = HttpResponse::from_json(&capstan::json!({"ok": true})).unwrap().with_status(201);
/// assert_eq!(response.status(), 201);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl HttpResponse {
    /// An empty response with `status`.
    pub fn new(status: u16) -> HttpResponse {
        HttpResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// 200 with `value` as JSON.
    pub fn from_json<T: Serialize + ?Sized>(value: &T) -> Result<HttpResponse> {
        let body = serde_json::to_vec(value).map_err(|e| Error::new(e.to_string()))?;
        Ok(HttpResponse::new(200)
            .with_header("content-type", "application/json")
            .with_body(body))
    }

    /// 200 with `text` as plain text.
    pub fn from_text(text: impl Into<String>) -> HttpResponse {
        HttpResponse::new(200)
            .with_header("content-type", "text/plain; charset=utf-8")
            .with_body(text.into().into_bytes())
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    pub fn text(&self) -> Result<&str> {
        text_of(&self.body)
    }

    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        json_of(&self.body)
    }
}

/// Why an HTTP action answers with an error status: `?` turns a
/// [`WebhookError`] into 401 and a [`capstan::Error`](crate::Error) into
/// 500; [`HttpError::new`] gives any status. The client gets
/// `{"error": message}` (and `"data"` for an error with data).
#[derive(Debug)]
pub struct HttpError {
    pub status: u16,
    pub message: String,
    pub data: Option<crate::Value>,
}

impl HttpError {
    pub fn new(status: u16, message: impl Into<String>) -> HttpError {
        HttpError {
            status,
            message: message.into(),
            data: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> HttpError {
        HttpError::new(400, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> HttpError {
        HttpError::new(401, message)
    }

    pub fn not_found(message: impl Into<String>) -> HttpError {
        HttpError::new(404, message)
    }

    /// The response the client gets.
    pub fn into_response(self) -> HttpResponse {
        let mut body = serde_json::Map::new();
        body.insert("error".into(), self.message.into());
        if let Some(data) = self.data
            && let Ok(data) = serde_json::from_str::<serde_json::Value>(&data.to_json_string())
        {
            body.insert("data".into(), data);
        }
        HttpResponse::new(self.status)
            .with_header("content-type", "application/json")
            .with_body(serde_json::Value::Object(body).to_string().into_bytes())
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl From<Error> for HttpError {
    fn from(error: Error) -> Self {
        HttpError {
            status: 500,
            message: error.message().to_owned(),
            data: error.error_data().cloned(),
        }
    }
}

impl From<WebhookError> for HttpError {
    fn from(error: WebhookError) -> Self {
        HttpError::unauthorized(error.to_string())
    }
}

/// What an HTTP action returns.
pub type HttpResult = std::result::Result<HttpResponse, HttpError>;

impl From<http_types::Request> for HttpRequest {
    fn from(request: http_types::Request) -> Self {
        HttpRequest {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body,
        }
    }
}

impl From<HttpRequest> for http_types::Request {
    fn from(request: HttpRequest) -> Self {
        http_types::Request {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body,
        }
    }
}

impl From<http_types::Response> for HttpResponse {
    fn from(response: http_types::Response) -> Self {
        HttpResponse {
            status: response.status,
            headers: response.headers,
            body: response.body,
        }
    }
}

impl From<HttpResponse> for http_types::Response {
    fn from(response: HttpResponse) -> Self {
        http_types::Response {
            status: response.status,
            headers: response.headers,
            body: response.body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_query_parameters_are_read_from_the_url() {
        let request = HttpRequest::get("https://h.example/http/a/b?x=1&name=Ada+L%C3%B6&y#frag");
        assert_eq!(request.path(), "/http/a/b");
        assert_eq!(request.query_param("name").as_deref(), Some("Ada Lö"));
        assert_eq!(request.query_param("y").as_deref(), Some(""));
        assert_eq!(request.query_param("z"), None);
        assert_eq!(HttpRequest::get("https://h.example").path(), "/");
        assert_eq!(
            HttpRequest::get("https://h.example/http/files/a?x").route_path(),
            "/files/a"
        );
        assert_eq!(HttpRequest::get("https://h.example/http").route_path(), "/");
        assert_eq!(
            HttpRequest::get("https://h.example/httpx").route_path(),
            "/httpx"
        );
        assert_eq!(
            HttpRequest::get("https://h.example/a?b=%")
                .query_param("b")
                .as_deref(),
            Some("%")
        );
    }

    #[test]
    fn errors_become_json_responses() {
        let response = HttpError::from(WebhookError::BadSignature).into_response();
        assert_eq!(response.status(), 401);
        assert!(response.text().unwrap().contains("\"error\""));
    }
}
