//! What the CLI tests share: the binary, a server process killed when the
//! test ends, a free port, and reading a command's outcome.

#![allow(dead_code, reason = "each test binary uses its own share")]

use std::net::TcpListener;
use std::path::PathBuf;

use capstan_test_support::{Profile, component_path};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

pub fn capstan() -> Command {
    Command::new(env!("CARGO_BIN_EXE_capstan"))
}

pub fn test_guest() -> PathBuf {
    component_path("capstan-test-guest", "test_guest", Profile::Debug)
}

/// Kills the server when the test ends, however it ends.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

pub fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

pub fn fails(output: Output) -> String {
    assert!(
        !output.status.success(),
        "should have failed: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
    stderr
}

/// Waits until something listens on `port`.
pub fn wait_for_port(port: u16) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "server did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the server on `port` answers `/health`: listening comes
/// before it has written its keys and opened its store.
pub fn wait_for_health(port: u16) {
    use std::io::{Read as _, Write as _};
    let started = Instant::now();
    loop {
        let answered = std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut stream| {
            write!(
                stream,
                "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            )?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer)?;
            Ok(answer.starts_with("HTTP/1.1 200"))
        });
        if answered.unwrap_or(false) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "server did not become healthy"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
