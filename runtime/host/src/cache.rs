//! Compiled components on disk, so a restart does not recompile.
//!
//! An artifact is named by the SHA-256 of the component's bytes and the
//! engine's compatibility hash, so a wasmtime upgrade or a config change
//! misses the cache instead of loading incompatible code.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::error::{Error, Result};

/// How a component was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Compiled,
    Cached,
}

pub fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

fn artifact_path(dir: &Path, engine: &Engine, digest: &str) -> PathBuf {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    dir.join(format!("{digest}-{:016x}.cwasm", hasher.finish()))
}

/// The component for `bytes`, from the cache in `dir` if it is there,
/// whole and loadable, compiled (and then cached) otherwise.
///
/// An artifact on disk is the SHA-256 of the serialized code followed by
/// the code, written to a temporary file (its owner's only), synced, renamed
/// into place, and the directory synced. It is loaded only when its bytes
/// match its digest, so a torn or corrupted file is recompiled, never run.
pub fn load(engine: &Engine, bytes: &[u8], dir: Option<&Path>) -> Result<(Component, Origin)> {
    let Some(dir) = dir else {
        return compile(engine, bytes).map(|c| (c, Origin::Compiled));
    };
    let path = artifact_path(dir, engine, &digest(bytes));
    match std::fs::read(&path) {
        Ok(artifact) => match verified(&artifact) {
            Some(code) => {
                // SAFETY: the code was written by `Component::serialize` of
                // this same wasmtime build (the compatibility hash in its
                // name says so) into the server's own data directory, and
                // its digest matches; deserialize also checks the engine
                // configuration and fails rather than run mismatched code.
                #[expect(unsafe_code, reason = "loading precompiled code is unsafe by nature")]
                let loaded = unsafe { Component::deserialize(engine, code) };
                match loaded {
                    Ok(component) => return Ok((component, Origin::Cached)),
                    Err(error) => {
                        tracing::warn!(path = %path.display(), %error, "cached component unusable; recompiling")
                    }
                }
            }
            None => {
                tracing::warn!(path = %path.display(), "cached component does not match its digest; recompiling")
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cached component unreadable; recompiling")
        }
    }
    let component = compile(engine, bytes)?;
    let serialized = component
        .serialize()
        .map_err(|e| Error::Cache(e.to_string()))?;
    write_artifact(dir, &path, &serialized).map_err(|e| Error::Cache(e.to_string()))?;
    Ok((component, Origin::Compiled))
}

/// The code of an artifact whose digest matches it.
fn verified(artifact: &[u8]) -> Option<&[u8]> {
    let (expected, code) = artifact.split_at_checked(32)?;
    (Sha256::digest(code).as_slice() == expected).then_some(code)
}

fn write_artifact(dir: &Path, path: &Path, code: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir)?;
    let temporary = path.with_extension("tmp");
    let _ = std::fs::remove_file(&temporary);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(&temporary)?;
    file.write_all(&Sha256::digest(code))?;
    file.write_all(code)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    std::fs::File::open(dir)?.sync_all()
}

fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component> {
    if !wasmparser_is_component(bytes) {
        return Err(Error::NotAComponent(
            "the file does not start with the component-model header; build the app for wasm32-wasip2".into(),
        ));
    }
    Component::new(engine, bytes).map_err(|e| Error::NotAComponent(format!("{e:#}")))
}

/// A component starts with `\0asm`, then version 0x0d and layer 0x01.
fn wasmparser_is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [0x0d, 0x00, 0x01, 0x00]
}
