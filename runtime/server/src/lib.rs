//! The Capstan server: the app facade, the Convex-compatible HTTP API and
//! sync protocol, deploys and the admin API. `README.md` beside this crate
//! follows one call through it.
//!
//! # Layout
//! - [`app`]: [`App`], the facade: finds the function a caller may call
//!   and runs it.
//! - [`executor`]: where every guest call runs (admission, placement);
//!   [`pace`]: how long a function's recent runs took.
//! - [`mutations`]: the OCC retry loop and exactly-once runs.
//! - [`deployments`]: the deployment served and its environment variables;
//!   [`deployment`]: one deployment's components and config.
//! - [`data_dir`]: what lives where in the data directory.
//! - [`audit`]: the log of admin actions.
//! - [`auth`]: built-in auth: the issuer, `auth:signIn` and its flows,
//!   sessions, the auth tables and routes.
//! - [`credentials`]: from credentials to an identity; token checks.
//!   [`keys`]: the admin key and service keys.
//! - [`listener`]: the accept loop: per-client connection caps, header
//!   timeouts; [`client_ip`]: who a request is from (trusted proxies);
//!   [`client_slots`]: per-client caps; [`rate_limit`]: calls and sockets
//!   per client and identity; [`tls`]: certificates, reloaded on change.
//! - [`http`]: the axum router: function calls, health, the admin API;
//!   [`metrics`]: what `/metrics` exposes.
//! - [`sync`]: live queries over WebSocket (the Convex sync protocol): the
//!   socket [`sync::worker`] and the shared [`sync::subscriptions`]; [`ws`],
//!   the endpoint that serves them.
//! - [`config`]: [`ServerConfig`], from a TOML file or flags; [`limits`]:
//!   every tunable, with its reason.
//! - [`arguments`]: call arguments, checked and normalised.
//! - [`error`]: [`Error`], classified by an [`capstan_protocol::ErrorCode`].

pub mod app;
pub mod arguments;
pub mod audit;
pub mod auth;
pub mod client_ip;
pub mod client_slots;
pub mod config;
pub mod credentials;
pub mod data_dir;
pub mod deployment;
pub mod deployments;
pub mod error;
pub mod executor;
pub mod http;
pub mod keys;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod mutations;
pub mod pace;
pub mod platform;
pub mod rate_limit;
pub mod shared_state;
pub mod snapshot;
pub mod sync;
pub mod tls;
pub mod ws;

use std::net::SocketAddr;

pub use app::{App, Caller};
pub use capstan_store::PostgresConfig;
pub use config::ServerConfig;
pub use error::Error;
pub use keys::{AdminKey, ServiceKeys};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A running server.
#[derive(Debug)]
pub struct Server {
    pub app: App,
    pub admin_key: AdminKey,
    pub addr: SocketAddr,
    /// The live queries of every socket.
    pub subscriptions: sync::Subscriptions,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), Error>>,
    /// The subscription manager's task.
    manager: tokio::task::JoinHandle<()>,
    /// The scheduler and cron loops.
    platform: Vec<tokio::task::JoinHandle<()>>,
    /// Sockets and the calls they started.
    sockets: tokio_util::task::TaskTracker,
    /// Whether it terminates TLS.
    tls: bool,
    http: limits::HttpLimits,
}

/// How often expired sign-in rows and orphaned files are swept.
const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(300);

/// Runs `work` every `period` until `shutdown`: a task the token ends.
fn every<F, Fut>(period: std::time::Duration, shutdown: &CancellationToken, mut work: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(period) => work().await,
            }
        }
    });
}

/// Reloads what another node changed in the shared state, until `shutdown`.
fn follow_shared_state(
    state: std::sync::Arc<shared_state::SharedState>,
    app: &App,
    admin_key: &AdminKey,
    service_keys: &ServiceKeys,
    shutdown: &CancellationToken,
) {
    let (changed, mut changes) = tokio::sync::mpsc::unbounded_channel();
    state.watch(changed);
    let (app, admin_key, service_keys, shutdown) = (
        app.clone(),
        admin_key.clone(),
        service_keys.clone(),
        shutdown.clone(),
    );
    tokio::spawn(async move {
        // Holds the state (and so its watcher) until shutdown.
        let _state = state;
        loop {
            let name = tokio::select! {
                () = shutdown.cancelled() => break,
                name = changes.recv() => match name {
                    Some(name) => name,
                    None => break,
                },
            };
            let reloaded = match name.as_str() {
                shared_state::DEPLOYMENT => app.deployments().reload().await,
                data_dir::ENVIRONMENT => app.deployments().reload_environment(),
                data_dir::ADMIN_KEY => admin_key.reload(),
                data_dir::SERVICE_KEYS => service_keys.reload(),
                data_dir::AUTH_KEYS => app.sign_in().reload_keys(),
                _ => {
                    tracing::info!(
                        name,
                        "shared state changed; it takes effect at the next start"
                    );
                    Ok(())
                }
            };
            if let Err(error) = reloaded {
                tracing::error!(
                    name,
                    ?error,
                    "cannot apply shared state another node changed"
                );
            }
        }
    });
}

