//! The app facade: runs queries, mutations (with the one OCC retry loop) and
//! actions against the current deployment; deploys; keeps environment
//! variables.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use capstan_host::{
    Access, Call, Environment, Failure, FunctionError, FunctionKind, FunctionPath, HostEngine,
    NestedCalls, Origin, Visibility,
};
use capstan_protocol::{ErrorCode, FunctionFailure, Identity, JsonText, Timestamp};
use capstan_store::{ReadSet, Store};
use tokio::sync::{Mutex, Semaphore, watch};

use capstan_protocol::http::{ComponentStats, DeploySummary};

use crate::config::ServerConfig;
use crate::deployment::{AppConfig, Deployment, DeploymentFiles, Pace, write_synced};
use crate::error::Error;

/// How long a mutation keeps retrying on conflicts before giving up.
const RETRY_DEADLINE: Duration = Duration::from_secs(10);
/// Conflicts after which a mutation queues for its next attempts, so that a
/// hot document serves its writers in turn instead of starving some.
const CONFLICTS_BEFORE_QUEUEING: u32 = 3;
/// The longest pause between two attempts; pauses grow exponentially up to it.
const MAX_BACKOFF: Duration = Duration::from_millis(20);

/// Who is calling, and what they may reach: clients reach public functions
/// only; admin and service callers, and functions run by an action, reach
/// internal ones too.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Caller {
    pub identity: Identity,
    pub internal: bool,
}

impl Caller {
    pub fn new(identity: Identity) -> Caller {
        Caller {
            internal: identity.is_privileged(),
            identity,
        }
    }

    /// A function run by an action: the action's identity, with access to
    /// internal functions.
    fn nested(&self) -> Caller {
        Caller {
            identity: self.identity.clone(),
            internal: true,
        }
    }
}

/// A finished call.
#[derive(Debug)]
pub struct FunctionResult {
    /// Convex JSON of the value, or why there is none.
    pub result: Result<String, Failure>,
    pub log_lines: Vec<String>,
    /// For a committed mutation, its commit timestamp.
    pub ts: Option<Timestamp>,
}

/// A function's result as a client sees it: the value's text, or the
/// failure with a fault's detail left in the log.
pub fn public_result(result: Result<String, Failure>) -> Result<JsonText, FunctionFailure> {
    result
        .map(|value| JsonText::from_string(value).unwrap_or_else(|_| JsonText::null()))
        .map_err(Failure::into_public)
}

/// A query run for a subscription: its result and what it read.
#[derive(Debug)]
pub struct QueryRun {
    pub result: Result<String, Failure>,
    pub log_lines: Vec<String>,
    /// Empty when the query could not start (no such function): it then
    /// runs again only when the deployment changes.
    pub read_set: ReadSet,
}

#[derive(Clone)]
pub struct App {
    inner: Arc<AppInner>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").finish_non_exhaustive()
    }
}

struct AppInner {
    store: Store,
    engine: HostEngine,
    auth_options: capstan_auth::VerifierOptions,
    cache_dir: PathBuf,
    files: DeploymentFiles,
    env_file: PathBuf,
    deployment: RwLock<Option<Arc<Deployment>>>,
    environment: RwLock<Arc<Environment>>,
    /// Bounds concurrent top-level calls; nested calls run under their
    /// action's permit, so actions cannot starve their own children.
    calls: Semaphore,
    /// One deploy at a time.
    deploying: Mutex<()>,
    /// Mutations that conflicted repeatedly take turns here (FIFO).
    contended: Mutex<()>,
    compiled: AtomicUsize,
    loaded_from_cache: AtomicUsize,
    /// Bumped whenever what a query computes may change without a commit:
    /// a new deployment or a changed environment variable.
    generation: watch::Sender<u64>,
    /// Receipt keys of exactly-once mutations running now: a resent copy
    /// waits for the original and then finds its receipt.
    once: std::sync::Mutex<HashMap<Vec<u8>, Weak<Mutex<()>>>>,
}

