//! `app!`: exports the app's schema and functions as the component.
//!
//! ```ignore
//! capstan::app! {
//!     tables: [counter::Counter],
//!     functions: [counter::{get, increment}],
//! }
//! ```
//!
//! `tables` lists the document types (or `schema:` gives a hand-built
//! `Schema`); `functions` lists every function, grouped by module as in a
//! `use`. Each listed function gets the `Listed` impl its attribute
//! checks for, so a function left out does not compile.

use proc_macro2::TokenStream;
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, Path, Token, UseTree, bracketed};

pub struct App {
    schema: Option<Expr>,
    /// The HTTP routes: an expression giving a `capstan::HttpRouter`.
    http: Option<Expr>,
    /// The cron jobs: an expression giving `capstan::Crons`.
    crons: Option<Expr>,
    tables: Vec<Path>,
    functions: Vec<(Path, String)>,
}

impl Parse for App {
    fn parse(input: ParseStream<'_>) -> syn::Result<App> {
        let mut schema = None;
        let mut http = None;
        let mut crons = None;
        let mut tables = None;
        let mut functions = None;
        while !input.is_empty() {
            let key: Ident = input.parse()?;
            input.parse::<Token![:]>()?;
            match key.to_string().as_str() {
                "schema" if schema.is_none() => schema = Some(input.parse::<Expr>()?),
                "http" if http.is_none() => http = Some(input.parse::<Expr>()?),
                "crons" if crons.is_none() => crons = Some(input.parse::<Expr>()?),
                "tables" if tables.is_none() => {
                    let content;
                    bracketed!(content in input);
                    tables = Some(
                        Punctuated::<Path, Token![,]>::parse_terminated(&content)?
                            .into_iter()
                            .collect::<Vec<_>>(),
                    );
                }
                "functions" if functions.is_none() => {
                    let content;
                    bracketed!(content in input);
                    let trees = Punctuated::<UseTree, Token![,]>::parse_terminated(&content)?;
                    let mut paths = Vec::new();
                    for tree in &trees {
                        flatten(tree, &mut Vec::new(), &mut paths)?;
                    }
                    functions = Some(paths);
                }
                "schema" | "tables" | "functions" | "http" | "crons" => {
                    return Err(syn::Error::new_spanned(
                        &key,
                        format!("`{key}` is given twice"),
                    ));
                }
                _ => {
                    return Err(syn::Error::new_spanned(
                        &key,
                        "expected `tables: [...]`, `schema: ...`, `functions: [...]`, `http: ...` or `crons: ...`",
                    ));
                }
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        if let (Some(schema), Some(_)) = (&schema, &tables) {
            return Err(syn::Error::new_spanned(
                schema,
                "give either `tables: [...]` or `schema: ...`, not both",
            ));
        }
        let functions = functions.ok_or_else(|| {
            syn::Error::new(
                input.span(),
                "list the app's functions: `functions: [module::name, ...]`",
            )
        })?;
        let mut seen: Vec<&String> = Vec::new();
        for (path, text) in &functions {
            if seen.contains(&text) {
                return Err(syn::Error::new_spanned(
                    path,
                    format!("`{text}` is listed twice"),
                ));
            }
            seen.push(text);
        }
        Ok(App {
            schema,
            http,
            crons,
            tables: tables.unwrap_or_default(),
            functions,
        })
    }
}

/// The paths a `use`-like tree names.
fn flatten(
    tree: &UseTree,
    prefix: &mut Vec<Ident>,
    out: &mut Vec<(Path, String)>,
) -> syn::Result<()> {
    match tree {
        UseTree::Path(path) => {
            prefix.push(path.ident.clone());
            flatten(&path.tree, prefix, out)?;
            prefix.pop();
        }
        UseTree::Name(name) => {
            let mut segments = prefix.clone();
            segments.push(name.ident.clone());
            let text = segments
                .iter()
                .map(Ident::to_string)
                .collect::<Vec<_>>()
                .join("::");
            let path: Path = syn::parse_quote!(#(#segments)::*);
            out.push((path, text));
        }
        UseTree::Group(group) => {
            for tree in &group.items {
                flatten(tree, prefix, out)?;
            }
        }
        UseTree::Glob(glob) => {
            return Err(syn::Error::new_spanned(
                glob,
                "list each function by name; a function the app does not list would not be served",
            ));
        }
        UseTree::Rename(rename) => {
            return Err(syn::Error::new_spanned(
                rename,
                "a function's path is its module and name; it cannot be renamed here",
            ));
        }
    }
    Ok(())
}

pub fn expand(app: App) -> TokenStream {
    let schema = match (&app.schema, app.tables.as_slice()) {
        (Some(schema), _) => quote!(#schema),
        (None, tables) => quote!(::capstan::Schema::new()#(.table::<#tables>())*),
    };
    let functions: Vec<&Path> = app.functions.iter().map(|(path, _)| path).collect();
    let router = match &app.http {
        Some(http) => quote!(#http),
        None => quote!(::capstan::HttpRouter::new()),
    };
    let crons = match &app.crons {
        Some(crons) => quote!(#crons),
        None => quote!(::capstan::Crons::new()),
    };
    quote! {
        #[doc(hidden)]
        struct __CapstanApp;

        #(impl ::capstan::__private::Listed for #functions {})*

        #[doc(hidden)]
        fn __capstan_registry() -> &'static [::capstan::FunctionDefinition] {
            static REGISTRY: ::std::sync::OnceLock<::std::vec::Vec<::capstan::FunctionDefinition>> =
                ::std::sync::OnceLock::new();
            REGISTRY.get_or_init(|| ::std::vec![#(<#functions as ::capstan::Function>::definition()),*])
        }

        #[doc(hidden)]
        fn __capstan_router() -> &'static ::capstan::HttpRouter {
            static ROUTER: ::std::sync::OnceLock<::capstan::HttpRouter> = ::std::sync::OnceLock::new();
            ROUTER.get_or_init(|| #router)
        }

        impl ::capstan::__private::Guest for __CapstanApp {
            fn functions() -> ::std::vec::Vec<::capstan::__private::FunctionSpec> {
                ::capstan::__private::specs(__capstan_registry())
            }

            fn schema() -> ::std::string::String {
                let schema: ::capstan::Schema = #schema;
                schema.to_json()
            }

            fn routes() -> ::std::vec::Vec<::capstan::__private::Route> {
                __capstan_router().specs()
            }

            fn crons() -> ::std::string::String {
                let crons: ::capstan::Crons = #crons;
                crons.to_json()
            }

            fn invoke_http(
                handler: ::std::string::String,
                request: ::capstan::__private::Request,
            ) -> ::std::result::Result<::capstan::__private::Response, ::capstan::__private::FunctionError> {
                ::capstan::__private::invoke_http(__capstan_router(), &handler, request)
            }

            fn invoke(
                path: ::std::string::String,
                args: ::std::string::String,
            ) -> ::std::result::Result<::std::string::String, ::capstan::__private::FunctionError> {
                ::capstan::__private::invoke(__capstan_registry(), &path, &args)
            }
        }

        ::capstan::__private::bindings::export!(__CapstanApp with_types_in ::capstan::__private::bindings);
    }
}
