//! [`Services`]: the server's side of the host's `Platform`: scheduling,
//! files and outbound HTTP for the functions it runs.
//!
//! A mutation's scheduling and deletes are writes in its own transaction;
//! an action's each take a transaction of their own. The host calls these
//! from the call's blocking thread, so actions block on async work here.

use std::sync::{Arc, OnceLock};

use capstan_host::{FunctionError, FunctionKind, HttpRequest, HttpResponse, Platform};
use capstan_protocol::Clock;
use capstan_store::{Store, Transaction};

use super::files::{self, Files};
use super::jobs;
use super::tables::STORAGE;
use crate::app::WeakApp;

/// What functions reach beyond the store.
pub struct Services {
    store: Store,
    pub files: Files,
    outbound: capstan_outbound::Outbound,
    clock: Clock,
    runtime: tokio::runtime::Handle,
    /// The app, to check what is scheduled; set once the app exists.
    app: OnceLock<WeakApp>,
    /// Woken when an action schedules (a mutation's jobs are seen in its
    /// commit).
    pub scheduled: Arc<tokio::sync::Notify>,
    /// The largest HTTP action request body.
    pub max_http_body: usize,
    public_url: String,
    /// What the scheduler holds and runs, for `/metrics`.
    pub scheduler_load: SchedulerLoad,
}

/// The scheduler's queue and runs, as it last saw them.
#[derive(Debug, Default)]
pub struct SchedulerLoad {
    pub pending: std::sync::atomic::AtomicUsize,
    pub running: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

fn error(message: impl Into<String>) -> FunctionError {
    FunctionError {
        message: message.into(),
        data: None,
    }
}

impl Services {
    pub fn new(
        store: Store,
        files: Files,
        outbound: capstan_outbound::Outbound,
        clock: Clock,
        (public_url, max_http_body): (&str, usize),
    ) -> Services {
        Services {
            max_http_body,
            public_url: public_url.trim_end_matches('/').to_owned(),
            scheduler_load: SchedulerLoad::default(),
            store,
            files,
            outbound,
            clock,
            runtime: tokio::runtime::Handle::current(),
            app: OnceLock::new(),
            scheduled: Arc::new(tokio::sync::Notify::new()),
        }
    }

    pub(crate) fn attach(&self, app: WeakApp) {
        let _ = self.app.set(app);
    }

    /// Where clients reach the server.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    pub fn now_ms(&self) -> f64 {
        self.clock.since_epoch().as_secs_f64() * 1000.0
    }

    /// Runs `step` in a transaction of its own and commits it, again on a
    /// conflict.
    fn transact<T>(
        &self,
        mut step: impl FnMut(&mut Transaction) -> Result<T, FunctionError>,
    ) -> Result<T, FunctionError> {
        for _ in 0..32 {
            let mut tx = self.store.begin();
            let value = step(&mut tx)?;
            match self.store.commit_blocking(tx) {
                Ok(Ok(_)) => return Ok(value),
                Ok(Err(_conflict)) => continue,
                Err(e) => return Err(error(format!("the store failed: {e}"))),
            }
        }
        Err(error("kept conflicting with other writes"))
    }

    /// Refuses to schedule what cannot run: no such function, or a query.
    fn check_schedulable(&self, path: &str) -> Result<(), FunctionError> {
        let deployment = self
            .app
            .get()
            .and_then(WeakApp::upgrade)
            .and_then(|app| app.deployment())
            .ok_or_else(|| error("no app is deployed"))?;
        match deployment.function(&capstan_protocol::FunctionPath::parse(path)) {
            Some((_, info)) if info.kind != FunctionKind::Query => Ok(()),
            Some(_) => Err(error(format!(
                "{path} is a query; schedule mutations and actions"
            ))),
            None => Err(error(format!("cannot schedule {path}: no such function"))),
        }
    }
}

impl Platform for Services {
    fn schedule(
        &self,
        transaction: Option<&mut Transaction>,
        path: &str,
        args: &str,
        at_ms: f64,
    ) -> Result<String, FunctionError> {
        self.check_schedulable(path)?;
        let id = match transaction {
            Some(tx) => jobs::add(tx, path, args, at_ms).map_err(error)?,
            None => {
                let id = self.transact(|tx| jobs::add(tx, path, args, at_ms).map_err(error))?;
                self.scheduled.notify_one();
                id
            }
        };
        Ok(id.to_string())
    }

