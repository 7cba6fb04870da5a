//! `#[derive(Table)]`: a table from its document type, each fact written
//! once. From `#[table(name = "…", index(by_x = [x, …]), …)]` and the
//! struct it makes:
//! - `impl Table` (name, indexes, patch type) and `impl Validated` (the
//!   documents' validator, from the fields and their serde attributes);
//! - a typed constant per index (`Note::by_notebook`, and
//!   `Note::by_creation_time`), so ranges are checked by the compiler;
//! - `<Name>Patch`, the partial document for `db.patch`: each field
//!   optional, with a setter per field and `unset_<field>` for optional
//!   fields;
//! - `impl UsersTable` when the table is `users`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::ext::IdentExt;
use syn::{
    Data, DeriveInput, Expr, ExprArray, Fields, GenericArgument, Ident, Lit, LitStr, PathArguments,
    Type,
};

use crate::serde_attrs::{Container, Field};
use crate::validated;

/// An index as the attribute names it.
struct IndexSpec {
    name: Ident,
    fields: Vec<IndexField>,
}

enum IndexField {
    /// A field of the struct, by its Rust name.
    Field(Ident),
    /// A stored path (`"author.name"`), untyped.
    Path(LitStr),
}

struct TableSpec {
    name: LitStr,
    indexes: Vec<IndexSpec>,
}

const RESERVED_INDEXES: &[&str] = &["by_id", "by_creation_time"];

