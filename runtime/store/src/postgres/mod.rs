//! The PostgreSQL engine: the store's ordered keys in one table, its commit
//! log and clock beside them, shared by every node of a deployment.
//!
//! - [`PostgresPersistence`]: the [`Persistence`] over a connection pool.
//! - `log`: the [`crate::persistence::SharedLog`]: the commit lock, the log,
//!   notifications of other nodes' commits, and the leader lease.
//! - `migrations`: the database schema, versioned.
//! - `bridge`: runs the async driver for synchronous callers.

mod bridge;
mod log;
mod migrations;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

use crate::error::{Error, Result};
use crate::persistence::{Batch, KvIter, KvPair, Persistence, SharedLog, paged_scan};

pub use migrations::VERSION as SCHEMA_VERSION;

/// How to reach the database. Its `Debug` hides the URL's password.
#[derive(Clone)]
pub struct PostgresConfig {
    /// A `postgres://` URL or a `key=value` connection string; `sslmode=
    /// require` uses TLS, verified against the system's roots and `ca_file`.
    pub url: String,
    /// Connections in the pool, besides the listener's and the lease's.
    pub pool_size: usize,
    /// A PEM file of extra roots to trust (a private CA).
    pub ca_file: Option<std::path::PathBuf>,
    /// How long a call waits for a connection before failing.
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &without_password(&self.url))
            .field("pool_size", &self.pool_size)
            .field("ca_file", &self.ca_file)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// `url` with its password replaced, in either form a URL may take
/// (`postgres://user:password@…?password=…`, or `key = value` pairs).
fn without_password(url: &str) -> String {
    let mut shown = match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((credentials, host)) => match credentials.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:…@{host}"),
                None => url.to_owned(),
            },
            None => url.to_owned(),
        },
        None => url.to_owned(),
    };
    // `password=` in a query string or a key-value string, spaces allowed
    // around `=`, the value quoted or not.
    let mut searched = 0;
    while let Some(found) = shown[searched..].find("password") {
        let start = searched + found + "password".len();
        let rest = &shown[start..];
        let after_spaces = rest.trim_start();
        let Some(value) = after_spaces.strip_prefix('=') else {
            searched = start;
            continue;
        };
        let value = value.trim_start();
        let value_start = shown.len() - value.len();
        let value_len = if let Some(quoted) = value.strip_prefix('\'') {
            quoted.find('\'').map_or(value.len(), |end| end + 2)
        } else {
            value
                .find(|c: char| c.is_whitespace() || c == '&')
                .unwrap_or(value.len())
        };
        shown.replace_range(value_start..value_start + value_len, "…");
        searched = value_start + "…".len();
    }
    shown
}

