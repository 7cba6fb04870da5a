//! The app's schema: tables, indexes, and document validators.

use serde::Serialize;

use crate::table::Table;

/// The tables of an app. Each table's name, indexes and validator come
/// from its document type's `#[derive(Table)]`:
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize, capstan::Table)]
/// #[table(name = "messages", index(by_channel = [channel]))]
/// struct Message {
///     channel: String,
///     body: String,
/// }
///
/// let schema = capstan::Schema::new().table::<Message>();
/// # let _ = schema;
/// ```
///
/// A table without a Rust type of its own is described by hand:
///
/// ```
/// use capstan::{Schema, TableDef, v};
/// let schema = Schema::new().table_named(
///     "events",
///     TableDef::new()
///         .index("by_kind", &["kind"])
///         .validator(v::object([("kind", v::string()), ("at", v::optional(v::float64()))])),
/// );
/// # let _ = schema;
/// ```
#[derive(Clone, Debug, Default, Serialize)]
pub struct Schema {
    tables: serde_json::Map<String, serde_json::Value>,
    /// Tables described twice: a deploy of the schema is refused.
    #[serde(skip)]
    twice: Vec<String>,
}

/// A table's indexes and document validator.
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

    /// The table of documents `T`.
    pub fn table<T: Table>(self) -> Self {
        self.table_named(T::NAME, T::definition())
    }

    /// A table described by hand.
    pub fn table_named(mut self, name: &str, table: TableDef) -> Self {
        let value = serde_json::to_value(table).unwrap_or_default();
        if self.tables.insert(name.to_owned(), value).is_some() {
            self.twice.push(name.to_owned());
        }
        self
    }

    /// The schema as the server reads it; a table described twice makes
    /// the deploy fail, naming it.
    #[doc(hidden)]
    pub fn to_json(&self) -> String {
        if let Some(name) = self.twice.first() {
            panic!("the schema describes table {name:?} twice");
        }
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
    /// union of objects). `any` checks nothing.
    pub fn validator(mut self, validator: v::Validator) -> Self {
        self.document = (!validator.is_any()).then_some(validator.json);
        self
    }
}

/// Validators, after Convex's `v`.
pub mod v {
    use capstan_protocol::Value;
    use serde_json::{Map, Value as Json, json};

    /// A validator; see the functions of this module.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Validator {
        pub(crate) json: Json,
        optional: bool,
    }

    fn of(json: Json) -> Validator {
        Validator {
            json,
            optional: false,
        }
    }

    impl Validator {
        /// Whether this accepts every value.
        pub fn is_any(&self) -> bool {
            self.json["type"] == "any"
        }

        /// Whether, as an object's field, it may be missing.
        pub fn is_optional(&self) -> bool {
            self.optional
        }

        /// The validator as the server reads it.
        pub fn to_json(&self) -> Json {
            self.json.clone()
        }

        fn fields(&self) -> Option<&Map<String, Json>> {
            (self.json["type"] == "object")
                .then(|| self.json["value"].as_object())
                .flatten()
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
    /// Exactly this value.
    pub fn literal(value: impl Into<Value>) -> Validator {
        of(json!({"type": "literal", "value": value.into().to_json()}))
    }
    pub fn array(items: Validator) -> Validator {
        of(json!({"type": "array", "value": items.json}))
    }
    /// An object with exactly these fields; wrap a field's validator in
    /// [`optional`] to allow it to be missing.
    pub fn object<'a>(fields: impl IntoIterator<Item = (&'a str, Validator)>) -> Validator {
        let fields: Map<String, Json> = fields
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
    /// Any of `members`; a union of one is that one.
    pub fn union(members: impl IntoIterator<Item = Validator>) -> Validator {
        let mut members: Vec<Validator> = members.into_iter().collect();
        if members.len() == 1 {
            return members.remove(0);
        }
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

    /// `object`'s fields with `inner`'s beside them, as serde's `flatten`
    /// writes them: `inner` an object, or a union of objects. Anything
    /// else (a map) lets the object hold any fields, which no validator
    /// says: the result is [`any`].
    #[doc(hidden)]
    pub fn __flatten(object: Validator, inner: Validator) -> Validator {
        let Some(own) = object.fields() else {
            return any();
        };
        if let Some(more) = inner.fields() {
            let mut fields = own.clone();
            fields.extend(more.clone());
            return of(json!({"type": "object", "value": fields}));
        }
        if inner.json["type"] == "union"
            && let Some(members) = inner.json["value"].as_array()
        {
            return union(
                members
                    .iter()
                    .map(|member| __flatten(object.clone(), of(member.clone()))),
            );
        }
        any()
    }
}
