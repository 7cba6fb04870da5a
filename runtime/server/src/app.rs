//! [`App`], the facade the HTTP API and the sync protocol call: it finds
//! the function a caller may call and hands it, with a transaction or the
//! way to run other functions, to the [`Executor`]; mutations go through
//! [`Mutations`]. The deployment and its environment are [`Deployments`]'.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use capstan_host::{
    Access, Call, Failure, FunctionError, FunctionInfo, FunctionKind, FunctionPath, HostEngine,
    HttpOutcome, HttpRequest, Module, NestedCalls, Platform, Visibility,
};
use capstan_protocol::http::{ComponentStats, DeploySummary};
use capstan_protocol::{ErrorCode, FunctionFailure, Identity, JsonText, Timestamp};
use capstan_store::{ReadSet, Store};
use tokio::sync::watch;

use crate::config::ServerConfig;
use crate::data_dir::DataDir;
use crate::deployment::{AppConfig, Deployment};
use crate::deployments::Deployments;
use crate::error::Error;
use crate::executor::{Executor, Placement};
use crate::limits::ServerLimits;
use crate::metrics::Metrics;
use crate::mutations::{Mutation, Mutations, receipt_key};

/// Who is calling, and what they may reach: clients reach public functions
/// only; admin and service callers, and functions run by an action, reach
/// internal ones too.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Caller {
    pub identity: Identity,
    pub internal: bool,
    /// The client's address, when the call came from a client: with the
    /// identity, it names the caller's share of the calls running at once.
    pub client: Option<std::net::IpAddr>,
}

impl Caller {
    pub fn new(identity: Identity) -> Caller {
        Caller {
            internal: identity.is_privileged(),
            identity,
            client: None,
        }
    }

    /// The same caller, calling from `client`.
    pub fn from(self, client: std::net::IpAddr) -> Caller {
        Caller {
            client: Some(client),
            ..self
        }
    }

    /// Whose share of the calls running at once this call takes: a signed-in
    /// user's own, an anonymous client's address's; admin and service keys
    /// and the server's own calls take none.
    pub(crate) fn share(&self) -> Option<String> {
        match (&self.identity, self.client) {
            (Identity::Admin { .. } | Identity::Service { .. }, _) => None,
            (Identity::User(_), _) => Some(self.identity.caller_key()),
            (Identity::Anonymous, Some(client)) => Some(format!("ip:{client}")),
            (Identity::Anonymous, None) => None,
        }
    }

