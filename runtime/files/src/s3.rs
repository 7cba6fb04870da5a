//! [`S3Files`]: objects in an S3-compatible bucket (AWS S3, MinIO, R2, …),
//! through the `object_store` crate. An upload is a multipart upload: the
//! object appears under its key only when the upload completes, and one
//! that fails is aborted, so no reader ever sees part of a file. Every node
//! of a deployment reaches every file.

use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::{StreamExt as _, TryStreamExt as _};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, WriteMultipart};
use sha2::{Digest as _, Sha256};

use crate::backend::{BoxFuture, ByteStream, FileBackend, Stored, validate_key};
use crate::error::{Error, Result};

/// Where the bucket is and how to reach it.
#[derive(Clone, Default)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    /// For S3-compatible services (`http://127.0.0.1:9000`); AWS's own when
    /// `None`.
    pub endpoint: Option<String>,
    /// Keys live under this prefix (`files/`), so a bucket can be shared.
    pub prefix: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Whether a plain-http endpoint is allowed (a service on loopback).
    pub allow_http: bool,
}

impl std::fmt::Debug for S3Config {
    // The secret key is not shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Concurrent part uploads of one file.
const PARTS_IN_FLIGHT: usize = 4;

fn storage(e: object_store::Error) -> Error {
    Error::Io(std::io::Error::other(e.to_string()))
}

pub struct S3Files {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    bucket: String,
}

impl std::fmt::Debug for S3Files {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Files")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl S3Files {
    pub fn new(config: &S3Config) -> Result<S3Files> {
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_access_key_id(&config.access_key_id)
            .with_secret_access_key(&config.secret_access_key)
            .with_allow_http(config.allow_http);
        if let Some(endpoint) = &config.endpoint {
            // Path-style requests: S3-compatible services rarely have
            // per-bucket host names.
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false);
        }
        let store = builder.build().map_err(storage)?;
        Ok(S3Files {
            store: Arc::new(store),
            prefix: config.prefix.trim_matches('/').to_owned(),
            bucket: config.bucket.clone(),
        })
    }

    fn path(&self, key: &str) -> Result<Path> {
        validate_key(key)?;
        Ok(if self.prefix.is_empty() {
            Path::from(key)
        } else {
            Path::from(format!("{}/{key}", self.prefix))
        })
    }

    async fn put_inner(&self, key: &str, mut body: ByteStream, max_bytes: u64) -> Result<Stored> {
        let path = self.path(key)?;
        let upload = self.store.put_multipart(&path).await.map_err(storage)?;
        let mut upload = WriteMultipart::new(upload);
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let streamed: Result<()> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| Error::Body(e.to_string()))?;
                size = size
                    .checked_add(chunk.len() as u64)
                    .filter(|&size| size <= max_bytes)
                    .ok_or(Error::TooLarge { limit: max_bytes })?;
                hasher.update(&chunk);
                upload
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(storage)?;
                upload.write(&chunk);
            }
            Ok(())
        }
        .await;
        match streamed {
            Ok(()) => {
                upload.finish().await.map_err(storage)?;
                Ok(Stored {
                    size,
                    sha256: hasher.finalize().into(),
                })
            }
            Err(e) => {
                if let Err(abort) = upload.abort().await {
                    tracing::warn!(error = %abort, "aborting a failed multipart upload failed");
                }
                Err(e)
            }
        }
    }

    async fn read_inner(&self, key: &str, range: Option<Range<u64>>) -> Result<Option<ByteStream>> {
        let path = self.path(key)?;
        let options = GetOptions {
            range: range.map(|range| GetRange::Bounded(range.start..range.end)),
            ..GetOptions::default()
        };
        match self.store.get_opts(&path, options).await {
            Ok(result) => Ok(Some(Box::pin(
                result
                    .into_stream()
                    .map_err(|e| std::io::Error::other(e.to_string())),
            ))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(storage(e)),
        }
    }

    async fn list_inner(&self) -> Result<Vec<(String, SystemTime)>> {
        let prefix = (!self.prefix.is_empty()).then(|| Path::from(self.prefix.as_str()));
        let objects: Vec<_> = self
            .store
            .list(prefix.as_ref())
            .try_collect()
            .await
            .map_err(storage)?;
        Ok(objects
            .into_iter()
            .filter_map(|object| {
                let key = object.location.filename()?.to_owned();
                validate_key(&key).ok()?;
                Some((key, SystemTime::from(object.last_modified)))
            })
            .collect())
    }
}

impl FileBackend for S3Files {
    fn put<'a>(
        &'a self,
        key: &'a str,
        body: ByteStream,
        max_bytes: u64,
    ) -> BoxFuture<'a, Result<Stored>> {
        Box::pin(self.put_inner(key, body, max_bytes))
    }

    fn read<'a>(
        &'a self,
        key: &'a str,
        range: Option<Range<u64>>,
    ) -> BoxFuture<'a, Result<Option<ByteStream>>> {
        Box::pin(self.read_inner(key, range))
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let path = self.path(key)?;
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(storage(e)),
            }
        })
    }

    fn list<'a>(&'a self) -> BoxFuture<'a, Result<Vec<(String, SystemTime)>>> {
        Box::pin(self.list_inner())
    }

    fn exists<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let path = self.path(key)?;
            match self.store.head(&path).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(storage(e)),
            }
        })
    }
}
