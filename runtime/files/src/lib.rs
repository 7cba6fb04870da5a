//! Capstan's file storage for apps (like Convex's `ctx.storage`): an upload
//! is streamed into a [`FileBackend`], size-limited and hashed on the way,
//! and appears under its key only once complete and durable; the server then
//! records its [`Stored`] size and hash, and serves downloads with
//! [`serve()`]: `Range`, `ETag`, `If-None-Match`, `If-Range`.
//!
//! ```no_run
//! # async fn example(request_headers: axum::http::HeaderMap) -> capstan_files::Result<()> {
//! use capstan_files::{ByteStream, FileBackend, FileMeta, LocalFiles};
//!
//! let files = LocalFiles::open("data/files")?;
//! let body: ByteStream = Box::pin(futures_util::stream::iter([Ok(bytes::Bytes::from("hello"))]));
//! let stored = files.put("kg2h4f6x", body, 20 * 1024 * 1024).await?;
//! let meta = FileMeta { size: stored.size, sha256: stored.sha256, content_type: None };
//! let response = capstan_files::serve(&files, "kg2h4f6x", &meta, &request_headers, false).await?;
//! # let _ = response;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - [`backend`]: [`FileBackend`], the seam every backend implements;
//!   [`Stored`], [`ByteStream`], and [`validate_key`], the key rule.
//! - [`local`]: [`LocalFiles`], files in a directory, published by fsync and
//!   rename.
//! - [`s3`]: [`S3Files`], objects in an S3-compatible bucket, published by
//!   completing a multipart upload.
//! - [`serve`](mod@serve): [`serve()`], a GET or HEAD answered with the right
//!   status and headers; [`FileMeta`], what it needs from the record.
//! - [`range`]: the `Range` header, as a [`RangeSelection`].
//! - [`etag`]: [`EntityTag`], and the `If-None-Match` / `If-Range` checks.
//! - [`error`]: the crate's one [`Error`] type.

pub mod backend;
pub mod error;
pub mod etag;
pub mod local;
pub mod range;
pub mod s3;
pub mod serve;

pub use backend::{BoxFuture, ByteStream, FileBackend, MAX_KEY_LEN, Stored, validate_key};
pub use error::{Error, Result};
pub use etag::EntityTag;
pub use local::{LocalFiles, PARTIAL_DIR};
pub use range::RangeSelection;
pub use s3::{S3Config, S3Files};
pub use serve::{FileMeta, serve};
