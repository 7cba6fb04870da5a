//! `#[query]`, `#[mutation]`, `#[action]`.
//!
//! The attribute keeps `fn name(ctx, …) -> capstan::Result<T>` as it is
//! (it still calls as plain Rust) and adds, in the type namespace only, a
//! struct `name {}` that:
//! - implements `capstan::Function` (its argument and result types, kind,
//!   path and invoker) and the kind's marker trait (`QueryFunction`, …), so
//!   `ctx.run_query::<module::name>(&args)` is checked by the compiler;
//! - must be listed in `capstan::app!`: a `Listed` bound checked here points
//!   at the function when it is not, and the function must live in a
//!   module (Convex paths are `module:function`).
//!
//! Being in the type namespace only, it never clashes with a variable or
//! parameter of the same name.
//!
//! Arguments are either one parameter named `args` (or a destructuring
//! pattern), holding the whole arguments object, or any number of named
//! parameters, which become the fields of a generated `<Name>Args` struct
//! (camelCase on the wire, unknown fields refused).

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, GenericArgument, Ident, ItemFn, Pat, PathArguments, ReturnType, Type};

use crate::case::{camel_case, pascal_case};

#[derive(Clone, Copy)]
pub enum Kind {
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

    fn marker_trait(self) -> TokenStream {
        match self {
            Kind::Query => quote!(::capstan::QueryFunction),
            Kind::Mutation => quote!(::capstan::MutationFunction),
            Kind::Action => quote!(::capstan::ActionFunction),
        }
    }

    fn tokens(self) -> TokenStream {
        match self {
            Kind::Query => quote!(::capstan::FunctionKind::Query),
            Kind::Mutation => quote!(::capstan::FunctionKind::Mutation),
            Kind::Action => quote!(::capstan::FunctionKind::Action),
        }
    }
}

/// How the function takes its arguments.
enum Arguments {
    /// None: the arguments object must be empty.
    None,
    /// One parameter holding the whole object.
    Whole(Box<Type>),
    /// Named parameters, each a field.
    Inline(Vec<(Ident, Box<Type>)>),
}

