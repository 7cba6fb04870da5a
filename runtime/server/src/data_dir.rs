//! The data directory: what lives where, and how files are written so that
//! a crash leaves the old contents or the new, never half of either.
//!
//! ```text
//! <data dir>/store/              the document store (sled)
//!            compiled/           compiled components, by digest
//!            deployment/         the deployment served: manifest.json, component-<i>.wasm
//!            deployment.new/     a deploy being written
//!            deployment.old/     the previous one, during the switch
//!            env.json            deployment environment variables
//!            admin_key           the admin key (owner-only)
//!            service_keys.json   service key names and digests (owner-only)
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::deployment::AppConfig;
use crate::error::Error;

/// The data directory of one server.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The directory at `root`, made if missing.
    pub fn create(root: &Path) -> Result<DataDir, Error> {
        std::fs::create_dir_all(root)
            .map_err(|e| Error::config(format!("cannot create {}: {e}", root.display())))?;
        Ok(DataDir {
            root: root.to_owned(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn store(&self) -> PathBuf {
        self.root.join("store")
    }

    pub fn compiled(&self) -> PathBuf {
        self.root.join("compiled")
    }

    pub fn environment(&self) -> PathBuf {
        self.root.join("env.json")
    }

    pub fn deployment(&self) -> DeploymentFiles {
        DeploymentFiles {
            dir: self.root.join("deployment"),
        }
    }
}

/// A deployment as stored: what the deploy sent.
#[derive(Debug)]
pub struct Persisted {
    pub components: Vec<Vec<u8>>,
    pub config: AppConfig,
}

/// Where the deployment served lives, and how a new one replaces it.
#[derive(Debug)]
pub struct DeploymentFiles {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    components: usize,
    config: AppConfig,
}

impl DeploymentFiles {
    fn staging(&self) -> PathBuf {
        self.dir.with_extension("new")
    }

    fn previous(&self) -> PathBuf {
        self.dir.with_extension("old")
    }

    /// The persisted components and config, if a deploy ever succeeded.
    pub fn load(&self) -> Result<Option<Persisted>, Error> {
        // An interrupted switch leaves the previous deployment in `.old`.
        if !self.dir.exists() && self.previous().exists() {
            std::fs::rename(self.previous(), &self.dir).map_err(io)?;
        }
        let _ = std::fs::remove_dir_all(self.staging());
        let manifest = match std::fs::read(self.dir.join("manifest.json")) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let manifest: Manifest = serde_json::from_slice(&manifest)
            .map_err(|e| Error::config(format!("deployment manifest: {e}")))?;
        let components = (0..manifest.components)
            .map(|i| std::fs::read(self.dir.join(format!("component-{i}.wasm"))).map_err(io))
            .collect::<Result<_, _>>()?;
        Ok(Some(Persisted {
            components,
            config: manifest.config,
        }))
    }

    /// Writes a deployment beside the current one, synced.
    pub fn stage(&self, components: &[Vec<u8>], config: &AppConfig) -> Result<(), Error> {
        let staging = self.staging();
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(io)?;
        for (i, bytes) in components.iter().enumerate() {
            write_synced(&staging.join(format!("component-{i}.wasm")), bytes)?;
        }
        let manifest = serde_json::to_vec(&Manifest {
            components: components.len(),
            config: config.clone(),
        })
        .map_err(|e| Error::internal(e.to_string()))?;
        write_synced(&staging.join("manifest.json"), &manifest)
    }

    /// Makes the staged deployment the current one.
    pub fn commit(&self) -> Result<(), Error> {
        let _ = std::fs::remove_dir_all(self.previous());
        if self.dir.exists() {
            std::fs::rename(&self.dir, self.previous()).map_err(io)?;
        }
        std::fs::rename(self.staging(), &self.dir).map_err(io)?;
        if let Some(parent) = self.dir.parent() {
            std::fs::File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        let _ = std::fs::remove_dir_all(self.previous());
        Ok(())
    }

    pub fn discard(&self) {
        let _ = std::fs::remove_dir_all(self.staging());
    }
}

fn io(e: std::io::Error) -> Error {
    Error::internal(format!("data directory: {e}"))
}

/// Who may read a file written here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readers {
    /// As the directory allows.
    Anyone,
    /// Its owner only: it holds a secret.
    Owner,
}

/// Writes `bytes` to `path`, which must not exist unless `readers` is
/// `Anyone`, and syncs it.
fn write_new(path: &Path, bytes: &[u8], readers: Readers) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    match readers {
        Readers::Anyone => options.create(true).truncate(true),
        Readers::Owner => options.create_new(true),
    };
    #[cfg(unix)]
    if readers == Readers::Owner {
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes).and_then(|()| file.sync_all())
}

/// Writes `bytes` to `path` and syncs it.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    write_new(path, bytes, Readers::Anyone).map_err(io)
}

/// Creates `path`, readable by its owner only, with `bytes`.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    write_new(path, bytes, Readers::Owner)
        .map_err(|e| Error::config(format!("cannot create {}: {e}", path.display())))
}

/// Replaces the contents of `path` by `bytes`: written beside it, synced,
/// and renamed over it.
pub fn replace(path: &Path, bytes: &[u8], readers: Readers) -> Result<(), Error> {
    let staging = path.with_extension("new");
    let _ = std::fs::remove_file(&staging);
    write_new(&staging, bytes, readers)
        .and_then(|()| std::fs::rename(&staging, path))
        .map_err(|e| Error::internal(format!("cannot write {}: {e}", path.display())))
}
