//! The crate's one error type.

/// Everything a file backend or a download can fail with. `TooLarge`,
/// `Body` and `InvalidKey` are the client's doing (the server answers 413,
/// 400 and 400); `Io` is the server's (500, detail logged, not sent).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The body was longer than the caller's limit; nothing was kept.
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// The client's body stream failed part-way; nothing was kept.
    #[error("the upload stream failed: {0}")]
    Body(String),
    /// A key outside `[A-Za-z0-9_-]{1,128}`; the string is the key, quoted
    /// and cut short.
    #[error("invalid file key {0}: a key is 1 to 128 characters of A-Z, a-z, 0-9, _ and -")]
    InvalidKey(String),
    /// The backend's storage failed.
    #[error("file storage I/O failed: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
