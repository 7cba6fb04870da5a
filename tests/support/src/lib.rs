//! Helpers shared by Capstan's tests and benchmarks.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// This process's resident memory, in bytes (Linux; 0 elsewhere).
pub fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// How a component is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Debug,
    Release,
}

/// Builds a workspace package for `wasm32-wasip2` (once per process and
/// profile) and returns the path of its component, `file` being the
/// library's name.
pub fn component_path(package: &str, file: &str, profile: Profile) -> PathBuf {
    static BUILT: OnceLock<Mutex<Vec<(String, Profile)>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(|| Mutex::new(Vec::new()))
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !built.iter().any(|(p, q)| p == package && *q == profile) {
        let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cargo.current_dir(root()).args([
            "build",
            "--quiet",
            "--target",
            "wasm32-wasip2",
            "-p",
            package,
        ]);
        if profile == Profile::Release {
            cargo.arg("--release");
        }
        let status = cargo.status().expect("cargo runs");
        assert!(
            status.success(),
            "building {package} for wasm32-wasip2 failed"
        );
        built.push((package.to_owned(), profile));
    }
    let directory = match profile {
        Profile::Debug => "debug",
        Profile::Release => "release",
    };
    root()
        .join("target/wasm32-wasip2")
        .join(directory)
        .join(format!("{file}.wasm"))
}

/// The bytes of a debug build of a component; see [`component_path`].
pub fn component(package: &str, file: &str) -> Vec<u8> {
    let path = component_path(package, file, Profile::Debug);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