impl PostgresConfig {
    pub fn new(url: impl Into<String>) -> Self {
        PostgresConfig {
            url: url.into(),
            pool_size: 16,
            ca_file: None,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// The connection details, for connections outside the pool.
#[derive(Clone)]
pub(crate) struct Connector {
    config: tokio_postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

impl Connector {
    pub async fn connect(&self) -> Result<(tokio_postgres::Client, Connection)> {
        match &self.tls {
            None => {
                let (client, connection) = self
                    .config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(unavailable)?;
                Ok((client, Connection::Plain(Box::new(connection))))
            }
            Some(tls) => {
                let (client, connection) = self
                    .config
                    .connect(tls.clone())
                    .await
                    .map_err(unavailable)?;
                Ok((client, Connection::Tls(Box::new(connection))))
            }
        }
    }
}

type PlainConnection =
    tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>;
type TlsConnection = tokio_postgres::Connection<
    tokio_postgres::Socket,
    <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<
        tokio_postgres::Socket,
    >>::Stream,
>;

/// A connection outside the pool, driven by its owner.
pub(crate) enum Connection {
    Plain(Box<PlainConnection>),
    Tls(Box<TlsConnection>),
}

impl Connection {
    /// The next message the server sent unprompted (a notification), or
    /// `None` when the connection closed.
    pub async fn next_message(&mut self) -> Option<Result<tokio_postgres::AsyncMessage>> {
        let message = match self {
            Connection::Plain(c) => std::future::poll_fn(|cx| c.poll_message(cx)).await,
            Connection::Tls(c) => std::future::poll_fn(|cx| c.poll_message(cx)).await,
        };
        message.map(|m| m.map_err(unavailable))
    }
}

pub struct PostgresPersistence {
    bridge: Arc<bridge::Bridge>,
    pool: Pool,
    log: log::Log,
}

impl std::fmt::Debug for PostgresPersistence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresPersistence")
            .finish_non_exhaustive()
    }
}

/// The error with its causes: the driver's own message says only "db
/// error", and the server's reason is in its source.
pub(crate) fn unavailable(e: impl std::error::Error) -> Error {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !message.ends_with(&cause_text) {
            message.push_str(": ");
            message.push_str(&cause_text);
        }
        source = cause.source();
    }
    Error::Unavailable(message)
}

impl PostgresPersistence {
    /// Connects, creates or migrates the schema, and starts listening for
    /// other nodes' commits.
    pub fn open(config: &PostgresConfig) -> Result<Arc<PostgresPersistence>> {
        // The driver's parse errors name what is wrong, never the URL.
        let mut pg = tokio_postgres::Config::from_str(&config.url)
            .map_err(|e| Error::Storage(format!("invalid PostgreSQL URL: {e}")))?;
        pg.connect_timeout(config.connect_timeout);
        // A node whose host dies must not keep the commit lock, the leader
        // lease or the startup lock for the hours TCP takes by default:
        // keepalives on both ends notice a silent peer within a minute.
        pg.keepalives(true)
            .keepalives_idle(Duration::from_secs(15))
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3);
        if pg.get_options().is_none() {
            pg.options(
                "-c tcp_keepalives_idle=15 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3",
            );
        }
        if pg.get_application_name().is_none() {
            pg.application_name("capstan");
        }
        let tls = match pg.get_ssl_mode() {
            tokio_postgres::config::SslMode::Disable => None,
            _ => Some(tls_connector(config.ca_file.as_deref())?),
        };
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &tls {
            None => Manager::from_config(pg.clone(), tokio_postgres::NoTls, manager_config),
            Some(tls) => Manager::from_config(pg.clone(), tls.clone(), manager_config),
        };
        let bridge = Arc::new(bridge::Bridge::new()?);
        let timeouts = deadpool_postgres::Timeouts {
            wait: Some(config.connect_timeout),
            create: Some(config.connect_timeout),
            recycle: Some(config.connect_timeout),
        };
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(2))
            .timeouts(timeouts)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| Error::Storage(e.to_string()))?;
        let migrating = pool.clone();
        bridge.run(async move {
            let mut client = migrating.get().await.map_err(unavailable)?;
            migrations::migrate(&mut client).await
        })?;
        let connector = Connector { config: pg, tls };
        let log = log::Log::start(bridge.clone(), pool.clone(), connector);
        Ok(Arc::new(PostgresPersistence { bridge, pool, log }))
    }

    /// A value of the shared per-deployment state, with its version.
    pub fn state(&self, name: &str) -> Result<Option<(Vec<u8>, i64)>> {
        let pool = self.pool.clone();
        let name = name.to_owned();
        self.bridge.run(async move {
            let client = pool.get().await.map_err(unavailable)?;
            let row = client
                .query_opt(
                    "SELECT value, version FROM capstan_state WHERE name = $1",
                    &[&name],
                )
                .await
                .map_err(unavailable)?;
            Ok(row.map(|row| (row.get(0), row.get(1))))
        })
    }

    /// Every shared state entry's name and version.
    pub fn state_versions(&self) -> Result<BTreeMap<String, i64>> {
        let pool = self.pool.clone();
        self.bridge.run(async move {
            let client = pool.get().await.map_err(unavailable)?;
            let rows = client
                .query("SELECT name, version FROM capstan_state", &[])
                .await
                .map_err(unavailable)?;
            Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
        })
    }

    /// Stores `value` under `name` (replacing what was) and tells the other
    /// nodes; returns its new version.
    pub fn put_state(&self, name: &str, value: Vec<u8>) -> Result<i64> {
        let pool = self.pool.clone();
        let name = name.to_owned();
        self.bridge.run(async move {
            let client = pool.get().await.map_err(unavailable)?;
            let row = client
                .query_one(
                    "WITH stored AS (
                         INSERT INTO capstan_state (name, value, version) VALUES ($1, $2, 1)
                         ON CONFLICT (name) DO UPDATE
                         SET value = EXCLUDED.value, version = capstan_state.version + 1
                         RETURNING version
                     )
                     SELECT version, pg_notify('capstan_state', $1) FROM stored",
                    &[&name, &value],
                )
                .await
                .map_err(unavailable)?;
            Ok(row.get(0))
        })
    }

    /// Holds a lock across the nodes until the guard drops: one node at a
    /// time initialises the shared state.
    pub fn exclusive(&self) -> Result<Exclusive> {
        let pool = self.pool.clone();
        let client = self.bridge.run(async move {
            let client = pool.get().await.map_err(unavailable)?;
            let deadline = tokio::time::Instant::now() + EXCLUSIVE_WAIT;
            loop {
                let taken: bool = client
                    .query_one("SELECT pg_try_advisory_lock($1)", &[&STARTUP_LOCK])
                    .await
                    .map_err(unavailable)?
                    .get(0);
                if taken {
                    return Ok(client);
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(Error::Unavailable(
                        "another node held the deployment's shared state for over a minute".into(),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })?;
        Ok(Exclusive {
            bridge: self.bridge.clone(),
            client: Some(client),
        })
    }

    /// Waits until shared state may have changed, or `timeout` passed.
    pub fn wait_for_state(&self, seen: u64, timeout: Duration) -> u64 {
        self.log.state_changes.wait(seen, timeout)
    }
}

/// The lock [`PostgresPersistence::exclusive`] takes (an arbitrary number).
const STARTUP_LOCK: i64 = 0x6361_7073_7461_6e03;
/// How long [`PostgresPersistence::exclusive`] waits for it.
const EXCLUSIVE_WAIT: Duration = Duration::from_secs(60);

/// A lock held across nodes; released when dropped.
pub struct Exclusive {
    bridge: Arc<bridge::Bridge>,
    client: Option<deadpool_postgres::Object>,
}

impl std::fmt::Debug for Exclusive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Exclusive")
    }
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.bridge.run(async move {
                if client
                    .execute("SELECT pg_advisory_unlock($1)", &[&STARTUP_LOCK])
                    .await
                    .is_err()
                {
                    drop(deadpool_postgres::Object::take(client));
                }
                Ok(())
            });
        }
    }
}

