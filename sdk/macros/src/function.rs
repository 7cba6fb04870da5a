//! `#[query]`, `#[mutation]`, `#[action]`.
//!
//! The attribute turns `fn name(ctx, …) -> capstan::Result<T>` into a unit
//! struct `name` (in both the type and the value namespace) that:
//! - implements `capstan::Function` (its argument and result types, kind,
//!   path and invoker) and the kind's marker trait (`QueryFunction`, …), so
//!   `ctx.run_query(module::name, &args)` is checked by the compiler;
//! - derefs to a function pointer to the body, so `name(ctx, …)` still
//!   calls it as plain Rust;
//! - must be listed in `capstan::app!`: a `Listed` bound checked here points
//!   at the function when it is not.
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
    let vis = match &function.vis {
        syn::Visibility::Inherited => quote!(pub(crate)),
        other => quote!(#other),
    };
    let body_name = format_ident!("__capstan_{}", name);
    let parameter_types: Vec<&Type> = signature
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(typed) => Some(&*typed.ty),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let return_type = match &signature.output {
        ReturnType::Type(_, ty) => ty,
        ReturnType::Default => unreachable!("result_type refused it"),
    };
    let pointer = quote!(fn(#(#parameter_types),*) -> #return_type);

    // Documentation and `cfg`s go to the struct; the rest stays on the body.
    let (docs, cfgs): (Vec<&Attribute>, Vec<&Attribute>) = (
        function
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("doc"))
            .collect(),
        function
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("cfg"))
            .collect(),
    );
    let docs: Vec<Attribute> = docs.into_iter().cloned().collect();
    let cfgs: Vec<Attribute> = cfgs.into_iter().cloned().collect();
    function.attrs.retain(|a| !a.path().is_ident("doc"));
    function.sig.ident = body_name.clone();
    function.vis = syn::Visibility::Inherited;

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
                #body_name(ctx)
            },
        ),
        Arguments::Whole(ty) => (
            quote!(#ty),
            TokenStream::new(),
            quote! {
                let args: #ty = ::capstan::__private::decode_args(args, ::core::module_path!(), #name_text)?;
                #body_name(ctx, args)
            },
        ),
        Arguments::Inline(fields) => {
            let struct_name = Ident::new(
                &format!("{}Args", pascal_case(&name.unraw().to_string())),
                name.span(),
            );
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
            let doc = format!("The arguments of [`{name_text}`], by name.");
            (
                quote!(#struct_name),
                quote! {
                    #(#cfgs)*
                    #[doc = #doc]
                    #[derive(::capstan::__private::serde::Serialize, ::capstan::__private::serde::Deserialize)]
                    #[serde(crate = "::capstan::__private::serde", deny_unknown_fields)]
                    #[allow(missing_debug_implementations)]
                    #vis struct #struct_name {
                        #(#definitions,)*
                    }
                },
                quote! {
                    let args: #struct_name = ::capstan::__private::decode_args(args, ::core::module_path!(), #name_text)?;
                    #body_name(ctx, #(args.#idents),*)
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
    let listed = quote_spanned! {name.span()=>
        const _: () = {
            fn listed<F: ::capstan::__private::Listed>() {}
            let _ = listed::<#name>;
        };
    };
    Ok(quote! {
        #(#cfgs)*
        #function

        #(#docs)*
        #(#cfgs)*
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy)]
        #vis struct #name;

        #args_struct

        #(#cfgs)*
        impl ::core::fmt::Debug for #name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(#name_text)
            }
        }

        #(#cfgs)*
        impl ::core::ops::Deref for #name {
            type Target = #pointer;
            fn deref(&self) -> &Self::Target {
                &(#body_name as #pointer)
            }
        }

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

        #(#cfgs)*
        #listed
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
