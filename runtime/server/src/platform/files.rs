//! File storage: signed upload and download URLs, the upload and download
//! endpoints, `_storage` rows, and the sweep of objects no row points at.
//!
//! An upload streams into the backend under a fresh random key (the local
//! backend writes a temporary file, fsyncs and renames it), and only then
//! is its `_storage` row committed: a crash mid-upload leaves no id, and a
//! crash between the two leaves an object without a row, which the sweep
//! removes.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use capstan_files::{FileBackend, FileMeta};
use capstan_protocol::{Object, Value};
use capstan_store::{Document, Query, Store, Transaction};
use futures_util::StreamExt as _;
use ring::hmac;

use super::tables::{BY_KEY, STORAGE};

/// How long an upload URL is valid.
pub const UPLOAD_URL_LIFETIME: Duration = Duration::from_secs(3600);
/// An object this old without a `_storage` row is an orphan (an upload cut
/// between its object and its row, or a deleted file).
const ORPHAN_AGE: Duration = Duration::from_secs(3600);

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Files: where they are kept and how their URLs are signed.
#[derive(Clone)]
pub struct Files {
    pub backend: Arc<dyn FileBackend>,
    key: hmac::Key,
    public_url: String,
    /// The largest file accepted.
    pub max_bytes: u64,
}

impl std::fmt::Debug for Files {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Files")
            .field("backend", &self.backend)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

/// Why a file operation failed.
#[derive(Debug)]
pub enum FileError {
    /// The URL's token is missing, forged or expired.
    BadToken,
    NotFound,
    TooLarge(u64),
    BadBody(String),
    Internal(String),
}

impl IntoResponse for FileError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            FileError::BadToken => (
                StatusCode::UNAUTHORIZED,
                "the URL is not valid, or has expired".to_owned(),
            ),
            FileError::NotFound => (StatusCode::NOT_FOUND, "no such file".to_owned()),
            FileError::TooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the file is larger than the limit of {limit} bytes"),
            ),
            FileError::BadBody(reason) => (StatusCode::BAD_REQUEST, reason),
            FileError::Internal(reason) => {
                tracing::error!(%reason, "file storage failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "file storage failed".to_owned(),
                )
            }
        };
        let body = serde_json::json!({ "code": status.as_u16(), "message": message });
        (status, axum::Json(body)).into_response()
    }
}

impl Files {
    pub fn new(
        backend: Arc<dyn FileBackend>,
        key: [u8; 32],
        public_url: &str,
        max_bytes: u64,
    ) -> Files {
        Files {
            backend,
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
            public_url: public_url.trim_end_matches('/').to_owned(),
            max_bytes,
        }
    }

    fn sign(&self, message: &str) -> String {
        B64.encode(hmac::sign(&self.key, message.as_bytes()))
    }

    fn verify(&self, message: &str, signature: &str) -> bool {
        B64.decode(signature)
            .is_ok_and(|tag| hmac::verify(&self.key, message.as_bytes(), &tag).is_ok())
    }

    /// A URL to POST one file to, valid until `now_ms` + an hour.
    pub fn upload_url(&self, now_ms: f64) -> String {
        let expires = (now_ms / 1000.0) as u64 + UPLOAD_URL_LIFETIME.as_secs();
        let nonce = crate::auth::records::secret();
        let message = format!("upload.{expires}.{nonce}");
        format!(
            "{}/api/storage/upload?token={expires}.{nonce}.{}",
            self.public_url,
            self.sign(&message)
        )
    }

    fn check_upload_token(&self, token: &str, now_ms: f64) -> Result<(), FileError> {
        let mut parts = token.splitn(3, '.');
        let (Some(expires), Some(nonce), Some(signature)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(FileError::BadToken);
        };
        let valid = self.verify(&format!("upload.{expires}.{nonce}"), signature)
            && expires
                .parse::<u64>()
                .is_ok_and(|expires| (expires as f64) * 1000.0 >= now_ms);
        if valid {
            Ok(())
        } else {
            Err(FileError::BadToken)
        }
    }

    /// The download URL of the file `id`: stable, and unguessable without
    /// the server's key.
    pub fn download_url(&self, id: &str) -> String {
        format!(
            "{}/api/storage/{id}?token={}",
            self.public_url,
            self.sign(&format!("download.{id}"))
        )
    }

    /// Streams `body` into a new object; the `_storage` row's fields.
    pub async fn put(
        &self,
        body: capstan_files::ByteStream,
        content_type: Option<String>,
    ) -> Result<Object, FileError> {
        let key = crate::auth::records::random_text(crate::auth::records::ALPHANUMERIC, 32);
        let stored = self
            .backend
            .put(&key, body, self.max_bytes)
            .await
            .map_err(|e| match e {
                capstan_files::Error::TooLarge { limit } => FileError::TooLarge(limit),
                capstan_files::Error::Body(reason) => {
                    FileError::BadBody(format!("the upload was cut short: {reason}"))
                }
                other => FileError::Internal(other.to_string()),
            })?;
        let mut fields = Object::new();
        fields.insert(
            "sha256".into(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(stored.sha256)),
        );
        fields.insert("size".into(), Value::Float64(stored.size as f64));
        if let Some(content_type) = content_type {
            fields.insert("contentType".into(), Value::String(content_type));
        }
        fields.insert("key".into(), Value::String(key));
        Ok(fields)
    }