fn tls_connector(
    ca_file: Option<&std::path::Path>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| Error::Storage(format!("cannot read {}: {e}", path.display())))?;
        use rustls::pki_types::pem::PemObject;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| Error::Storage(format!("{}: {e}", path.display())))?;
            roots
                .add(cert)
                .map_err(|e| Error::Storage(format!("{}: {e}", path.display())))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Storage(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// Rows per page of a scan: small first (a point read wants one row), then
/// larger as the caller keeps reading.
const FIRST_PAGE: usize = 8;
const MAX_PAGE: usize = 1024;
/// About how many bytes one page of a scan may hold.
const PAGE_BYTES: usize = 4 << 20;

impl Persistence for PostgresPersistence {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let pool = self.pool.clone();
        let key = key.to_vec();
        self.bridge.run(async move {
            let client = pool.get().await.map_err(unavailable)?;
            let statement = client
                .prepare_cached("SELECT value FROM capstan_kv WHERE key = $1")
                .await
                .map_err(unavailable)?;
            let row = client
                .query_opt(&statement, &[&key])
                .await
                .map_err(unavailable)?;
            Ok(row.map(|row| row.get(0)))
        })
    }

    fn scan(&self, start: Bound<Vec<u8>>, end: Bound<Vec<u8>>, reverse: bool) -> KvIter<'_> {
        let fetch = move |lower, upper, limit| self.page(lower, upper, reverse, limit);
        // Larger pages while rows are small; never much more than
        // PAGE_BYTES held at once, however large the values.
        let next_limit = |limit: usize, page: &[KvPair]| {
            let bytes: usize = page.iter().map(|(k, v)| k.len() + v.len()).sum();
            let per_row = (bytes / page.len().max(1)).max(1);
            (limit * 8).min(MAX_PAGE).min(PAGE_BYTES / per_row)
        };
        paged_scan(start, end, reverse, FIRST_PAGE, fetch, next_limit)
    }

    fn write(&self, batch: Batch) -> Result<()> {
        let pool = self.pool.clone();
        let changes = Changes::from(batch);
        self.bridge.run(async move {
            let mut client = pool.get().await.map_err(unavailable)?;
            let tx = client.transaction().await.map_err(unavailable)?;
            changes.apply(&tx).await?;
            tx.commit().await.map_err(unavailable)
        })
    }

    fn sync(&self) -> Result<()> {
        // Every write commits a database transaction, durable when it returns.
        Ok(())
    }

    fn shared_log(&self) -> Option<&dyn SharedLog> {
        Some(&self.log)
    }

    fn first_in_ranges(&self, ranges: &[(Vec<u8>, Vec<u8>)]) -> Result<Vec<Option<KvPair>>> {
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        let pool = self.pool.clone();
        let (starts, ends): (Vec<Vec<u8>>, Vec<Vec<u8>>) = ranges.iter().cloned().unzip();
        let count = ranges.len();
        self.bridge.run(async move {
            let client = pool.get().await.map_err(unavailable)?;
            let statement = client
                .prepare_cached(
                    "SELECT r.i, kv.key, kv.value
                     FROM unnest($1::bytea[], $2::bytea[]) WITH ORDINALITY AS r(lo, hi, i)
                     CROSS JOIN LATERAL (
                         SELECT key, value FROM capstan_kv
                         WHERE key >= r.lo AND key <= r.hi
                         ORDER BY key LIMIT 1
                     ) kv",
                )
                .await
                .map_err(unavailable)?;
            let rows = client
                .query(&statement, &[&starts, &ends])
                .await
                .map_err(unavailable)?;
            let mut found = vec![None; count];
            for row in rows {
                let ordinal: i64 = row.get(0);
                let slot = usize::try_from(ordinal - 1)
                    .ok()
                    .and_then(|i| found.get_mut(i))
                    .ok_or_else(|| Error::Corrupt("a batch read answered out of range".into()))?;
                *slot = Some((row.get(1), row.get(2)));
            }
            Ok(found)
        })
    }

    fn prefers_batches(&self) -> bool {
        true
    }
}

