//! The crate's one integration-test binary: `LocalFiles` on a temp dir, and
//! `serve` answering over it.

mod http;
mod local;
mod s3;
mod serve;

use bytes::Bytes;
use capstan_files::ByteStream;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

/// A body of the given chunks, as a client's upload would arrive.
pub fn body<I>(chunks: I) -> ByteStream
where
    I: IntoIterator<Item = &'static [u8]>,
    I::IntoIter: Send + 'static,
{
    Box::pin(futures_util::stream::iter(
        chunks
            .into_iter()
            .map(|chunk| Ok(Bytes::from_static(chunk))),
    ))
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Reads a whole stream; fails if any chunk does.
pub async fn collect(mut stream: ByteStream) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk?);
    }
    Ok(bytes)
}