pub fn expand(kind: Kind, attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let internal = parse_visibility(kind, attr)?;
    let mut function: ItemFn = syn::parse2(item)?;
    let signature = &function.sig;
    if let Some(asyncness) = &signature.asyncness {
        return Err(syn::Error::new_spanned(
            asyncness,
            "Capstan functions are synchronous; remove `async`",
        ));
    }
    if !signature.generics.params.is_empty() || signature.generics.where_clause.is_some() {
        return Err(syn::Error::new_spanned(
            &signature.generics,
            "Capstan functions cannot be generic",
        ));
    }
    let output = result_type(&signature.output, signature.paren_token.span.close())?;
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
    let arguments = arguments(inputs.collect())?;

    let name = signature.ident.clone();
    let name_text = name.unraw().to_string();
    let vis = function.vis.clone();
    let cfgs: Vec<Attribute> = function
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg"))
        .cloned()
        .collect();
    // Arguments travel as one object, so their number is not a smell here.
    function
        .attrs
        .push(syn::parse_quote!(#[allow(clippy::too_many_arguments)]));

    let context_ident = format_ident!("{}", context);
    let make_context = if mutable {
        quote!(let mut ctx = ::capstan::#context_ident::__new(); let ctx = &mut ctx;)
    } else {
        quote!(let ctx = &::capstan::#context_ident::__new();)
    };
    let (args_type, args_struct, call) = match &arguments {
        Arguments::None => (
            quote!(()),
            TokenStream::new(),
            quote! {
                ::capstan::__private::expect_no_args(args, ::core::module_path!(), #name_text)?;
                #name(ctx)
            },
        ),
        Arguments::Whole(ty) => (
            quote!(#ty),
            TokenStream::new(),
            quote! {
                let args: #ty = ::capstan::__private::decode_args(args, ::core::module_path!(), #name_text)?;
                #name(ctx, args)
            },
        ),
        Arguments::Inline(fields) => {
            let struct_name = Ident::new(&format!("{}Args", pascal_case(&name_text)), name.span());
            let idents: Vec<&Ident> = fields.iter().map(|(ident, _)| ident).collect();
            let definitions = fields.iter().map(|(ident, ty)| {
                let wire = camel_case(ident.unraw().to_string().trim_start_matches('_'));
                let optional = is_option(ty).then(|| {
                    quote!(#[serde(default, skip_serializing_if = "::core::option::Option::is_none")])
                });
                quote! {
                    #[serde(rename = #wire)]
                    #optional
                    pub #ident: #ty
                }
            });
            // With every argument optional, `..Default::default()` fills
            // the ones a caller leaves out.
            let default = fields
                .iter()
                .all(|(_, ty)| is_option(ty))
                .then(|| quote!(#[derive(Default)]));
            let doc = format!("The arguments of [`{name_text}`](fn@{name_text}), by name.");
            (
                quote!(#struct_name),
                quote! {
                    #(#cfgs)*
                    #[doc = #doc]
                    #[derive(::capstan::__private::serde::Serialize, ::capstan::__private::serde::Deserialize)]
                    #default
                    #[serde(crate = "::capstan::__private::serde", deny_unknown_fields)]
                    #[allow(missing_debug_implementations)]
                    #vis struct #struct_name {
                        #(#definitions,)*
                    }
                },
                quote! {
                    let args: #struct_name = ::capstan::__private::decode_args(args, ::core::module_path!(), #name_text)?;
                    #name(ctx, #(args.#idents),*)
                },
            )
        }
    };
    let visibility = if internal {
        quote!(::capstan::Visibility::Internal)
    } else {
        quote!(::capstan::Visibility::Public)
    };
    let kind_tokens = kind.tokens();
    let marker_trait = kind.marker_trait();
    let schedulable = match kind {
        Kind::Query => TokenStream::new(),
        Kind::Mutation | Kind::Action => quote! {
            #(#cfgs)*
            impl ::capstan::Schedulable for #name {}
        },
    };
    let call_doc = format!(
        "[`{name_text}`](fn@{name_text}) as a type, for typed calls: `ctx.run_{}::<{name_text}>(&args)`.",
        kind.attribute()
    );
    let checks = quote_spanned! {name.span()=>
        const _: () = {
            fn listed<F: ::capstan::__private::Listed>() {}
            let _ = listed::<#name>;
            ::capstan::__private::in_a_module(::core::module_path!());
        };
    };
    Ok(quote! {
        #function

        #(#cfgs)*
        #[doc = #call_doc]
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug)]
        #vis struct #name {}

        #args_struct

        #(#cfgs)*
        impl ::capstan::Function for #name {
            type Args = #args_type;
            type Output = #output;
            const KIND: ::capstan::FunctionKind = #kind_tokens;

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

        #(#cfgs)*
        impl #marker_trait for #name {}

        #schedulable

        #(#cfgs)*
        #checks
    })
}

/// `T` of `capstan::Result<T>` (any path ending in `Result<T, …>`).
fn result_type(output: &ReturnType, close: Span) -> syn::Result<Type> {
    let wrong =
        |span: Span| syn::Error::new(span, "a Capstan function returns `capstan::Result<T>`");
    let ReturnType::Type(_, ty) = output else {
        return Err(wrong(close));
    };
    let Type::Path(path) = &**ty else {
        return Err(wrong(ty.span()));
    };
    let Some(last) = path.path.segments.last() else {
        return Err(wrong(ty.span()));
    };
    if last.ident != "Result" {
        return Err(wrong(ty.span()));
    }
    let PathArguments::AngleBracketed(generics) = &last.arguments else {
        return Err(wrong(ty.span()));
    };
    match generics.args.first() {
        Some(GenericArgument::Type(inner)) => {
            if let Type::ImplTrait(_) = inner {
                return Err(syn::Error::new_spanned(
                    inner,
                    "name the result type: `impl Trait` cannot be a function's result",
                ));
            }
            Ok(inner.clone())
        }
        _ => Err(wrong(ty.span())),
    }
}

fn arguments(rest: Vec<&FnArg>) -> syn::Result<Arguments> {
    let mut typed = Vec::new();
    for input in &rest {
        match input {
            FnArg::Typed(pattern) => typed.push(pattern),
            FnArg::Receiver(receiver) => {
                return Err(syn::Error::new_spanned(
                    receiver,
                    "Capstan functions are free functions",
                ));
            }
        }
    }
    if let [only] = typed.as_slice() {
        let whole = match &*only.pat {
            Pat::Ident(ident) => {
                let name = ident.ident.to_string();
                name == "args" || name == "_args"
            }
            Pat::Wild(_) => true,
            _ => true,
        };
        if whole {
            return Ok(Arguments::Whole(only.ty.clone()));
        }
    }
    if typed.is_empty() {
        return Ok(Arguments::None);
    }
    let mut fields = Vec::new();
    for pattern in typed {
        let Pat::Ident(ident) = &*pattern.pat else {
            return Err(syn::Error::new_spanned(
                &pattern.pat,
                "name each argument (`name: Type`); a pattern can only take the whole arguments object, as the only parameter",
            ));
        };
        if ident.ident == "args" {
            return Err(syn::Error::new_spanned(
                &ident.ident,
                "`args` takes the whole arguments object, so it must be the only parameter after the context; name the fields instead",
            ));
        }
        if fields.iter().any(|(other, _): &(Ident, _)| {
            camel_case(other.unraw().to_string().trim_start_matches('_'))
                == camel_case(ident.ident.unraw().to_string().trim_start_matches('_'))
        }) {
            return Err(syn::Error::new_spanned(
                &ident.ident,
                "two arguments with the same name on the wire",
            ));
        }
        if let Type::Reference(reference) = &*pattern.ty {
            return Err(syn::Error::new_spanned(
                reference,
                "arguments arrive as owned values: take `String` rather than `&str`, `Vec<T>` rather than `&[T]`",
            ));
        }
        fields.push((ident.ident.clone(), pattern.ty.clone()));
    }
    Ok(Arguments::Inline(fields))
}

fn is_option(ty: &Type) -> bool {
    matches!(ty, Type::Path(path) if path.qself.is_none()
        && path.path.segments.last().is_some_and(|s| s.ident == "Option"))
}

fn parse_visibility(kind: Kind, attr: TokenStream) -> syn::Result<bool> {
    if attr.is_empty() {
        return Ok(false);
    }
    let ident: Ident = syn::parse2(attr.clone()).map_err(|_| {
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
