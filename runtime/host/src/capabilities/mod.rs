//! The host capabilities a guest imports, one module each: [`db`], [`auth`],
//! [`mod@env`], [`mod@log`], [`actions`], and [`platform`] (the scheduler,
//! files and fetch, which the server provides). Each implements its interface of
//! the bindings on [`CallState`].
//!
//! What a call may reach is typed by its kind ([`Access`]): a query holds a
//! transaction it reads, a mutation one it writes, an action the way to
//! run other functions. A capability a call lacks answers with a function
//! error the app can read.

pub mod actions;
pub mod auth;
pub mod db;
pub mod env;
pub mod log;
pub mod platform;

use std::sync::Arc;

use capstan_protocol::FunctionKind;
use capstan_store::Transaction;

use crate::bindings::capstan::runtime::types::{self, FunctionError};
use crate::state::CallState;
use actions::NestedCalls;

/// What a call may reach besides env, auth and log, by the kind of the
/// function called.
pub enum Access {
    /// Reads its snapshot.
    Query(Transaction),
    /// Reads and writes its transaction, which the caller commits.
    Mutation(Transaction),
    /// Runs other functions, each in its own transaction.
    Action(Arc<dyn NestedCalls>),
}

impl Access {
    pub fn kind(&self) -> FunctionKind {
        match self {
            Access::Query(_) => FunctionKind::Query,
            Access::Mutation(_) => FunctionKind::Mutation,
            Access::Action(_) => FunctionKind::Action,
        }
    }

    /// The transaction of a query or mutation, given back after the call.
    pub(crate) fn into_transaction(self) -> Option<Transaction> {
        match self {
            Access::Query(transaction) | Access::Mutation(transaction) => Some(transaction),
            Access::Action(_) => None,
        }
    }
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Access").field(&self.kind()).finish()
    }
}

/// A function error the app can handle.
pub(crate) fn error(message: impl Into<String>) -> FunctionError {
    FunctionError {
        message: message.into(),
        data: None,
    }
}

/// A host call's result: a trap aborts the call (a fault of the server),
/// a function error is the app's to handle.
pub(crate) type HostResult<T> = wasmtime::Result<Result<T, FunctionError>>;

impl types::Host for CallState {}
