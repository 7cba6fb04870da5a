//! What each kind of function is given.

use std::marker::PhantomData;

use capstan_protocol::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::Auth;
use crate::bindings::capstan::runtime::{
    actions as host_actions, env as host_env, fetch as host_fetch,
};
use crate::db::{DatabaseReader, DatabaseWriter};
use crate::error::{Error, Result};
use crate::function::{ActionFunction, MutationFunction, QueryFunction};
use crate::http::{HttpRequest, HttpResponse};
use crate::scheduler::Scheduler;
use crate::storage::{ActionStorage, StorageReader, StorageWriter};
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

    /// Files' download URLs.
    pub fn storage(&self) -> StorageReader<'_> {
        StorageReader {
            _context: PhantomData,
        }
    }
}

impl QueryCtx {
    /// The signed-in user's document, if the caller is signed in by
    /// Capstan's built-in auth (or Convex Auth) and their session has not
    /// ended: a signed-out or invalidated session reads as signed out here
    /// at once, though its access token lives on until it expires.
    ///
    /// ```ignore
    /// let me = ctx.current_user::<User>()?.ok_or_else(|| capstan::error!("sign in first"))?;
    /// ```
    pub fn current_user<U: crate::table::UsersTable + DeserializeOwned>(
        &self,
    ) -> Result<Option<crate::Doc<U>>> {
        let auth = self.auth();
        let (Some(user), Some(session)) = (auth.user_id::<U>()?, auth.session_id()?) else {
            return Ok(None);
        };
        let db = self.db();
        let live = match db.get(&session)? {
            Some(session) => session.expiration_time > host_now_ms(),
            None => false,
        };
        if !live {
            return Ok(None);
        }
        db.get(&user)
    }
}

/// The transaction's clock, in milliseconds since the epoch.
fn host_now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
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

    /// Schedules mutations and actions, as part of this transaction.
    pub fn scheduler(&mut self) -> Scheduler<'_> {
        Scheduler {
            _context: PhantomData,
        }
    }

    /// Upload URLs, download URLs, deletes.
    pub fn storage(&mut self) -> StorageWriter<'_> {
        StorageWriter {
            _context: PhantomData,
        }
    }

    /// See [`QueryCtx::current_user`].
    pub fn current_user<U: crate::table::UsersTable + DeserializeOwned>(
        &self,
    ) -> Result<Option<crate::Doc<U>>> {
        self.query.current_user()
    }

    /// Signs `user` out everywhere but in the sessions `except` (say, the
    /// caller's own): their sessions and refresh tokens are deleted, so no
    /// token can be refreshed and [`QueryCtx::current_user`] reads them as
    /// signed out. How many sessions ended. Convex Auth:
    /// `invalidateSessions(ctx, {userId, except})`.
    pub fn invalidate_sessions<U: crate::table::UsersTable>(
        &mut self,
        user: &crate::Id<U>,
        except: &[crate::Id<crate::auth::Session>],
    ) -> Result<usize> {
        use crate::auth::{RefreshToken, Session};
        let user: crate::Id<crate::auth::User> = crate::Id::from_string(user.as_str());
        let sessions = self
            .db()
            .query::<Session>()
            .with_index(Session::userId, |q| q.eq(&user))
            .collect()?;
        let mut ended = 0;
        for session in sessions {
            if except.contains(&session.id) {
                continue;
            }
            let tokens = self
                .db()
                .query::<RefreshToken>()
                .with_index(RefreshToken::sessionId, |q| q.eq(&session.id))
                .collect()?;
            for token in tokens {
                self.db().delete(&token.id)?;
            }
            self.db().delete(&session.id)?;
            ended += 1;
        }
        Ok(ended)
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

    /// Schedules mutations and actions.
    pub fn scheduler(&mut self) -> Scheduler<'_> {
        Scheduler {
            _context: PhantomData,
        }
    }

    /// Files: store, read, URLs, delete.
    pub fn storage(&mut self) -> ActionStorage<'_> {
        ActionStorage {
            writer: StorageWriter {
                _context: PhantomData,
            },
        }
    }

    /// Sends an HTTP request to another server and reads its whole
    /// response. The deployment bounds it: a time limit, response size,
    /// redirects, and no private or loopback addresses unless allowed.
    /// A response with an error status is still a response; a refusal or a
    /// network failure is an error.
    ///
    /// ```ignore
    /// let response = ctx.fetch(HttpRequest::post(url).with_json(&receipt)?)?;
    /// if !response.is_success() { return Err(capstan::error!("mail API: {}", response.status())); }
    /// ```
    pub fn fetch(&mut self, request: HttpRequest) -> Result<HttpResponse> {
        host_fetch::fetch(&request.into())
            .map(HttpResponse::from)
            .map_err(Error::from_host)
    }

    pub fn env(&self, name: &str) -> Option<String> {
        host_env::get(name)
    }
}
