//! `#[derive(Validated)]`: a type's validator, read from its fields and
//! its serde attributes, so that it describes what serde writes.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ext::IdentExt;
use syn::{Data, DeriveInput, Fields, Type};

use crate::case::Rule;
use crate::serde_attrs::{Container, Field, Tagging, Variant};

pub fn expand(input: DeriveInput) -> syn::Result<TokenStream> {
    let validator = validator(&input)?;
    Ok(implementation(&input, &validator))
}

/// `impl Validated for #input`, each type parameter bounded by it too.
pub fn implementation(input: &DeriveInput, validator: &TokenStream) -> TokenStream {
    // A newtype or transparent wrapper is a field as its inner type is
    // (an `Option` inside makes it optional).
    let field_validator = wrapped(input).ok().flatten().map(|inner| {
        quote! {
            fn field_validator() -> ::capstan::v::Validator {
                <#inner as ::capstan::Validated>::field_validator()
            }
        }
    });
    let name = &input.ident;
    let mut generics = input.generics.clone();
    for parameter in generics.type_params_mut() {
        parameter
            .bounds
            .push(syn::parse_quote!(::capstan::Validated));
    }
    let (impl_generics, type_generics, where_clause) = generics.split_for_impl();
    quote! {
        impl #impl_generics ::capstan::Validated for #name #type_generics #where_clause {
            fn validator() -> ::capstan::v::Validator {
                #validator
            }
            #field_validator
        }
    }
}

/// The one field a newtype (`struct Id(String)`) or `#[serde(transparent)]`
/// struct is written as.
fn wrapped(input: &DeriveInput) -> syn::Result<Option<&Type>> {
    let Data::Struct(data) = &input.data else {
        return Ok(None);
    };
    let container = Container::parse(&input.attrs)?;
    let mut stored = Vec::new();
    for field in &data.fields {
        if !Field::parse(&field.attrs)?.skip {
            stored.push(&field.ty);
        }
    }
    let newtype = matches!(&data.fields, Fields::Unnamed(unnamed) if unnamed.unnamed.len() == 1);
    if !(container.transparent || newtype) {
        return Ok(None);
    }
    match stored.as_slice() {
        [only] => Ok(Some(only)),
        _ => Err(syn::Error::new_spanned(
            &input.ident,
            "a transparent struct is written as its one field",
        )),
    }
}

