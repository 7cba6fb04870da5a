//! The attributes that turn Rust functions into Capstan functions. Use them
//! through the `capstan` crate: `#[capstan::query]`, `#[capstan::mutation]`,
//! `#[capstan::action]`.
//!
//! Each attribute keeps the function as written and adds, beside it, a
//! type-namespace item of the same name (`struct name {}`) implementing
//! `capstan::Function`, which `capstan::app!` lists. Signatures are checked
//! here so that a mistake points at the offending token.

use proc_macro::TokenStream;
use quote::{format_ident, quote};
use syn::{FnArg, ItemFn, Pat, ReturnType, Type};

#[derive(Clone, Copy)]
enum Kind {
    Query,
    Mutation,
    Action,
}

impl Kind {
    fn context(self) -> (&'static str, bool) {
        match self {
            Kind::Query => ("QueryCtx", false),
            Kind::Mutation => ("MutationCtx", true),
            Kind::Action => ("ActionCtx", true),
        }
    }

    fn attribute(self) -> &'static str {
        match self {
            Kind::Query => "query",
            Kind::Mutation => "mutation",
            Kind::Action => "action",
        }
    }
}

/// A read-only function whose result clients can subscribe to.
#[proc_macro_attribute]
pub fn query(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Query, attr, item)
}

/// A transactional function that reads and writes the database.
#[proc_macro_attribute]
pub fn mutation(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Mutation, attr, item)
}

/// A function with side effects that calls queries and mutations.
#[proc_macro_attribute]
pub fn action(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Action, attr, item)
}

fn expand(kind: Kind, attr: TokenStream, item: TokenStream) -> TokenStream {
    match try_expand(kind, attr.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

fn try_expand(
    kind: Kind,
    attr: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    let internal = parse_visibility(kind, attr)?;
    let function: ItemFn = syn::parse2(item)?;
    let signature = &function.sig;
    if let Some(asyncness) = &signature.asyncness {
        return Err(syn::Error::new_spanned(
            asyncness,
            "Capstan functions are synchronous; remove `async`",
        ));
    }
    if !signature.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &signature.generics,
            "Capstan functions cannot be generic",
        ));
    }
    if matches!(signature.output, ReturnType::Default) {
        return Err(syn::Error::new(
            signature.paren_token.span.close(),
            "a Capstan function returns `capstan::Result<T>`",
        ));
    }
    let mut inputs = signature.inputs.iter();
    let (context, mutable) = kind.context();
    let expected = if mutable {
        format!("&mut {context}")
    } else {
        format!("&{context}")
    };
    let Some(first) = inputs.next() else {
        return Err(syn::Error::new(
            signature.paren_token.span.join(),
            format!(
                "a #[capstan::{}] function takes `ctx: {expected}` first",
                kind.attribute()
            ),
        ));
    };
    check_context(first, context, mutable, &expected)?;
    let args = inputs.next();
    if let Some(extra) = inputs.next() {
        return Err(syn::Error::new_spanned(
            extra,
            "a Capstan function takes at most two parameters: the context and one arguments value",
        ));
    }
    let args_type = match args {
        None => None,
        Some(FnArg::Typed(typed)) => {
            if !matches!(*typed.pat, Pat::Ident(_) | Pat::Wild(_)) {
                return Err(syn::Error::new_spanned(
                    &typed.pat,
                    "name the arguments parameter",
                ));
            }
            Some(typed.ty.clone())
        }
        Some(receiver) => {
            return Err(syn::Error::new_spanned(
                receiver,
                "Capstan functions are free functions",
            ));
        }
    };

    let name = &signature.ident;
    let name_text = name.to_string();
    let kind_tokens = match kind {
        Kind::Query => quote!(::capstan::FunctionKind::Query),
        Kind::Mutation => quote!(::capstan::FunctionKind::Mutation),
        Kind::Action => quote!(::capstan::FunctionKind::Action),
    };
    let visibility = if internal {
        quote!(::capstan::Visibility::Internal)
    } else {
        quote!(::capstan::Visibility::Public)
    };
    let context_ident = format_ident!("{}", context);
    let make_context = if mutable {
        quote!(let mut ctx = ::capstan::#context_ident::__new(); let ctx = &mut ctx;)
    } else {
        quote!(let ctx = &::capstan::#context_ident::__new();)
    };
    let call = match &args_type {
        Some(ty) => quote! {
            let args: #ty = ::capstan::__private::decode_args(args)?;
            #name(ctx, args)
        },
        None => quote! {
            ::capstan::__private::expect_no_args(args)?;
            #name(ctx)
        },
    };
    let marker = syn::Ident::new(&name_text, name.span());
    Ok(quote! {
        #function

        #[doc(hidden)]
        #[allow(non_camel_case_types, dead_code)]
        pub(crate) struct #marker {}

        impl ::capstan::Function for #marker {
            fn definition() -> ::capstan::FunctionDefinition {
                fn invoke(args: &str) -> ::capstan::Result<::std::string::String> {
                    #make_context
                    let result = { #call }?;
                    ::capstan::__private::encode_result(&result)
                }
                ::capstan::FunctionDefinition {
                    module: ::core::module_path!(),
                    name: #name_text,
                    kind: #kind_tokens,
                    visibility: #visibility,
                    invoke,
                }
            }
        }
    })
}

fn parse_visibility(kind: Kind, attr: proc_macro2::TokenStream) -> syn::Result<bool> {
    if attr.is_empty() {
        return Ok(false);
    }
    let ident: syn::Ident = syn::parse2(attr.clone()).map_err(|_| {
        syn::Error::new_spanned(
            &attr,
            format!(
                "expected `#[capstan::{}]` or `#[capstan::{}(internal)]`",
                kind.attribute(),
                kind.attribute()
            ),
        )
    })?;
    if ident == "internal" {
        Ok(true)
    } else {
        Err(syn::Error::new_spanned(
            ident,
            "unknown option; the only option is `internal`",
        ))
    }
}

fn check_context(arg: &FnArg, context: &str, mutable: bool, expected: &str) -> syn::Result<()> {
    let FnArg::Typed(typed) = arg else {
        return Err(syn::Error::new_spanned(
            arg,
            "Capstan functions are free functions",
        ));
    };
    let wrong = |span: &dyn quote::ToTokens| {
        Err(syn::Error::new_spanned(
            span,
            format!("the first parameter must be `{expected}`"),
        ))
    };
    let Type::Reference(reference) = &*typed.ty else {
        return wrong(&typed.ty);
    };
    if reference.mutability.is_some() != mutable {
        return wrong(&typed.ty);
    }
    let Type::Path(path) = &*reference.elem else {
        return wrong(&typed.ty);
    };
    match path.path.segments.last() {
        Some(segment) if segment.ident == context => Ok(()),
        _ => wrong(&typed.ty),
    }
}
