//! The platform across crashes, with a real `capstan serve` process killed
//! with SIGKILL: scheduled mutations run exactly once and actions at most
//! once; an upload cut short leaves no file; a 100 MiB file streams
//! through without the server holding it.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use capstan_test_support::{Profile, component_path};
use common::*;
use serde_json::{Value, json};

fn platform_guest() -> PathBuf {
    component_path("capstan-platform-guest", "platform_guest", Profile::Debug)
}

/// A `capstan serve` on `port` with its data in `data`.
fn serve(data: &Path, port: u16) -> Running {
    let server = Running(
        capstan()
            .args(["serve", "--data-dir"])
            .arg(data)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("capstan serve starts"),
    );
    wait_for_health(port);
    server
}

struct Target {
    url: String,
    key: String,
}

impl Target {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = capstan();
        command
            .args(args)
            .args(["--url", &self.url, "--admin-key", &self.key]);
        command
    }

    fn run(&self, path: &str, args: Value) -> Value {
        let output = self
            .command(&["run", path, &args.to_string()])
            .output()
            .expect("runs");
        serde_json::from_str(&ok(output)).expect("json")
    }

    fn marks(&self) -> Vec<String> {
        self.run("jobs:marks", json!({}))
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|m| m["key"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

fn deployed(data: &Path, port: u16) -> (Running, Target) {
    let server = serve(data, port);
    let key = ok(capstan()
        .args(["keys", "--data-dir"])
        .arg(data)
        .output()
        .expect("runs"));
    let target = Target {
        url: format!("http://127.0.0.1:{port}"),
        key,
    };
    let component = platform_guest();
    let component = component.to_str().expect("a path in UTF-8");
    let mut deploy = target.command(&["deploy", "--component", component]);
    ok(deploy.output().expect("runs"));
    (server, target)
}

/// SIGKILL, as a crash or the OOM killer would.
fn kill(mut server: Running) {
    server.0.kill().expect("kill");
    server.0.wait().expect("wait");
}

fn until(within: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < within,
            "did not happen within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn scheduled_mutations_run_exactly_once_and_actions_at_most_once_across_a_sigkill() {
    let data = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let port = free_port();
    let (server, target) = deployed(data.path(), port);
    for n in 0..6 {
        target.run(
            "jobs:schedule_action",
            json!({"key": format!("act{n}"), "delayMs": 1000, "sleepMs": 3000}),
        );
    }
    target.run(
        "jobs:schedule_many",
        json!({"prefix": "k", "count": 1000, "delayMs": 1500}),
    );
    // Killed while the jobs are due and running: actions mid-sleep,
    // mutations part done.
    until(Duration::from_secs(60), || {
        let marks = target.marks();
        marks.iter().any(|k| k.starts_with('k')) && marks.iter().any(|k| k.ends_with("-start"))
    });
    kill(server);

    let _server = serve(data.path(), port);
    until(Duration::from_secs(180), || {
        target.marks().iter().filter(|k| k.starts_with('k')).count() >= 1000
    });
    std::thread::sleep(Duration::from_secs(3));
    let marks = target.marks();
    let mut keys: Vec<&String> = marks.iter().filter(|k| k.starts_with('k')).collect();
    assert_eq!(
        keys.len(),
        1000,
        "a scheduled mutation ran twice or not at all"
    );
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 1000);
    // Every action began at most once: one cut short by the kill is marked
    // failed, not run again.
    for n in 0..6 {
        let started = marks
            .iter()
            .filter(|k| **k == format!("act{n}-start"))
            .count();
        assert!(started <= 1, "act{n} ran {started} times");
    }
    let jobs = target.run("jobs:scheduled", json!({}));
    let interrupted = jobs
        .as_array()
        .into_iter()
        .flatten()
        .filter(|job| job["name"] == "jobs:slow_action" && job["state"]["kind"] == "failed")
        .count();
    eprintln!("{interrupted} of 6 scheduled actions were cut short by the kill and marked failed");
    assert!(
        interrupted > 0,
        "the kill came after the actions ended; the test proves nothing"
    );
    // Operators see the crons and the runs.
    let listed = ok(target
        .command(&["jobs", "--limit", "5"])
        .output()
        .expect("runs"));
    assert!(
        listed.contains("cron jobs:") && listed.contains("  tick\t"),
        "{listed}"
    );
    assert!(listed.contains("slow tick\tevery 1s"), "{listed}");
    assert!(listed.contains("scheduled runs, newest first:"), "{listed}");
    // An HTTP action, from the command line.
    let echoed = ok(capstan()
        .args([
            "http",
            "POST",
            "/echo",
            "--body",
            "from the cli",
            "-H",
            "x-test: 1",
        ])
        .args(["--url", &target.url])
        .output()
        .expect("runs"));
    let echoed: Value = serde_json::from_str(&echoed).expect("json");
    assert_eq!(echoed["body"], "from the cli");
    assert_eq!(echoed["header"], "1");
    let missing = capstan()
        .args(["http", "GET", "/nothing", "--url", &target.url])
        .output()
        .expect("runs");
    assert!(!missing.status.success());
    // The data survives as a snapshot too.
    let snapshot = data.path().join("snapshot.zip");
    let snapshot_path = snapshot.to_str().expect("a path in UTF-8");
    let written = ok(target
        .command(&["export", "--path", snapshot_path])
        .output()
        .expect("runs"));
    assert!(written.starts_with("wrote "), "{written}");
    let zip = std::fs::read(&snapshot).expect("the snapshot");
    assert!(zip.starts_with(b"PK"), "a ZIP");
    // Loaded into a fresh deployment of the same app: the same marks.
    let fresh = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let (_other, copy) = deployed(fresh.path(), free_port());
    let loaded = ok(copy
        .command(&["import", "--path", snapshot_path])
        .output()
        .expect("runs"));
    assert!(loaded.starts_with("imported "), "{loaded}");
    let copied = copy.marks();
    let kept: Vec<&String> = copied.iter().filter(|k| k.starts_with('k')).collect();
    assert_eq!(kept.len(), 1000, "{loaded}");
    for job in jobs.as_array().into_iter().flatten() {
        let kind = job["state"]["kind"].as_str().unwrap_or_default();
        if job["name"] == "jobs:slow_action" {
            assert!(matches!(kind, "success" | "failed"), "{job}");
            if kind == "failed" {
                assert!(
                    job["state"]["error"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("stopped"),
                    "{job}"
                );
            }
        }
    }
}

/// The most memory the process has resident, sampled while `work` runs,
/// over what it had before: bytes.
fn resident_growth(pid: u32, work: impl FnOnce()) -> u64 {
    let resident = move || {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find(|line| line.starts_with("VmRSS:"))
                    .and_then(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
            })
            .unwrap_or(0)
            * 1024
    };
    let before = resident();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = std::thread::spawn({
        let done = done.clone();
        move || {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(resident());
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        }
    });
    work();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().expect("sampler");
    peak.saturating_sub(before)
}

/// Sends a POST of `length` zero bytes to `path_and_query` on `port`,
/// `sent` bytes of it (all, if `None`), and reads the answer.
fn post_zeros(
    port: u16,
    path_and_query: &str,
    length: usize,
    sent: Option<usize>,
) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        stream,
        "POST {path_and_query} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let chunk = vec![0u8; 1 << 20];
    let mut left = sent.unwrap_or(length);
    while left > 0 {
        let n = left.min(chunk.len());
        stream.write_all(&chunk[..n]).expect("write body");
        left -= n;
    }
    if sent.is_some() {
        return None;
    }
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    Some(answer)
}

