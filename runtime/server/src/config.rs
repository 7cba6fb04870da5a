//! The operator's configuration of a server (not the app's): where data
//! lives, where to listen, and the limits. Read from a TOML file or flags,
//! validated once, strict about unknown keys.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use capstan_host::HostLimits;
use capstan_protocol::Clock;
use capstan_store::StoreConfig;
use serde::Deserialize;

use crate::error::Error;
use crate::limits::{HttpLimits, ServerLimits, SyncLimits};
use crate::rate_limit::RateLimits;
use crate::tls::TlsConfig;

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Bounds on each guest call.
    pub host: HostLimits,
    pub store: StoreConfig,
    /// `[store] engine = "postgres"`: the store in this PostgreSQL database,
    /// shared with every other node configured the same; `None`: sled in
    /// the data directory.
    pub postgres: Option<capstan_store::PostgresConfig>,
    /// Bounds on calls, requests and mutations.
    pub limits: ServerLimits,
    /// Bounds on WebSocket clients and live queries.
    pub sync: SyncLimits,
    /// Browsers, proxies, per-client connections and request timeouts.
    pub http: HttpLimits,
    /// Calls and new sockets per client address and per identity.
    pub rate_limits: RateLimits,
    /// Terminate TLS with these files (reloaded when they change); `None`:
    /// plain HTTP, for loopback or behind a proxy that terminates TLS.
    pub tls: Option<TlsConfig>,
    /// How user tokens are checked: size limit, clock leeway, how long
    /// provider keys are cached and how often an issuer may be asked.
    pub auth: capstan_auth::VerifierOptions,
    /// The time token expiry, key caching and the sync protocol's clock
    /// fields are judged by: the system's, or a test's.
    pub clock: Clock,
    /// Whether a function's log lines go to the client that called it (as
    /// `logLines`) as well as to the server's log. Off for a public server
    /// (`capstan serve`), where they may hold what a caller should not
    /// read; on for `capstan dev`.
    pub logs_to_clients: bool,
    /// The address clients reach the server at, the issuer of its tokens
    /// and the base of sign-in links (`None`: the listen address).
    pub public_url: Option<String>,
    /// The algorithm of the first auth signing key (and of rotations).
    pub auth_algorithm: capstan_auth::Algorithm,
    /// With no SMTP server configured, sign-in emails go to the console and
    /// the data directory's `dev_outbox.jsonl` (`capstan dev`) rather than
    /// failing.
    pub dev_outbox: bool,
    /// Scheduler, files, HTTP actions and outbound HTTP.
    pub platform: crate::platform::PlatformConfig,
    /// The admin key to use instead of a generated one
    /// (`CAPSTAN_ADMIN_KEY`, e.g. from a Kubernetes Secret).
    pub admin_key: Option<Secret>,
    /// Built-in auth's signing keys (`auth_keys.json`) to use instead of
    /// generated ones (`CAPSTAN_AUTH_KEYS`).
    pub auth_keys: Option<Secret>,
}

