//! The app's schema: tables, indexes, and optional document validators.

use serde::Serialize;

/// The tables of an app.
///
/// ```
/// use capstan::{Schema, TableDef, v};
///
/// let schema = Schema::new()
///     .table("messages", TableDef::new().index("by_channel", &["channel"]))
///     .table(
///         "users",
///         TableDef::new().validator(v::object([("name", v::string()), ("age", v::optional(v::float64()))])),
///     );
/// # let _ = schema;
/// ```
#[derive(Clone, Debug, Default, Serialize)]
pub struct Schema {
    tables: serde_json::Map<String, serde_json::Value>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct TableDef {
    indexes: Vec<IndexDef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    document: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Serialize)]
struct IndexDef {
    name: String,
    fields: Vec<String>,
}

impl Schema {
    pub fn new() -> Self {
        Schema::default()
    }

    pub fn table(mut self, name: &str, table: TableDef) -> Self {
        let value = serde_json::to_value(table).unwrap_or_default();
        self.tables.insert(name.to_owned(), value);
        self
    }

    #[doc(hidden)]
    pub fn to_json(&self) -> String {
        serde_json::json!({ "tables": self.tables }).to_string()
    }
}

impl TableDef {
    pub fn new() -> Self {
        TableDef::default()
    }

    /// An index over `fields` (dotted paths), then `_creationTime`.
    pub fn index(mut self, name: &str, fields: &[&str]) -> Self {
        self.indexes.push(IndexDef {
            name: name.to_owned(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        });
        self
    }

    /// Every document of the table must match `validator` (an object, or a
    /// union of objects).
    pub fn validator(mut self, validator: v::Validator) -> Self {
        self.document = Some(validator.json);
        self
    }
}

/// Validators, after Convex's `v`.
pub mod v {
    use serde_json::{Value, json};

    /// A validator; see the functions of this module.
    #[derive(Clone, Debug)]
    pub struct Validator {
        pub(crate) json: Value,
        optional: bool,
    }

    fn of(json: Value) -> Validator {
        Validator {
            json,
            optional: false,
        }
    }

    pub fn any() -> Validator {
        of(json!({"type": "any"}))
    }
    pub fn null() -> Validator {
        of(json!({"type": "null"}))
    }
    pub fn int64() -> Validator {
        of(json!({"type": "int64"}))
    }
    pub fn float64() -> Validator {
        of(json!({"type": "float64"}))
    }
    pub fn boolean() -> Validator {
        of(json!({"type": "boolean"}))
    }
    pub fn string() -> Validator {
        of(json!({"type": "string"}))
    }
    pub fn bytes() -> Validator {
        of(json!({"type": "bytes"}))
    }
    /// An id of `table`.
    pub fn id(table: &str) -> Validator {
        of(json!({"type": "id", "tableName": table}))
    }
    /// Exactly this value (given as Convex JSON).
    pub fn literal(value: Value) -> Validator {
        of(json!({"type": "literal", "value": value}))
    }
    pub fn array(items: Validator) -> Validator {
        of(json!({"type": "array", "value": items.json}))
    }
    /// An object with exactly these fields; wrap a field's validator in
    /// [`optional`] to allow it to be missing.
    pub fn object<'a>(fields: impl IntoIterator<Item = (&'a str, Validator)>) -> Validator {
        let fields: serde_json::Map<String, Value> = fields
            .into_iter()
            .map(|(name, v)| {
                (
                    name.to_owned(),
                    json!({"fieldType": v.json, "optional": v.optional}),
                )
            })
            .collect();
        of(json!({"type": "object", "value": fields}))
    }
    /// An object used as a map from string keys to `values`.
    pub fn record(keys: Validator, values: Validator) -> Validator {
        of(
            json!({"type": "record", "keys": keys.json, "values": {"fieldType": values.json, "optional": false}}),
        )
    }
    pub fn union(members: impl IntoIterator<Item = Validator>) -> Validator {
        of(
            json!({"type": "union", "value": members.into_iter().map(|v| v.json).collect::<Vec<_>>()}),
        )
    }
    /// Inside [`object`]: the field may be missing.
    pub fn optional(inner: Validator) -> Validator {
        Validator {
            optional: true,
            ..inner
        }
    }
}