    /// A function run by an action: the action's identity, with access to
    /// internal functions.
    fn nested(&self) -> Caller {
        Caller {
            identity: self.identity.clone(),
            internal: true,
            client: self.client,
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

/// The app a server serves. Cheap to clone.
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
    limits: ServerLimits,
    store: Store,
    deployments: Deployments,
    executor: Executor,
    mutations: Mutations,
    /// Built-in auth: the issuer and the sign-in functions.
    sign_in: Arc<crate::auth::SignIn>,
    /// The scheduler, files and fetch, for functions.
    services: Arc<crate::platform::Services>,
}

/// An [`App`] that does not keep it alive: held by what the app itself
/// owns and calls back into.
#[derive(Clone, Debug)]
pub struct WeakApp(std::sync::Weak<AppInner>);

impl WeakApp {
    pub fn upgrade(&self) -> Option<App> {
        self.0.upgrade().map(|inner| App { inner })
    }
}

impl App {
    /// Opens the store and the engine, and serves the persisted deployment,
    /// if any.
    pub async fn open(
        config: &ServerConfig,
        public_url: &str,
        metrics: Metrics,
        postgres: Option<Arc<capstan_store::PostgresPersistence>>,
    ) -> Result<App, Error> {
        let data_dir = DataDir::create(&config.data_dir)?;
        let store = match postgres {
            Some(persistence) => Store::with_persistence(persistence, config.store.clone()),
            None => Store::open(&data_dir.store(), config.store.clone()),
        }
        .map_err(|e| Error::config(format!("cannot open the store: {e}")))?;
        if let Some(keys) = &config.auth_keys {
            crate::auth::signing_keys::install(data_dir.root(), keys.expose())?;
        }
        let ring = crate::auth::signing_keys::load_or_create(
            data_dir.root(),
            config.auth_algorithm,
            config.clock.unix_seconds(),
        )?;
        let issuer = capstan_auth::Issuer {
            url: public_url.trim_end_matches('/').to_owned(),
            audience: "convex".into(),
            keys: capstan_auth::IssuerKeys::new(ring).map_err(Error::config)?,
        };
        let messenger = crate::auth::messages::Messenger::new(if config.dev_outbox {
            crate::auth::messages::Fallback::DevOutbox(data_dir.root().join("dev_outbox.jsonl"))
        } else {
            crate::auth::messages::Fallback::Refuse
        });
        let sign_in = Arc::new(crate::auth::SignIn::new(
            store.clone(),
            issuer.clone(),
            config.clock.clone(),
            messenger,
            data_dir.root().to_owned(),
        ));
        let engine = HostEngine::with_seed_key(config.host.clone(), data_dir.seed_key()?)
            .map_err(Error::config)?;
        let backend: Arc<dyn capstan_files::FileBackend> = match &config.platform.s3 {
            Some(s3) => {
                let mut s3 = s3.clone();
                if s3.access_key_id.is_empty() {
                    s3.access_key_id = std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_default();
                    s3.secret_access_key =
                        std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_default();
                }
                if s3.access_key_id.is_empty() || s3.secret_access_key.is_empty() {
                    return Err(Error::config(
                        "files in S3: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                    ));
                }
                Arc::new(
                    capstan_files::S3Files::new(&s3)
                        .map_err(|e| Error::config(format!("files in S3: {e}")))?,
                )
            }
            None => Arc::new(
                capstan_files::LocalFiles::open(data_dir.files())
                    .map_err(|e| Error::config(format!("cannot open the file store: {e}")))?,
            ),
        };
        let files = crate::platform::files::Files::new(
            backend,
            data_dir.secret(crate::data_dir::FILES_KEY)?,
            public_url,
            config.platform.max_file_bytes,
        );
        let outbound = capstan_outbound::Outbound::new(config.platform.fetch.clone())
            .map_err(|e| Error::config(format!("fetch: {e}")))?;
        let services = Arc::new(crate::platform::Services::new(
            store.clone(),
            files,
            outbound,
            config.clock.clone(),
            (public_url, config.platform.max_http_body),
        ));
        let limits = &config.limits;
        let deployments = Deployments::open(
            engine,
            config.auth.clone(),
            issuer,
            config.clock.clone(),
            data_dir,
            limits,
        )
        .await?;
        let app = App {
            inner: Arc::new(AppInner {
                services,
                limits: limits.clone(),
                mutations: Mutations::new(store.clone(), limits, metrics.clone()),
                store,
                deployments,
                sign_in,
                executor: Executor::new(
                    limits,
                    config.host.max_instances,
                    config.logs_to_clients,
                    metrics,
                ),
            }),
        };
        app.inner.services.attach(app.downgrade());
        Ok(app)
    }

    pub fn downgrade(&self) -> WeakApp {
        WeakApp(Arc::downgrade(&self.inner))
    }

    /// The scheduler, files and fetch.
    pub fn services(&self) -> &Arc<crate::platform::Services> {
        &self.inner.services
    }

    fn platform(&self) -> Option<Arc<dyn Platform>> {
        Some(self.inner.services.clone())
    }
    /// Top-level calls running and waiting, and engine instances in use.
    pub fn load(&self) -> (usize, usize, usize) {
        self.inner.executor.load()
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Built-in auth: the issuer and the sign-in service.
    pub fn sign_in(&self) -> &Arc<crate::auth::SignIn> {
        &self.inner.sign_in
    }

    /// The built-in auth function at `path`, if the deployment turns
    /// built-in auth on and `path` is one: its kind.
    fn native(&self, path: &FunctionPath) -> Option<(Arc<Deployment>, FunctionKind)> {
        let kind = crate::auth::function_kind(path.as_str())?;
        let deployment = self.deployment()?;
        deployment.config.auth.built_in.as_ref()?;
        Some((deployment, kind))
    }

    /// Runs the app's function at `path` for built-in auth (a hook): as
    /// `caller`, with internal functions in reach.
    pub(crate) async fn run_hook(
        &self,
        kind: FunctionKind,
        path: &str,
        args: String,
        caller: &Caller,
    ) -> Result<FunctionResult, Error> {
        let caller = Caller {
            internal: true,
            ..caller.clone()
        };
        let path = FunctionPath::parse(path);
        Box::pin(self.run(Some(kind), &path, args, caller, None)).await
    }

    /// Runs a built-in auth function.
    async fn run_native(
        &self,
        deployment: &Deployment,
        (expected, kind): (Option<FunctionKind>, FunctionKind),
        path: &FunctionPath,
        args: &str,
        caller: &Caller,
    ) -> Result<FunctionResult, Error> {
        if let Some(expected) = expected
            && expected != kind
        {
            return Err(Error::new(
                ErrorCode::BadRequest,
                format!("{path} is a {kind}, not a {expected}"),
            ));
        }
        let Some(config) = deployment.config.auth.built_in.as_ref() else {
            return Err(Error::new(
                ErrorCode::NotFound,
                format!("Could not find public function for '{path}'"),
            ));
        };
        let environment = self.inner.deployments.environment();
        self.inner
            .sign_in
            .call(self, config, &environment, path.as_str(), args, caller)
            .await
    }

    pub fn deployment(&self) -> Option<Arc<Deployment>> {
        self.inner.deployments.current()
    }

    /// Changes each time the deployment or its environment changes.
    /// The deployments served, for reloading what another node changed.
    pub fn deployments(&self) -> &Deployments {
        &self.inner.deployments
    }

    pub fn generations(&self) -> watch::Receiver<u64> {
        self.inner.deployments.generations()
    }

    pub fn component_stats(&self) -> ComponentStats {
        self.inner.deployments.component_stats()
    }

    /// See [`Deployments::deploy`].
    pub async fn deploy(
        &self,
        components: Vec<Vec<u8>>,
        config: AppConfig,
    ) -> Result<DeploySummary, Error> {
        self.inner
            .deployments
            .deploy(&self.inner.store, components, config)
            .await
    }

    /// The deployment's environment variables, shared.
    pub fn environment(&self) -> Arc<capstan_host::Environment> {
        self.inner.deployments.environment()
    }

    pub fn environment_variables(&self) -> BTreeMap<String, String> {
        self.inner.deployments.environment_variables()
    }

    /// See [`Deployments::set_environment_variable`].
    pub async fn set_environment_variable(
        &self,
        name: &str,
        value: Option<String>,
    ) -> Result<(), Error> {
        self.inner
            .deployments
            .set_environment_variable(name, value)
            .await
    }

    /// Runs a function called from outside (HTTP or a socket). `expected`
    /// is the kind the endpoint serves.
    pub async fn call(
        &self,
        expected: Option<FunctionKind>,
        path: &FunctionPath,
        args: String,
        caller: Caller,
    ) -> Result<FunctionResult, Error> {
        let kind = match expected {
            Some(kind) => Some(kind),
            None => self.native(path).map(|(_, kind)| kind).or_else(|| {
                self.deployment()
                    .and_then(|d| d.function(path).map(|(_, info)| info.kind))
            }),
        };
        let _admitted = self.inner.executor.admit(kind, caller.share()).await?;
        self.run(expected, path, args, caller, None).await
    }

    /// Runs a function; `nesting` says where in a chain of actions it is
    /// (`None`: called from outside).
    async fn run(
        &self,
        expected: Option<FunctionKind>,
        path: &FunctionPath,
        args: String,
        caller: Caller,
        nesting: Option<Nesting>,
    ) -> Result<FunctionResult, Error> {
        if let Some((deployment, kind)) = self.native(path) {
            return self
                .run_native(&deployment, (expected, kind), path, &args, &caller)
                .await;
        }
        let (_, module, info) = self.resolve(expected, path, &caller)?;
        let deadline = nesting.map(|n| n.deadline);
        let environment = self.inner.deployments.environment();
        // A query reads a snapshot; an action has no transaction but runs
        // other functions through `Nested`. Mutations retry.
        let access = match info.kind {
            FunctionKind::Mutation => {
                let mutation = Mutation {
                    module,
                    path: path.clone(),
                    args,
                    environment,
                    identity: caller.identity,
                    deadline,
                    platform: self.platform(),
                    job: None,
                };
                return self
                    .inner
                    .mutations
                    .run(&self.inner.executor, mutation, None)
                    .await;
            }
            FunctionKind::Query => {
                self.inner
                    .store
                    .refresh()
                    .await
                    .map_err(Error::from_store)?;
                Access::Query(self.inner.store.begin())
            }
            FunctionKind::Action => {
                let nesting = match nesting {
                    Some(outer) => Nesting {
                        depth: outer.depth + 1,
                        deadline: outer.deadline,
                    },
                    None => Nesting {
                        depth: 1,
                        deadline: Instant::now() + module.limits().action_timeout,
                    },
                };
                Access::Action(Arc::new(Nested {
                    app: self.clone(),
                    runtime: tokio::runtime::Handle::current(),
                    caller: caller.nested(),
                    nesting,
                }))
            }
        };
        let call = Call {
            path: path.clone(),
            args,
            access,
            environment,
            identity: caller.identity,
            deadline,
            platform: self.platform(),
        };
        let outcome = self
            .inner
            .executor
            .run(module, call, Placement::Pool, None)
            .await?;
        Ok(FunctionResult {
            result: outcome.result,
            log_lines: outcome.log_lines,
            ts: None,
        })
    }

    /// The deployment, module and description of the function at `path`,
    /// if `caller` may call it as a function of kind `expected`.
    fn resolve(
        &self,
        expected: Option<FunctionKind>,
        path: &FunctionPath,
        caller: &Caller,
    ) -> Result<(Arc<Deployment>, Arc<Module>, FunctionInfo), Error> {
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
        if let Some((deployment, kind)) = self.native(path) {
            let run = self
                .run_native(
                    &deployment,
                    (Some(FunctionKind::Query), kind),
                    path,
                    &args,
                    &caller,
                )
                .await;
            return Ok(QueryRun {
                result: match run {
                    Ok(run) => run.result,
                    Err(e) => Err(Failure::Function {
                        message: e.public_message().to_owned(),
                        data: None,
                    }),
                },
                log_lines: Vec::new(),
                // It reads no documents: only the caller's identity.
                read_set: ReadSet::default(),
            });
        }
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
            environment: self.inner.deployments.environment(),
            identity: caller.identity,
            deadline: None,
            platform: self.platform(),
        };
        let outcome = self
            .inner
            .executor
            .run(module, call, placement, deployment.pace(path))
            .await?;
        Ok(QueryRun {
            result: outcome.result,
            log_lines: outcome.log_lines,
            read_set: outcome
                .transaction
                .map(capstan_store::Transaction::into_read_set)
                .unwrap_or_default(),
        })
    }

    /// Runs a mutation at most once per socket request `(session,
    /// request_id)`: the first run records its result in the commit that
    /// applies it; the same call again (same caller, function and
    /// arguments) returns that result and commit timestamp without running
    /// again. The caller is authorised first, and a record is found only by
    /// the call that made it. Failed runs record nothing, so running them
    /// again is harmless.
    pub async fn call_mutation_once(
        &self,
        path: &FunctionPath,
        args: String,
        caller: Caller,
        (session, request_id): (&str, u32),
    ) -> Result<FunctionResult, Error> {
        let _admitted = self
            .inner
            .executor
            .admit(Some(FunctionKind::Mutation), caller.share())
            .await?;
        let (_, module, _) = self.resolve(Some(FunctionKind::Mutation), path, &caller)?;
        let receipt = receipt_key(session, request_id, &caller.identity, path, &args);
        let mutations = &self.inner.mutations;
        let _turn = mutations.turn(&receipt).await;
        if let Some(recorded) = mutations.recorded(&receipt)? {
            return Ok(recorded);
        }
        let mutation = Mutation {
            module,
            path: path.clone(),
            args,
            environment: self.inner.deployments.environment(),
            identity: caller.identity,
            deadline: None,
            platform: self.platform(),
            job: None,
        };
        mutations
            .run(&self.inner.executor, mutation, Some(&receipt))
            .await
    }

    /// Runs the scheduled job `job` (a row of `_scheduled_functions`) of
    /// `path` with `args`: a mutation records its success in its own
    /// commit; an action runs once, marked in progress first. As an
    /// internal caller with no identity, as Convex runs them.
    pub(crate) async fn run_job(
        &self,
        kind: FunctionKind,
        path: &FunctionPath,
        args: String,
        job: capstan_store::DocumentId,
    ) -> Result<FunctionResult, Error> {
        let caller = Caller {
            identity: Identity::Anonymous,
            internal: true,
            client: None,
        };
        let _admitted = self.inner.executor.admit(Some(kind), None).await?;
        match kind {
            FunctionKind::Mutation => {
                let (_, module, _) = self.resolve(Some(kind), path, &caller)?;
                let mutation = Mutation {
                    module,
                    path: path.clone(),
                    args,
                    environment: self.inner.deployments.environment(),
                    identity: caller.identity,
                    deadline: None,
                    platform: self.platform(),
                    job: Some(job),
                };
                self.inner
                    .mutations
                    .run(&self.inner.executor, mutation, None)
                    .await
            }
            FunctionKind::Action | FunctionKind::Query => {
                self.run(Some(kind), path, args, caller, None).await
            }
        }
    }

    /// Runs the HTTP action `handler` of `module` on `request`, as
    /// `caller`: an action, which may run other functions.
    pub async fn call_http(
        &self,
        module: Arc<Module>,
        handler: &str,
        request: HttpRequest,
        caller: Caller,
    ) -> Result<HttpOutcome, Error> {
        let _admitted = self
            .inner
            .executor
            .admit(Some(FunctionKind::Action), caller.share())
            .await?;
        let nesting = Nesting {
            depth: 1,
            deadline: Instant::now() + module.limits().action_timeout,
        };
        let access = Access::Action(Arc::new(Nested {
            app: self.clone(),
            runtime: tokio::runtime::Handle::current(),
            caller: caller.nested(),
            nesting,
        }));
        let call = Call {
            path: FunctionPath::parse(handler),
            args: String::new(),
            access,
            environment: self.inner.deployments.environment(),
            identity: caller.identity,
            deadline: Some(nesting.deadline),
            platform: self.platform(),
        };
        self.inner.executor.run_http(module, call, request).await
    }

    /// Stops accepting calls and closes the store.
    pub async fn close(&self) -> Result<(), Error> {
        self.inner.executor.close();
        self.inner
            .store
            .close()
            .await
            .map_err(|e| Error::internal(e.to_string()))
    }
}

/// Where a call stands in a chain of actions calling functions.
#[derive(Clone, Copy, Debug)]
struct Nesting {
    /// Actions in the chain, the outermost included.
    depth: u32,
    /// The outermost action's deadline: no call in the chain outlives it.
    deadline: Instant,
}

/// How an action's `run_query` / `run_mutation` / `run_action` reach the app.
struct Nested {
    app: App,
    runtime: tokio::runtime::Handle,
    caller: Caller,
    /// The action's own place in its chain.
    nesting: Nesting,
}

impl NestedCalls for Nested {
    fn call(
        &self,
        kind: FunctionKind,
        path: &FunctionPath,
        args: &str,
    ) -> Result<String, FunctionError> {
        let limit = self.app.inner.limits.max_action_depth;
        if kind == FunctionKind::Action && self.nesting.depth >= limit {
            return Err(FunctionError {
                message: format!(
                    "{path} not run: actions may call actions at most {} deep",
                    limit.saturating_sub(1)
                ),
                data: None,
            });
        }
        if Instant::now() >= self.nesting.deadline {
            return Err(FunctionError {
                message: format!("{path} not run: the calling action is out of time"),
                data: None,
            });
        }
        // Called from the action's blocking thread, so blocking here is fine.
        let result = self.runtime.block_on(self.app.run(
            Some(kind),
            path,
            args.to_owned(),
            self.caller.clone(),
            Some(self.nesting),
        ));
        let failure = match result {
            Ok(FunctionResult {
                result: Ok(value), ..
            }) => return Ok(value),
            Ok(FunctionResult {
                result: Err(failure),
                ..
            }) => failure.into_public(),
            Err(e) => e.into_failure(),
        };
        Err(FunctionError {
            message: failure.message,
            data: failure.data.map(|data| data.as_str().to_owned()),
        })
    }
}
