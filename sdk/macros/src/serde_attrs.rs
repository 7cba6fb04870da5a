//! The parts of `#[serde(...)]` that change how a value is written: names,
//! skipped and optional fields, flattening, enum tagging. The derives read
//! them so that a validator describes exactly what serde writes.

use syn::meta::ParseNestedMeta;
use syn::{Attribute, LitStr, Token};

use crate::case::Rule;

/// How an enum is written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Tagging {
    /// `"Variant"` or `{"Variant": …}`.
    #[default]
    External,
    /// `{"tag": "Variant", …fields}`.
    Internal { tag: String },
    /// `{"tag": "Variant", "content": …}`.
    Adjacent { tag: String, content: String },
    /// The variant's content alone.
    Untagged,
}

#[derive(Clone, Debug, Default)]
pub struct Container {
    /// The container's own name as written (`rename`), for a struct's tag.
    pub rename: Option<String>,
    pub rename_all: Rule,
    /// `rename_all_fields`: the rule for the fields of struct variants.
    pub rename_all_fields: Rule,
    pub tag: Option<String>,
    pub content: Option<String>,
    pub untagged: bool,
    pub transparent: bool,
    /// `#[serde(default)]`: every field may be missing.
    pub default: bool,
}

impl Container {
    pub fn parse(attrs: &[Attribute]) -> syn::Result<Container> {
        let mut container = Container::default();
        for attr in serde_attrs(attrs) {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("rename_all") {
                    container.rename_all = rename_rule(&meta)?;
                } else if meta.path.is_ident("rename_all_fields") {
                    container.rename_all_fields = rename_rule(&meta)?;
                } else if meta.path.is_ident("rename") {
                    container.rename = serialize_name(&meta)?;
                } else if meta.path.is_ident("into") || meta.path.is_ident("remote") {
                    return Err(meta.error(
                        "a type written as another (`into`, `remote`) has no validator of its own here; derive `Validated` for the type it is written as, or store it as `capstan::Value`",
                    ));
                } else if meta.path.is_ident("tag") {
                    container.tag = Some(meta.value()?.parse::<LitStr>()?.value());
                } else if meta.path.is_ident("content") {
                    container.content = Some(meta.value()?.parse::<LitStr>()?.value());
                } else if meta.path.is_ident("untagged") {
                    container.untagged = true;
                } else if meta.path.is_ident("transparent") {
                    container.transparent = true;
                } else if meta.path.is_ident("default") {
                    container.default = true;
                    skip_value(&meta)?;
                } else {
                    skip_value(&meta)?;
                }
                Ok(())
            })?;
        }
        Ok(container)
    }

    pub fn tagging(&self) -> Tagging {
        match (&self.tag, &self.content, self.untagged) {
            (_, _, true) => Tagging::Untagged,
            (Some(tag), Some(content), false) => Tagging::Adjacent {
                tag: tag.clone(),
                content: content.clone(),
            },
            (Some(tag), None, false) => Tagging::Internal { tag: tag.clone() },
            (None, _, false) => Tagging::External,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Field {
    pub rename: Option<String>,
    /// Never written.
    pub skip: bool,
    /// Sometimes not written (`skip_serializing_if`), or may be missing
    /// when read (`default`).
    pub optional: bool,
    pub flatten: bool,
    /// Written by code of its own (`with`, `serialize_with`): its shape is
    /// not the type's.
    pub custom: bool,
}

impl Field {
    pub fn parse(attrs: &[Attribute]) -> syn::Result<Field> {
        let mut field = Field::default();
        for attr in serde_attrs(attrs) {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("rename") {
                    field.rename = serialize_name(&meta)?;
                } else if meta.path.is_ident("skip") || meta.path.is_ident("skip_serializing") {
                    field.skip = true;
                } else if meta.path.is_ident("skip_serializing_if") || meta.path.is_ident("default")
                {
                    field.optional = true;
                    skip_value(&meta)?;
                } else if meta.path.is_ident("flatten") {
                    field.flatten = true;
                } else if meta.path.is_ident("with") || meta.path.is_ident("serialize_with") {
                    field.custom = true;
                    skip_value(&meta)?;
                } else {
                    skip_value(&meta)?;
                }
                Ok(())
            })?;
        }
        Ok(field)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Variant {
    pub rename: Option<String>,
    pub rename_all: Rule,
    pub skip: bool,
    pub untagged: bool,
}

impl Variant {
    pub fn parse(attrs: &[Attribute]) -> syn::Result<Variant> {
        let mut variant = Variant::default();
        for attr in serde_attrs(attrs) {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("rename") {
                    variant.rename = serialize_name(&meta)?;
                } else if meta.path.is_ident("rename_all") {
                    variant.rename_all = rename_rule(&meta)?;
                } else if meta.path.is_ident("skip") || meta.path.is_ident("skip_serializing") {
                    variant.skip = true;
                } else if meta.path.is_ident("untagged") {
                    variant.untagged = true;
                } else {
                    skip_value(&meta)?;
                }
                Ok(())
            })?;
        }
        Ok(variant)
    }
}

fn serde_attrs(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs.iter().filter(|a| a.path().is_ident("serde"))
}

/// `name = "x"`, or the `serialize` half of `name(serialize = "x", …)`.
fn serialize_name(meta: &ParseNestedMeta<'_>) -> syn::Result<Option<String>> {
    if meta.input.peek(Token![=]) {
        return Ok(Some(meta.value()?.parse::<LitStr>()?.value()));
    }
    let mut name = None;
    meta.parse_nested_meta(|inner| {
        let text = inner.value()?.parse::<LitStr>()?.value();
        if inner.path.is_ident("serialize") {
            name = Some(text);
        }
        Ok(())
    })?;
    Ok(name)
}

/// `rename_all = "…"`'s rule (the serialize half, if split).
fn rename_rule(meta: &ParseNestedMeta<'_>) -> syn::Result<Rule> {
    let Some(text) = serialize_name(meta)? else {
        return Ok(Rule::None);
    };
    Rule::parse(&text)
        .ok_or_else(|| syn::Error::new_spanned(&meta.path, format!("unknown rename rule {text:?}")))
}

/// Consumes an option's `= value` or `(…)` that the derives do not need.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<syn::Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        content.parse::<proc_macro2::TokenStream>()?;
    }
    Ok(())
}