/// A secret handed to the server; its `Debug` never prints it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl ServerConfig {
    pub fn new(data_dir: impl Into<PathBuf>, listen: SocketAddr) -> Self {
        ServerConfig {
            data_dir: data_dir.into(),
            listen,
            host: HostLimits::default(),
            limits: ServerLimits::default(),
            store: StoreConfig::default(),
            postgres: None,
            sync: SyncLimits::default(),
            http: HttpLimits::default(),
            rate_limits: RateLimits::default(),
            tls: None,
            auth: capstan_auth::VerifierOptions::default(),
            clock: Clock::system(),
            logs_to_clients: false,
            public_url: None,
            auth_algorithm: capstan_auth::Algorithm::Rs256,
            dev_outbox: false,
            platform: crate::platform::PlatformConfig::default(),
            admin_key: None,
            auth_keys: None,
        }
    }

    /// Takes `CAPSTAN_ADMIN_KEY` and `CAPSTAN_AUTH_KEYS` from the
    /// environment when they are set and not empty.
    pub fn with_secrets_from_env(mut self) -> Self {
        let read = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.trim().is_empty())
                .map(Secret::new)
        };
        self.admin_key = read("CAPSTAN_ADMIN_KEY").or(self.admin_key);
        self.auth_keys = read("CAPSTAN_AUTH_KEYS").or(self.auth_keys);
        self
    }

    /// Reads a TOML file such as `deploy/capstan.toml`.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(format!("cannot read {}: {e}", path.display())))?;
        Self::from_toml(&text).map_err(|e| Error::config(format!("{}: {e}", path.display())))
    }

    /// Reads a configuration file's text; what is wrong with it, if
    /// anything, in words for its author.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        ServerConfig::from_toml_with_env(text, |name| std::env::var(name).ok())
    }

    /// [`ServerConfig::from_toml`] with the environment variables it reads
    /// (the database URL's) looked up by `env`.
    pub fn from_toml_with_env(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let file: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        let listen = file
            .listen
            .parse()
            .map_err(|e| format!("listen = {:?}: {e}", file.listen))?;
        let mut config = ServerConfig::new(file.data_dir, listen);
        if let Some(limits) = file.limits {
            let host = &mut config.host;
            let set_ms = |target: &mut Duration, value: Option<u64>| {
                if let Some(ms) = value {
                    *target = Duration::from_millis(ms);
                }
            };
            set_ms(&mut host.query_timeout, limits.query_timeout_ms);
            set_ms(&mut host.mutation_timeout, limits.mutation_timeout_ms);
            set_ms(&mut host.action_timeout, limits.action_timeout_ms);
            if let Some(mib) = limits.memory_mib {
                if !(1..=4096).contains(&mib) {
                    return Err(format!(
                        "limits.memory_mib = {mib}: must be between 1 and 4096"
                    ));
                }
                host.memory = mib << 20;
            }
            if let Some(calls) = limits.max_concurrent_calls {
                if calls == 0 {
                    return Err("limits.max_concurrent_calls must be at least 1".into());
                }
                config.limits.max_concurrent_calls = calls;
            }
        }
        if let Some(sync) = file.sync {
            if sync.max_sockets == 0
                || sync.max_queries_per_socket == 0
                || sync.max_actions_in_flight == 0
                || sync.max_message_size < 1024
            {
                return Err(
                    "sync: socket, query and action limits must be at least 1, max_message_size at least 1024".into(),
                );
            }
            config.sync = sync;
        }
        if let Some(http) = file.http {
            crate::client_ip::TrustedProxies::parse(&http.trusted_proxies)?;
            for origin in &http.allowed_origins {
                crate::http::origin_header(origin)?;
            }
            if http.max_connections_per_ip == 0 || http.max_sockets_per_ip == 0 {
                return Err(
                    "http: max_connections_per_ip and max_sockets_per_ip must be at least 1".into(),
                );
            }
            config.http = http;
        }
        if let Some(rates) = file.rate_limits {
            for (name, rate) in [("calls", rates.calls), ("sockets", rates.sockets)] {
                if !(rate.per_second >= 0.0 && rate.burst >= 1.0) {
                    return Err(format!(
                        "rate_limits.{name}: per_second must be 0 (no limit) or more, burst at least 1"
                    ));
                }
            }
            config.rate_limits = rates;
        }
        if let Some(store) = file.store {
            config.postgres = store.postgres(&env)?;
            store.apply(&mut config.store)?;
        }
        if let Some(url) = file.public_url {
            config.public_url = Some(check_public_url(&url)?);
        }
        if let Some(auth) = file.auth {
            config.auth_algorithm =
                capstan_auth::Algorithm::parse(&auth.algorithm).ok_or_else(|| {
                    format!(
                        "auth.algorithm = {:?}: use RS256, ES256 or EdDSA",
                        auth.algorithm
                    )
                })?;
        }
        if let Some(fetch) = file.fetch {
            fetch.apply(&mut config.platform.fetch)?;
        }
        if let Some(files) = file.files {
            if let Some(mib) = files.max_file_mib {
                if !(1..=1 << 20).contains(&mib) {
                    return Err("files.max_file_mib must be between 1 and 1048576".into());
                }
                config.platform.max_file_bytes = mib << 20;
            }
            if let Some(s3) = files.s3 {
                if s3.bucket.is_empty() {
                    return Err("files.s3.bucket must name a bucket".into());
                }
                config.platform.s3 = Some(capstan_files::S3Config {
                    allow_http: s3
                        .endpoint
                        .as_deref()
                        .is_some_and(|e| e.starts_with("http://")),
                    bucket: s3.bucket,
                    region: s3.region,
                    endpoint: s3.endpoint,
                    prefix: s3.prefix,
                    access_key_id: String::new(),
                    secret_access_key: String::new(),
                });
            }
        }
        if let Some(scheduler) = file.scheduler {
            if !(1..=1024).contains(&scheduler.concurrency) {
                return Err("scheduler.concurrency must be between 1 and 1024".into());
            }
            config.platform.scheduler_concurrency = scheduler.concurrency;
        }
        config.tls = file.tls;
        if let Some(logs) = file.logs {
            config.logs_to_clients = logs.to_clients;
        }
        Ok(config)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: PathBuf,
    listen: String,
    limits: Option<FileLimits>,
    sync: Option<SyncLimits>,
    http: Option<HttpLimits>,
    rate_limits: Option<RateLimits>,
    tls: Option<TlsConfig>,
    logs: Option<FileLogs>,
    store: Option<FileStore>,
    public_url: Option<String>,
    auth: Option<FileAuth>,
    fetch: Option<FileFetch>,
    files: Option<FileFiles>,
    scheduler: Option<FileScheduler>,
}

