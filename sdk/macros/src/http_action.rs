//! `#[http_action]`: an HTTP action, `fn name(ctx: &mut ActionCtx, request:
//! HttpRequest) -> capstan::HttpResult`. Like the function attributes, it
//! keeps the function and adds a type of the same name (type namespace
//! only), which implements `capstan::HttpActionFunction` so the router
//! names it: `HttpRouter::new().post::<payments::webhook>("/webhooks")`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::{FnArg, ItemFn, ReturnType};

pub fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    if !attr.is_empty() {
        return Err(syn::Error::new_spanned(
            attr,
            "`#[capstan::http_action]` takes no options",
        ));
    }
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
    let shape = "an HTTP action is `fn name(ctx: &mut ActionCtx, request: HttpRequest) -> capstan::HttpResult`";
    if signature.inputs.len() != 2 || matches!(signature.output, ReturnType::Default) {
        return Err(syn::Error::new(signature.paren_token.span.join(), shape));
    }
    if let Some(FnArg::Receiver(receiver)) = signature.inputs.first() {
        return Err(syn::Error::new_spanned(receiver, shape));
    }
    let name = signature.ident.clone();
    let name_text = name.unraw().to_string();
    let vis = function.vis.clone();
    let doc = format!(
        "[`{name_text}`](fn@{name_text}) as a type, for the router: `HttpRouter::new().post::<{name_text}>(\"/path\")`."
    );
    let checks = quote_spanned! {name.span()=>
        const _: () = {
            ::capstan::__private::in_a_module(::core::module_path!());
        };
    };
    Ok(quote! {
        #function

        #[doc = #doc]
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug)]
        #vis struct #name {}

        impl ::capstan::HttpActionFunction for #name {
            fn definition() -> ::capstan::HttpActionDefinition {
                fn invoke(request: ::capstan::HttpRequest) -> ::capstan::HttpResult {
                    let mut ctx = ::capstan::ActionCtx::__new();
                    #name(&mut ctx, request)
                }
                ::capstan::HttpActionDefinition {
                    module: ::core::module_path!(),
                    name: #name_text,
                    invoke,
                }
            }
        }

        #checks
    })
}
