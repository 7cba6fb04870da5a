//! The platform beyond queries and mutations: HTTP actions, outbound HTTP
//! from actions, scheduled functions, crons and file storage.
//!
//! # Layout
//! - [`services`]: [`Services`], the host's `Platform`: what a function's
//!   `ctx.scheduler()`, `ctx.storage()` and `ctx.fetch()` reach.
//! - [`jobs`]: rows of `_scheduled_functions`; [`scheduler`]: the loop
//!   that runs them when due, exactly once for mutations.
//! - [`crons`]: the apps' cron jobs, each tick a scheduled run;
//!   [`cron_schedule`]: when a job runs next.
//! - [`files`]: upload and download URLs and endpoints, `_storage` rows,
//!   the sweep of orphaned objects.
//! - [`http_actions`]: routing requests under `/http` to HTTP actions, with
//!   CORS.
//! - [`routes`]: the endpoints: `/http/…`, `/api/storage/…`, `/api/jobs`.
//! - [`tables`]: the system tables, merged into every schema.

pub mod cron_schedule;
pub mod crons;
pub mod files;
pub mod http_actions;
pub mod jobs;
pub mod routes;
pub mod scheduler;
pub mod services;
pub mod tables;

pub use services::Services;

use capstan_store::{Store, Transaction};

/// Runs `step` in a transaction and commits what it wrote (nothing, if it
/// only read), running it again at a newer snapshot on a conflict.
pub(crate) async fn transact<T>(
    store: &Store,
    mut step: impl FnMut(&mut Transaction) -> Result<T, String>,
) -> Result<T, String> {
    loop {
        let mut tx = store.begin();
        let value = step(&mut tx)?;
        if tx.is_read_only() {
            return Ok(value);
        }
        match store.commit(tx).await {
            Ok(Ok(_)) => return Ok(value),
            Ok(Err(_conflict)) => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// How the platform is bounded, from the server's configuration.
#[derive(Clone, Debug)]
pub struct PlatformConfig {
    /// Outbound HTTP from actions: time, sizes, redirects, which addresses.
    pub fetch: capstan_outbound::OutboundConfig,
    /// The largest file an upload or `store` accepts.
    pub max_file_bytes: u64,
    /// Scheduled runs at once.
    pub scheduler_concurrency: usize,
    /// The largest HTTP action request body.
    pub max_http_body: usize,
    /// Files in an S3-compatible bucket rather than the data directory;
    /// credentials left empty come from `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY`.
    pub s3: Option<capstan_files::S3Config>,
}

impl Default for PlatformConfig {
    fn default() -> Self {
        PlatformConfig {
            fetch: capstan_outbound::OutboundConfig::default(),
            max_file_bytes: 1 << 30,
            scheduler_concurrency: 16,
            max_http_body: 20 << 20,
            s3: None,
        }
    }
}