    /// Inserts the `_storage` row for an object `put` wrote; its id.
    pub async fn record(&self, store: &Store, fields: Object) -> Result<String, FileError> {
        for _ in 0..32 {
            let mut tx = store.begin();
            let id = tx
                .insert(STORAGE, fields.clone())
                .map_err(|e| FileError::Internal(e.to_string()))?;
            match store.commit(tx).await {
                Ok(Ok(_)) => return Ok(id.to_string()),
                Ok(Err(_conflict)) => continue,
                Err(e) => return Err(FileError::Internal(e.to_string())),
            }
        }
        Err(FileError::Internal(
            "recording a file kept conflicting".into(),
        ))
    }

    /// The upload endpoint: `POST /api/storage/upload?token=…` with the
    /// file as the body; answers `{"storageId": …}`.
    pub async fn upload(
        &self,
        store: &Store,
        token: &str,
        now_ms: f64,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Response, FileError> {
        self.check_upload_token(token, now_ms)?;
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > self.max_bytes) {
            // Refused before a byte is read.
            return Err(FileError::TooLarge(self.max_bytes));
        }
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= 256)
            .map(str::to_owned);
        let stream = body
            .into_data_stream()
            .map(|chunk| chunk.map_err(std::io::Error::other))
            .boxed();
        let fields = self.put(stream, content_type).await?;
        let id = self.record(store, fields).await?;
        Ok(axum::Json(serde_json::json!({ "storageId": id })).into_response())
    }

    /// The download endpoint: `GET /api/storage/{id}?token=…`, with ranges
    /// and `ETag`.
    pub async fn download(
        &self,
        store: &Store,
        id: &str,
        token: &str,
        headers: &HeaderMap,
        head: bool,
    ) -> Result<Response, FileError> {
        if !self.verify(&format!("download.{id}"), token) {
            return Err(FileError::BadToken);
        }
        let mut tx = store.begin();
        let row = row(&mut tx, id)
            .map_err(FileError::Internal)?
            .ok_or(FileError::NotFound)?;
        let (key, meta) =
            meta(&row).ok_or_else(|| FileError::Internal(format!("file {id} has a broken row")))?;
        let mut response = capstan_files::serve(&*self.backend, &key, &meta, headers, head)
            .await
            .map_err(|e| FileError::Internal(e.to_string()))?
            .ok_or(FileError::NotFound)?;
        // An uploaded HTML page must not run as the server's origin.
        response.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            header::HeaderValue::from_static("sandbox"),
        );
        Ok(response)
    }

    /// Removes objects older than an hour that no `_storage` row points
    /// at; how many.
    pub async fn sweep(&self, store: &Store) -> Result<usize, FileError> {
        let objects = self
            .backend
            .list()
            .await
            .map_err(|e| FileError::Internal(e.to_string()))?;
        let now = std::time::SystemTime::now();
        let mut removed = 0;
        for (key, modified) in objects {
            if now.duration_since(modified).unwrap_or_default() < ORPHAN_AGE {
                continue;
            }
            let mut tx = store.begin();
            if tx.catalog().table(STORAGE).is_err() {
                return Ok(0);
            }
            let rows = tx
                .query(
                    &Query::index(STORAGE, BY_KEY).eq("key", key.as_str()),
                    Some(1),
                )
                .map_err(|e| FileError::Internal(e.to_string()))?;
            if rows.is_empty() {
                self.backend
                    .delete(&key)
                    .await
                    .map_err(|e| FileError::Internal(e.to_string()))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// The `_storage` row `id` (text), if it is one.
pub fn row(tx: &mut Transaction, id: &str) -> Result<Option<Document>, String> {
    let Ok(id) = tx.parse_id(id) else {
        return Ok(None);
    };
    let Ok(entry) = tx.catalog().table(STORAGE) else {
        return Ok(None);
    };
    if id.table() != entry.number {
        return Ok(None);
    }
    tx.get(id).map_err(|e| e.to_string())
}

/// A row's object key and what serving it needs.
pub fn meta(row: &Document) -> Option<(String, FileMeta)> {
    let key = row.fields.get("key")?.as_str()?.to_owned();
    let sha256 = base64::engine::general_purpose::STANDARD
        .decode(row.fields.get("sha256")?.as_str()?)
        .ok()?
        .try_into()
        .ok()?;
    let size = match row.fields.get("size")? {
        Value::Float64(size) => *size as u64,
        _ => return None,
    };
    let content_type = row
        .fields
        .get("contentType")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Some((
        key,
        FileMeta {
            size,
            sha256,
            content_type,
        },
    ))
}