impl Server {
    /// Opens the data directory, binds `config.listen` (port 0 picks one) and
    /// serves until [`Server::stop`] or the token is cancelled.
    pub async fn start(config: ServerConfig) -> Result<Server, Error> {
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| Error::config(format!("cannot listen on {}: {e}", config.listen)))?;
        Server::start_on(config, listener).await
    }

    pub async fn start_on(config: ServerConfig, listener: TcpListener) -> Result<Server, Error> {
        let addr = listener
            .local_addr()
            .map_err(|e| Error::config(e.to_string()))?;
        let data_dir = data_dir::DataDir::create(&config.data_dir)?;
        // On PostgreSQL, the keys, environment and deployment come from the
        // database (one node starting at a time), before anything reads them.
        let shared = match &config.postgres {
            Some(postgres) => {
                let persistence = capstan_store::PostgresPersistence::open(postgres)
                    .map_err(|e| Error::config(format!("cannot open the PostgreSQL store: {e}")))?;
                let (state, starting) =
                    shared_state::SharedState::open(persistence.clone(), data_dir)?;
                Some((persistence, state, starting))
            }
            None => None,
        };
        let admin_key = match &config.admin_key {
            Some(key) => AdminKey::install(&config.data_dir, key.expose())?,
            None => AdminKey::load_or_create(&config.data_dir)?,
        };
        let service_keys = ServiceKeys::load(&config.data_dir, config.clock.clone())?;
        let metrics = metrics::Metrics::new();
        let limiters = std::sync::Arc::new(rate_limit::Limiters::new(
            &config.rate_limits,
            &config.clock,
        ));
        let trusted = client_ip::TrustedProxies::parse(&config.http.trusted_proxies)
            .map_err(Error::config)?;
        let public_url = config.public_url.clone().unwrap_or_else(|| {
            let scheme = if config.tls.is_some() {
                "https"
            } else {
                "http"
            };
            // Clients cannot reach 0.0.0.0: name this machine's loopback.
            let host = if addr.ip().is_unspecified() {
                format!("localhost:{}", addr.port())
            } else {
                addr.to_string()
            };
            format!("{scheme}://{host}")
        });
        let app = App::open(
            &config,
            &public_url,
            metrics.clone(),
            shared
                .as_ref()
                .map(|(persistence, _, _)| persistence.clone()),
        )
        .await?;
        let credentials = credentials::Credentials {
            app: app.clone(),
            admin_key: admin_key.clone(),
            service_keys,
            leeway: config.auth.leeway,
            clock: config.clock.clone(),
        };
        let shutdown = CancellationToken::new();
        if let Some((_, state, starting)) = shared {
            drop(starting);
            follow_shared_state(
                state,
                &app,
                &admin_key,
                &credentials.service_keys,
                &shutdown,
            );
        }
        // Expired sessions, tokens and codes leave the auth tables.
        every(SWEEP_INTERVAL, &shutdown, {
            let app = app.clone();
            move || {
                let app = app.clone();
                async move {
                    if let Err(error) = app.sign_in().sweep().await {
                        tracing::warn!(?error, "sweeping expired sign-in rows failed");
                    }
                }
            }
        }); // Ended by the shutdown token; `stop` waits for them.
        let platform = vec![
            tokio::spawn(platform::scheduler::run(
                app.clone(),
                config.clock.clone(),
                config.platform.scheduler_concurrency,
                shutdown.clone(),
            )),
            tokio::spawn(platform::crons::run(
                app.clone(),
                config.clock.clone(),
                shutdown.clone(),
            )),
        ];
        // Objects no `_storage` row points at leave the file store.
        every(SWEEP_INTERVAL, &shutdown, {
            let app = app.clone();
            move || {
                let app = app.clone();
                async move {
                    if let Err(error) = app.services().files.sweep(app.store()).await {
                        tracing::warn!(?error, "sweeping orphaned files failed");
                    }
                }
            }
        });
        let (subscriptions, manager) =
            sync::Subscriptions::start(app.clone(), &config.sync, shutdown.clone());
        let sockets = tokio_util::task::TaskTracker::new();
        let sync_state = ws::SyncState::new(
            sync::SocketContext {
                app: app.clone(),
                subscriptions: subscriptions.clone(),
                credentials: credentials.clone(),
                limits: config.sync.clone(),
                shutdown: shutdown.clone(),
                tasks: sockets.clone(),
                live_result_bytes: Default::default(),
                metrics: metrics.clone(),
                limiters: limiters.clone(),
            },
            &config.http,
            trusted.clone(),
        );
        let scrape = {
            let (sync_state, subscriptions, app) =
                (sync_state.clone(), subscriptions.clone(), app.clone());
            move |metrics: &metrics::Metrics| {
                let gauges = metrics.gauges();
                let (running, waiting, instances) = app.load();
                gauges.calls_running.set(running as i64);
                gauges.calls_waiting.set(waiting as i64);
                gauges.instances_in_use.set(instances as i64);
                gauges.sockets.set(sync_state.open() as i64);
                gauges
                    .subscriptions
                    .set(subscriptions.read(|published| published.keys.len()) as i64);
                let runs = subscriptions
                    .stats()
                    .executions
                    .load(std::sync::atomic::Ordering::Relaxed);
                gauges
                    .query_runs
                    .set(i64::try_from(runs).unwrap_or(i64::MAX));
                let log = app.store().write_log_usage();
                gauges.write_log_commits.set(log.entries as i64);
                gauges.write_log_bytes.set(log.bytes as i64);
                let load = &app.services().scheduler_load;
                let read = |n: &std::sync::atomic::AtomicUsize| {
                    i64::try_from(n.load(std::sync::atomic::Ordering::Relaxed)).unwrap_or(i64::MAX)
                };
                gauges.scheduled_pending.set(read(&load.pending));
                gauges.scheduled_running.set(read(&load.running));
                gauges.leader.set(i64::from(app.store().leads()));
            }
        };
        let router = http::router(
            http::HttpState {
                app: app.clone(),
                credentials,
                limits: config.limits.clone(),
                http: config.http.clone(),
                metrics: metrics.clone(),
                body_budget: std::sync::Arc::new(tokio::sync::Semaphore::new(
                    config.limits.request_body_budget.div_ceil(1024),
                )),
                scrape: std::sync::Arc::new(scrape),
                limiters,
                trusted: trusted.clone(),
                audit: std::sync::Arc::new(audit::AuditLog::new(
                    &config.data_dir,
                    config.clock.clone(),
                )),
            },
            sync_state,
        );
        let admission = listener::Admission {
            connections: client_slots::ClientSlots::new(config.http.max_connections_per_ip),
            trusted,
            header_timeout: config.http.header_timeout,
            tls: match &config.tls {
                Some(tls) => Some(tls::acceptor(tls, shutdown.clone()).map_err(Error::config)?),
                None => None,
            },
        };
        // Ends when `shutdown` is cancelled (Server::stop).
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                listener::serve(listener, router, admission, metrics, shutdown).await;
                Ok(())
            }
        });
        tracing::info!(%addr, "listening");
        Ok(Server {
            app,
            admin_key,
            addr,
            subscriptions,
            shutdown,
            task,
            manager,
            platform,
            sockets,
            tls: config.tls.is_some(),
            http: config.http.clone(),
        })
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// What its HTTP front enforces.
    pub fn config_http(&self) -> &limits::HttpLimits {
        &self.http
    }

    /// The token that stops this server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting requests, lets the ones in flight finish, and closes
    /// the store.
    pub async fn stop(self) -> Result<(), Error> {
        self.shutdown.cancel();
        self.task
            .await
            .map_err(|e| Error::internal(e.to_string()))??;
        // Sockets end on the same token; their calls and the manager hold
        // the app, so they finish before the store closes.
        self.sockets.close();
        self.sockets.wait().await;
        let _ = self.manager.await;
        for task in self.platform {
            let _ = task.await;
        }
        drop(self.subscriptions);
        self.app.close().await
    }

    /// Serves until the token is cancelled, then stops.
    pub async fn run_until_stopped(self) -> Result<(), Error> {
        let token = self.shutdown.clone();
        token.cancelled().await;
        self.stop().await
    }
}