/// The expression building the validator of `input`.
pub fn validator(input: &DeriveInput) -> syn::Result<TokenStream> {
    let container = Container::parse(&input.attrs)?;
    match &input.data {
        Data::Struct(data) => {
            if let Some(inner) = wrapped(input)? {
                return Ok(of_type(inner));
            }
            let object = fields(&data.fields, &container)?;
            // `#[serde(tag = "…")]` on a struct writes its name beside its
            // fields.
            Ok(match &container.tag {
                Some(tag) => {
                    let name = container
                        .rename
                        .clone()
                        .unwrap_or_else(|| input.ident.unraw().to_string());
                    quote!(::capstan::v::__flatten(
                        ::capstan::v::object([(#tag, ::capstan::v::literal(#name))]),
                        #object,
                    ))
                }
                None => object,
            })
        }
        Data::Enum(data) => {
            let tagging = container.tagging();
            let mut members = Vec::new();
            for variant in &data.variants {
                let attrs = Variant::parse(&variant.attrs)?;
                if attrs.skip {
                    continue;
                }
                let name = attrs.rename.clone().unwrap_or_else(|| {
                    container
                        .rename_all
                        .variant(&variant.ident.unraw().to_string())
                });
                let own = Container {
                    rename_all: match attrs.rename_all {
                        Rule::None => container.rename_all_fields,
                        rule => rule,
                    },
                    ..Container::default()
                };
                let content = match &variant.fields {
                    Fields::Unit => None,
                    Fields::Unnamed(unnamed) if unnamed.unnamed.len() == 1 => {
                        Some(of_type(&unnamed.unnamed[0].ty))
                    }
                    other => Some(fields(other, &own)?),
                };
                let tagging = if attrs.untagged {
                    &Tagging::Untagged
                } else {
                    &tagging
                };
                members.push(member(tagging, &name, content, &variant.fields)?);
            }
            Ok(quote!(::capstan::v::union([#(#members),*])))
        }
        Data::Union(data) => Err(syn::Error::new_spanned(
            data.union_token,
            "unions have no Convex validator",
        )),
    }
}

/// One variant of an enum, as its tagging writes it.
fn member(
    tagging: &Tagging,
    name: &str,
    content: Option<TokenStream>,
    fields: &Fields,
) -> syn::Result<TokenStream> {
    let literal = quote!(::capstan::v::literal(#name));
    Ok(match (tagging, content) {
        (Tagging::External, None) => literal,
        (Tagging::External, Some(content)) => quote!(::capstan::v::object([(#name, #content)])),
        (Tagging::Internal { tag }, None) => quote!(::capstan::v::object([(#tag, #literal)])),
        (Tagging::Internal { tag }, Some(content)) => {
            if matches!(fields, Fields::Unnamed(unnamed) if unnamed.unnamed.len() > 1) {
                return Err(syn::Error::new_spanned(
                    fields,
                    "serde cannot write a tuple variant with an internal tag",
                ));
            }
            quote!(::capstan::v::__flatten(::capstan::v::object([(#tag, #literal)]), #content))
        }
        (Tagging::Adjacent { tag, .. }, None) => quote!(::capstan::v::object([(#tag, #literal)])),
        (Tagging::Adjacent { tag, content: key }, Some(content)) => {
            quote!(::capstan::v::object([(#tag, #literal), (#key, #content)]))
        }
        (Tagging::Untagged, None) => quote!(::capstan::v::null()),
        (Tagging::Untagged, Some(content)) => content,
    })
}

/// The validator of a struct's (or a variant's) fields.
fn fields(fields: &Fields, container: &Container) -> syn::Result<TokenStream> {
    match fields {
        Fields::Unit => Ok(quote!(::capstan::v::null())),
        Fields::Unnamed(unnamed) => {
            let items: Vec<TokenStream> = unnamed
                .unnamed
                .iter()
                .filter(|f| Field::parse(&f.attrs).is_ok_and(|a| !a.skip))
                .map(|f| of_type(&f.ty))
                .collect();
            Ok(match items.as_slice() {
                [only] => only.clone(),
                _ => quote!(::capstan::v::array(::capstan::v::union([#(#items),*]))),
            })
        }
        Fields::Named(named) => {
            let mut entries = Vec::new();
            let mut flattened = Vec::new();
            for field in &named.named {
                let attrs = Field::parse(&field.attrs)?;
                if attrs.skip {
                    continue;
                }
                let ty = &field.ty;
                let value = if attrs.custom {
                    quote!(::capstan::v::any())
                } else if attrs.flatten {
                    flattened.push(quote!(<#ty as ::capstan::Validated>::validator()));
                    continue;
                } else {
                    quote!(<#ty as ::capstan::Validated>::field_validator())
                };
                let value = if attrs.optional || container.default {
                    quote!(::capstan::v::optional(#value))
                } else {
                    value
                };
                let name = wire_name(field, &attrs, container);
                entries.push(quote!((#name, #value)));
            }
            Ok(quote! {{
                let object = ::capstan::v::object([#(#entries),*]);
                #(let object = ::capstan::v::__flatten(object, #flattened);)*
                object
            }})
        }
    }
}

fn of_type(ty: &Type) -> TokenStream {
    quote!(<#ty as ::capstan::Validated>::validator())
}

/// The name serde writes a named field under.
pub fn wire_name(field: &syn::Field, attrs: &Field, container: &Container) -> String {
    attrs.rename.clone().unwrap_or_else(|| {
        let ident = field.ident.as_ref().map(|i| i.unraw().to_string());
        container.rename_all.field(&ident.unwrap_or_default())
    })
}
