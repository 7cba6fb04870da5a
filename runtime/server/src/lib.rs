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
//! - [`credentials`]: from credentials to an identity; token checks.
//!   [`keys`]: the admin key and service keys.
//! - [`http`]: the axum router: function calls, health, the admin API.
//! - [`sync`]: live queries over WebSocket (the Convex sync protocol): the
//!   socket [`sync::worker`] and the shared [`sync::subscriptions`]; [`ws`],
//!   the endpoint that serves them.
//! - [`config`]: [`ServerConfig`], from a TOML file or flags; [`limits`]:
//!   every tunable, with its reason.
//! - [`arguments`]: call arguments, checked and normalised.
//! - [`error`]: [`Error`], classified by an [`capstan_protocol::ErrorCode`].

pub mod app;
pub mod arguments;
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
pub mod mutations;
pub mod pace;
pub mod sync;
pub mod ws;

use std::net::SocketAddr;

pub use app::{App, Caller};
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
    /// Sockets and the calls they started.
    sockets: tokio_util::task::TaskTracker,
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
        let admin_key = AdminKey::load_or_create(&{
            std::fs::create_dir_all(&config.data_dir).map_err(|e| {
                Error::config(format!("cannot create {}: {e}", config.data_dir.display()))
            })?;
            config.data_dir.clone()
        })?;
        let service_keys = ServiceKeys::load(&config.data_dir, config.clock.clone())?;
        let app = App::open(&config).await?;
        let credentials = credentials::Credentials {
            app: app.clone(),
            admin_key: admin_key.clone(),
            service_keys,
            leeway: config.auth.leeway,
            clock: config.clock.clone(),
        };
        let shutdown = CancellationToken::new();
        let (subscriptions, manager) =
            sync::Subscriptions::start(app.clone(), &config.sync, shutdown.clone());
        let sockets = tokio_util::task::TaskTracker::new();
        let router = http::router(
            http::HttpState {
                app: app.clone(),
                credentials: credentials.clone(),
                limits: config.limits.clone(),
            },
            ws::SyncState::new(sync::SocketContext {
                app: app.clone(),
                subscriptions: subscriptions.clone(),
                credentials,
                limits: config.sync.clone(),
                shutdown: shutdown.clone(),
                tasks: sockets.clone(),
            }),
        );
        let stopped = shutdown.clone();
        // Ends when `shutdown` is cancelled (Server::stop).
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(stopped.cancelled_owned())
                .await
                .map_err(|e| Error::internal(e.to_string()))
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
            sockets,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
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
