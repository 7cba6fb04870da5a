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

/// A PostgreSQL server for tests, on loopback, with its data in a temporary
/// directory: `initdb` and `pg_ctl` from the Debian package (found on
/// `PATH`, in `/usr/lib/postgresql/*/bin`, or named by `CAPSTAN_PG_BIN`).
/// PostgreSQL refuses to run as root, so under root it runs as the
/// `postgres` user. Stopped (fast shutdown) and removed when dropped.
#[derive(Debug)]
pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    as_postgres: bool,
    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub url: String,
    pub port: u16,
}

impl Postgres {
    /// Runs `psql -c <sql>` against the server; its output (unaligned,
    /// tuples only).
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in("postgres", sql)
    }

    /// [`Postgres::psql`] in database `database`.
    pub fn psql_in(&self, database: &str, sql: &str) -> String {
        let psql = self.bin.join("psql");
        let psql = if psql.exists() {
            psql
        } else {
            PathBuf::from("psql")
        };
        let output = Command::new(psql)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                database,
            ])
            .args(["-A", "-t", "-c", sql])
            .output()
            .expect("psql runs");
        assert!(
            output.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// The directory holding `initdb`, `pg_ctl` and `postgres`.
    fn bin() -> PathBuf {
        if let Some(bin) = std::env::var_os("CAPSTAN_PG_BIN") {
            return PathBuf::from(bin);
        }
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|dirs| {
                dirs.filter_map(|d| d.ok())
                    .map(|d| d.path().join("bin"))
                    .collect()
            })
            .unwrap_or_default();
        versions.sort();
        if let Some(newest) = versions.pop() {
            return newest;
        }
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
            .unwrap_or_else(|| {
                panic!("PostgreSQL is not installed: ./tests/run installs Debian's `postgresql` (or set CAPSTAN_PG_BIN)")
            })
    }

    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    /// Initialises a cluster in a fresh directory and starts it.
    pub fn start() -> Postgres {
        let bin = Postgres::bin();
        let as_postgres = user_id() == 0;
        let data = std::env::temp_dir().join(format!(
            "capstan-pg-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&data).expect("a data directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let server = Postgres {
            bin,
            data: data.clone(),
            as_postgres,
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            port,
        };
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&data)
                .status()
                .expect("chown runs");
            assert!(status.success(), "chown of {}", data.display());
        }
        let status = server
            .command("initdb")
            .args(["-D"])
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("initdb runs");
        assert!(status.success(), "initdb failed");
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=on -c max_connections=400",
            data.display()
        );
        let status = server
            .command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .args(["-o", &options, "-w", "-l"])
            .arg(data.join("server.log"))
            .arg("start")
            .stdout(std::process::Stdio::null())
            .status()
            .expect("pg_ctl runs");
        assert!(
            status.success(),
            "PostgreSQL did not start: see {}",
            data.join("server.log").display()
        );
        server
    }

    /// Turns TLS on with `certificate` and `key` (PEM), without a restart.
    pub fn enable_tls(&self, certificate: &str, key: &str) {
        let (cert_path, key_path) = (self.data.join("server.crt"), self.data.join("server.key"));
        std::fs::write(&cert_path, certificate).expect("writes the certificate");
        std::fs::write(&key_path, key).expect("writes the key");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))
            .expect("a private key");
        if self.as_postgres {
            let status = Command::new("chown")
                .arg("postgres:postgres")
                .args([&cert_path, &key_path])
                .status()
                .expect("chown runs");
            assert!(status.success(), "chown of the TLS files");
        }
        self.psql(&format!(
            "ALTER SYSTEM SET ssl_cert_file = '{}'",
            cert_path.display()
        ));
        self.psql(&format!(
            "ALTER SYSTEM SET ssl_key_file = '{}'",
            key_path.display()
        ));
        self.psql("ALTER SYSTEM SET ssl = on");
        self.psql("SELECT pg_reload_conf()");
        // The reload is asynchronous: wait until new connections see it.
        for _ in 0..100 {
            if self.psql("SHOW ssl") == "on" {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("PostgreSQL did not turn TLS on");
    }

    /// The URL of database `name` on this server.
    pub fn url_of(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// A new, empty database on this server; its URL.
    pub fn create_database(&self) -> String {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let name = format!(
            "capstan_{}",
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        self.psql(&format!("CREATE DATABASE {name}"));
        self.url_of(&name)
    }

    /// The database named after `key`, created on first use: a test that
    /// reopens "the same directory" on PostgreSQL reopens the same database.
    pub fn database_for(&self, key: &str) -> String {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut hasher);
        let name = format!("capstan_k{:016x}", hasher.finish());
        let exists = self.psql(&format!(
            "SELECT count(*) FROM pg_database WHERE datname = '{name}'"
        ));
        if exists == "0" {
            self.psql(&format!("CREATE DATABASE {name}"));
        }
        self.url_of(&name)
    }

    /// One server for the whole test process, started on first use and
    /// stopped by a watchdog when the process exits.
    pub fn shared() -> &'static Postgres {
        use std::sync::OnceLock;
        static SHARED: OnceLock<Postgres> = OnceLock::new();
        SHARED.get_or_init(|| {
            let server = Postgres::start();
            server.stop_when_process_exits();
            server
        })
    }

    fn stop_when_process_exits(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = if self.as_postgres {
            format!(
                "runuser -u postgres -- {} -D {} -m immediate -w stop",
                pg_ctl.display(),
                self.data.display()
            )
        } else {
            format!(
                "{} -D {} -m immediate -w stop",
                pg_ctl.display(),
                self.data.display()
            )
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop} >/dev/null 2>&1; rm -rf {data}",
            pid = std::process::id(),
            data = self.data.display()
        );
        let _ = Command::new("sh")
            .args(["-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`), as a crash
    /// would; [`Postgres::restart`] starts it again on the same data.
    pub fn kill(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(std::process::Stdio::null())
            .status();
    }

    /// Starts it again after [`Postgres::kill`].
    pub fn restart(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c max_connections=400",
            self.port,
            self.data.display()
        );
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-o", &options, "-w", "-l"])
            .arg(self.data.join("server.log"))
            .arg("start")
            .stdout(std::process::Stdio::null())
            .status()
            .expect("pg_ctl runs");
        assert!(status.success(), "PostgreSQL did not start again");
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"])
            .stdout(std::process::Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// A certificate authority and a certificate it signed for 127.0.0.1, as
/// PEM: (authority, certificate, key).
pub fn signed_certificate() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let authority_key = KeyPair::generate().expect("a key");
    let mut authority = CertificateParams::new(Vec::<String>::new()).expect("parameters");
    authority.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let authority = authority.self_signed(&authority_key).expect("an authority");
    let key = KeyPair::generate().expect("a key");
    let certificate = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("parameters")
        .signed_by(&key, &authority, &authority_key)
        .expect("a certificate");
    (authority.pem(), certificate.pem(), key.serialize_pem())
}

/// Whether tests should run on PostgreSQL: `CAPSTAN_TEST_ENGINE=postgres`,
/// the one switch that moves the store's and the server's suites there.
pub fn engine_is_postgres() -> bool {
    std::env::var("CAPSTAN_TEST_ENGINE").is_ok_and(|engine| engine == "postgres")
}

/// The process's user id, read from `/proc/self/status`.
fn user_id() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("Uid:"))
                .and_then(|line| line.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(u32::MAX)
}
