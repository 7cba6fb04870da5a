//! The data of one call's wasmtime `Store`, and the host capabilities the
//! guest imports: `db`, `env`, `auth`, `log`, `actions`.

use std::collections::BTreeMap;
use std::sync::Arc;

use capstan_protocol::{Identity, Value};
use capstan_store::{DocumentId, ErrorCode, Patch, Query, Transaction};
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::capstan::runtime::types::FunctionError;
use crate::bindings::capstan::runtime::{actions, auth, db, env, log, types};
use crate::runner::{FunctionKind, NestedCalls};

/// Deployment environment variables.
pub type Environment = BTreeMap<String, String>;

pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) kind: FunctionKind,
    /// The transaction of a query or mutation; actions have none.
    pub(crate) transaction: Option<Transaction>,
    environment: Arc<Environment>,
    /// Who is calling; anonymous unless the runner says otherwise.
    pub(crate) identity: Identity,
    pub(crate) logs: LogLines,
    /// How an action runs other functions.
    nested: Option<Arc<dyn NestedCalls>>,
    /// A fault of the server (not the app) hit during a host call: the call
    /// is aborted and reported as internal.
    pub(crate) internal: Option<String>,
}

impl CallState {
    pub(crate) fn new(
        wasi: WasiCtx,
        limiter: MemoryLimiter,
        kind: FunctionKind,
        transaction: Option<Transaction>,
        environment: Arc<Environment>,
        logs: LogLines,
        nested: Option<Arc<dyn NestedCalls>>,
    ) -> Self {
        CallState {
            wasi,
            table: ResourceTable::new(),
            limiter,
            kind,
            transaction,
            environment,
            identity: Identity::Anonymous,
            logs,
            nested,
            internal: None,
        }
    }
}

impl std::fmt::Debug for CallState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallState")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Memory growth past the limit fails with this error, which traps the
/// guest and tells the runner the call ran out of memory.
#[derive(Debug)]
pub struct MemoryLimitExceeded;

impl std::fmt::Display for MemoryLimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("memory limit exceeded")
    }
}

impl std::error::Error for MemoryLimitExceeded {}

#[derive(Debug)]
pub struct MemoryLimiter {
    limits: StoreLimits,
    max: usize,
    pub(crate) hit: bool,
}

impl MemoryLimiter {
    pub fn new(max: usize) -> Self {
        MemoryLimiter {
            limits: wasmtime::StoreLimitsBuilder::new().memory_size(max).build(),
            max,
            hit: false,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max || maximum.is_some_and(|m| desired > m) {
            self.hit = true;
            return Err(wasmtime::Error::new(MemoryLimitExceeded));
        }
        self.limits.memory_growing(current, desired, maximum)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }
}

/// The call's log lines in the order they were produced: `println!` and
/// `eprintln!` output (read from the WASI pipes whenever the guest logs, so
/// the two sources interleave correctly) and `log!` lines.
pub struct LogLines {
    pub(crate) lines: Vec<String>,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    stdout_read: usize,
    stderr_read: usize,
    max_lines: usize,
    max_line: usize,
    dropped: usize,
}

impl std::fmt::Debug for LogLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogLines")
            .field("lines", &self.lines)
            .finish_non_exhaustive()
    }
}

impl LogLines {
    pub(crate) fn new(
        stdout: MemoryOutputPipe,
        stderr: MemoryOutputPipe,
        max_lines: usize,
        max_line: usize,
    ) -> Self {
        LogLines {
            lines: Vec::new(),
            stdout,
            stderr,
            stdout_read: 0,
            stderr_read: 0,
            max_lines,
            max_line,
            dropped: 0,
        }
    }

    fn push(&mut self, level: &str, message: &str) {
        if self.lines.len() >= self.max_lines {
            self.dropped += 1;
            return;
        }
        let mut line = format!("[{level}] {message}");
        if line.len() > self.max_line {
            let mut cut = self.max_line;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push_str(" (truncated due to length)");
        }
        self.lines.push(line);
    }

    /// Moves what the guest printed since the last drain into lines.
    pub(crate) fn drain_output(&mut self) {
        let contents = self.stdout.contents();
        let fresh =
            String::from_utf8_lossy(&contents[self.stdout_read.min(contents.len())..]).into_owned();
        self.stdout_read = contents.len();
        for line in fresh.lines() {
            self.push("LOG", line);
        }
        let contents = self.stderr.contents();
        let fresh =
            String::from_utf8_lossy(&contents[self.stderr_read.min(contents.len())..]).into_owned();
        self.stderr_read = contents.len();
        for line in fresh.lines() {
            self.push("ERROR", line);
        }
    }

    /// All lines, with a note when some were dropped.
    pub(crate) fn finish(mut self) -> Vec<String> {
        self.drain_output();
        if self.dropped > 0 {
            let note = format!(
                "[WARN] {} more log lines were dropped (limit {})",
                self.dropped, self.max_lines
            );
            self.lines.push(note);
        }
        self.lines
    }

