//! Runs Capstan app components in wasmtime: one engine, one linked module per
//! deployed component, a fresh bounded `Store` per call. `README.md` beside
//! this crate follows one call through it.
//!
//! # Layout
//! - [`engine`]: [`HostEngine`]: the engine configuration (pooling
//!   allocator, epoch deadlines), the linker, the epoch ticker.
//! - [`cache`]: compiled components on disk.
//! - [`runner`]: [`Module`] (load, describe, run) and [`Call`]/[`Outcome`].
//! - [`state`]: the per-call store data.
//! - [`capabilities`]: the host capabilities, one module each (`db`,
//!   `auth`, `env`, `log`, `actions`, and `platform`: the scheduler, files
//!   and fetch the server provides through [`Platform`]), and [`Access`],
//!   what a call may reach by its kind.
//! - [`limiter`]: the memory bound of a call.
//! - [`limits`]: [`HostLimits`]; [`error`]: load errors and call [`Failure`]s.
//! - [`bindings`]: generated from `sdk/wit`.

pub mod bindings;
pub mod cache;
pub mod capabilities;
pub mod engine;
pub mod error;
pub mod limiter;
pub mod limits;
pub mod runner;
pub mod state;

pub use bindings::capstan::runtime::types::FunctionError;
pub use cache::Origin;
pub use capabilities::Access;
pub use capabilities::actions::NestedCalls;
pub use capabilities::platform::{HttpRequest, HttpResponse, Platform};
pub use capstan_protocol::{FunctionInfo, FunctionKind, FunctionPath, Visibility};
pub use engine::{HostEngine, SeedKey};
pub use error::{Error, Failure, Result};
pub use limits::HostLimits;
pub use runner::{Call, HttpOutcome, Module, Outcome, Route};
pub use state::Environment;
