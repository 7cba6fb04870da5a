//! Per-deployment state that nodes sharing a PostgreSQL store must agree
//! on: the files of the data directory that are not the store (keys, the
//! environment, the deployment served).
//!
//! Each node keeps its own data directory as a cache. At start, under a
//! lock across nodes, a node first copies every shared entry from the
//! database into its directory, then creates what is still missing (the
//! first node makes the keys) and uploads it. Afterwards every write of a
//! shared file, through [`crate::data_dir`]'s `replace` and
//! `write_private` or a deployment's switch, is uploaded too, and the other
//! nodes, told by a notification (or a poll), copy it and reload the part
//! it belongs to.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use capstan_store::PostgresPersistence;
use capstan_store::postgres::Exclusive;

use crate::data_dir::{self, DataDir};
use crate::error::Error;

/// The files of the data directory that every node shares.
pub const SHARED_FILES: &[&str] = &[
    data_dir::ADMIN_KEY,
    data_dir::SEED_KEY,
    data_dir::FILES_KEY,
    data_dir::AUTH_KEYS,
    data_dir::ENVIRONMENT,
    data_dir::SERVICE_KEYS,
];

/// The entry holding the deployment served (manifest and components).
pub const DEPLOYMENT: &str = "deployment";

/// How often a node looks for changes when no notification came.
const POLL: Duration = Duration::from_secs(2);

pub struct SharedState {
    postgres: Arc<PostgresPersistence>,
    data_dir: DataDir,
    /// The version of each entry this node's directory holds.
    versions: Mutex<BTreeMap<String, i64>>,
    /// Held across each copy in or out, so that a copy of an older version
    /// never lands after this node wrote a newer one.
    copying: Mutex<()>,
}

impl std::fmt::Debug for SharedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedState")
            .field("root", &self.data_dir.root())
            .finish_non_exhaustive()
    }
}

/// The shared states of the servers in this process, by data directory.
static MIRRORS: Mutex<Vec<Weak<SharedState>>> = Mutex::new(Vec::new());

fn shared_error(e: capstan_store::Error) -> Error {
    Error::with_detail(
        capstan_protocol::ErrorCode::Unavailable,
        "the database holding the deployment's shared state is unavailable",
        e.to_string(),
    )
}

impl SharedState {
    /// Copies the shared entries into `data_dir` and starts mirroring its
    /// writes. The returned lock keeps other nodes from starting until the
    /// caller has created what was missing.
    pub fn open(
        postgres: Arc<PostgresPersistence>,
        data_dir: DataDir,
    ) -> Result<(Arc<SharedState>, Exclusive), Error> {
        let starting = postgres.exclusive().map_err(shared_error)?;
        let state = Arc::new(SharedState {
            postgres,
            data_dir,
            versions: Mutex::new(BTreeMap::new()),
            copying: Mutex::new(()),
        });
        let versions = state.postgres.state_versions().map_err(shared_error)?;
        for name in versions.keys() {
            state.pull(name)?;
        }
        let mut mirrors = MIRRORS.lock().unwrap_or_else(PoisonError::into_inner);
        mirrors.retain(|m| m.strong_count() > 0);
        mirrors.push(Arc::downgrade(&state));
        Ok((state, starting))
    }

    fn versions(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, i64>> {
        self.versions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Copies entry `name` into the directory if this node's copy is older;
    /// whether it changed.
    fn pull(&self, name: &str) -> Result<bool, Error> {
        let _copying = self.copying.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((value, version)) = self.postgres.state(name).map_err(shared_error)? else {
            return Ok(false);
        };
        if self
            .versions()
            .get(name)
            .is_some_and(|known| *known >= version)
        {
            return Ok(false);
        }
        if name == DEPLOYMENT {
            self.data_dir.deployment().unpack(&value)?;
        } else if SHARED_FILES.contains(&name) {
            data_dir::replace_local(&self.data_dir.root().join(name), &value)?;
        } else {
            tracing::warn!(name, "ignoring a shared entry this version does not know");
        }
        self.versions().insert(name.to_owned(), version);
        Ok(true)
    }

    fn push(&self, name: &str, value: Vec<u8>) -> Result<(), Error> {
        let _copying = self.copying.lock().unwrap_or_else(PoisonError::into_inner);
        let version = self.postgres.put_state(name, value).map_err(shared_error)?;
        self.versions().insert(name.to_owned(), version);
        Ok(())
    }

    /// Tells `changed` the name of each entry another node changes, after
    /// copying it here, until this state is dropped or `changed` closes.
    pub fn watch(self: &Arc<Self>, changed: tokio::sync::mpsc::UnboundedSender<String>) {
        let state = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("capstan-shared-state".into())
            .spawn(move || {
                let mut seen = 0;
                loop {
                    let Some(state) = state.upgrade() else {
                        return;
                    };
                    seen = state.postgres.wait_for_state(seen, POLL);
                    let versions = match state.postgres.state_versions() {
                        Ok(versions) => versions,
                        Err(e) => {
                            tracing::debug!(error = %e, "cannot read the shared state yet");
                            continue;
                        }
                    };
                    for (name, version) in versions {
                        if state
                            .versions()
                            .get(&name)
                            .is_some_and(|known| *known >= version)
                        {
                            continue;
                        }
                        match state.pull(&name) {
                            Ok(true) => {
                                tracing::info!(name, "another node changed shared state");
                                if changed.send(name).is_err() {
                                    return;
                                }
                            }
                            Ok(false) => {}
                            Err(e) => tracing::warn!(name, error = ?e, "cannot copy shared state"),
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot watch the shared state");
        }
    }
}

/// Before a change that reads an entry and writes it back (a key list,
/// the environment, the signing keys, a deploy): holds the lock across
/// nodes and brings this node's copy of `name` up to date, so that no
/// node's change is built on a stale copy and lost. The caller re-reads its
/// file, changes it, and drops the guard after writing. `None` for a node
/// that shares nothing.
pub fn serialize(root: &Path, name: &str) -> Result<Option<Exclusive>, Error> {
    let Some(state) = mirror_of(root) else {
        return Ok(None);
    };
    let guard = state.postgres.exclusive().map_err(shared_error)?;
    state.pull(name)?;
    Ok(Some(guard))
}

/// The lock across nodes alone, for a change that replaces an entry
/// whole (a deploy).
pub fn exclusive(root: &Path) -> Result<Option<Exclusive>, Error> {
    match mirror_of(root) {
        Some(state) => state.postgres.exclusive().map(Some).map_err(shared_error),
        None => Ok(None),
    }
}

fn mirror_of(root: &Path) -> Option<Arc<SharedState>> {
    MIRRORS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter_map(Weak::upgrade)
        .find(|state| state.data_dir.root() == root)
}

/// Called after a file of a data directory was written: shares it when
/// it is a shared file of a node on PostgreSQL.
pub fn written(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let (Some(root), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str()))
    else {
        return Ok(());
    };
    if !SHARED_FILES.contains(&name) {
        return Ok(());
    }
    match mirror_of(root) {
        Some(state) => state.push(name, bytes.to_vec()),
        None => Ok(()),
    }
}

/// Called after the deployment directory `dir` switched to a new
/// deployment: shares it.
pub fn deployment_switched(
    dir: &Path,
    packed: impl FnOnce() -> Result<Vec<u8>, Error>,
) -> Result<(), Error> {
    let Some(root) = dir.parent() else {
        return Ok(());
    };
    match mirror_of(root) {
        Some(state) => state.push(DEPLOYMENT, packed()?),
        None => Ok(()),
    }
}
