//! Running one function call in a fresh, bounded `Store`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use capstan_protocol::{FunctionInfo, FunctionKind, FunctionPath, Identity, Value, Visibility};
use capstan_store::Transaction;
use rand_wasi::SeedableRng;
use wasmtime::component::Component;
use wasmtime::{Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtxBuilder};

use crate::bindings::AppPre;
use crate::bindings::capstan::runtime::types;
use crate::cache::{self, Origin};
use crate::capabilities::Access;
use crate::capabilities::db::InternalFault;
use crate::capabilities::log::LogLines;
use crate::capabilities::platform::{HttpRequest, HttpResponse, Platform};
use crate::engine::HostEngine;
use crate::error::{Error, Failure, Result};
use crate::limiter::{MemoryLimitExceeded, MemoryLimiter};
use crate::limits::EPOCH_TICK;
use crate::state::{CallState, Context, Environment, Reach};

/// One call to make.
pub struct Call {
    pub path: FunctionPath,
    /// The arguments object, as Convex JSON text.
    pub args: String,
    /// What the call may reach, by the kind of the function: it must be
    /// the kind the function is.
    pub access: Access,
    pub environment: Arc<Environment>,
    /// Who is calling.
    pub identity: Identity,
    /// When a nested call must end by (its outermost action's deadline),
    /// if sooner than its kind's time limit.
    pub deadline: Option<std::time::Instant>,
    /// The scheduler, files and fetch.
    pub platform: Option<Arc<dyn Platform>>,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The clock and random seed of a query or mutation.
struct Determinism {
    now: Duration,
    /// `None`: the operating system's generator.
    seed: Option<[u8; 32]>,
}

/// What a call produced.
pub struct Outcome {
    /// The result as Convex JSON text.
    pub result: Result<String, Failure>,
    pub log_lines: Vec<String>,
    /// The transaction, given back for commit (mutations) or dropping.
    pub transaction: Option<Transaction>,
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outcome")
            .field("result", &self.result)
            .field("log_lines", &self.log_lines)
            .finish_non_exhaustive()
    }
}

/// What an HTTP action produced.
#[derive(Debug)]
pub struct HttpOutcome {
    pub result: Result<HttpResponse, Failure>,
    pub log_lines: Vec<String>,
}

/// An HTTP action's route, as the component declares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// `GET`, `POST`, …, or `*` for any method.
    pub method: String,
    pub path: String,
    /// Whether `path` is a prefix: every path under it matches.
    pub prefix: bool,
    /// The HTTP action, `module:function`.
    pub handler: String,
    /// CORS settings as JSON, if browsers may call the route.
    pub cors: Option<String>,
}

/// A deployed component, ready to instantiate: compiled once, linked once,
/// described once.
pub struct Module {
    engine: HostEngine,
    pre: AppPre<CallState>,
    functions: BTreeMap<FunctionPath, FunctionInfo>,
    schema: capstan_store::Schema,
    routes: Vec<Route>,
    /// The cron jobs, as the component describes them (JSON).
    crons: String,
    digest: String,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("digest", &self.digest)
            .field("functions", &self.functions.len())
            .finish_non_exhaustive()
    }
}

/// The clock a deterministic function sees: always the transaction's time.
struct FixedWallClock(Duration);

impl HostWallClock for FixedWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn now(&self) -> Duration {
        self.0
    }
}

struct FixedMonotonicClock;

impl HostMonotonicClock for FixedMonotonicClock {
    fn resolution(&self) -> u64 {
        1_000_000
    }

    fn now(&self) -> u64 {
        0
    }
}

impl Module {
    /// Compiles (or loads from `cache_dir`) a component, links it against the
    /// host's capabilities, and reads its function list and schema.
    pub fn load(
        engine: &HostEngine,
        bytes: &[u8],
        cache_dir: Option<&std::path::Path>,
    ) -> Result<(Module, Origin)> {
        let (component, origin) = cache::load(engine.engine(), bytes, cache_dir)?;
        let module = Module::link(engine, &component, cache::digest(bytes))?;
        Ok((module, origin))
    }

    fn link(engine: &HostEngine, component: &Component, digest: String) -> Result<Module> {
        let instance_pre = engine
            .linker()
            .instantiate_pre(component)
            .map_err(|e| Error::Link(format!("{e:#}")))?;
        let pre = AppPre::new(instance_pre).map_err(|e| Error::Link(format!("{e:#}")))?;
        let mut module = Module {
            engine: engine.clone(),
            pre,
            functions: BTreeMap::new(),
            schema: capstan_store::Schema::default(),
            routes: Vec::new(),
            crons: "[]".into(),
            digest,
        };
        module.inspect()?;
        Ok(module)
    }

