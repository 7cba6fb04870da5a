//! What each kind of function is given.

use std::marker::PhantomData;

use capstan_protocol::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::Auth;
use crate::bindings::capstan::runtime::{actions as host_actions, env as host_env};
use crate::db::{DatabaseReader, DatabaseWriter};
use crate::error::{Error, Result};
use crate::function::{ActionFunction, MutationFunction, QueryFunction};
use crate::values::{from_text, to_value};

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
    query: QueryCtx,
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
        MutationCtx {
            query: QueryCtx::__new(),
        }
    }

    /// The mutation's reads as a query's context, to call a query's
    /// function (or any helper that takes `&QueryCtx`) inside this
    /// transaction: `list(ctx.as_query(), channel)`. Convex: a mutation's
    /// `ctx.runQuery`.
    pub fn as_query(&self) -> &QueryCtx {
        &self.query
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

/// Runs the function at `path` with `args`, through `call`.
fn run<A: Serialize + ?Sized, R: DeserializeOwned>(
    call: fn(&str, &str) -> Result<String, crate::bindings::capstan::runtime::types::FunctionError>,
    path: &str,
    args: &A,
) -> Result<R> {
    let args = match to_value(args)? {
        // A function without arguments takes `()`.
        Value::Null => Value::Object(Default::default()),
        object @ Value::Object(_) => object,
        other => {
            return Err(Error::new(format!(
                "the arguments of {path} must be an object, not a {}",
                other.value_type().name()
            )));
        }
    };
    let text = call(path, &args.to_json_string()).map_err(Error::from_host)?;
    from_text(&text)
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

    /// Runs a query in its own transaction:
    /// `ctx.run_query::<messages::list>(&messages::ListArgs { channel })`.
    pub fn run_query<F: QueryFunction>(&mut self, args: &F::Args) -> Result<F::Output>
    where
        F::Args: Serialize,
        F::Output: DeserializeOwned,
    {
        run(host_actions::run_query, &F::definition().path(), args)
    }

    /// Runs a mutation in its own transaction, retried on conflict.
    pub fn run_mutation<F: MutationFunction>(&mut self, args: &F::Args) -> Result<F::Output>
    where
        F::Args: Serialize,
        F::Output: DeserializeOwned,
    {
        run(host_actions::run_mutation, &F::definition().path(), args)
    }

    /// Runs an action.
    pub fn run_action<F: ActionFunction>(&mut self, args: &F::Args) -> Result<F::Output>
    where
        F::Args: Serialize,
        F::Output: DeserializeOwned,
    {
        run(host_actions::run_action, &F::definition().path(), args)
    }

    pub fn env(&self, name: &str) -> Option<String> {
        host_env::get(name)
    }
}
