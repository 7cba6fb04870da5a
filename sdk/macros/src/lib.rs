//! The macros of the Capstan SDK. Use them through the `capstan` crate:
//! `#[capstan::query]`, `#[capstan::mutation]`, `#[capstan::action]`,
//! `capstan::app!`, `#[derive(capstan::Table)]`,
//! `#[derive(capstan::Validated)]`.
//!
//! Each checks what it is given and points a mistake at the offending
//! token.
//!
//! # Layout
//! - `function`: the function attributes: a type per function, its
//!   arguments (a struct, or named parameters), its kind.
//! - `http_action`: `#[http_action]`, a type per HTTP action.
//! - `app`: `app!`, the component's exports and the check that every
//!   function is listed.
//! - `table`: `#[derive(Table)]`: name, typed indexes, patch type.
//! - `validated`: `#[derive(Validated)]`: validators from Rust types.
//! - `serde_attrs`, `case`: reading serde's attributes and renaming rules,
//!   so the derives describe what serde writes.

use proc_macro::TokenStream;

mod app;
mod case;
mod function;
mod http_action;
mod serde_attrs;
mod table;
mod validated;

use function::Kind;

/// A read-only function whose result clients can subscribe to.
#[proc_macro_attribute]
pub fn query(attr: TokenStream, item: TokenStream) -> TokenStream {
    function(Kind::Query, attr, item)
}

/// A transactional function that reads and writes the database.
#[proc_macro_attribute]
pub fn mutation(attr: TokenStream, item: TokenStream) -> TokenStream {
    function(Kind::Mutation, attr, item)
}

/// A function with side effects that calls queries and mutations.
#[proc_macro_attribute]
pub fn action(attr: TokenStream, item: TokenStream) -> TokenStream {
    function(Kind::Action, attr, item)
}

fn function(kind: Kind, attr: TokenStream, item: TokenStream) -> TokenStream {
    function::expand(kind, attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// An HTTP action: `fn name(ctx: &mut ActionCtx, request: HttpRequest) ->
/// capstan::HttpResult`, routed by `capstan::HttpRouter`.
#[proc_macro_attribute]
pub fn http_action(attr: TokenStream, item: TokenStream) -> TokenStream {
    http_action::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Exports the app: its tables (or schema) and its functions.
#[proc_macro]
pub fn app(input: TokenStream) -> TokenStream {
    match syn::parse::<app::App>(input) {
        Ok(app) => app::expand(app).into(),
        Err(error) => error.into_compile_error().into(),
    }
}

/// A table's document type: `#[table(name = "…", index(by_x = [x]))]`.
#[proc_macro_derive(Table, attributes(table))]
pub fn derive_table(input: TokenStream) -> TokenStream {
    syn::parse::<syn::DeriveInput>(input)
        .and_then(table::expand)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// A type whose values have one Convex shape, and its validator.
#[proc_macro_derive(Validated)]
pub fn derive_validated(input: TokenStream) -> TokenStream {
    syn::parse::<syn::DeriveInput>(input)
        .and_then(validated::expand)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
