//! Write Capstan functions in Rust.
//!
//! An app is a crate built for `wasm32-wasip2` as a `cdylib`. Its functions are
//! plain Rust functions marked [`query`], [`mutation`] or [`action`]; its
//! [`Schema`] declares tables and indexes; [`app!`] lists both and exports
//! the component the server runs.
//!
//! ```ignore
//! // src/lib.rs
//! mod messages;
//! capstan::app! {
//!     schema: capstan::Schema::new()
//!         .table("messages", capstan::TableDef::new().index("by_channel", &["channel"])),
//!     functions: [messages::list, messages::send],
//! }
//!
//! // src/messages.rs
//! use capstan::{Doc, Id, MutationCtx, QueryCtx, Table};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! pub struct Message { channel: String, body: String }
//! impl Table for Message { const NAME: &'static str = "messages"; }
//!
//! #[derive(Deserialize)]
//! pub struct ListArgs { channel: String }
//!
//! #[capstan::query]
//! pub fn list(ctx: &QueryCtx, args: ListArgs) -> capstan::Result<Vec<Doc<Message>>> {
//!     ctx.db().query::<Message>().with_index("by_channel", |q| q.eq("channel", &args.channel)).collect()
//! }
//!
//! #[capstan::mutation]
//! pub fn send(ctx: &mut MutationCtx, args: Message) -> capstan::Result<Id<Message>> {
//!     ctx.db().insert(&args)
//! }
//! ```
//!
//! Paths are Convex-style `module:function`: `messages::send` in crate
//! `chat` is `messages:send`, and `chat::rooms::messages::send` is
//! `rooms/messages:send`.
//!
//! # Layout
//! - [`ctx`]: [`QueryCtx`], [`MutationCtx`], [`ActionCtx`].
//! - [`auth`]: who is calling ([`Auth`], [`UserIdentity`]), service secrets.
//! - [`db`]: reading and writing documents, queries, pagination.
//! - [`filter`]: filter expressions.
//! - [`id`]: [`Id`], [`Doc`], [`Table`].
//! - [`schema`]: [`Schema`], [`TableDef`], validators [`v`].
//! - [`error`]: [`Error`], [`error!`]; [`log!`] and friends in [`log`].
//! - [`values`]: Rust values to Convex values and back.

pub mod auth;
#[doc(hidden)]
pub mod bindings;
pub mod ctx;
pub mod db;
pub mod error;
pub mod filter;
pub mod id;
pub mod log;
pub mod schema;
pub mod values;

pub use auth::{Auth, Caller, UserIdentity};
pub use capstan_protocol::Value;
pub use capstan_sdk_macros::{action, mutation, query};
pub use ctx::{ActionCtx, MutationCtx, QueryCtx};
pub use db::{
    DatabaseReader, DatabaseWriter, Order, PaginationOpts, PaginationResult, QueryBuilder,
};
pub use error::{Error, Result};
pub use id::{Doc, Id, Table};
pub use schema::{Schema, TableDef, v};
pub use values::{from_value, to_value};

/// What kind of function a definition is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FunctionKind {
    Query,
    Mutation,
    Action,
}

/// Whether clients may call a function. Internal functions are for other
/// functions, and for admin and service callers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visibility {
    Public,
    Internal,
}

/// A function as the attributes describe it to [`app!`].
#[derive(Clone, Copy, Debug)]
pub struct FunctionDefinition {
    /// `module_path!()` where the function is defined.
    pub module: &'static str,
    pub name: &'static str,
    pub kind: FunctionKind,
    pub visibility: Visibility,
    /// Decodes the arguments (Convex JSON), runs, encodes the result.
    pub invoke: fn(&str) -> Result<String>,
}

impl FunctionDefinition {
    /// The Convex path: the module path without the crate name, `::` turned
    /// into `/`, then `:` and the function name.
    pub fn path(&self) -> String {
        let module = self.module.split_once("::").map_or("", |(_, rest)| rest);
        format!("{}:{}", module.replace("::", "/"), self.name)
    }

    /// Whether `path` is [`FunctionDefinition::path`], without building it.
    pub fn has_path(&self, path: &str) -> bool {
        let Some((module, name)) = path.rsplit_once(':') else {
            return false;
        };
        let own = self.module.split_once("::").map_or("", |(_, rest)| rest);
        name == self.name
            && own.len() - own.matches("::").count() == module.len()
            && own.split("::").eq(module.split('/'))
    }
}

