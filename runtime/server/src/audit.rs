//! The audit log: every admin action (deploys, environment variables,
//! service keys, admin key rotation) with its time, the client's address
//! and its outcome, appended as JSON lines to `audit.jsonl` in the data
//! directory (its owner's only) and synced. When the file passes its
//! size, it becomes `audit.jsonl.1` (the one before is dropped), so the
//! log keeps at least the last `max_bytes` of entries.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use capstan_protocol::Clock;
use capstan_protocol::http::AuditEntry;

use crate::error::Error;

/// The audit log of one data directory.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    clock: Clock,
    max_bytes: u64,
    /// One writer at a time.
    writing: Mutex<()>,
}

impl AuditLog {
    pub fn new(data_dir: &std::path::Path, clock: Clock) -> AuditLog {
        AuditLog {
            path: data_dir.join("audit.jsonl"),
            clock,
            max_bytes: 8 << 20,
            writing: Mutex::new(()),
        }
    }

    /// Records an action; a log that cannot be written is the operator's
    /// to know, in the server's log, and fails nothing else.
    pub fn record(&self, action: &str, target: Option<&str>, source: &str, outcome: &str) {
        let entry = AuditEntry {
            time_ms: u64::try_from(self.clock.since_epoch().as_millis()).unwrap_or(u64::MAX),
            action: action.to_owned(),
            target: target.map(str::to_owned),
            source: source.to_owned(),
            outcome: outcome.to_owned(),
        };
        tracing::info!(
            target: "capstan::audit",
            action,
            target = target.unwrap_or("-"),
            source,
            outcome,
            "admin action"
        );
        if let Err(error) = self.append(&entry) {
            tracing::error!(%error, path = %self.path.display(), "cannot write the audit log");
        }
    }

    fn append(&self, entry: &AuditEntry) -> std::io::Result<()> {
        #[cfg(unix)]
        use std::os::unix::fs::OpenOptionsExt;
        let _one = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        if std::fs::metadata(&self.path).is_ok_and(|m| m.len() >= self.max_bytes) {
            std::fs::rename(&self.path, self.path.with_extension("jsonl.1"))?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        options.mode(0o600);
        let mut file = options.open(&self.path)?;
        let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        file.write_all(&line)?;
        file.sync_data()
    }

    /// The newest `limit` entries, oldest first.
    pub fn read(&self, limit: usize) -> Result<Vec<AuditEntry>, Error> {
        let _one = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let mut entries = Vec::new();
        for path in [self.path.with_extension("jsonl.1"), self.path.clone()] {
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::internal(format!("cannot read the audit log: {e}"))),
            };
            // A torn last line (a crash mid-write) is skipped.
            entries.extend(
                text.lines()
                    .filter_map(|line| serde_json::from_str(line).ok()),
            );
        }
        let skip = entries.len().saturating_sub(limit);
        Ok(entries.split_off(skip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_kept_in_order_across_a_rotation() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut log = AuditLog::new(dir.path(), Clock::system());
        log.max_bytes = 300;
        for i in 0..20 {
            log.record("env.set", Some(&format!("VAR_{i}")), "127.0.0.1", "ok");
        }
        let entries = log.read(5).expect("reads");
        let targets: Vec<_> = entries.iter().filter_map(|e| e.target.clone()).collect();
        assert_eq!(targets, ["VAR_15", "VAR_16", "VAR_17", "VAR_18", "VAR_19"]);
        assert!(dir.path().join("audit.jsonl.1").exists());
    }
}