    /// Asks the component for its functions and schema, and checks them.
    fn inspect(&mut self) -> Result<()> {
        let mut store = self.store(
            Reach::Nothing,
            Duration::from_secs(60),
            Context {
                environment: Arc::default(),
                identity: Identity::Anonymous,
                platform: None,
            },
            None,
        );
        let app = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| Error::Inspect(format!("{e:#}")))?;
        let guest = app.capstan_runtime_guest();
        let specs = guest
            .call_functions(&mut store)
            .map_err(|e| Error::Inspect(format!("{e:#}")))?;
        let schema = guest
            .call_schema(&mut store)
            .map_err(|e| Error::Inspect(format!("{e:#}")))?;
        let routes = guest
            .call_routes(&mut store)
            .map_err(|e| Error::Inspect(format!("{e:#}")))?;
        self.crons = guest
            .call_crons(&mut store)
            .map_err(|e| Error::Inspect(format!("{e:#}")))?;
        self.routes = routes
            .into_iter()
            .map(|route| Route {
                method: route.method,
                path: route.path,
                prefix: route.prefix,
                handler: route.handler,
                cors: route.cors,
            })
            .collect();
        for spec in specs {
            let path = FunctionPath::parse(&spec.path);
            if path.module().is_empty() || path.function().is_empty() || path != spec.path.as_str()
            {
                return Err(Error::InvalidFunctions(format!(
                    "{:?} is not a `module:function` path; define functions inside a module of the app crate",
                    spec.path
                )));
            }
            let info = FunctionInfo {
                path: path.clone(),
                kind: match spec.kind {
                    types::FunctionKind::Query => FunctionKind::Query,
                    types::FunctionKind::Mutation => FunctionKind::Mutation,
                    types::FunctionKind::Action => FunctionKind::Action,
                },
                visibility: match spec.visibility {
                    types::Visibility::Public => Visibility::Public,
                    types::Visibility::Internal => Visibility::Internal,
                },
            };
            if self.functions.insert(path, info).is_some() {
                return Err(Error::InvalidFunctions(format!(
                    "{:?} is defined twice",
                    spec.path
                )));
            }
        }
        let schema: capstan_store::Schema =
            serde_json::from_str(&schema).map_err(|e| Error::InvalidSchema(e.to_string()))?;
        schema
            .validate()
            .map_err(|e| Error::InvalidSchema(e.to_string()))?;
        if let Some(table) = schema.tables.keys().find(|name| name.starts_with('_')) {
            return Err(Error::InvalidSchema(format!(
                "table name {table:?} starts with '_', which is kept for system tables"
            )));
        }
        self.schema = schema;
        Ok(())
    }

    pub fn functions(&self) -> &BTreeMap<FunctionPath, FunctionInfo> {
        &self.functions
    }

    pub fn function(&self, path: &str) -> Option<&FunctionInfo> {
        self.functions.get(path)
    }

    pub fn schema(&self) -> &capstan_store::Schema {
        &self.schema
    }

    /// The HTTP actions' routes.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The cron jobs, as JSON: `[{"name", "schedule", "function", "args"}]`.
    pub fn crons(&self) -> &str {
        &self.crons
    }

    /// The bounds its calls run under.
    pub fn limits(&self) -> &crate::HostLimits {
        self.engine.limits()
    }

    /// SHA-256 of the component's bytes.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    fn store(
        &self,
        reach: Reach,
        timeout: Duration,
        context: Context,
        determinism: Option<Determinism>,
    ) -> Store<CallState> {
        let limits = self.engine.limits();
        let stdout = MemoryOutputPipe::new(limits.max_output);
        let stderr = MemoryOutputPipe::new(limits.max_output);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(stdout.clone()).stderr(stderr.clone());
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if let Some(Determinism { now, seed }) = determinism {
            wasi.wall_clock(FixedWallClock(now))
                .monotonic_clock(FixedMonotonicClock);
            if let Some(seed) = seed {
                let mut insecure = seed;
                insecure[0] ^= 1;
                let insecure_seed = u128::from_le_bytes(seed[16..].try_into().unwrap_or_default());
                wasi.secure_random(rand_wasi::rngs::StdRng::from_seed(seed))
                    .insecure_random(rand_wasi::rngs::StdRng::from_seed(insecure))
                    .insecure_random_seed(insecure_seed);
            }
        }
        let logs = LogLines::new(stdout, stderr, limits.max_log_lines, limits.max_log_line);
        let state = CallState::new(
            wasi.build(),
            MemoryLimiter::new(limits.memory),
            reach,
            context,
            logs,
            limits.clone(),
        );
        let mut store = Store::new(self.engine.engine(), state);
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(ticks(timeout));
        store.epoch_deadline_trap();
        store
    }

    /// Runs one call. A query is deterministic: its clock reads its
    /// snapshot's time and its randomness is derived (under the engine's
    /// [`SeedKey`](crate::SeedKey)) from the path, the arguments, the
    /// snapshot and the caller, so the same call at the same snapshot by
    /// the same caller returns the same result. A mutation's clock reads its
    /// transaction's time; mutations and actions draw real randomness.
    pub fn run(&self, call: Call) -> Outcome {
        let limits = self.engine.limits();
        let refuse = |call: Call, failure| Outcome {
            result: Err(failure),
            log_lines: Vec::new(),
            transaction: call.access.into_transaction(),
        };
        let Some(info) = self.functions.get(&call.path) else {
            let message = format!("could not find function {:?}", call.path.as_str());
            return refuse(
                call,
                Failure::Function {
                    message,
                    data: None,
                },
            );
        };
        let kind = info.kind;
        if call.access.kind() != kind {
            let reason = format!(
                "{} is a {kind}, called as a {}",
                call.path,
                call.access.kind()
            );
            return refuse(call, Failure::Internal(reason));
        }
        if call.args.len() > limits.max_args {
            let failure = Failure::ArgumentsTooLarge {
                size: call.args.len(),
                limit: limits.max_args,
            };
            return refuse(call, failure);
        }
        // A query's clock is its snapshot's time and its randomness is
        // derived from the deployment's seed key, its inputs and its caller,
        // so re-running it at the same snapshot (as subscriptions do) gives
        // the same result, which nobody without the key can predict. A
        // mutation's clock is its transaction's time (also its inserts'
        // `_creationTime`); its randomness, like an action's, is the
        // operating system's, as a token it makes must be.
        let determinism = match &call.access {
            Access::Query(transaction) => {
                let snapshot = transaction.snapshot_ts();
                let caller = call.identity.caller_key();
                let seed = self.engine.seed_key().seed(&[
                    call.path.as_str().as_bytes(),
                    call.args.as_bytes(),
                    &snapshot.nanos().to_le_bytes(),
                    caller.as_bytes(),
                ]);
                Some(Determinism {
                    now: Duration::from_nanos(snapshot.nanos()),
                    seed: Some(seed),
                })
            }
            Access::Mutation(transaction) => Some(Determinism {
                now: Duration::from_secs_f64(transaction.now_ms() / 1000.0),
                seed: None,
            }),
            Access::Action(_) => None,
        };
        let mut timeout = match kind {
            FunctionKind::Query => limits.query_timeout,
            FunctionKind::Mutation => limits.mutation_timeout,
            FunctionKind::Action => limits.action_timeout,
        };
        if let Some(deadline) = call.deadline {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                let limit_ms = timeout.as_millis();
                return refuse(call, Failure::TimedOut { limit_ms });
            }
            timeout = timeout.min(left);
        }
        let max_result = limits.max_result;
        let (result, log_lines, transaction) =
            self.invoke(call, timeout, determinism, |app, store, path, args| {
                app.capstan_runtime_guest().call_invoke(store, path, args)
            });
        Outcome {
            result: result.and_then(|json| check_result(json, max_result)),
            log_lines,
            transaction,
        }
    }

    /// Runs the HTTP action `call.path` on `request`: an action, with the
    /// real clock and `call.access` to run other functions.
    pub fn run_http(&self, call: Call, request: HttpRequest) -> HttpOutcome {
        let refuse = |failure| HttpOutcome {
            result: Err(failure),
            log_lines: Vec::new(),
        };
        if !self
            .routes
            .iter()
            .any(|route| route.handler == call.path.as_str())
        {
            let message = format!("could not find HTTP action {:?}", call.path.as_str());
            return refuse(Failure::Function {
                message,
                data: None,
            });
        }
        if call.access.kind() != FunctionKind::Action {
            return refuse(Failure::Internal(format!(
                "{} is an HTTP action, called as a {}",
                call.path,
                call.access.kind()
            )));
        }
        let limits = self.engine.limits();
        let max_body = limits.max_http_body;
        let mut timeout = limits.action_timeout;
        if let Some(deadline) = call.deadline {
            timeout = timeout.min(deadline.saturating_duration_since(std::time::Instant::now()));
        }
        let request = request.into();
        let (result, log_lines, _) =
            self.invoke(call, timeout, None, move |app, store, path, _| {
                app.capstan_runtime_guest()
                    .call_invoke_http(store, path, &request)
            });
        let result = result.and_then(|response| {
            let response = HttpResponse::from(response);
            if response.body.len() > max_body {
                return Err(Failure::ResultTooLarge {
                    size: response.body.len(),
                    limit: max_body,
                });
            }
            if !(100..=999).contains(&response.status) {
                return Err(Failure::InvalidResult(format!(
                    "{} is not an HTTP status",
                    response.status
                )));
            }
            Ok(response)
        });
        HttpOutcome { result, log_lines }
    }

    /// Instantiates the component in a fresh store for `call` and runs
    /// `invoke` on it; classifies a trap.
    fn invoke<T>(
        &self,
        call: Call,
        timeout: Duration,
        determinism: Option<Determinism>,
        invoke: impl FnOnce(
            &crate::bindings::App,
            &mut Store<CallState>,
            &str,
            &String,
        ) -> wasmtime::Result<Result<T, types::FunctionError>>,
    ) -> (Result<T, Failure>, Vec<String>, Option<Transaction>) {
        let memory = self.engine.limits().memory;
        let mut store = self.store(
            Reach::Call(call.access),
            timeout,
            Context {
                environment: call.environment,
                identity: call.identity,
                platform: call.platform,
            },
            determinism,
        );
        let result = self
            .pre
            .instantiate(&mut store)
            .and_then(|app| invoke(&app, &mut store, call.path.as_str(), &call.args));
        let state = store.into_data();
        let result = match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(Failure::Function {
                message: error.message,
                data: error.data,
            }),
            Err(trap) => Err(classify(&trap, &state, timeout, memory)),
        };
        let transaction = match state.reach {
            Reach::Call(access) => access.into_transaction(),
            Reach::Nothing => None,
        };
        (result, state.logs.finish(), transaction)
    }
}