    /// What the guest wrote to stderr, for a panic message.
    pub(crate) fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents()).into_owned()
    }
}

fn error(message: impl Into<String>) -> FunctionError {
    FunctionError {
        message: message.into(),
        data: None,
    }
}

type HostResult<T> = wasmtime::Result<Result<T, FunctionError>>;

/// An error raised by a host call that aborts the whole call, because the
/// server itself is at fault.
#[derive(Debug)]
pub struct InternalFault(pub String);

impl std::fmt::Display for InternalFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InternalFault {}

impl CallState {
    /// The transaction, for reading; `None` with an error for actions.
    fn reader(&mut self, operation: &str) -> Result<&mut Transaction, FunctionError> {
        match self.transaction.as_mut() {
            Some(transaction) => Ok(transaction),
            None => Err(error(format!(
                "ctx.db().{operation} is not available in an action; use run_query or run_mutation"
            ))),
        }
    }

    fn writer(&mut self, operation: &str) -> Result<&mut Transaction, FunctionError> {
        if self.kind == FunctionKind::Query {
            return Err(error(format!(
                "ctx.db().{operation} writes, and a query cannot write; use a mutation"
            )));
        }
        self.reader(operation)
    }

    /// Store errors the app caused become function errors it can handle;
    /// faults of the server abort the call.
    fn store_result<T>(&mut self, result: capstan_store::Result<T>) -> HostResult<T> {
        match result {
            Ok(value) => Ok(Ok(value)),
            Err(e) => match e.code() {
                ErrorCode::Internal | ErrorCode::Unavailable => {
                    self.internal = Some(e.to_string());
                    Err(wasmtime::Error::new(InternalFault(e.to_string())))
                }
                ErrorCode::BadRequest
                | ErrorCode::NotFound
                | ErrorCode::SchemaViolation
                | ErrorCode::LimitExceeded => Ok(Err(error(e.to_string()))),
            },
        }
    }

    fn parse_id(&mut self, text: &str) -> Result<DocumentId, FunctionError> {
        let transaction = self.reader("get")?;
        transaction.parse_id(text).map_err(|e| error(e.to_string()))
    }
}

fn parse_object(text: &str, what: &str) -> Result<capstan_protocol::Object, FunctionError> {
    match Value::from_json_str(text) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(other) => Err(error(format!(
            "{what} must be an object, not {}",
            other.value_type().name()
        ))),
        Err(e) => Err(error(format!("invalid {what}: {e}"))),
    }
}

fn document_json(document: &capstan_store::Document) -> String {
    document.to_json_string()
}

impl types::Host for CallState {}

impl db::Host for CallState {
    fn get(&mut self, id: String) -> HostResult<Option<String>> {
        let id = match self.parse_id(&id) {
            Ok(id) => id,
            Err(e) => return Ok(Err(e)),
        };
        let result = match self.reader("get") {
            Ok(transaction) => transaction.get(id),
            Err(e) => return Ok(Err(e)),
        };
        Ok(self
            .store_result(result)?
            .map(|doc| doc.as_ref().map(document_json)))
    }

    fn insert(&mut self, table: String, value: String) -> HostResult<String> {
        let fields = match parse_object(&value, "a document") {
            Ok(fields) => fields,
            Err(e) => return Ok(Err(e)),
        };
        let result = match self.writer("insert") {
            Ok(transaction) => transaction.insert(&table, fields),
            Err(e) => return Ok(Err(e)),
        };
        Ok(self.store_result(result)?.map(|id| id.to_string()))
    }

    fn patch(&mut self, id: String, set: String, unset: Vec<String>) -> HostResult<String> {
        let prepared = self.writer("patch").map(|_| ()).and_then(|()| {
            let fields = parse_object(&set, "a patch")?;
            let id = self.parse_id(&id)?;
            let mut patch: Patch = fields.into_iter().map(|(k, v)| (k, Some(v))).collect();
            patch.extend(unset.into_iter().map(|k| (k, None)));
            Ok((id, patch))
        });
        let (id, patch) = match prepared {
            Ok(prepared) => prepared,
            Err(e) => return Ok(Err(e)),
        };
        let result = match self.writer("patch") {
            Ok(transaction) => transaction.patch(id, patch),
            Err(e) => return Ok(Err(e)),
        };
        Ok(self.store_result(result)?.map(|doc| document_json(&doc)))
    }

    fn replace(&mut self, id: String, value: String) -> HostResult<String> {
        let prepared = self
            .writer("replace")
            .map(|_| ())
            .and_then(|()| Ok((self.parse_id(&id)?, parse_object(&value, "a document")?)));
        let (id, fields) = match prepared {
            Ok(prepared) => prepared,
            Err(e) => return Ok(Err(e)),
        };
        let result = match self.writer("replace") {
            Ok(transaction) => transaction.replace(id, fields),
            Err(e) => return Ok(Err(e)),
        };
        Ok(self.store_result(result)?.map(|doc| document_json(&doc)))
    }