impl App {
    /// Opens the store and the engine, and serves the persisted deployment,
    /// if any.
    pub async fn open(config: &ServerConfig) -> Result<App, Error> {
        let data_dir = &config.data_dir;
        std::fs::create_dir_all(data_dir)
            .map_err(|e| Error::config(format!("cannot create {}: {e}", data_dir.display())))?;
        let store = Store::open(&data_dir.join("store"), config.store.clone())
            .map_err(|e| Error::config(format!("cannot open the store: {e}")))?;
        let engine =
            HostEngine::new(config.host.clone()).map_err(|e| Error::config(e.to_string()))?;
        let env_file = data_dir.join("env.json");
        let environment: Environment = match std::fs::read(&env_file) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::config(format!("{}: {e}", env_file.display())))?,
            Err(_) => Environment::new(),
        };
        let app = App {
            inner: Arc::new(AppInner {
                store,
                engine,
                auth_options: config.auth.clone(),
                cache_dir: data_dir.join("compiled"),
                files: DeploymentFiles::new(data_dir),
                env_file,
                deployment: RwLock::new(None),
                environment: RwLock::new(Arc::new(environment)),
                calls: Semaphore::new(config.max_concurrent_calls.max(1)),
                deploying: Mutex::new(()),
                contended: Mutex::new(()),
                compiled: AtomicUsize::new(0),
                loaded_from_cache: AtomicUsize::new(0),
                generation: watch::Sender::new(0),
                once: std::sync::Mutex::new(HashMap::new()),
            }),
        };
        if let Some(persisted) = app.inner.files.load()? {
            let (deployment, origins) = app.build(persisted.components, persisted.config).await?;
            app.count(&origins);
            tracing::info!(deployment = %deployment.id, "serving the persisted deployment");
            *app.inner
                .deployment
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(deployment));
        }
        Ok(app)
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Changes each time the deployment or its environment changes.
    pub fn generations(&self) -> watch::Receiver<u64> {
        self.inner.generation.subscribe()
    }

    fn bump_generation(&self) {
        self.inner.generation.send_modify(|g| *g += 1);
    }

    pub fn component_stats(&self) -> ComponentStats {
        ComponentStats {
            compiled: self.inner.compiled.load(Ordering::Relaxed),
            loaded_from_cache: self.inner.loaded_from_cache.load(Ordering::Relaxed),
        }
    }

    pub fn deployment(&self) -> Option<Arc<Deployment>> {
        self.inner
            .deployment
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn environment(&self) -> Arc<Environment> {
        self.inner
            .environment
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn count(&self, origins: &[Origin]) {
        for origin in origins {
            match origin {
                Origin::Compiled => self.inner.compiled.fetch_add(1, Ordering::Relaxed),
                Origin::Cached => self.inner.loaded_from_cache.fetch_add(1, Ordering::Relaxed),
            };
        }
    }

    async fn build(
        &self,
        components: Vec<Vec<u8>>,
        config: AppConfig,
    ) -> Result<(Deployment, Vec<Origin>), Error> {
        let engine = self.inner.engine.clone();
        let cache_dir = self.inner.cache_dir.clone();
        let auth_options = self.inner.auth_options.clone();
        let (mut deployment, origins) = tokio::task::spawn_blocking(move || {
            Deployment::build(&engine, &components, config, &cache_dir, &auth_options)
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))??;
        // The same providers keep their cached keys across deploys.
        if let Some(current) = self.deployment()
            && current.config.auth == deployment.config.auth
        {
            deployment.verifier = current.verifier.clone();
        }
        Ok((deployment, origins))
    }

    /// The clock leeway allowed around a user token's `exp`.
    pub fn token_leeway(&self) -> Duration {
        self.inner.auth_options.leeway
    }

    /// The identity a user token proves, checked against the deployed
    /// app's auth providers.
    pub async fn verify_user_token(&self, token: &str) -> Result<Identity, Error> {
        let refuse = |reason: &dyn std::fmt::Display| {
            Error::new(
                ErrorCode::Unauthorized,
                format!("Could not verify token: {reason}"),
            )
        };
        let Some(deployment) = self.deployment() else {
            return Err(refuse(
                &"No auth provider found matching the given token: no app is deployed",
            ));
        };
        if deployment.verifier.is_empty() {
            return Err(refuse(
                &"No auth provider found matching the given token: the app's auth config has no providers",
            ));
        }
        deployment
            .verifier
            .verify(token)
            .await
            .map(|user| Identity::User(Arc::new(user)))
            .map_err(|e| refuse(&e))
    }

    /// Compiles and checks everything, applies the schema, persists, and then
    /// switches atomically. A deploy that fails at any step changes nothing.
    pub async fn deploy(
        &self,
        components: Vec<Vec<u8>>,
        config: AppConfig,
    ) -> Result<DeploySummary, Error> {
        let _one_at_a_time = self.inner.deploying.lock().await;
        let (deployment, origins) = self.build(components.clone(), config.clone()).await?;
        self.inner.files.stage(&components, &config)?;
        let change = match self
            .inner
            .store
            .apply_schema(deployment.schema.clone())
            .await
        {
            Ok(change) => change,
            Err(e) => {
                self.inner.files.discard();
                return Err(Error::new(
                    ErrorCode::BadDeploy,
                    format!("the schema cannot be applied: {e}"),
                ));
            }
        };
        self.inner.files.commit()?;
        self.count(&origins);
        let summary = DeploySummary {
            deployment: deployment.id.clone(),
            functions: deployment.functions().count(),
            compiled: origins.iter().filter(|o| **o == Origin::Compiled).count(),
            loaded_from_cache: origins.iter().filter(|o| **o == Origin::Cached).count(),
            tables_added: change.tables_added,
            indexes_added: change.indexes_added,
            indexes_removed: change.indexes_removed,
        };
        tracing::info!(deployment = %deployment.id, functions = summary.functions, "deployed");
        *self
            .inner
            .deployment
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(deployment));
        self.bump_generation();
        Ok(summary)
    }

    /// Runs a function called from outside (HTTP, and later WebSocket).
    /// `expected` is the kind the endpoint serves.
    pub async fn call(
        &self,
        expected: Option<FunctionKind>,
        path: &FunctionPath,
        args: String,
        caller: Caller,
    ) -> Result<FunctionResult, Error> {
        let _permit = self.permit().await?;
        self.run(expected, path, args, caller).await
    }

    async fn run(
        &self,
        expected: Option<FunctionKind>,
        path: &FunctionPath,
        args: String,
        caller: Caller,
    ) -> Result<FunctionResult, Error> {
        let (_, module, info) = self.resolve(expected, path, &caller)?;
        let environment = self.environment();
        // A query reads a snapshot; an action has no transaction but runs
        // other functions through `Nested`. Mutations retry, below.
        let access = match info.kind {
            FunctionKind::Mutation => {
                return self
                    .run_mutation(module, path, args, environment, caller.identity, None)
                    .await;
            }
            FunctionKind::Query => Access::Query(self.inner.store.begin()),
            FunctionKind::Action => Access::Action(Arc::new(Nested {
                app: self.clone(),
                runtime: tokio::runtime::Handle::current(),
                caller: caller.nested(),
            })),
        };
        let call = Call {
            path: path.clone(),
            args,
            access,
            environment,
            identity: caller.identity,
        };
        let outcome = run_blocking(module, call).await?;
        Ok(FunctionResult {
            result: outcome.result,
            log_lines: outcome.log_lines,
            ts: None,
        })
    }

    /// A place among the top-level calls running at once.
    async fn permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, Error> {
        self.inner
            .calls
            .acquire()
            .await
            .map_err(|_| Error::new(ErrorCode::Unavailable, "the server is shutting down"))
    }

    /// The deployment, module and description of the function at `path`,
    /// if `caller` may call it as a function of kind `expected`.
    fn resolve(
        &self,
        expected: Option<FunctionKind>,
        path: &FunctionPath,
        caller: &Caller,
    ) -> Result<
        (
            Arc<Deployment>,
            Arc<capstan_host::Module>,
            capstan_host::FunctionInfo,
        ),
        Error,
    > {
        let deployment = self.deployment().ok_or_else(|| {
            Error::new(
                ErrorCode::NotFound,
                "no app is deployed yet; run `capstan deploy`",
            )
        })?;
        let (module, info) = match deployment.function(path) {
            Some((module, info)) if info.visibility == Visibility::Public || caller.internal => {
                (module.clone(), info.clone())
            }
            _ => {
                return Err(Error::new(
                    ErrorCode::NotFound,
                    format!("Could not find public function for '{path}'"),
                ));
            }
        };
        if let Some(expected) = expected
            && expected != info.kind
        {
            return Err(Error::new(
                ErrorCode::BadRequest,
                format!("{path} is a {}, not a {expected}", info.kind),
            ));
        }
        Ok((deployment, module, info))
    }

    /// Runs the query at `path` at snapshot `ts`, keeping what it read.
    /// A function that cannot be called is a failed run, not an error: a
    /// subscription to it reports the failure and waits for a deploy.
    pub async fn query_at(
        &self,
        path: &FunctionPath,
        args: String,
        ts: Timestamp,
        caller: Caller,
        placement: Placement,
    ) -> Result<QueryRun, Error> {
        let (deployment, module) = match self.resolve(Some(FunctionKind::Query), path, &caller) {
            Ok((deployment, module, _)) => (deployment, module),
            Err(e) if matches!(e.code(), ErrorCode::NotFound | ErrorCode::BadRequest) => {
                return Ok(QueryRun {
                    result: Err(Failure::Function {
                        message: e.public_message().to_owned(),
                        data: None,
                    }),
                    log_lines: Vec::new(),
                    read_set: ReadSet::default(),
                });
            }
            Err(e) => return Err(e),
        };
        let transaction = self
            .inner
            .store
            .begin_at(ts)
            .map_err(|e| Error::internal(format!("cannot read at {ts:?}: {e}")))?;
        let call = Call {
            path: path.clone(),
            args,
            access: Access::Query(transaction),
            environment: self.environment(),
            identity: caller.identity,
        };
        let outcome = match placement {
            Placement::InPlace => {
                let pace = deployment.pace(path);
                let began = std::time::Instant::now();
                let outcome = run_in_place(module, call, pace.is_some_and(Pace::quick)).await?;
                if let Some(pace) = pace {
                    pace.record(began.elapsed());
                }
                outcome
            }
            Placement::Pool => run_blocking(module, call).await?,
        };
        Ok(QueryRun {
            result: outcome.result,
            log_lines: outcome.log_lines,
            read_set: outcome
                .transaction
                .map(capstan_store::Transaction::into_read_set)
                .unwrap_or_default(),
        })
    }

    /// Runs a mutation at most once per `receipt` key: the first run records
    /// its result in the commit that applies it; a later call with the same
    /// key returns that result and commit timestamp without running again.
    /// Failed runs record nothing, so running them again is harmless.
    pub async fn call_mutation_once(
        &self,
        path: &FunctionPath,
        args: String,
        caller: Caller,
        receipt: Vec<u8>,
    ) -> Result<FunctionResult, Error> {
        let _permit = self.permit().await?;
        let running = {
            let mut once = self
                .inner
                .once
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if once.len() > 4096 {
                once.retain(|_, running| running.strong_count() > 0);
            }
            match once.get(&receipt).and_then(Weak::upgrade) {
                Some(running) => running,
                None => {
                    let running = Arc::new(Mutex::new(()));
                    once.insert(receipt.clone(), Arc::downgrade(&running));
                    running
                }
            }
        };
        let _turn = running.lock().await;
        let recorded = self
            .inner
            .store
            .receipt(&receipt)
            .map_err(|e| Error::internal(format!("cannot read a mutation receipt: {e}")))?;
        if let Some((ts, payload)) = recorded {
            let receipt: Receipt = serde_json::from_slice(&payload)
                .map_err(|e| Error::internal(format!("a corrupt mutation receipt: {e}")))?;
            return Ok(FunctionResult {
                result: Ok(receipt.value),
                log_lines: receipt.log_lines,
                ts: Some(ts),
            });
        }
        let (_, module, _) = self.resolve(Some(FunctionKind::Mutation), path, &caller)?;
        self.run_mutation(
            module,
            path,
            args,
            self.environment(),
            caller.identity,
            Some(&receipt),
        )
        .await
    }

    /// The OCC retry loop: run, commit, and on a conflict run again at a
    /// newer snapshot, after a randomised backoff or, once contended, in turn.
    async fn run_mutation(
        &self,
        module: Arc<capstan_host::Module>,
        path: &FunctionPath,
        args: String,
        environment: Arc<Environment>,
        identity: Identity,
        receipt: Option<&[u8]>,
    ) -> Result<FunctionResult, Error> {
        let started = std::time::Instant::now();
        let mut queued = None;
        let mut attempt: u32 = 0;
        loop {
            if attempt == CONFLICTS_BEFORE_QUEUEING && queued.is_none() {
                queued = Some(self.inner.contended.lock().await);
            }
            let call = Call {
                path: path.clone(),
                args: args.clone(),
                access: Access::Mutation(self.inner.store.begin()),
                environment: environment.clone(),
                identity: identity.clone(),
            };
            let mut outcome = run_blocking(module.clone(), call).await?;
            let transaction = outcome.transaction.take();
            if outcome.result.is_err() {
                return Ok(FunctionResult {
                    result: outcome.result,
                    log_lines: outcome.log_lines,
                    ts: None,
                });
            }
            let Some(mut transaction) = transaction else {
                return Err(Error::internal("a mutation lost its transaction"));
            };
            if let (Some(key), Ok(value)) = (receipt, &outcome.result) {
                let payload = serde_json::to_vec(&Receipt {
                    value: value.clone(),
                    log_lines: outcome.log_lines.clone(),
                })
                .map_err(|e| Error::internal(e.to_string()))?;
                transaction.record_receipt(key, payload);
            }
            match self.inner.store.commit(transaction).await {
                Ok(Ok(ts)) => {
                    return Ok(FunctionResult {
                        result: outcome.result,
                        log_lines: outcome.log_lines,
                        ts: Some(ts),
                    });
                }
                Ok(Err(conflict)) => {
                    tracing::debug!(%path, attempt, %conflict, "mutation conflicted; retrying");
                    attempt += 1;
                    if started.elapsed() > RETRY_DEADLINE {
                        return Ok(FunctionResult {
                            result: Err(Failure::Function {
                                message: format!(
                                    "{path} kept conflicting with concurrent writes and gave up after {attempt} attempts: {conflict}"
                                ),
                                data: None,
                            }),
                            log_lines: Vec::new(),
                            ts: None,
                        });
                    }
                    if queued.is_none() {
                        // Exponential backoff with full jitter spreads
                        // contending writers out.
                        let ceiling =
                            Duration::from_micros(100 << attempt.min(16)).min(MAX_BACKOFF);
                        tokio::time::sleep(ceiling.mul_f64(rand::random::<f64>())).await;
                    }
                }
                Err(e) => return Err(Error::internal(format!("commit failed: {e}"))),
            }
        }
    }

    pub fn environment_variables(&self) -> BTreeMap<String, String> {
        (*self.environment()).clone()
    }

    /// Sets (`Some`) or removes (`None`) a deployment environment variable,
    /// persisted before it takes effect.
    pub async fn set_environment_variable(
        &self,
        name: &str,
        value: Option<String>,
    ) -> Result<(), Error> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(Error::new(
                ErrorCode::BadRequest,
                format!(
                    "{name:?} is not a valid variable name: letters, digits and underscores, starting with a letter, at most 64"
                ),
            ));
        }
        if value.as_ref().is_some_and(|v| v.len() > 8192) {
            return Err(Error::new(
                ErrorCode::BadRequest,
                "values are at most 8 KiB",
            ));
        }
        let _one_at_a_time = self.inner.deploying.lock().await;
        let mut variables = self.environment_variables();
        match value {
            Some(value) => variables.insert(name.to_owned(), value),
            None => variables.remove(name),
        };
        let bytes = serde_json::to_vec(&variables).map_err(|e| Error::internal(e.to_string()))?;
        let temporary = self.inner.env_file.with_extension("tmp");
        write_synced(&temporary, &bytes)?;
        std::fs::rename(&temporary, &self.inner.env_file)
            .map_err(|e| Error::internal(e.to_string()))?;
        *self
            .inner
            .environment
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(variables);
        self.bump_generation();
        Ok(())
    }

    /// Stops accepting calls and closes the store.
    pub async fn close(&self) -> Result<(), Error> {
        self.inner.calls.close();
        self.inner
            .store
            .close()
            .await
            .map_err(|e| Error::internal(e.to_string()))
    }
}