pub fn expand(input: DeriveInput) -> syn::Result<TokenStream> {
    let spec = parse_spec(&input)?;
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            "a table's document type cannot be generic",
        ));
    }
    let container = Container::parse(&input.attrs)?;
    let named = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(named) => Some(named),
            _ => {
                return Err(syn::Error::new_spanned(
                    &input.ident,
                    "a table's documents are objects: use a struct with named fields (or an enum)",
                ));
            }
        },
        Data::Enum(_) => None,
        Data::Union(data) => {
            return Err(syn::Error::new_spanned(
                data.union_token,
                "a table's document type is a struct or an enum",
            ));
        }
    };
    // Each named field: its Rust name, type, serde attributes and stored name.
    let mut fields = Vec::new();
    if let Some(named) = named {
        for field in &named.named {
            let attrs = Field::parse(&field.attrs)?;
            let wire = validated::wire_name(field, &attrs, &container);
            fields.push((field, attrs, wire));
        }
    }

    let name = &input.ident;
    let vis = &input.vis;
    let table_name = &spec.name;
    let validator = validated::validator(&input)?;
    let validated = validated::implementation(&input, &validator);

    let mut index_entries = Vec::new();
    let mut index_consts = Vec::new();
    for index in &spec.indexes {
        let mut stored = Vec::new();
        let mut types = Vec::new();
        for field in &index.fields {
            match field {
                IndexField::Field(ident) => {
                    let Some((field, attrs, wire)) = fields.iter().find(|(f, _, _)| {
                        f.ident.as_ref().is_some_and(|i| i.unraw() == ident.unraw())
                    }) else {
                        return Err(syn::Error::new_spanned(
                            ident,
                            format!("`{name}` has no field `{ident}`"),
                        ));
                    };
                    if attrs.skip {
                        return Err(syn::Error::new_spanned(
                            ident,
                            "this field is never stored (`#[serde(skip)]`), so it cannot be indexed",
                        ));
                    }
                    if attrs.flatten {
                        return Err(syn::Error::new_spanned(
                            ident,
                            "this field's fields are stored in the document itself (`#[serde(flatten)]`); index them by name, as \"field\"",
                        ));
                    }
                    if attrs.custom {
                        types.push(quote!(::capstan::AnyValue));
                    } else {
                        let ty = &field.ty;
                        types.push(quote!(#ty));
                    }
                    stored.push(wire.clone());
                }
                IndexField::Path(path) => {
                    if named.is_some()
                        && let Some((_, _, _)) =
                            fields.iter().find(|(_, _, wire)| *wire == path.value())
                    {
                        return Err(syn::Error::new_spanned(
                            path,
                            "name a field of the struct by its Rust name, unquoted, so its type is checked",
                        ));
                    }
                    types.push(quote!(::capstan::AnyValue));
                    stored.push(path.value());
                }
            }
        }
        if let Some(repeated) = stored
            .iter()
            .enumerate()
            .find_map(|(i, f)| stored[..i].contains(f).then_some(f))
        {
            return Err(syn::Error::new_spanned(
                &index.name,
                format!("the index names field {repeated:?} twice"),
            ));
        }
        let index_name = index.name.unraw().to_string();
        index_entries.push(quote!((#index_name, &[#(#stored),*])));
        let list = types
            .iter()
            .rev()
            .fold(quote!((f64, ())), |rest, ty| quote!((#ty, #rest)));
        let ident = &index.name;
        let doc = format!(
            "The index `{index_name}`: {}, then `_creationTime`.",
            stored
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        index_consts.push(quote! {
            #[doc = #doc]
            #vis const #ident: ::capstan::Index<#name, #list> = ::capstan::Index::__new(#index_name, &[#(#stored),*]);
        });
    }

    let (patch_type, patch_items) = match named {
        Some(_) => {
            let patch = format_ident!("{}Patch", name);
            (quote!(#patch), patch_struct(name, &patch, vis, &fields)?)
        }
        None => (
            quote!(::capstan::__private::serde_json::Value),
            TokenStream::new(),
        ),
    };
    let users =
        (table_name.value() == "users").then(|| quote!(impl ::capstan::UsersTable for #name {}));

    Ok(quote! {
        #validated

        impl ::capstan::Table for #name {
            const NAME: &'static str = #table_name;
            const INDEXES: &'static [(&'static str, &'static [&'static str])] = &[#(#index_entries),*];
            type Patch = #patch_type;
        }

        #[allow(non_upper_case_globals)]
        impl #name {
            #(#index_consts)*
            /// The index every table has: `_creationTime`.
            #vis const by_creation_time: ::capstan::Index<#name, (f64, ())> = ::capstan::Index::__new("by_creation_time", &[]);
        }

        #patch_items

        #users
    })
}

/// `<Name>Patch`: every stored field optional, a setter each.
fn patch_struct(
    name: &Ident,
    patch: &Ident,
    vis: &syn::Visibility,
    fields: &[(&syn::Field, Field, String)],
) -> syn::Result<TokenStream> {
    let mut definitions = Vec::new();
    let mut setters = Vec::new();
    let mut encodes = Vec::new();
    let mut method_names: Vec<String> = vec!["new".to_owned()];
    let mut claim = |ident: &Ident| -> syn::Result<()> {
        let text = ident.unraw().to_string();
        if method_names.contains(&text) {
            return Err(syn::Error::new_spanned(
                ident,
                format!("`{patch}::{text}` would be defined twice; rename this field"),
            ));
        }
        method_names.push(text);
        Ok(())
    };
    for (field, attrs, wire) in fields {
        if attrs.skip || attrs.flatten || attrs.custom {
            continue;
        }
        let Some(ident) = &field.ident else { continue };
        let field_vis = &field.vis;
        let ty = &field.ty;
        let doc = format!("`{wire}`: `Some` sets it.");
        claim(ident)?;
        match option_inner(ty) {
            Some(inner) => {
                let unset = format_ident!("unset_{}", ident.unraw());
                claim(&unset)?;
                let doc = format!("`{wire}`: `Some(Some(_))` sets it, `Some(None)` removes it.");
                definitions
                    .push(quote!(#[doc = #doc] #field_vis #ident: ::core::option::Option<#ty>));
                setters.push(quote! {
                    #[doc = concat!("Sets `", #wire, "`.")]
                    #field_vis fn #ident(mut self, value: impl ::core::convert::Into<#inner>) -> Self {
                        self.#ident = ::core::option::Option::Some(::core::option::Option::Some(value.into()));
                        self
                    }
                    #[doc = concat!("Removes `", #wire, "`.")]
                    #field_vis fn #unset(mut self) -> Self {
                        self.#ident = ::core::option::Option::Some(::core::option::Option::None);
                        self
                    }
                });
            }
            None => {
                definitions
                    .push(quote!(#[doc = #doc] #field_vis #ident: ::core::option::Option<#ty>));
                setters.push(quote! {
                    #[doc = concat!("Sets `", #wire, "`.")]
                    #field_vis fn #ident(mut self, value: impl ::core::convert::Into<#ty>) -> Self {
                        self.#ident = ::core::option::Option::Some(value.into());
                        self
                    }
                });
            }
        }
        encodes.push(quote! {
            if let ::core::option::Option::Some(value) = &self.#ident {
                ::capstan::__private::patch::set(&mut set, &mut unset, #wire, value)?;
            }
        });
    }
    let doc = format!(
        "A partial [`{name}`] for `db.patch`: the fields that are `Some` are written, the others left as they are."
    );
    Ok(quote! {
        #[doc = #doc]
        #[derive(Default)]
        #[allow(missing_debug_implementations)]
        #vis struct #patch {
            #(#definitions,)*
        }

        impl #patch {
            /// A patch that changes nothing yet.
            #vis fn new() -> Self {
                ::core::default::Default::default()
            }
            #(#setters)*
        }

        impl ::capstan::Patch<#name> for #patch {
            fn into_parts(self) -> ::capstan::Result<(::capstan::__private::Object, ::std::vec::Vec<::std::string::String>)> {
                let mut set = ::capstan::__private::Object::new();
                let mut unset = ::std::vec::Vec::new();
                #(#encodes)*
                ::core::result::Result::Ok((set, unset))
            }
        }
    })
}

/// `T` of `Option<T>`, read from the type as written.
fn option_inner(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Option" {
        return None;
    }
    let PathArguments::AngleBracketed(arguments) = &last.arguments else {
        return None;
    };
    match arguments.args.first()? {
        GenericArgument::Type(inner) => Some(inner),
        _ => None,
    }
}

fn parse_spec(input: &DeriveInput) -> syn::Result<TableSpec> {
    let mut name = None;
    let mut indexes: Vec<IndexSpec> = Vec::new();
    let mut seen = false;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("table")) {
        seen = true;
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                let value: LitStr = meta.value()?.parse()?;
                check_name(&value.value(), "table")
                    .map_err(|m| syn::Error::new_spanned(&value, m))?;
                name = Some(value);
                Ok(())
            } else if meta.path.is_ident("index") {
                meta.parse_nested_meta(|index| {
                    let Some(ident) = index.path.get_ident().cloned() else {
                        return Err(index.error("expected `index(by_name = [field, …])`"));
                    };
                    let text = ident.unraw().to_string();
                    check_name(&text, "index").map_err(|m| syn::Error::new_spanned(&ident, m))?;
                    if RESERVED_INDEXES.contains(&text.as_str()) {
                        return Err(syn::Error::new_spanned(
                            &ident,
                            format!("`{text}` is an index every table has; choose another name"),
                        ));
                    }
                    if indexes.iter().any(|i| i.name.unraw() == ident.unraw()) {
                        return Err(syn::Error::new_spanned(
                            &ident,
                            format!("a second index named `{text}`"),
                        ));
                    }
                    let list: ExprArray = index.value()?.parse()?;
                    let mut fields = Vec::new();
                    for element in &list.elems {
                        let field = match element {
                            Expr::Path(path) => {
                                path.path.get_ident().cloned().map(IndexField::Field)
                            }
                            Expr::Lit(lit) => match &lit.lit {
                                Lit::Str(path) => Some(IndexField::Path(path.clone())),
                                _ => None,
                            },
                            _ => None,
                        };
                        fields.push(field.ok_or_else(|| {
                            syn::Error::new_spanned(
                                element,
                                "expected a field name or a \"dotted.path\"",
                            )
                        })?);
                    }
                    if fields.is_empty() {
                        return Err(syn::Error::new_spanned(
                            &list,
                            "an index needs at least one field",
                        ));
                    }
                    indexes.push(IndexSpec {
                        name: ident,
                        fields,
                    });
                    Ok(())
                })
            } else {
                Err(meta.error("unknown option; expected `name = \"…\"` or `index(by_x = [x])`"))
            }
        })?;
    }
    let name = name.ok_or_else(|| {
        let message = if seen {
            "name the table: `#[table(name = \"…\")]`"
        } else {
            "a table needs `#[table(name = \"…\")]`"
        };
        syn::Error::new_spanned(&input.ident, message)
    })?;
    Ok(TableSpec { name, indexes })
}

/// Convex's rule for table and index names.
/// A leading underscore names a system table (`_storage`): the SDK's own
/// types for them derive `Table` to be read, and the server refuses such a
/// table in an app's schema.
fn check_name(name: &str, what: &str) -> Result<(), String> {
    let body = match what {
        "table" => name.strip_prefix('_').unwrap_or(name),
        _ => name,
    };
    let valid = !name.is_empty()
        && name.len() <= 64
        && body.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid {what} name: letters, digits and underscores, starting with a letter, at most 64"
        ))
    }
}
