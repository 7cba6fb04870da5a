//! `actions`: an action runs queries, mutations and other actions, each
//! through the server (which gives each its own transaction and retries
//! mutations).

use capstan_protocol::{FunctionKind, FunctionPath};

use super::{Access, HostResult, error};
use crate::bindings::capstan::runtime::actions;
use crate::bindings::capstan::runtime::types::FunctionError;
use crate::state::{CallState, Reach};

/// How an action runs other functions: implemented by the server.
pub trait NestedCalls: Send + Sync {
    /// Runs `path` with `args` (Convex JSON) and returns its result (Convex
    /// JSON) or its error.
    fn call(
        &self,
        kind: FunctionKind,
        path: &FunctionPath,
        args: &str,
    ) -> Result<String, FunctionError>;
}

impl CallState {
    fn nested(&mut self, kind: FunctionKind, path: &str, args: &str) -> HostResult<String> {
        let Reach::Call(Access::Action(nested)) = &self.reach else {
            return Ok(Err(error("only actions can run other functions")));
        };
        let nested = nested.clone();
        // What the action printed so far comes before the lines of the
        // functions it runs.
        self.logs.drain_output();
        Ok(nested.call(kind, &FunctionPath::parse(path), args))
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