/// What an exactly-once mutation recorded: its result and log lines.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Receipt {
    /// Convex JSON text.
    value: String,
    log_lines: Vec<String>,
}

/// Where a query's guest code runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// On the calling thread, for a single call whose latency someone waits
    /// on (a subscription's first result): no hand-off and wake-up on the
    /// way back. A function whose recent runs were all quick
    /// ([`crate::deployment::Pace`]) runs there directly; any other first
    /// hands the thread's other tasks to another thread.
    InPlace,
    /// On the blocking pool: for calls that run side by side.
    Pool,
}

/// Runs `call` on this thread: directly when it is known to be `quick`,
/// otherwise after handing the worker's other tasks to another thread. Off
/// a multi-threaded runtime, on the blocking pool.
async fn run_in_place(
    module: Arc<capstan_host::Module>,
    call: Call,
    quick: bool,
) -> Result<capstan_host::Outcome, Error> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    if Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread {
        // A panic stays this call's failure, as it would on the pool, and
        // does not unwind into the task that asked.
        let run = std::panic::AssertUnwindSafe(|| module.run(call));
        let outcome = if quick {
            std::panic::catch_unwind(run)
        } else {
            tokio::task::block_in_place(|| std::panic::catch_unwind(run))
        };
        outcome.map_err(|_| Error::internal("function runner failed: it panicked"))
    } else {
        run_blocking(module, call).await
    }
}

