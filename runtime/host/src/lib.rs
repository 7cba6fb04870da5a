//! Runs Capstan app components in wasmtime: one engine, one linked module per
//! deployed component, a fresh bounded `Store` per call.
//!
//! # Layout
//! - [`engine`]: [`HostEngine`]: the engine configuration (pooling
//!   allocator, epoch deadlines), the linker, the epoch ticker.
//! - [`cache`]: compiled components on disk.
//! - [`runner`]: [`Module`] (load, describe, run) and [`Call`]/[`Outcome`].
//! - [`state`]: the per-call store data and the host capabilities (`db`,
//!   `env`, `log`, `actions`).
//! - [`limits`]: [`HostLimits`]; [`error`]: load errors and call [`Failure`]s.
//! - [`bindings`]: generated from `sdk/wit`.

pub mod bindings;
pub mod cache;
pub mod engine;
pub mod error;
pub mod limits;
pub mod runner;
pub mod state;

pub use bindings::capstan::runtime::types::FunctionError;
pub use cache::Origin;
pub use engine::HostEngine;
pub use error::{Error, Failure, Result};
pub use limits::HostLimits;
pub use runner::{Call, FunctionInfo, FunctionKind, Module, NestedCalls, Outcome, Visibility};
pub use state::Environment;