impl Module {
    /// Instantiates and invokes with nothing of Capstan around the call: a
    /// default WASI context, no limits, no transaction, no log capture. For
    /// benchmarks, as the baseline [`Module::run`] is measured against.
    #[doc(hidden)]
    pub fn run_bare(&self, path: &str, args: &str) -> Result<String, String> {
        let logs = LogLines::new(MemoryOutputPipe::new(1), MemoryOutputPipe::new(1), 0, 0);
        let state = CallState::new(
            WasiCtxBuilder::new().build(),
            MemoryLimiter::new(usize::MAX),
            Reach::Nothing,
            Context {
                environment: Arc::default(),
                identity: Identity::Anonymous,
                platform: None,
            },
            logs,
            self.engine.limits().clone(),
        );
        let mut store = Store::new(self.engine.engine(), state);
        store.set_epoch_deadline(u64::MAX / 2);
        let args = args.to_owned();
        if path.is_empty() {
            // Instantiation alone, to tell its cost from the call's.
            return self
                .pre
                .instantiate(&mut store)
                .map(|_| String::new())
                .map_err(|e| e.to_string());
        }
        self.pre
            .instantiate(&mut store)
            .and_then(|app| {
                app.capstan_runtime_guest()
                    .call_invoke(&mut store, path, &args)
            })
            .map_err(|e| e.to_string())?
            .map_err(|e| e.message)
    }
}