/// `[fetch]`: outbound HTTP from actions.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFetch {
    timeout_ms: Option<u64>,
    max_response_mib: Option<usize>,
    max_redirects: Option<usize>,
    #[serde(default)]
    allowed_networks: Vec<String>,
    allowed_hosts: Option<Vec<String>>,
}

impl FileFetch {
    fn apply(self, fetch: &mut capstan_outbound::OutboundConfig) -> Result<(), String> {
        if let Some(ms) = self.timeout_ms {
            if ms == 0 {
                return Err("fetch.timeout_ms must be at least 1".into());
            }
            fetch.timeout = Duration::from_millis(ms);
        }
        if let Some(mib) = self.max_response_mib {
            if !(1..=1024).contains(&mib) {
                return Err("fetch.max_response_mib must be between 1 and 1024".into());
            }
            fetch.max_response_bytes = mib << 20;
        }
        if let Some(redirects) = self.max_redirects {
            if redirects > 20 {
                return Err("fetch.max_redirects must be at most 20".into());
            }
            fetch.max_redirects = redirects;
        }
        fetch.allowed_networks = self.allowed_networks;
        fetch.allowed_hosts = self.allowed_hosts;
        // Checked here, so a bad network is the file's error at start.
        capstan_outbound::Outbound::new(fetch.clone()).map_err(|e| format!("fetch: {e}"))?;
        Ok(())
    }
}

/// `[files]`: file storage.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFiles {
    max_file_mib: Option<u64>,
    s3: Option<FileS3>,
}

/// `[files.s3]`: files in an S3-compatible bucket.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileS3 {
    bucket: String,
    #[serde(default = "default_region")]
    region: String,
    endpoint: Option<String>,
    #[serde(default)]
    prefix: String,
}

fn default_region() -> String {
    "us-east-1".into()
}

/// `[scheduler]`: scheduled functions and crons.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileScheduler {
    concurrency: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAuth {
    algorithm: String,
}

/// A public URL: http(s), a host, no path, query or trailing `/`.
pub fn check_public_url(url: &str) -> Result<String, String> {
    let url = url.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("public_url = {url:?}: it must start with https:// or http://"))?;
    if rest.is_empty() || rest.contains(['/', '?', '#', ' ']) {
        return Err(format!(
            "public_url = {url:?}: give the origin only, such as \"https://api.example.com\""
        ));
    }
    Ok(url.to_owned())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStore {
    cache_mib: Option<u64>,
    version_retention_s: Option<u64>,
    receipt_retention_s: Option<u64>,
    gc_interval_s: Option<u64>,
    write_log_mib: Option<usize>,
    write_log_max_age_s: Option<u64>,
    /// `"sled"` (the default) or `"postgres"`.
    engine: Option<String>,
    /// The PostgreSQL URL; better kept out of the file, in the variable
    /// named by `url_env` (`CAPSTAN_DATABASE_URL` by default).
    url: Option<String>,
    url_env: Option<String>,
    pool_size: Option<usize>,
    /// Extra roots for `sslmode=require` (a private CA's PEM).
    ca_file: Option<PathBuf>,
}

