//! The data of one call's wasmtime `Store`: WASI, the memory limiter, who
//! is calling, the environment, the log lines, and what the call may reach.
//! The capabilities that read it are in [`crate::capabilities`].

use std::collections::BTreeMap;
use std::sync::Arc;

use capstan_protocol::Identity;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::capabilities::Access;
use crate::capabilities::log::LogLines;
use crate::capabilities::platform::Platform;
use crate::limiter::MemoryLimiter;
use crate::limits::HostLimits;

/// Deployment environment variables.
pub type Environment = BTreeMap<String, String>;

/// What the running code may reach beyond env, auth and log.
#[expect(
    clippy::large_enum_variant,
    reason = "one per call, inside its store's data: boxing the transaction would cost every call an allocation"
)]
pub(crate) enum Reach {
    /// A function call, by its kind.
    Call(Access),
    /// The component describing itself (or a benchmark's bare call):
    /// nothing.
    Nothing,
}

/// What a call sees besides its reach: the environment, who is calling,
/// and the platform's services.
pub(crate) struct Context {
    pub environment: Arc<Environment>,
    pub identity: Identity,
    pub platform: Option<Arc<dyn Platform>>,
}

pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) reach: Reach,
    pub(crate) environment: Arc<Environment>,
    /// Who is calling.
    pub(crate) identity: Identity,
    pub(crate) logs: LogLines,
    /// The scheduler, files and fetch; none when the component only
    /// describes itself.
    pub(crate) platform: Option<Arc<dyn Platform>>,
    /// Functions this call scheduled so far, bounded by
    /// `limits.max_scheduled_per_call`.
    pub(crate) scheduled: u32,
    pub(crate) limits: HostLimits,
    /// A fault of the server (not the app) hit during a host call: the call
    /// is aborted and reported as internal.
    pub(crate) internal: Option<String>,
}

impl CallState {
    pub(crate) fn new(
        wasi: WasiCtx,
        limiter: MemoryLimiter,
        reach: Reach,
        Context {
            environment,
            identity,
            platform,
        }: Context,
        logs: LogLines,
        limits: HostLimits,
    ) -> Self {
        CallState {
            wasi,
            table: ResourceTable::new(),
            limiter,
            reach,
            environment,
            identity,
            logs,
            platform,
            scheduled: 0,
            limits,
            internal: None,
        }
    }
}

impl std::fmt::Debug for CallState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let reach = match &self.reach {
            Reach::Call(access) => Some(access.kind()),
            Reach::Nothing => None,
        };
        f.debug_struct("CallState")
            .field("kind", &reach)
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
