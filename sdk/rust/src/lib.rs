//! Write Capstan functions in Rust.
//!
//! An app is a crate built for `wasm32-wasip2` as a `cdylib`. Its tables are
//! structs with `#[derive(Table)]`; its functions are plain Rust functions
//! marked [`query`], [`mutation`] or [`action`]; [`app!`] lists both and
//! exports the component the server runs.
//!
//! ```ignore
//! // src/lib.rs
//! mod messages;
//! capstan::app! {
//!     tables: [messages::Message],
//!     functions: [messages::{list, send}],
//! }
//!
//! // src/messages.rs
//! use capstan::{Doc, Id, MutationCtx, QueryCtx};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, capstan::Table)]
//! #[table(name = "messages", index(by_channel = [channel]))]
//! pub struct Message {
//!     pub channel: String,
//!     pub body: String,
//! }
//!
//! #[capstan::query]
//! pub fn list(ctx: &QueryCtx, channel: String) -> capstan::Result<Vec<Doc<Message>>> {
//!     ctx.db().query::<Message>().with_index(Message::by_channel, |q| q.eq(&channel)).collect()
//! }
//!
//! #[capstan::mutation]
//! pub fn send(ctx: &mut MutationCtx, channel: String, body: String) -> capstan::Result<Id<Message>> {
//!     ctx.db().insert(&Message { channel, body })
//! }
//! ```
//!
//! The Convex TypeScript twin of `send`:
//!
//! ```ts
//! export const send = mutation({
//!   args: { channel: v.string(), body: v.string() },
//!   handler: (ctx, { channel, body }) => ctx.db.insert("messages", { channel, body }),
//! });
//! ```
//!
//! What Convex checks at run time, the compiler checks here: arguments
//! have types (and unknown fields are refused when a call arrives), a
//! function that is not listed in [`app!`] does not compile, nested calls
//! name functions as types (`ctx.run_mutation::<messages::send>(&args)`),
//! so a query cannot be run as a mutation, and index ranges are checked
//! against the index's fields.
//!
//! Paths are Convex-style `module:function`: `messages::send` in crate
//! `chat` is `messages:send`, and `chat::rooms::messages::send` is
//! `rooms/messages:send`.
//!
//! # Layout
//! - [`function`]: functions as types: [`Function`] and its kinds.
//! - [`ctx`]: [`QueryCtx`], [`MutationCtx`], [`ActionCtx`]; typed nested
//!   calls.
//! - [`auth`]: who is calling ([`Auth`], [`UserIdentity`]), service secrets.
//! - [`db`]: reading and writing documents, queries, pagination.
//! - [`table`]: [`Table`], [`Patch`]; [`index`]: typed index ranges.
//! - [`filter`]: filter expressions.
//! - [`id`]: [`Id`], [`Doc`].
//! - [`schema`]: [`Schema`], [`TableDef`], validators [`v`];
//!   [`validated`]: validators from Rust types.
//! - [`error`]: [`Error`], [`error!`]; [`log!`] and friends in [`log`].
//! - [`values`]: Rust values to Convex values and back, and how numbers
//!   map for JavaScript clients; [`Int64`], [`Bytes`].
//! - [`http`]: [`HttpRequest`], [`HttpResponse`]; [`router`]: HTTP actions
//!   and their routes ([`HttpRouter`], [`Cors`]); [`webhook`]: webhook
//!   signatures (Stripe, GitHub, Svix).
//! - [`scheduler`]: [`Scheduler`]; [`crons`]: [`Crons`]; [`storage`]:
//!   files; [`system`]: the system tables they write.

// The derives name `::capstan`, which is this crate.
extern crate self as capstan;

pub mod auth;
#[doc(hidden)]
pub mod bindings;
pub mod crons;
pub mod ctx;
pub mod db;
pub mod error;
pub mod filter;
pub mod function;
pub mod http;
pub mod id;
pub mod index;
pub mod log;
pub mod router;
pub mod scheduler;
pub mod schema;
pub mod storage;
pub mod system;
pub mod table;
pub mod validated;
pub mod values;
pub mod webhook;

pub use auth::{Auth, Caller, User, UserIdentity};
pub use capstan_protocol::Value;
pub use capstan_sdk_macros::{Table, Validated, action, app, http_action, mutation, query};
pub use crons::Crons;
pub use ctx::{ActionCtx, MutationCtx, QueryCtx};
pub use db::{
    DatabaseReader, DatabaseWriter, Order, PaginationOpts, PaginationResult, QueryBuilder,
};
pub use error::{Error, Result};
pub use function::{
    ActionFunction, Function, FunctionDefinition, FunctionKind, MutationFunction, QueryFunction,
    Schedulable, Visibility,
};
pub use http::{HttpError, HttpRequest, HttpResponse, HttpResult, Method};
pub use id::{Doc, Id};
pub use index::{AnyValue, Index, IndexRange};
pub use router::{Cors, HttpActionDefinition, HttpActionFunction, HttpRouter};
pub use scheduler::Scheduler;
pub use schema::{Schema, TableDef, v};
/// A JSON value for ad-hoc documents, patches and ConvexError data:
/// `capstan::json!({"code": "LIMIT", "max": 10})`. Its numbers are float64s.
pub use serde_json::json;
pub use system::{JobState, ScheduledFunction, StoredFile};
pub use table::{Patch, Table, UsersTable};
pub use validated::Validated;
pub use values::{Bytes, Int64, from_value, to_value};