impl PostgresPersistence {
    fn page(
        &self,
        lower: Bound<Vec<u8>>,
        upper: Bound<Vec<u8>>,
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<KvPair>> {
        let pool = self.pool.clone();
        self.bridge.run(async move {
            let mut sql = String::from("SELECT key, value FROM capstan_kv WHERE true");
            let mut params: Vec<Vec<u8>> = Vec::new();
            let mut condition = |bound: Bound<Vec<u8>>, inclusive: &str, exclusive: &str| {
                let op = match &bound {
                    Bound::Included(_) => inclusive,
                    Bound::Excluded(_) => exclusive,
                    Bound::Unbounded => return,
                };
                if let Bound::Included(key) | Bound::Excluded(key) = bound {
                    params.push(key);
                    sql.push_str(&format!(" AND key {op} ${}", params.len()));
                }
            };
            condition(lower, ">=", ">");
            condition(upper, "<=", "<");
            sql.push_str(if reverse {
                " ORDER BY key DESC"
            } else {
                " ORDER BY key"
            });
            sql.push_str(&format!(" LIMIT {limit}"));
            let client = pool.get().await.map_err(unavailable)?;
            let statement = client.prepare_cached(&sql).await.map_err(unavailable)?;
            let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                .iter()
                .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect();
            let rows = client.query(&statement, &refs).await.map_err(unavailable)?;
            Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
        })
    }
}

/// A batch reduced to its final effect per key (last write wins), as two
/// array parameters: one upsert and one delete statement.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    put_keys: Vec<Vec<u8>>,
    put_values: Vec<Vec<u8>>,
    removed: Vec<Vec<u8>>,
}

impl From<Batch> for Changes {
    fn from(batch: Batch) -> Self {
        let mut last: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        for (key, value) in batch.ops {
            last.insert(key, value);
        }
        let mut changes = Changes::default();
        for (key, value) in last {
            match value {
                Some(value) => {
                    changes.put_keys.push(key);
                    changes.put_values.push(value);
                }
                None => changes.removed.push(key),
            }
        }
        changes
    }
}

impl Changes {
    pub async fn apply(&self, client: &impl deadpool_postgres::GenericClient) -> Result<()> {
        if !self.put_keys.is_empty() {
            client
                .execute(
                    "INSERT INTO capstan_kv (key, value)
                     SELECT * FROM unnest($1::bytea[], $2::bytea[])
                     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    &[&self.put_keys, &self.put_values],
                )
                .await
                .map_err(unavailable)?;
        }
        if !self.removed.is_empty() {
            client
                .execute(
                    "DELETE FROM capstan_kv WHERE key = ANY($1::bytea[])",
                    &[&self.removed],
                )
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_shows_in_debug() {
        for url in [
            "postgres://capstan:s3cret@db:5432/app?sslmode=require",
            "postgres://capstan@db/app?password=s3cret&sslmode=require",
            "host=db user=capstan password=s3cret dbname=app",
            "host=db user=capstan password = 's3cret x' dbname=app",
        ] {
            let shown = format!("{:?}", PostgresConfig::new(url));
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("capstan"), "{shown}");
        }
    }
}