fn ticks(timeout: Duration) -> u64 {
    (timeout.as_nanos() / EPOCH_TICK.as_nanos()) as u64 + 1
}

fn check_result(json: String, max: usize) -> Result<String, Failure> {
    if json.len() > max {
        return Err(Failure::ResultTooLarge {
            size: json.len(),
            limit: max,
        });
    }
    // The guest is untrusted: its output must be a well-formed value. It is
    // passed on as written (the SDK writes values as the server does).
    Value::validate_json_str(&json)
        .map(|()| json)
        .map_err(|e| Failure::InvalidResult(e.to_string()))
}

fn classify(
    error: &wasmtime::Error,
    state: &CallState,
    timeout: Duration,
    memory: usize,
) -> Failure {
    if let Some(reason) = &state.internal {
        return Failure::Internal(reason.clone());
    }
    if error.downcast_ref::<InternalFault>().is_some() {
        return Failure::Internal(error.to_string());
    }
    if error.downcast_ref::<MemoryLimitExceeded>().is_some() || state.limiter.hit {
        return Failure::OutOfMemory {
            limit_bytes: memory,
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Failure::TimedOut {
            limit_ms: timeout.as_millis(),
        },
        // A Rust guest keeps its frames' locals on a stack in linear memory;
        // running off it faults as an out-of-bounds access.
        Some(Trap::StackOverflow | Trap::MemoryOutOfBounds) => Failure::StackOverflow,
        Some(Trap::UnreachableCodeReached) => Failure::Panicked {
            message: panic_message(&state.logs.stderr_text()),
        },
        Some(trap) => Failure::Panicked {
            message: trap.to_string(),
        },
        None => Failure::Internal(format!("{error:#}")),
    }
}

/// The panic message from what a Rust guest printed: "panicked at …:\nmsg".
fn panic_message(stderr: &str) -> String {
    let mut lines = stderr
        .lines()
        .skip_while(|line| !line.contains("panicked at"));
    match (lines.next(), lines.next()) {
        (Some(_), Some(message)) => message.trim().to_owned(),
        (Some(location), None) => location.trim().to_owned(),
        _ => stderr.lines().last().unwrap_or_default().trim().to_owned(),
    }
}