#[doc(hidden)]
pub mod __private {
    pub use crate::bindings;
    pub use crate::bindings::capstan::runtime::http_types::{Request, Response, Route};
    pub use crate::bindings::capstan::runtime::types::{FunctionError, FunctionSpec};
    pub use crate::bindings::exports::capstan::runtime::guest::Guest;
    pub use crate::log::{Level, write as log};
    pub use crate::table::__patch as patch;
    pub use capstan_protocol::Object;
    pub use serde;
    pub use serde_json;

    use crate::bindings::capstan::runtime::types::{FunctionKind as Kind, Visibility as Vis};
    use crate::{Error, FunctionDefinition, FunctionKind, Result, Value, Visibility};

    /// Implemented by [`crate::app!`] for each function it lists; each
    /// function's attribute requires it, so a function left out of the
    /// list does not compile.
    #[diagnostic::on_unimplemented(
        message = "the function `{Self}` is not listed in `capstan::app!`",
        label = "not listed in `capstan::app!`",
        note = "add it to `functions: [...]` in `capstan::app!`: the server only knows the functions listed there"
    )]
    pub trait Listed {}

    /// Stops the build of a function outside a module: Convex paths are
    /// `module:function`, and JavaScript clients reach `api.module.name`.
    pub const fn in_a_module(module_path: &str) {
        let bytes = module_path.as_bytes();
        let mut i = 0;
        while i + 1 < bytes.len() {
            if bytes[i] == b':' && bytes[i + 1] == b':' {
                return;
            }
            i += 1;
        }
        panic!(
            "a Capstan function lives in a module (`mod messages;`), not at the crate root: its path is `module:function`"
        );
    }

    fn parse_args(args: &str, module: &str, name: &str) -> Result<Value> {
        let value =
            Value::from_json_str(args).map_err(|e| invalid(module, name, &e.to_string()))?;
        if !matches!(value, Value::Object(_)) {
            return Err(invalid(module, name, "the arguments must be an object"));
        }
        Ok(value)
    }

    fn invalid(module: &str, name: &str, reason: &str) -> Error {
        Error::new(format!(
            "Invalid arguments for `{}`: {reason}",
            crate::function::path(module, name)
        ))
    }

    /// The arguments object, read strictly: a field the type does not
    /// name is refused, as Convex's validators refuse it.
    pub fn decode_args<T: serde::de::DeserializeOwned + 'static>(
        args: &str,
        module: &str,
        name: &str,
    ) -> Result<T> {
        let value = parse_args(args, module, name)?;
        // Arguments taken whole as a `Value` are that value.
        if std::any::TypeId::of::<T>() == std::any::TypeId::of::<Value>() {
            let whole: Box<dyn std::any::Any> = Box::new(value);
            if let Ok(whole) = whole.downcast::<T>() {
                return Ok(*whole);
            }
            return Err(Error::new("the arguments could not be taken whole"));
        }
        crate::values::from_value_strict(&value).map_err(|e| invalid(module, name, e.message()))
    }

    pub fn expect_no_args(args: &str, module: &str, name: &str) -> Result<()> {
        match parse_args(args, module, name)? {
            Value::Object(fields) => match fields.keys().next() {
                None => Ok(()),
                Some(field) => Err(invalid(
                    module,
                    name,
                    &format!("unknown field `{field}`; this function takes no arguments"),
                )),
            },
            _ => Err(invalid(module, name, "the arguments must be an object")),
        }
    }

    pub fn encode_result<T: serde::Serialize + 'static>(result: &T) -> Result<String> {
        if let Some(value) = (result as &dyn std::any::Any).downcast_ref::<Value>() {
            return Ok(value.to_json_string());
        }
        Ok(crate::to_value(result)?.to_json_string())
    }

    pub fn specs(registry: &[FunctionDefinition]) -> Vec<FunctionSpec> {
        registry
            .iter()
            .map(|definition| FunctionSpec {
                path: definition.path(),
                kind: match definition.kind {
                    FunctionKind::Query => Kind::Query,
                    FunctionKind::Mutation => Kind::Mutation,
                    FunctionKind::Action => Kind::Action,
                },
                visibility: match definition.visibility {
                    Visibility::Public => Vis::Public,
                    Visibility::Internal => Vis::Internal,
                },
            })
            .collect()
    }

    /// Runs the HTTP action at `handler` of `router` on `request`; an
    /// [`HttpError`](crate::HttpError) becomes its response.
    pub fn invoke_http(
        router: &crate::HttpRouter,
        handler: &str,
        request: Request,
    ) -> Result<Response, FunctionError> {
        let definition = router.handler(handler).ok_or_else(|| {
            Error::new(format!("no HTTP action {handler:?} in this app")).into_host()
        })?;
        let response = match (definition.invoke)(request.into()) {
            Ok(response) => response,
            Err(error) if error.status >= 500 => {
                // The server logs it and answers 500, as for a failed action.
                return Err(FunctionError {
                    message: error.message,
                    data: error.data.map(|data| data.to_json_string()),
                });
            }
            Err(error) => error.into_response(),
        };
        Ok(response.into())
    }

    pub fn invoke(
        registry: &[FunctionDefinition],
        path: &str,
        args: &str,
    ) -> Result<String, FunctionError> {
        let definition = registry
            .iter()
            .find(|definition| definition.has_path(path))
            .ok_or_else(|| Error::new(format!("no function {path:?} in this app")).into_host())?;
        (definition.invoke)(args).map_err(Error::into_host)
    }
}
