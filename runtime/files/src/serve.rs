//! Answering a GET or HEAD of a stored file: `If-None-Match`, `Range` with
//! `If-Range`, and the headers a browser, a video player or a download
//! manager needs.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;

use crate::backend::FileBackend;
use crate::error::Result;
use crate::etag::EntityTag;
use crate::range::{RangeSelection, content_range, unsatisfied_content_range};

/// What the server knows of a stored file (from its `_storage` record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// Length in bytes, as the put reported it.
    pub size: u64,
    /// SHA-256 of the bytes, as the put reported it: the `ETag`.
    pub sha256: [u8; 32],
    /// The type the app gave at upload, if any.
    pub content_type: Option<String>,
}

/// Files are served to whoever the app let download them, so only the
/// browser may keep a copy, not a shared cache. A day, after which the
/// browser asks again with `If-None-Match` and gets a 304 if nothing changed.
const CACHE_CONTROL: HeaderValue = HeaderValue::from_static("private, max-age=86400");

const OCTET_STREAM: HeaderValue = HeaderValue::from_static("application/octet-stream");

/// Answers a download of `key`: 200 with the whole body, 206 with
/// `Content-Range` for one satisfiable `Range: bytes=a-b` / `a-` / `-n`, 416
/// with `Content-Range: bytes */size` for an unsatisfiable one, the whole
/// file (200) for several ranges or a malformed `Range`; `ETag` (the
/// SHA-256, base64url), `If-None-Match` (`*`, lists, weak comparison) → 304
/// without a body; `If-Range` honoured (the range only if it is the ETag);
/// `Accept-Ranges: bytes`; `Content-Length`; `Content-Type`
/// (application/octet-stream when unknown or not a valid field value);
/// `X-Content-Type-Options: nosniff`; `Cache-Control: private,
/// max-age=86400`.
///
/// `head` answers the headers of a GET without the body. A HEAD ignores
/// `Range`, as RFC 9110 §14.2 requires (range handling is defined for GET
/// only), so it always describes the whole file.
///
/// Returns Ok(None) if the backend no longer has the object: the server
/// answers 404. Bodiless answers (HEAD, 304, 416) check with
/// [`FileBackend::exists`], so they say the same.
pub async fn serve(
    backend: &dyn FileBackend,
    key: &str,
    meta: &FileMeta,
    request_headers: &HeaderMap,
    head: bool,
) -> Result<Option<Response>> {
    let etag = EntityTag::from_sha256(&meta.sha256);

    // RFC 9110 §13.2.2: If-None-Match is evaluated before Range.
    if etag.matches_if_none_match(request_headers) {
        if !backend.exists(key).await? {
            return Ok(None);
        }
        return Ok(Some(response(
            StatusCode::NOT_MODIFIED,
            &etag,
            Body::empty(),
        )));
    }

    let selection = if head || !etag.allows_range(request_headers) {
        RangeSelection::Whole
    } else {
        RangeSelection::from_headers(request_headers, meta.size)
    };

    let response = match selection {
        RangeSelection::Whole => {
            let body = if head {
                if !backend.exists(key).await? {
                    return Ok(None);
                }
                Body::empty()
            } else {
                match backend.read(key, None).await? {
                    Some(stream) => Body::from_stream(stream),
                    None => return Ok(None),
                }
            };
            let mut response = response(StatusCode::OK, &etag, body);
            content_headers(response.headers_mut(), meta, meta.size);
            response
        }
        RangeSelection::Partial(range) => {
            let len = range.end - range.start;
            let Some(stream) = backend.read(key, Some(range.clone())).await? else {
                return Ok(None);
            };
            let mut response = response(
                StatusCode::PARTIAL_CONTENT,
                &etag,
                Body::from_stream(stream),
            );
            let headers = response.headers_mut();
            content_headers(headers, meta, len);
            headers.insert(
                header::CONTENT_RANGE,
                formatted(content_range(&range, meta.size)),
            );
            response
        }
        RangeSelection::Unsatisfiable => {
            if !backend.exists(key).await? {
                return Ok(None);
            }
            let mut response = response(StatusCode::RANGE_NOT_SATISFIABLE, &etag, Body::empty());
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
            headers.insert(
                header::CONTENT_RANGE,
                formatted(unsatisfied_content_range(meta.size)),
            );
            response
        }
    };
    Ok(Some(response))
}

/// A response with the headers every answer carries: a 304 must repeat the
/// ETag and Cache-Control a 200 would have had (RFC 9110 §15.4.5).
fn response(status: StatusCode, etag: &EntityTag, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag.header_value());
    headers.insert(header::CACHE_CONTROL, CACHE_CONTROL);
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    response
}

/// The headers of an answer with content (200, 206).
fn content_headers(headers: &mut HeaderMap, meta: &FileMeta, len: u64) {
    // Set explicitly: a streamed body has no size hint, and without the
    // length a download has no progress and a HEAD no size.
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    let content_type = meta
        .content_type
        .as_deref()
        .and_then(|content_type| HeaderValue::from_str(content_type).ok())
        .unwrap_or(OCTET_STREAM);
    headers.insert(header::CONTENT_TYPE, content_type);
    // The content type is the uploader's word: a browser must not sniff
    // something else (HTML, script) out of the bytes.
    headers.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
}

/// A field value this module formatted from digits and ASCII words, which is
/// always valid; the empty fallback is never taken.
fn formatted(value: String) -> HeaderValue {
    HeaderValue::try_from(value).unwrap_or(HeaderValue::from_static(""))
}