/// Where a PostgreSQL URL comes from when the file does not hold one.
pub const DATABASE_URL_ENV: &str = "CAPSTAN_DATABASE_URL";

impl FileStore {
    fn postgres(
        &self,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<Option<capstan_store::PostgresConfig>, String> {
        match self.engine.as_deref() {
            None | Some("sled") => {
                if self.url.is_some() || self.url_env.is_some() {
                    return Err("store.url is for engine = \"postgres\"".into());
                }
                Ok(None)
            }
            Some("postgres") => {
                let variable = self.url_env.as_deref().unwrap_or(DATABASE_URL_ENV);
                let url = match (&self.url, env(variable)) {
                    (Some(url), _) => url.clone(),
                    (None, Some(url)) if !url.is_empty() => url,
                    _ => {
                        return Err(format!(
                            "engine = \"postgres\" needs store.url or the {variable} environment variable"
                        ));
                    }
                };
                let mut postgres = capstan_store::PostgresConfig::new(url);
                if let Some(size) = self.pool_size {
                    if size < 2 {
                        return Err("store.pool_size must be at least 2".into());
                    }
                    postgres.pool_size = size;
                }
                postgres.ca_file = self.ca_file.clone();
                Ok(Some(postgres))
            }
            Some(other) => Err(format!(
                "store.engine = {other:?}: the engines are \"sled\" and \"postgres\""
            )),
        }
    }

    fn apply(self, store: &mut StoreConfig) -> Result<(), String> {
        if let Some(mib) = self.cache_mib {
            if mib == 0 {
                return Err("store.cache_mib must be at least 1".into());
            }
            store.cache_bytes = mib << 20;
        }
        if let Some(mib) = self.write_log_mib {
            if mib == 0 {
                return Err("store.write_log_mib must be at least 1".into());
            }
            store.write_log_bytes = mib << 20;
        }
        let seconds = |name: &str, value: Option<u64>, target: &mut Duration| match value {
            Some(0) => Err(format!("store.{name} must be at least 1")),
            Some(s) => {
                *target = Duration::from_secs(s);
                Ok(())
            }
            None => Ok(()),
        };
        seconds(
            "version_retention_s",
            self.version_retention_s,
            &mut store.retention,
        )?;
        seconds(
            "receipt_retention_s",
            self.receipt_retention_s,
            &mut store.receipt_retention,
        )?;
        seconds(
            "write_log_max_age_s",
            self.write_log_max_age_s,
            &mut store.write_log_max_age,
        )?;
        if let Some(s) = self.gc_interval_s {
            let mut interval = Duration::ZERO;
            seconds("gc_interval_s", Some(s), &mut interval)?;
            store.gc_interval = Some(interval);
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLogs {
    to_clients: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    query_timeout_ms: Option<u64>,
    mutation_timeout_ms: Option<u64>,
    action_timeout_ms: Option<u64>,
    memory_mib: Option<usize>,
    max_concurrent_calls: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses() {
        let text = include_str!("../../../deploy/capstan.toml");
        let config = ServerConfig::from_toml(text).expect("deploy/capstan.toml parses");
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/capstan"));
        assert_eq!(config.listen.port(), 3210);
        let (store, defaults) = (&config.store, StoreConfig::default());
        assert_eq!(store.cache_bytes, defaults.cache_bytes);
        assert_eq!(store.retention, defaults.retention);
        assert_eq!(store.receipt_retention, defaults.receipt_retention);
        assert_eq!(store.gc_interval, defaults.gc_interval);
        assert_eq!(store.write_log_bytes, defaults.write_log_bytes);
        assert_eq!(store.write_log_max_age, defaults.write_log_max_age);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(
            ServerConfig::from_toml("data_dir = \"x\"\nlisten = \"127.0.0.1:1\"\ncolour = 1")
                .is_err()
        );
        assert!(ServerConfig::from_toml("data_dir = \"x\"\nlisten = \"nowhere\"").is_err());
        assert!(
            ServerConfig::from_toml(
                "data_dir = \"x\"\nlisten = \"127.0.0.1:1\"\n[limits]\nmemory_mib = 0"
            )
            .is_err()
        );
    }
}
