//! Garbage collection of superseded versions.
//!
//! The horizon is the older of "now minus the retention window" and the
//! oldest open snapshot. For each document and each index entry, the version
//! visible at the horizon is the newest one at or before it: every older
//! version is invisible to every snapshot that can still open, and so is the
//! visible one itself when it is a deletion (absent and deleted read alike).

use std::ops::Bound;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use capstan_protocol::Timestamp;

use crate::error::Result;
use crate::keys;
use crate::persistence::{Batch, Persistence};
use crate::store::Shared;

/// Deletions are written in batches of this many keys.
const BATCH: usize = 4096;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcStats {
    pub horizon: Timestamp,
    pub document_versions_removed: usize,
    pub index_entries_removed: usize,
    pub receipts_removed: usize,
    /// Rows of a shared engine's commit log past the horizon.
    pub log_rows_removed: usize,
}

pub(crate) fn collect(shared: &Shared) -> Result<GcStats> {
    // Every node raises its floor, so that none opens a snapshot the
    // leader may have collected under; only the leader collects.
    let horizon = shared.gc_horizon();
    let persistence = &*shared.persistence;
    let log = persistence.shared_log();
    if log.is_some_and(|log| !log.leader()) {
        return Ok(GcStats {
            horizon,
            ..GcStats::default()
        });
    }
    Ok(GcStats {
        horizon,
        document_versions_removed: collect_prefix(persistence, keys::DOCUMENTS, horizon)?,
        index_entries_removed: collect_prefix(persistence, keys::INDEXES, horizon)?,
        receipts_removed: expire_receipts(persistence, shared.config.receipt_retention)?,
        log_rows_removed: match log {
            Some(log) => log.prune(horizon)?,
            None => 0,
        },
    })
}

/// Removes receipts older than `retention`.
fn expire_receipts(persistence: &dyn Persistence, retention: Duration) -> Result<usize> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let cutoff = now.saturating_sub(u64::try_from(retention.as_nanos()).unwrap_or(u64::MAX));
    let mut batch = Batch::default();
    let scan = persistence.scan(
        Bound::Included(vec![keys::RECEIPTS]),
        Bound::Excluded(vec![keys::RECEIPTS + 1]),
        false,
    );
    for item in scan {
        let (key, value) = item?;
        let stamped = value
            .first_chunk::<8>()
            .map_or(0, |ts| u64::from_be_bytes(*ts));
        if stamped < cutoff {
            batch.remove(key);
        }
    }
    let removed = batch.ops.len();
    if removed > 0 {
        persistence.write(batch)?;
    }
    Ok(removed)
}

pub(crate) fn run_periodically(shared: &Shared, interval: Duration, stop: &Receiver<()>) {
    loop {
        match stop.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        match collect(shared) {
            Ok(stats) => tracing::debug!(?stats, "garbage collected"),
            Err(e) => tracing::warn!(error = %e, "garbage collection failed"),
        }
    }
}

fn collect_prefix(persistence: &dyn Persistence, prefix: u8, horizon: Timestamp) -> Result<usize> {
    let mut removed = 0;
    let mut batch = Batch::default();
    let mut group: Vec<u8> = Vec::new();
    let mut found_visible = false;
    let scan = persistence.scan(
        Bound::Included(vec![prefix]),
        Bound::Excluded(vec![prefix + 1]),
        false,
    );
    for item in scan {
        let (key, value) = item?;
        let (head, ts) = keys::split_version(&key)?;
        if head != group.as_slice() {
            group = head.to_vec();
            found_visible = false;
        }
        // Versions come newest first within a group.
        let remove = if found_visible {
            true
        } else if ts <= horizon {
            found_visible = true;
            value.first() == Some(&keys::DELETED)
        } else {
            false
        };
        if remove {
            batch.remove(key);
            removed += 1;
            if batch.ops.len() >= BATCH {
                persistence.write(std::mem::take(&mut batch))?;
            }
        }
    }
    if !batch.is_empty() {
        // Not synced: a collection lost in a crash is simply redone.
        persistence.write(batch)?;
    }
    Ok(removed)
}
