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
//!            admin_key           the admin key
//!            service_keys.json   service key names and digests
//!            seed_key            the secret queries' random numbers derive from
//! ```
//!
//! Everything here is its owner's only: directories 0700, files 0600. A
//! file is replaced by writing a synced copy beside it, renaming it over
//! the old one and syncing the directory, so that after a power loss the
//! rename has happened or not (a revoked key cannot come back).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::deployment::AppConfig;
use crate::error::Error;

/// The files of the data directory that are not the store, by name.
pub const ADMIN_KEY: &str = "admin_key";
pub const SERVICE_KEYS: &str = "service_keys.json";
pub const SEED_KEY: &str = "seed_key";
pub const FILES_KEY: &str = "files_key";
pub const AUTH_KEYS: &str = "auth_keys.json";
pub const ENVIRONMENT: &str = "env.json";

/// The data directory of one server.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The directory at `root`, made if missing.
    pub fn create(root: &Path) -> Result<DataDir, Error> {
        create_private_dir(root)
            .map_err(|e| Error::config(format!("cannot create {}: {e}", root.display())))?;
        let data_dir = DataDir {
            root: root.to_owned(),
        };
        for dir in [data_dir.store(), data_dir.compiled()] {
            create_private_dir(&dir)
                .map_err(|e| Error::config(format!("cannot create {}: {e}", dir.display())))?;
        }
        Ok(data_dir)
    }

    /// The key queries' random numbers derive from, made on first start.
    pub fn seed_key(&self) -> Result<capstan_host::SeedKey, Error> {
        let path = self.root.join(SEED_KEY);
        let decode = |text: &str| -> Option<[u8; 32]> {
            let text = text.trim();
            let mut bytes = [0u8; 32];
            if text.len() != 64 {
                return None;
            }
            for (i, byte) in bytes.iter_mut().enumerate() {
                *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
            }
            Some(bytes)
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => decode(&text)
                .map(capstan_host::SeedKey::new)
                .ok_or_else(|| {
                    Error::config(format!("{} does not hold a seed key", path.display()))
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
                let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                write_private(&path, text.as_bytes())?;
                Ok(capstan_host::SeedKey::new(bytes))
            }
            Err(e) => Err(Error::config(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// A 256-bit secret kept in the file `name` (hex, private), made on
    /// first use: keys the server signs with, such as file URLs'.
    pub fn secret(&self, name: &str) -> Result<[u8; 32], Error> {
        let path = self.root.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let text = text.trim();
                let mut bytes = [0u8; 32];
                let valid = text.len() == 64
                    && bytes.iter_mut().enumerate().all(|(i, byte)| {
                        text.get(2 * i..2 * i + 2)
                            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                            .map(|b| *byte = b)
                            .is_some()
                    });
                if valid {
                    Ok(bytes)
                } else {
                    Err(Error::config(format!(
                        "{} does not hold a key",
                        path.display()
                    )))
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
                let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                write_private(&path, text.as_bytes())?;
                Ok(bytes)
            }
            Err(e) => Err(Error::config(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// Where uploaded files live (the local file store).
    pub fn files(&self) -> PathBuf {
        self.root.join("files")
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
        self.root.join(ENVIRONMENT)
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
        create_private_dir(&staging).map_err(io)?;
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

    /// Makes the staged deployment the current one (and, on a node that
    /// shares its state, every node's).
    pub fn commit(&self) -> Result<(), Error> {
        self.switch()?;
        crate::shared_state::deployment_switched(&self.dir, || self.pack())
    }

    /// The current deployment's files in one buffer:
    /// `(name_len[2] name len[8] bytes)*`.
    pub fn pack(&self) -> Result<Vec<u8>, Error> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .map_err(io)?
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .collect();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            let bytes = std::fs::read(self.dir.join(&name)).map_err(io)?;
            out.extend_from_slice(&u16::try_from(name.len()).unwrap_or(u16::MAX).to_be_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
            out.extend_from_slice(&bytes);
        }
        Ok(out)
    }

    /// Makes the files of [`DeploymentFiles::pack`] the current deployment
    /// here, as a deploy would.
    pub fn unpack(&self, mut packed: &[u8]) -> Result<(), Error> {
        let damaged = || Error::internal("a shared deployment is damaged");
        // Staged apart from a local deploy's `.new`, which may be under way.
        let staging = self.dir.with_extension("pulled");
        let _ = std::fs::remove_dir_all(&staging);
        create_private_dir(&staging).map_err(io)?;
        while !packed.is_empty() {
            let (len, rest) = packed.split_first_chunk::<2>().ok_or_else(damaged)?;
            let len = usize::from(u16::from_be_bytes(*len));
            let (name, rest) = rest.split_at_checked(len).ok_or_else(damaged)?;
            let name = std::str::from_utf8(name).map_err(|_| damaged())?;
            let valid = name == "manifest.json"
                || (name.starts_with("component-") && name.ends_with(".wasm"));
            if !valid || name.contains('/') {
                return Err(damaged());
            }
            let (size, rest) = rest.split_first_chunk::<8>().ok_or_else(damaged)?;
            let size = usize::try_from(u64::from_be_bytes(*size)).map_err(|_| damaged())?;
            let (bytes, rest) = rest.split_at_checked(size).ok_or_else(damaged)?;
            write_synced(&staging.join(name), bytes)?;
            packed = rest;
        }
        self.switch_from(&staging)
    }

    /// Renames the staged deployment into place.
    fn switch(&self) -> Result<(), Error> {
        self.switch_from(&self.staging())
    }

    fn switch_from(&self, staging: &Path) -> Result<(), Error> {
        // A local deploy and a copy of another node's may switch at once.
        static SWITCHING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = SWITCHING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = std::fs::remove_dir_all(self.previous());
        if self.dir.exists() {
            std::fs::rename(&self.dir, self.previous()).map_err(io)?;
        }
        std::fs::rename(staging, &self.dir).map_err(io)?;
        if let Some(parent) = self.dir.parent() {
            sync_dir(parent).map_err(io)?;
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

/// Makes `dir` and its missing parents; `dir` itself is made, or made
/// again, its owner's only.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Syncs a directory, so that the renames and creations in it last.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all())
}

/// Writes `bytes` to `path` (made if missing, its owner's only), and syncs it.
fn write_new(path: &Path, bytes: &[u8], create_new: bool) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if create_new {
        options.create_new(true);
    } else {
        options.create(true).truncate(true);
    }
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes).and_then(|()| file.sync_all())
}

/// Writes `bytes` to `path` and syncs it.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    write_new(path, bytes, false).map_err(io)
}

/// Creates `path`, which must not exist, with `bytes`, and syncs its
/// directory.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    write_new(path, bytes, true)
        .and_then(|()| sync_parent(path))
        .map_err(|e| Error::config(format!("cannot create {}: {e}", path.display())))?;
    crate::shared_state::written(path, bytes)
}

fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => sync_dir(Path::new(".")),
    }
}

/// Replaces the contents of `path` by `bytes`: written beside it, synced,
/// renamed over it, and the directory synced.
pub fn replace(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    replace_local(path, bytes)?;
    crate::shared_state::written(path, bytes)
}

/// [`replace`] without sharing the file with other nodes: for copies of
/// what another node shared.
pub fn replace_local(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let staging = path.with_extension("new");
    let _ = std::fs::remove_file(&staging);
    write_new(&staging, bytes, true)
        .and_then(|()| std::fs::rename(&staging, path))
        .and_then(|()| sync_parent(path))
        .map_err(|e| Error::internal(format!("cannot write {}: {e}", path.display())))
}
