//! Functions as types: what the attributes make of each function, and what
//! `app!` and typed calls read from them.

pub use capstan_protocol::{FunctionKind, Visibility};

/// A function as its attribute describes it to [`crate::app!`].
#[derive(Clone, Copy, Debug)]
pub struct FunctionDefinition {
    /// `module_path!()` where the function is defined.
    pub module: &'static str,
    pub name: &'static str,
    pub kind: FunctionKind,
    pub visibility: Visibility,
    /// Decodes the arguments (Convex JSON), runs, encodes the result.
    pub invoke: fn(&str) -> crate::Result<String>,
}

impl FunctionDefinition {
    /// The Convex path: the module path without the crate name, `::` turned
    /// into `/`, then `:` and the function name.
    pub fn path(&self) -> String {
        path(self.module, self.name)
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

/// The Convex path of function `name` in Rust module `module`.
pub(crate) fn path(module: &str, name: &str) -> String {
    let module = module.split_once("::").map_or("", |(_, rest)| rest);
    format!("{}:{name}", module.replace("::", "/"))
}

/// A Capstan function. `#[capstan::query]` (and `mutation`, `action`) keep
/// `fn name` as it is and add a type of the same name implementing this,
/// which names the function in typed calls:
///
/// ```ignore
/// let archived = ctx.run_mutation::<notes::archive>(&notes::ArchiveArgs { notebook })?;
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a Capstan function",
    note = "mark it `#[capstan::query]`, `#[capstan::mutation]` or `#[capstan::action]`"
)]
pub trait Function: 'static {
    /// The arguments object: the function's arguments struct, the
    /// `<Name>Args` struct generated for named parameters, or `()` for a
    /// function without arguments.
    type Args;
    /// What the function returns (the `T` of its `capstan::Result<T>`).
    type Output;
    const KIND: FunctionKind;

    fn definition() -> FunctionDefinition;
}

/// A `#[capstan::query]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a query",
    note = "run mutations with `run_mutation` and actions with `run_action`"
)]
pub trait QueryFunction: Function {}

/// A `#[capstan::mutation]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a mutation",
    note = "run queries with `run_query` and actions with `run_action`"
)]
pub trait MutationFunction: Function {}

/// A `#[capstan::action]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an action",
    note = "run queries with `run_query` and mutations with `run_mutation`"
)]
pub trait ActionFunction: Function {}

/// A mutation or an action: what the scheduler and crons run.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be scheduled",
    note = "the scheduler and crons run mutations and actions, not queries"
)]
pub trait Schedulable: Function {}

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