/// Guest code is synchronous and CPU-bound: it runs on the blocking pool.
async fn run_blocking(
    module: Arc<capstan_host::Module>,
    call: Call,
) -> Result<capstan_host::Outcome, Error> {
    tokio::task::spawn_blocking(move || module.run(call))
        .await
        .map_err(|e| Error::internal(format!("function runner failed: {e}")))
}

/// How an action's `run_query` / `run_mutation` / `run_action` reach the app.
struct Nested {
    app: App,
    runtime: tokio::runtime::Handle,
    caller: Caller,
}

impl NestedCalls for Nested {
    fn call(
        &self,
        kind: FunctionKind,
        path: &FunctionPath,
        args: &str,
    ) -> Result<String, FunctionError> {
        // Called from the action's blocking thread, so blocking here is fine.
        let result = self.runtime.block_on(self.app.run(
            Some(kind),
            path,
            args.to_owned(),
            self.caller.clone(),
        ));
        match result {
            Ok(FunctionResult {
                result: Ok(value), ..
            }) => Ok(value),
            Ok(FunctionResult {
                result: Err(Failure::Function { message, data }),
                ..
            }) => Err(FunctionError { message, data }),
            Ok(FunctionResult {
                result: Err(failure),
                ..
            }) => Err(FunctionError {
                message: failure.to_string(),
                data: None,
            }),
            Err(e) => Err(FunctionError {
                message: e.to_string(),
                data: None,
            }),
        }
    }
}