/// Implemented by the attributes for each function, under the function's
/// name in the type namespace; [`app!`] collects them.
pub trait Function {
    fn definition() -> FunctionDefinition;
}

/// Exports the app: its schema and its functions.
///
/// ```ignore
/// capstan::app! {
///     schema: schema(),
///     functions: [counter::get, counter::increment],
/// }
/// ```
#[macro_export]
macro_rules! app {
    (schema: $schema:expr, functions: [$($function:path),* $(,)?] $(,)?) => {
        #[doc(hidden)]
        struct __CapstanApp;

        #[doc(hidden)]
        fn __capstan_registry() -> &'static [$crate::FunctionDefinition] {
            static REGISTRY: ::std::sync::OnceLock<::std::vec::Vec<$crate::FunctionDefinition>> =
                ::std::sync::OnceLock::new();
            REGISTRY.get_or_init(|| ::std::vec![$(<$function as $crate::Function>::definition()),*])
        }

        impl $crate::__private::Guest for __CapstanApp {
            fn functions() -> ::std::vec::Vec<$crate::__private::FunctionSpec> {
                $crate::__private::specs(__capstan_registry())
            }

            fn schema() -> ::std::string::String {
                let schema: $crate::Schema = $schema;
                schema.to_json()
            }

            fn invoke(
                path: ::std::string::String,
                args: ::std::string::String,
            ) -> ::std::result::Result<::std::string::String, $crate::__private::FunctionError> {
                $crate::__private::invoke(__capstan_registry(), &path, &args)
            }
        }

        $crate::__private::bindings::export!(__CapstanApp with_types_in $crate::__private::bindings);
    };
}

#[doc(hidden)]
pub mod __private {
    pub use crate::bindings;
    pub use crate::bindings::capstan::runtime::types::{FunctionError, FunctionSpec};
    pub use crate::bindings::exports::capstan::runtime::guest::Guest;
    pub use crate::log::{Level, write as log};

    use crate::bindings::capstan::runtime::types::{FunctionKind as Kind, Visibility as Vis};
    use crate::{Error, FunctionDefinition, FunctionKind, Result, Value, Visibility};

    fn parse_args(args: &str) -> Result<Value> {
        let value = Value::from_json_str(args)?;
        if !matches!(value, Value::Object(_)) {
            return Err(Error::new("function arguments must be an object"));
        }
        Ok(value)
    }

    pub fn decode_args<T: serde::de::DeserializeOwned>(args: &str) -> Result<T> {
        let value = parse_args(args)?;
        crate::from_value(&value)
            .map_err(|e| Error::new(format!("invalid arguments: {}", e.message())))
    }

    pub fn expect_no_args(args: &str) -> Result<()> {
        match parse_args(args)? {
            Value::Object(fields) if fields.is_empty() => Ok(()),
            _ => Err(Error::new("invalid arguments: this function takes none")),
        }
    }

    pub fn encode_result<T: serde::Serialize + ?Sized>(result: &T) -> Result<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn definition(module: &'static str, name: &'static str) -> FunctionDefinition {
        FunctionDefinition {
            module,
            name,
            kind: FunctionKind::Query,
            visibility: Visibility::Public,
            invoke: |_| Ok(String::new()),
        }
    }

    #[test]
    fn a_function_has_its_path_and_no_other() {
        let definitions = [
            definition("chat", "list"),
            definition("chat::messages", "send"),
            definition("chat::rooms::messages", "send"),
        ];
        let paths = [":list", "messages:send", "rooms/messages:send"];
        for (definition, path) in definitions.iter().zip(paths) {
            assert_eq!(definition.path(), path);
            for other in paths {
                assert_eq!(
                    definition.has_path(other),
                    other == path,
                    "{path} / {other}"
                );
            }
        }
        for wrong in [
            "messages",
            "messages:sen",
            "rooms:messages:send",
            "rooms::messages:send",
            "/messages:send",
            "",
        ] {
            assert!(definitions.iter().all(|d| !d.has_path(wrong)), "{wrong}");
        }
    }
}
