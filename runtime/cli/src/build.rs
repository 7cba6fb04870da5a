//! Building an app crate into its WebAssembly component.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{Context as _, bail};

/// How to build an app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// `capstan dev`: quick to rebuild on every change.
    Debug,
    /// `capstan deploy`: optimised, for serving.
    Release,
}

/// Builds the crate in `dir` for `wasm32-wasip2` and returns the component.
pub fn build(dir: &Path, profile: Profile) -> anyhow::Result<Vec<u8>> {
    ensure_target();
    let metadata = Command::new(cargo())
        .current_dir(dir)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("cannot run cargo")?;
    if !metadata.status.success() {
        bail!(
            "{} is not a Rust crate: {}",
            dir.display(),
            String::from_utf8_lossy(&metadata.stderr).trim()
        );
    }
    let metadata: serde_json::Value = serde_json::from_slice(&metadata.stdout)?;
    let manifest = dir.canonicalize()?.join("Cargo.toml");
    let package = metadata["packages"]
        .as_array()
        .and_then(|packages| {
            packages
                .iter()
                .find(|p| p["manifest_path"].as_str().map(Path::new) == Some(manifest.as_path()))
        })
        .with_context(|| format!("no package in {}", dir.display()))?;
    let name = package["name"].as_str().unwrap_or_default().to_owned();
    let library = package["targets"]
        .as_array()
        .and_then(|targets| {
            targets.iter().find(|t| {
                t["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "cdylib"))
            })
        })
        .and_then(|t| t["name"].as_str())
        .with_context(|| {
            format!("{name} has no `crate-type = [\"cdylib\"]` library; a Capstan app is one")
        })?
        .replace('-', "_");
    let mut cargo_build = Command::new(cargo());
    cargo_build
        .current_dir(dir)
        .args(["build", "--target", "wasm32-wasip2", "-p", &name]);
    if profile == Profile::Release {
        cargo_build.arg("--release");
    }
    let status = cargo_build.status().context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo build failed for {name}");
    }
    let target_dir = PathBuf::from(metadata["target_directory"].as_str().unwrap_or("target"));
    let path = target_dir
        .join("wasm32-wasip2")
        .join(match profile {
            Profile::Debug => "debug",
            Profile::Release => "release",
        })
        .join(format!("{library}.wasm"));
    std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// Installs the wasm32-wasip2 target when rustup manages the toolchain.
fn ensure_target() {
    let _ = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// The latest modification time under `src/` and of `Cargo.toml`, to notice
/// edits without a file-watching dependency.
pub fn fingerprint(dir: &Path) -> Option<SystemTime> {
    fn newest(path: &Path, best: &mut Option<SystemTime>) {
        let Ok(metadata) = std::fs::metadata(path) else {
            return;
        };
        if metadata.is_dir() {
            if let Ok(entries) = std::fs::read_dir(path) {
                for entry in entries.flatten() {
                    newest(&entry.path(), best);
                }
            }
        } else if let Ok(modified) = metadata.modified() {
            *best = Some(best.map_or(modified, |b| b.max(modified)));
        }
    }
    let mut best = None;
    newest(&dir.join("src"), &mut best);
    newest(&dir.join("Cargo.toml"), &mut best);
    newest(&dir.join(APP_CONFIG), &mut best);
    best
}

/// The app's config file, deployed with its component: `capstan.json`
/// beside `Cargo.toml`, e.g. the auth providers the app trusts:
///
/// ```json
/// { "auth": { "providers": [
///     { "domain": "https://clerk.example.com", "applicationID": "convex" } ] } }
/// ```
pub const APP_CONFIG: &str = "capstan.json";

/// The app config in `dir`, or an empty one when there is no file.
pub fn app_config(dir: &Path) -> anyhow::Result<serde_json::Value> {
    let path = dir.join(APP_CONFIG);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not valid JSON", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::json!({})),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}
