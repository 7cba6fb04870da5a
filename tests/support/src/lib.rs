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

/// An S3-compatible server on loopback for tests: moto's server (PyPI
/// `moto[server]`, which `./tests/run` installs into `target/moto-venv`, or
/// the program `CAPSTAN_MOTO_SERVER` names), with one empty bucket. Killed
/// when dropped.
#[derive(Debug)]
pub struct S3Server {
    child: std::process::Child,
    pub endpoint: String,
    pub bucket: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3Server {
    /// Starts one and makes bucket `bucket` in it.
    pub fn start(bucket: &str) -> S3Server {
        use std::io::{Read as _, Write as _};
        let program = std::env::var_os("CAPSTAN_MOTO_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| root().join("target/moto-venv/bin/moto_server"));
        assert!(
            program.exists(),
            "{} is missing: ./tests/run installs moto[server] from PyPI there (or set CAPSTAN_MOTO_SERVER)",
            program.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let server = S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket: bucket.to_owned(),
        };
        let started = std::time::Instant::now();
        let mut stream = loop {
            match std::net::TcpStream::connect(("127.0.0.1", port)) {
                Ok(stream) => break stream,
                Err(_) if started.elapsed() < std::time::Duration::from_secs(30) => {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => panic!("moto did not start: {e}"),
            }
        };
        // moto makes a bucket on a plain PUT.
        write!(
            stream,
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .expect("request");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("answer");
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "creating the bucket: {answer}"
        );
        server
    }
}
