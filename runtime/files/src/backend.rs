//! The seam between the server and wherever file bytes live:
//! [`FileBackend`], what a put reports ([`Stored`]), and which keys are valid.

use std::ops::Range;
use std::pin::Pin;
use std::time::SystemTime;

use crate::error::{Error, Result};

/// A stream of bytes in chunks: an upload's body, or a download.
pub type ByteStream =
    Pin<Box<dyn futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send>>;

/// A boxed future, so that [`FileBackend`] stays object safe (`dyn
/// FileBackend`) without `async_trait`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a finished put wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// Length in bytes.
    pub size: u64,
    /// SHA-256 of the bytes, computed while they streamed through: the
    /// download's `ETag` and the app's content hash.
    pub sha256: [u8; 32],
}

/// The longest key, in bytes.
pub const MAX_KEY_LEN: usize = 128;

/// Refuses a key outside `[A-Za-z0-9_-]{1,128}`. Every backend applies the
/// same rule, so a key that works locally works on S3, and no key can name a
/// path (`..`, `/`), a hidden file (`.partial`) or differ only by encoding.
pub fn validate_key(key: &str) -> Result<()> {
    let valid = !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        // Quoted and cut short: the key came from a client and may be huge
        // or full of control characters.
        let shown: String = key.chars().take(MAX_KEY_LEN + 8).collect();
        Err(Error::InvalidKey(format!("{shown:?}")))
    }
}

/// Where file bytes are stored. The server keeps the metadata (size, hash,
/// content type) in its database; a backend knows only keys and bytes.
///
/// Invariant every backend keeps: an object is visible under its key only
/// once it is complete and durable, so a reader never sees part of an
/// upload, even after a crash.
pub trait FileBackend: Send + Sync + std::fmt::Debug + 'static {
    /// Streams `body` into a new object named `key`, at most `max_bytes`.
    /// The object is visible under `key` only once complete and durable; on
    /// any error nothing is left under `key`. A put to an existing key
    /// replaces it whole.
    fn put<'a>(
        &'a self,
        key: &'a str,
        body: ByteStream,
        max_bytes: u64,
    ) -> BoxFuture<'a, Result<Stored>>;

    /// The bytes of `key` in `range` (start..end, end exclusive, already
    /// checked against the size by the caller) or all of it; None if there
    /// is no such object.
    fn read<'a>(
        &'a self,
        key: &'a str,
        range: Option<Range<u64>>,
    ) -> BoxFuture<'a, Result<Option<ByteStream>>>;

    /// Removes `key`; no error if it is absent.
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Every stored key with its modification time (for sweeping objects no
    /// record points at).
    fn list<'a>(&'a self) -> BoxFuture<'a, Result<Vec<(String, SystemTime)>>>;

    /// Whether `key` is stored. The default opens a read and drops it
    /// unread; a backend with a cheaper check (a stat, a HEAD) overrides it.
    fn exists<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move { Ok(self.read(key, None).await?.is_some()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_allowed_characters_up_to_128_are_accepted() {
        for key in ["a", "A-z_09", "-", "_", &"k".repeat(MAX_KEY_LEN)] {
            assert!(validate_key(key).is_ok(), "{key:?}");
        }
    }

    #[test]
    fn keys_that_could_name_a_path_or_are_too_long_are_refused() {
        let long = "k".repeat(MAX_KEY_LEN + 1);
        for key in [
            "", ".", "..", ".partial", "../etc", "a/b", "a\\b", "/abs", "a b", "a\0b", "a\n", "é",
            "a.txt", "%2e%2e", &long,
        ] {
            assert!(
                matches!(validate_key(key), Err(Error::InvalidKey(_))),
                "{key:?} was accepted"
            );
        }
    }

    #[test]
    fn a_refused_key_is_shown_quoted_and_cut_short() {
        let huge = "x".repeat(10_000) + "/";
        let Err(Error::InvalidKey(shown)) = validate_key(&huge) else {
            panic!("accepted");
        };
        assert!(shown.len() < 200, "{}", shown.len());
        let Err(Error::InvalidKey(shown)) = validate_key("a\nb") else {
            panic!("accepted");
        };
        assert_eq!(shown, "\"a\\nb\"");
    }
}
