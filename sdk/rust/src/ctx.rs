//! What each kind of function is given.

use std::marker::PhantomData;

use capstan_protocol::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::Auth;
use crate::bindings::capstan::runtime::{actions as host_actions, env as host_env};
use crate::db::{DatabaseReader, DatabaseWriter};
use crate::error::{Error, Result};
use crate::values::{from_value, to_value};

/// The context of a query: read-only database access. Queries are
/// deterministic: the clock reads the transaction's time and random numbers
/// come from a per-call seed, so a subscribed query can be re-run safely.
#[derive(Debug)]
pub struct QueryCtx {
    _private: (),
}

/// The context of a mutation: reads and writes in one serializable
/// transaction, retried by the server if what it read changed before commit.
/// Deterministic, like queries.
#[derive(Debug)]
pub struct MutationCtx {
    _private: (),
}

/// The context of an action: no direct database access, but the real clock,
/// real randomness, and the ability to run queries, mutations and actions,
/// each in its own transaction.
#[derive(Debug)]
pub struct ActionCtx {
    _private: (),
}

impl QueryCtx {
    #[doc(hidden)]
    pub fn __new() -> Self {
        QueryCtx { _private: () }
    }

    /// Who is calling.
    pub fn auth(&self) -> Auth<'_> {
        Auth {
            _context: PhantomData,
        }
    }

    pub fn db(&self) -> DatabaseReader<'_> {
        DatabaseReader {
            _context: PhantomData,
        }
    }

    /// A deployment environment variable.
    pub fn env(&self, name: &str) -> Option<String> {
        host_env::get(name)
    }
}

impl MutationCtx {
    #[doc(hidden)]
    pub fn __new() -> Self {
        MutationCtx { _private: () }
    }

    /// Who is calling.
    pub fn auth(&self) -> Auth<'_> {
        Auth {
            _context: PhantomData,
        }
    }

    pub fn db(&mut self) -> DatabaseWriter<'_> {
        DatabaseWriter {
            reader: DatabaseReader {
                _context: PhantomData,
            },
        }
    }

    pub fn env(&self, name: &str) -> Option<String> {
        host_env::get(name)
    }
}

fn run<A: Serialize + ?Sized, R: DeserializeOwned>(
    call: fn(&str, &str) -> Result<String, crate::bindings::capstan::runtime::types::FunctionError>,
    path: &str,
    args: &A,
) -> Result<R> {
    let args = to_value(args)?;
    if !matches!(args, Value::Object(_)) {
        return Err(Error::new("function arguments must be an object"));
    }
    let text = call(path, &args.to_json_string()).map_err(Error::from_host)?;
    from_value(&Value::from_json_str(&text)?)
}

impl ActionCtx {
    #[doc(hidden)]
    pub fn __new() -> Self {
        ActionCtx { _private: () }
    }

    /// Who is calling.
    pub fn auth(&self) -> Auth<'_> {
        Auth {
            _context: PhantomData,
        }
    }

    /// Runs a query (`"module:function"`) in its own transaction.
    pub fn run_query<A: Serialize + ?Sized, R: DeserializeOwned>(
        &mut self,
        path: &str,
        args: &A,
    ) -> Result<R> {
        run(host_actions::run_query, path, args)
    }

    /// Runs a mutation in its own transaction, retried on conflict.
    pub fn run_mutation<A: Serialize + ?Sized, R: DeserializeOwned>(
        &mut self,
        path: &str,
        args: &A,
    ) -> Result<R> {
        run(host_actions::run_mutation, path, args)
    }

    pub fn run_action<A: Serialize + ?Sized, R: DeserializeOwned>(
        &mut self,
        path: &str,
        args: &A,
    ) -> Result<R> {
        run(host_actions::run_action, path, args)
    }

    pub fn env(&self, name: &str) -> Option<String> {
        host_env::get(name)
    }
}
