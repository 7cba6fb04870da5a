//! The embedded engine: sled, made durable.
//!
//! sled 0.34's `flush()` ends in `sync_file_range` on Linux, which flushes
//! neither the drive's write cache nor file metadata (sled issues #1452,
//! #1351), and large values go to files under `blobs/` that sled never
//! syncs. So [`SledPersistence::sync`] follows `flush()` with `fdatasync` of
//! the log file, of every blob file written since the last sync, and of the
//! directories whose entries changed.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::persistence::{Batch, KvIter, Persistence};

pub struct SledPersistence {
    db: sled::Db,
    dir: PathBuf,
    /// The log file; `fdatasync` on it flushes sled's writes to the platter.
    log: File,
    /// Blob files already synced, so each sync touches only new ones.
    synced_blobs: Mutex<HashSet<OsString>>,
}

impl std::fmt::Debug for SledPersistence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledPersistence")
            .field("dir", &self.dir)
            .finish()
    }
}

impl SledPersistence {
    /// Opens the store in `dir` with a page cache of `cache_bytes`.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self> {
        const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
        const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(20);
        std::fs::create_dir_all(dir)?;
        remove_unfinished_snapshots(dir)?;
        let config = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(cache_bytes);
        // A store closed in this process releases its file lock when sled's
        // background threads let go of it, a moment after `close`: a reopen
        // (a restart in place) waits for it, briefly. Another process
        // holding it is an error.
        let mut waited = std::time::Duration::ZERO;
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(sled::Error::Io(e))
                    if e.kind() == std::io::ErrorKind::WouldBlock && waited < LOCK_WAIT =>
                {
                    std::thread::sleep(LOCK_RETRY);
                    waited += LOCK_RETRY;
                }
                Err(e) => {
                    return Err(Error::Storage(format!(
                        "cannot open the store at {}: {e}",
                        dir.display()
                    )));
                }
            }
        };
        let log = File::open(dir.join("db"))?;
        let persistence = SledPersistence {
            db,
            dir: dir.to_owned(),
            log,
            synced_blobs: Mutex::new(HashSet::new()),
        };
        // The files sled just created must survive a power loss too.
        persistence.sync()?;
        sync_dir(dir)?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        Ok(persistence)
    }

    fn sync_blobs(&self) -> Result<()> {
        let blobs = self.dir.join("blobs");
        let entries = match std::fs::read_dir(&blobs) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let mut synced = self
            .synced_blobs
            .lock()
            .map_err(|_| Error::Storage("lock poisoned".into()))?;
        let mut present = HashSet::new();
        let mut changed = false;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            if !synced.contains(&name) {
                match File::open(entry.path()) {
                    Ok(file) => file.sync_data()?,
                    // sled removes blobs that are no longer referenced.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                }
                changed = true;
            }
            present.insert(name);
        }
        if changed {
            sync_dir(&blobs)?;
        }
        *synced = present;
        Ok(())
    }
}

/// sled writes a snapshot to `snap.<lsn>.generating`, syncs it and renames
/// it to `snap.<lsn>`; but on open it reads the newest `snap.*` file, an
/// unfinished one included (sled issue #1527), and a kill while a snapshot
/// was written leaves a store that refuses to open as "corrupted". An
/// unfinished snapshot was never published (old snapshots are removed only
/// after the rename) and the log holds everything it summarised, so it is
/// removed before sled looks.
fn remove_unfinished_snapshots(dir: &Path) -> Result<()> {
    let mut removed = false;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            std::fs::remove_file(entry.path())?;
            removed = true;
        }
    }
    if removed {
        sync_dir(dir)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

fn to_ivec_bound(bound: Bound<Vec<u8>>) -> Bound<sled::IVec> {
    match bound {
        Bound::Included(key) => Bound::Included(key.into()),
        Bound::Excluded(key) => Bound::Excluded(key.into()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl Persistence for SledPersistence {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get(key)?.map(|v| v.to_vec()))
    }

    fn scan(&self, start: Bound<Vec<u8>>, end: Bound<Vec<u8>>, reverse: bool) -> KvIter<'_> {
        let iter = self.db.range((to_ivec_bound(start), to_ivec_bound(end)));
        let convert = |item: sled::Result<(sled::IVec, sled::IVec)>| {
            item.map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(Error::from)
        };
        if reverse {
            Box::new(iter.rev().map(convert))
        } else {
            Box::new(iter.map(convert))
        }
    }

    fn write(&self, batch: Batch) -> Result<()> {
        let mut sled_batch = sled::Batch::default();
        for (key, value) in batch.ops {
            match value {
                Some(value) => sled_batch.insert(key, value),
                None => sled_batch.remove(key),
            }
        }
        self.db.apply_batch(sled_batch)?;
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        self.db.flush()?;
        self.log.sync_data()?;
        self.sync_blobs()
    }
}