fn path_and_query(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.find('/')
        .map_or("/".into(), |at| rest[at..].to_owned())
}

#[test]
fn a_100_mib_file_streams_through_and_a_killed_upload_leaves_nothing() {
    const SIZE: usize = 100 << 20;
    let data = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let port = free_port();
    let (server, target) = deployed(data.path(), port);
    let pid = server.0.id();

    let upload = target.run("web:upload_url", json!({}));
    let upload = path_and_query(upload.as_str().expect("url"));
    let mut answer = None;
    let grew = resident_growth(pid, || answer = post_zeros(port, &upload, SIZE, None));
    let answer = answer.expect("answered");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body = &answer[answer.find("\r\n\r\n").expect("body") + 4..];
    let id = serde_json::from_str::<Value>(body).expect("json")["storageId"].clone();
    eprintln!(
        "uploading 100 MiB grew the server's resident memory by {} MiB",
        grew >> 20
    );
    assert!(
        grew < (SIZE / 4) as u64,
        "the upload grew the server by {grew} bytes"
    );

    let url = target.run("web:file_url", json!({"id": id}));
    let download = path_and_query(url.as_str().expect("url"));
    let mut read = 0;
    let grew = resident_growth(pid, || {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        write!(
            stream,
            "GET {download} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .expect("write");
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let n = stream.read(&mut buffer).expect("read");
            if n == 0 {
                break;
            }
            read += n;
        }
    });
    eprintln!(
        "downloading 100 MiB grew the server's resident memory by {} MiB",
        grew >> 20
    );
    assert!(read > SIZE, "read {read} bytes");
    assert!(
        grew < (SIZE / 4) as u64,
        "the download grew the server by {grew} bytes"
    );

    // Killed with 30 MiB of another 100 MiB upload sent.
    let upload = target.run("web:upload_url", json!({}));
    let upload = path_and_query(upload.as_str().expect("url"));
    post_zeros(port, &upload, SIZE, Some(30 << 20));
    std::thread::sleep(Duration::from_millis(300));
    kill(server);
    let _server = serve(data.path(), port);
    let files = target.run("web:files", json!({}));
    assert_eq!(files.as_array().map(Vec::len), Some(1), "{files}");
    let stored: Vec<_> = std::fs::read_dir(data.path().join("files"))
        .expect("files")
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .collect();
    assert_eq!(stored.len(), 1, "one object, the finished upload's");
    let partial = std::fs::read_dir(data.path().join("files/.partial"))
        .map(|dir| dir.count())
        .unwrap_or(0);
    assert_eq!(partial, 0, "a partial upload was left behind");
}
