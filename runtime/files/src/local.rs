//! [`LocalFiles`]: objects as files in one directory, written so that a
//! crash never leaves a partial object under a key.

use std::io::{self, SeekFrom};
use std::ops::Range;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;

use crate::backend::{BoxFuture, ByteStream, FileBackend, Stored, validate_key};
use crate::error::{Error, Result};

/// Where uploads are written before they are complete. It starts with a dot,
/// which no key can, so it never collides with an object or shows in `list`.
pub const PARTIAL_DIR: &str = ".partial";

/// How much a download reads from disk at a time: large enough that a big
/// file is a few thousand reads, small enough that many concurrent
/// downloads hold little memory.
const READ_CHUNK: usize = 64 * 1024;
/// Bytes gathered before a write reaches the file.
const WRITE_BUFFER: usize = 1 << 20;

/// Files under a directory: `<dir>/<key>`, written first to
/// `<dir>/.partial/<random>`, then fsynced, renamed, and the directory
/// fsynced, so a crash (kill -9) mid-upload never leaves a partial file
/// under a key.
///
/// One `LocalFiles` per directory: [`LocalFiles::open`] removes whatever is
/// in `.partial`, which would include another instance's uploads in flight.
#[derive(Debug)]
pub struct LocalFiles {
    /// Where objects live, one file per key.
    dir: PathBuf,
    /// `<dir>/.partial`: uploads in progress. On the same filesystem as
    /// `dir`, so that publishing one is an atomic rename.
    partial: PathBuf,
}

impl LocalFiles {
    /// Opens (creating if needed) the store in `dir`, and removes leftovers
    /// of uploads a crash interrupted. It blocks: call it at startup.
    pub fn open(dir: impl Into<PathBuf>) -> Result<LocalFiles> {
        let dir = dir.into();
        let partial = dir.join(PARTIAL_DIR);
        // Files are the owner's only, as the rest of a data directory.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&partial)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        for entry in std::fs::read_dir(&partial)? {
            let entry = entry?;
            let path = entry.path();
            let removed = if entry.file_type()?.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match removed {
                Ok(()) => tracing::debug!(path = %path.display(), "removed an interrupted upload"),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(LocalFiles { dir, partial })
    }

    /// The directory objects are stored in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    async fn put_inner(&self, key: &str, mut body: ByteStream, max_bytes: u64) -> Result<Stored> {
        validate_key(key)?;
        // 128 random bits: no two uploads share a name, and `create_new`
        // refuses rather than clobbers if they ever did.
        let path = self
            .partial
            .join(format!("{:032x}", rand::random::<u128>()));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .await?;
        // A body arrives in small frames; each write of tokio's File is a
        // trip to the blocking pool, so they go in whole mebibytes.
        let mut file = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
        let mut partial = PartialFile {
            path,
            published: false,
        };

        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| Error::Body(e.to_string()))?;
            // Checked before the chunk is written, so at most `max_bytes`
            // ever reach the disk.
            size = size
                .checked_add(chunk.len() as u64)
                .filter(|&size| size <= max_bytes)
                .ok_or(Error::TooLarge { limit: max_bytes })?;
            hasher.update(&chunk);
            file.write_all(&chunk).await?;
        }
        // tokio's File writes in the background: flush surfaces the last
        // write's error, then sync_all makes data and size durable.
        file.flush().await?;
        let file = file.into_inner();
        file.sync_all().await?;
        drop(file);

        let from = partial.path.clone();
        let to = self.dir.join(key);
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || publish(&from, &to, &dir))
            .await
            .map_err(io::Error::other)??;
        partial.published = true;

        Ok(Stored {
            size,
            sha256: hasher.finalize().into(),
        })
    }

    async fn read_inner(&self, key: &str, range: Option<Range<u64>>) -> Result<Option<ByteStream>> {
        validate_key(key)?;
        let mut file = match tokio::fs::File::open(self.dir.join(key)).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let stream: ByteStream = match range {
            None => Box::pin(ReaderStream::with_capacity(file, READ_CHUNK)),
            Some(range) => {
                let len = range.end.checked_sub(range.start).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("read of an inverted range {range:?}"),
                    )
                })?;
                file.seek(SeekFrom::Start(range.start)).await?;
                Box::pin(ReaderStream::with_capacity(file.take(len), READ_CHUNK))
            }
        };
        Ok(Some(stream))
    }

    async fn delete_inner(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        // No directory fsync: a delete a crash forgets leaves an object no
        // record points at, which the sweep over `list` removes again.
        match tokio::fs::remove_file(self.dir.join(key)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn list_inner(&self) -> Result<Vec<(String, SystemTime)>> {
        let mut objects = Vec::new();
        let mut entries = tokio::fs::read_dir(&self.dir).await?;
        while let Some(entry) = entries.next_entry().await? {
            // Anything that is not a valid key (`.partial`, a file someone
            // put here by hand) is not an object and is not ours to sweep.
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if validate_key(&name).is_err() {
                continue;
            }
            let metadata = match entry.metadata().await {
                Ok(metadata) => metadata,
                // Deleted between read_dir and now.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            if metadata.is_file() {
                objects.push((name, metadata.modified()?));
            }
        }
        Ok(objects)
    }

    async fn exists_inner(&self, key: &str) -> Result<bool> {
        validate_key(key)?;
        match tokio::fs::metadata(self.dir.join(key)).await {
            Ok(metadata) => Ok(metadata.is_file()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

impl FileBackend for LocalFiles {
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
        Box::pin(self.delete_inner(key))
    }

    fn list<'a>(&'a self) -> BoxFuture<'a, Result<Vec<(String, SystemTime)>>> {
        Box::pin(self.list_inner())
    }

    fn exists<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(self.exists_inner(key))
    }
}

/// Moves a complete, fsynced upload to its key and makes the rename durable.
/// If the directory cannot be synced the object is taken away again, so an
/// error means nothing is stored, as the trait promises.
fn publish(from: &Path, to: &Path, dir: &Path) -> io::Result<()> {
    std::fs::rename(from, to)?;
    if let Err(e) = std::fs::File::open(dir).and_then(|dir| dir.sync_all()) {
        if let Err(remove) = std::fs::remove_file(to) {
            tracing::error!(path = %to.display(), error = %remove, "could not remove an object whose rename was not made durable");
        }
        return Err(e);
    }
    Ok(())
}

/// An upload in `.partial`, removed when dropped unless it was published.
/// A guard rather than cleanup on each error path, because the put future
/// can also be dropped mid-way (the client went away, the server shut
/// down), and then no error path runs.
#[derive(Debug)]
struct PartialFile {
    path: PathBuf,
    /// Set once the file was renamed to its key: nothing left to remove.
    published: bool,
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if self.published {
            return;
        }
        // A blocking unlink inside async code: drop cannot await, and an
        // unlink is one short syscall. NotFound is the race with a publish
        // whose future was dropped while the rename ran: either the rename
        // won (the object is whole) or this did (the rename fails).
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "could not remove an unfinished upload; open() will");
            }
        }
    }
}
