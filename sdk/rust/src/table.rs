//! Tables, from their document types, and typed partial updates.

use capstan_protocol::{Object, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::schema::TableDef;
use crate::validated::Validated;
use crate::values::to_value;

/// A table's document type. Derive it:
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, capstan::Table)]
/// #[table(name = "messages", index(by_channel = [channel]), index(by_author = [author, channel]))]
/// struct Message {
///     channel: String,
///     author: String,
///     body: String,
///     edited: Option<bool>,
/// }
///
/// // The derive gives the table its name, its indexes (`Message::by_channel`,
/// // `Message::by_author`, and `Message::by_creation_time` as every table
/// // has), its validator, and `MessagePatch` for partial updates:
/// use capstan::Table;
/// assert_eq!(Message::NAME, "messages");
/// let patch = MessagePatch::new().body("edited text").edited(true);
/// # let _ = patch;
/// ```
///
/// In `#[table(...)]`: `name = "…"` (required), and `index(name = [field,
/// …])` for each index, fields named as in Rust (their serde names are
/// stored) or, for a path into a nested object, as a string
/// (`"author.name"`).
///
/// The patch has a setter for every field serde writes by itself; fields
/// written by code of their own (`#[serde(with = …)]`) or flattened into
/// the document are patched with a JSON object (`capstan::json!`).
pub trait Table: Serialize + DeserializeOwned + Validated {
    /// The table's name.
    const NAME: &'static str;
    /// The table's indexes beyond `by_creation_time`: names and fields.
    const INDEXES: &'static [(&'static str, &'static [&'static str])];
    /// A partial document, for [`crate::DatabaseWriter::patch`].
    type Patch: Patch<Self>;

    /// The table in the schema: its indexes, and its documents' validator.
    fn definition() -> TableDef {
        Self::INDEXES
            .iter()
            .fold(TableDef::new(), |table, (name, fields)| {
                table.index(name, fields)
            })
            .validator(Self::validator())
    }
}

/// The table of Capstan's users, and of Convex Auth's (`users`): the ids
/// [`crate::Auth::user_id`] returns are ids of it. An app that adds fields
/// to its users declares its own `users` table type, which implements this
/// too.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not the `users` table",
    note = "a signed-in user's id is an id of the table named \"users\""
)]
pub trait UsersTable: Table {}

/// A partial update of a document of `T`: fields to set, fields to
/// remove. `#[derive(Table)]` generates one per table (`<Name>Patch`), and
/// JSON objects (`capstan::json!({...})`, a `serde_json::Value` or a
/// [`Value`] object) patch any table.
pub trait Patch<T> {
    /// The fields to set (Convex values) and the fields to remove.
    fn into_parts(self) -> Result<(Object, Vec<String>)>;
}

fn object_parts(value: Value) -> Result<(Object, Vec<String>)> {
    match value {
        Value::Object(fields) => Ok((fields, Vec::new())),
        other => Err(Error::new(format!(
            "a patch is an object of fields, not a {}",
            other.value_type().name()
        ))),
    }
}

impl<T> Patch<T> for serde_json::Value {
    fn into_parts(self) -> Result<(Object, Vec<String>)> {
        object_parts(to_value(&self)?)
    }
}

impl<T> Patch<T> for Value {
    fn into_parts(self) -> Result<(Object, Vec<String>)> {
        object_parts(self)
    }
}

#[doc(hidden)]
pub mod __patch {
    //! What the generated patches call.
    use super::*;

    /// Sets `field` to `value` (a `None` removes it).
    pub fn set(
        set: &mut Object,
        unset: &mut Vec<String>,
        field: &str,
        value: &impl Serialize,
    ) -> Result<()> {
        match crate::values::to_field(value)? {
            Some(value) => {
                set.insert(field.to_owned(), value);
            }
            None => unset.push(field.to_owned()),
        }
        Ok(())
    }
}