    fn delete(&mut self, id: String) -> HostResult<()> {
        let id = match self
            .writer("delete")
            .map(|_| ())
            .and_then(|()| self.parse_id(&id))
        {
            Ok(id) => id,
            Err(e) => return Ok(Err(e)),
        };
        let result = match self.writer("delete") {
            Ok(transaction) => transaction.delete(id),
            Err(e) => return Ok(Err(e)),
        };
        Ok(self.store_result(result)?.map(|_| ()))
    }

    fn query(&mut self, query: String, limit: Option<u32>) -> HostResult<String> {
        let query: Query = match serde_json::from_str(&query) {
            Ok(query) => query,
            Err(e) => return Ok(Err(error(format!("invalid query: {e}")))),
        };
        let result = match self.reader("query") {
            Ok(transaction) => transaction.query(&query, limit.map(|l| l as usize)),
            Err(e) => return Ok(Err(e)),
        };
        Ok(self.store_result(result)?.map(|documents| {
            serde_json::to_string(&documents).expect("documents always serialise")
        }))
    }

    fn paginate(
        &mut self,
        query: String,
        cursor: Option<String>,
        num_items: u32,
    ) -> HostResult<String> {
        let query: Query = match serde_json::from_str(&query) {
            Ok(query) => query,
            Err(e) => return Ok(Err(error(format!("invalid query: {e}")))),
        };
        let options = capstan_store::PaginationOptions {
            cursor,
            num_items: num_items as usize,
        };
        let result = match self.reader("paginate") {
            Ok(transaction) => transaction.paginate(&query, &options),
            Err(e) => return Ok(Err(e)),
        };
        Ok(self.store_result(result)?.map(|page| {
            // Keys in sorted order, as `Value` writes objects.
            #[derive(serde::Serialize)]
            #[serde(rename_all = "camelCase")]
            struct Page<'a> {
                continue_cursor: &'a str,
                is_done: bool,
                page: &'a [capstan_store::Document],
            }
            serde_json::to_string(&Page {
                continue_cursor: &page.continue_cursor,
                is_done: page.is_done,
                page: &page.page,
            })
            .expect("documents always serialise")
        }))
    }
}

impl env::Host for CallState {
    fn get(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(self.environment.get(&name).cloned())
    }
}

impl auth::Host for CallState {
    fn identity(&mut self) -> wasmtime::Result<auth::Caller> {
        Ok(match &self.identity {
            Identity::Anonymous => auth::Caller::Anonymous,
            Identity::User(user) => auth::Caller::User(user.json.clone()),
            Identity::Admin {
                impersonating: Some(user),
            } => auth::Caller::User(user.json.clone()),
            Identity::Admin {
                impersonating: None,
            } => auth::Caller::Admin,
            Identity::Service { name } => auth::Caller::Service(name.clone()),
        })
    }

    fn check_secret(&mut self, name: String, presented: String) -> HostResult<bool> {
        match self.environment.get(&name) {
            // An empty secret would let an empty presented value through.
            Some(expected) if expected.is_empty() => Ok(Err(error(format!(
                "check_secret: the environment variable {name:?} is empty"
            )))),
            Some(expected) => Ok(Ok(capstan_protocol::constant_time_eq(
                expected.as_bytes(),
                presented.as_bytes(),
            ))),
            None => Ok(Err(error(format!(
                "check_secret: the environment variable {name:?} is not set"
            )))),
        }
    }
}

impl log::Host for CallState {
    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        self.logs.drain_output();
        let level = match level {
            log::Level::Debug => "DEBUG",
            log::Level::Info => "INFO",
            log::Level::Log => "LOG",
            log::Level::Warn => "WARN",
            log::Level::Error => "ERROR",
        };
        self.logs.push(level, &message);
        Ok(())
    }
}

impl CallState {
    fn nested(&mut self, kind: FunctionKind, path: &str, args: &str) -> HostResult<String> {
        let Some(nested) = self.nested.clone() else {
            return Ok(Err(error("only actions can run other functions")));
        };
        self.logs.drain_output();
        Ok(nested.call(kind, path, args))
    }
}

impl actions::Host for CallState {
    fn run_query(&mut self, path: String, args: String) -> HostResult<String> {
        self.nested(FunctionKind::Query, &path, &args)
    }

    fn run_mutation(&mut self, path: String, args: String) -> HostResult<String> {
        self.nested(FunctionKind::Mutation, &path, &args)
    }

    fn run_action(&mut self, path: String, args: String) -> HostResult<String> {
        self.nested(FunctionKind::Action, &path, &args)
    }
}