    fn cancel(&self, transaction: Option<&mut Transaction>, id: &str) -> Result<(), FunctionError> {
        match transaction {
            Some(tx) => jobs::cancel(tx, id).map_err(error),
            None => self.transact(|tx| jobs::cancel(tx, id).map_err(error)),
        }
    }

    fn upload_url(&self) -> Result<String, FunctionError> {
        Ok(self.files.upload_url(self.now_ms()))
    }

    fn file_url(
        &self,
        transaction: Option<&mut Transaction>,
        id: &str,
    ) -> Result<Option<String>, FunctionError> {
        let exists = match transaction {
            Some(tx) => files::row(tx, id).map_err(error)?.is_some(),
            None => files::row(&mut self.store.begin(), id)
                .map_err(error)?
                .is_some(),
        };
        Ok(exists.then(|| self.files.download_url(id)))
    }

    fn delete_file(
        &self,
        transaction: Option<&mut Transaction>,
        id: &str,
    ) -> Result<(), FunctionError> {
        let delete = |tx: &mut Transaction| -> Result<Option<String>, FunctionError> {
            let Some(row) = files::row(tx, id).map_err(error)? else {
                return Err(error(format!("no file {id:?}")));
            };
            let key = files::meta(&row).map(|(key, _)| key);
            tx.delete(row.id).map_err(|e| error(e.to_string()))?;
            Ok(key)
        };
        match transaction {
            // The object goes with the sweep, once the delete commits.
            Some(tx) => delete(tx).map(|_| ()),
            None => {
                if let Some(key) = self.transact(delete)? {
                    let backend = self.files.backend.clone();
                    if let Err(e) = self.runtime.block_on(backend.delete(&key)) {
                        tracing::warn!(error = %e, "deleting a file's object failed; the sweep will");
                    }
                }
                Ok(())
            }
        }
    }

    fn store_file(
        &self,
        body: Vec<u8>,
        content_type: Option<String>,
    ) -> Result<String, FunctionError> {
        let files = self.files.clone();
        let store = self.store.clone();
        let stream: capstan_files::ByteStream = Box::pin(futures_util::stream::once(async move {
            Ok::<_, std::io::Error>(bytes::Bytes::from(body))
        }));
        self.runtime
            .block_on(async move {
                let fields = files.put(stream, content_type).await?;
                files.record(&store, fields).await
            })
            .map_err(|e| error(format!("storing the file failed: {e:?}")))
    }

    fn read_file(&self, id: &str) -> Result<Option<Vec<u8>>, FunctionError> {
        let mut tx = self.store.begin();
        if tx.catalog().table(STORAGE).is_err() {
            return Ok(None);
        }
        let Some(row) = files::row(&mut tx, id).map_err(error)? else {
            return Ok(None);
        };
        let (key, _) = files::meta(&row).ok_or_else(|| error("the file's row is broken"))?;
        let backend = self.files.backend.clone();
        self.runtime.block_on(async move {
            use futures_util::StreamExt as _;
            let Some(mut stream) = backend
                .read(&key, None)
                .await
                .map_err(|e| error(format!("reading the file failed: {e}")))?
            else {
                return Ok(None);
            };
            let mut bytes = Vec::new();
            while let Some(chunk) = stream.next().await {
                bytes.extend_from_slice(
                    &chunk.map_err(|e| error(format!("reading the file failed: {e}")))?,
                );
            }
            Ok(Some(bytes))
        })
    }

    fn fetch(&self, request: HttpRequest) -> Result<HttpResponse, FunctionError> {
        let request = capstan_outbound::Request {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body,
        };
        let outbound = self.outbound.clone();
        let response = self
            .runtime
            .block_on(async move { outbound.send(request).await })
            .map_err(|e| error(format!("fetch failed: {e}")))?;
        Ok(HttpResponse {
            status: response.status,
            headers: response.headers,
            body: response.body,
        })
    }
}
