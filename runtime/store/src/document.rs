//! Documents: user fields plus the system fields `_id` and `_creationTime`.

use std::collections::BTreeMap;

use capstan_protocol::key::{decode_value, encode_object};
use capstan_protocol::{Object, Value, validate_field_name};

use crate::error::{Error, Result};
use crate::id::DocumentId;
use crate::limits::Limits;
use crate::schema::{CREATION_TIME, ID};

#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    pub id: DocumentId,
    /// Milliseconds since the Unix epoch at which the inserting transaction ran.
    pub creation_time: f64,
    /// The user's fields, without the system fields.
    pub fields: Object,
}

/// As clients see it, with `_id` and `_creationTime`, keys in the order
/// [`Value`] writes them (sorted).
impl serde::Serialize for Document {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.fields.len() + 2))?;
        // User field names never start with `_`: the system fields sort
        // after those before `_` (upper case) and before the rest.
        use std::ops::Bound::{Excluded, Unbounded};
        for (name, value) in self.fields.range::<str, _>((Unbounded, Excluded(ID))) {
            map.serialize_entry(name, value)?;
        }
        map.serialize_entry(CREATION_TIME, &Value::Float64(self.creation_time))?;
        map.serialize_entry(ID, &self.id.to_string())?;
        for (name, value) in self.fields.range::<str, _>((Excluded(ID), Unbounded)) {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// A shallow merge: `Some` sets a top-level field, `None` removes it.
pub type Patch = BTreeMap<String, Option<Value>>;

impl Document {
    /// The document as clients see it, with `_id` and `_creationTime`.
    pub fn to_value(&self) -> Value {
        let mut fields = self.fields.clone();
        fields.insert(ID.to_owned(), Value::String(self.id.to_string()));
        fields.insert(CREATION_TIME.to_owned(), Value::Float64(self.creation_time));
        Value::Object(fields)
    }

    /// The document as clients see it, as Convex JSON text: what
    /// `to_value().to_json_string()` gives, without copying the fields.
    pub fn to_json_string(&self) -> String {
        // Infallible, as for `Value`.
        serde_json::to_string(self).expect("a Document always serialises")
    }

    /// A field by dotted path; the system fields are found too. `None` means
    /// missing (undefined).
    pub fn get_path(&self, path: &str) -> Option<&Value> {
        let mut parts = path.split('.');
        let first = parts.next()?;
        let mut current = self.fields.get(first)?;
        for part in parts {
            current = current.as_object()?.get(part)?;
        }
        Some(current)
    }

    /// Stored form: creation time (8 bytes) then the fields, key-encoded.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&self.creation_time.to_bits().to_be_bytes());
        encode_object(&self.fields, &mut out);
        out
    }

    pub fn decode(id: DocumentId, bytes: &[u8]) -> Result<Document> {
        if bytes.len() < 8 {
            return Err(Error::Corrupt(format!("document {id} is truncated")));
        }
        let mut time = [0u8; 8];
        time.copy_from_slice(&bytes[..8]);
        let fields = match decode_value(&bytes[8..])? {
            Value::Object(fields) => fields,
            _ => return Err(Error::Corrupt(format!("document {id} is not an object"))),
        };
        Ok(Document {
            id,
            creation_time: f64::from_bits(u64::from_be_bytes(time)),
            fields,
        })
    }

    /// The size the limits count: the fields plus the system fields.
    pub fn size(&self) -> usize {
        fields_size(&self.fields)
    }
}

/// Checks user-supplied fields against the document rules and limits. Top-level
/// names starting with `_` are reserved for system fields.
pub fn validate_fields(fields: &Object, limits: &Limits) -> Result<usize> {
    for name in fields.keys() {
        if name.starts_with('_') {
            return Err(Error::InvalidDocument(format!(
                "field {name:?} starts with '_', which is reserved for system fields"
            )));
        }
    }
    check_names(fields, limits)?;
    for value in fields.values() {
        check_value(value, 1, limits)?;
    }
    let size = fields_size(fields);
    if size > limits.max_document_size {
        return Err(Error::DocumentTooLarge {
            size,
            max: limits.max_document_size,
        });
    }
    Ok(size)
}

fn check_names(fields: &Object, limits: &Limits) -> Result<()> {
    if fields.len() > limits.max_object_fields {
        return Err(Error::InvalidDocument(format!(
            "an object has {} fields; the limit is {}",
            fields.len(),
            limits.max_object_fields
        )));
    }
    for name in fields.keys() {
        validate_field_name(name)?;
    }
    Ok(())
}

fn check_value(value: &Value, depth: usize, limits: &Limits) -> Result<()> {
    let is_container = matches!(value, Value::Array(_) | Value::Object(_));
    if is_container && depth >= limits.max_nesting_depth {
        return Err(Error::InvalidDocument(format!(
            "the document nests arrays and objects more than {} levels deep",
            limits.max_nesting_depth
        )));
    }
    match value {
        Value::Array(items) => {
            if items.len() > limits.max_array_len {
                return Err(Error::InvalidDocument(format!(
                    "an array has {} elements; the limit is {}",
                    items.len(),
                    limits.max_array_len
                )));
            }
            items
                .iter()
                .try_for_each(|item| check_value(item, depth + 1, limits))
        }
        Value::Object(fields) => {
            check_names(fields, limits)?;
            fields
                .values()
                .try_for_each(|inner| check_value(inner, depth + 1, limits))
        }
        _ => Ok(()),
    }
}

/// The size of a document with these fields, system fields included.
fn fields_size(fields: &Object) -> usize {
    const SYSTEM_FIELDS: usize = ID.len() + 1 + 38 + CREATION_TIME.len() + 1 + 9;
    2 + SYSTEM_FIELDS
        + fields
            .iter()
            .map(|(k, v)| k.len() + 1 + v.size())
            .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use capstan_protocol::{Object, Value};

    use super::Document;
    use crate::id::{DocumentId, TableNumber};

    #[test]
    fn json_text_is_the_client_value_written_out() {
        let mut nested = Object::new();
        nested.insert("_inner".into(), Value::Int64(-7));
        nested.insert("b".into(), Value::Bytes(vec![0, 255, 3]));
        let cases: Vec<Vec<(&str, Value)>> = vec![
            vec![],
            vec![("body", Value::String("hi \"there\"\n".into()))],
            vec![("Zed", Value::Null), ("Alpha", Value::Float64(f64::NAN))],
            vec![
                ("Upper", Value::Boolean(true)),
                ("lower", Value::Int64(i64::MIN)),
                ("nested", Value::Object(nested)),
                (
                    "list",
                    Value::Array(vec![Value::Float64(-0.0), Value::Float64(f64::INFINITY)]),
                ),
            ],
        ];
        for fields in cases {
            let document = Document {
                id: DocumentId::new(TableNumber(3), [7; 16]),
                creation_time: 1_700_000_000_123.25,
                fields: fields
                    .into_iter()
                    .map(|(name, value)| (name.to_owned(), value))
                    .collect(),
            };
            assert_eq!(
                document.to_json_string(),
                document.to_value().to_json_string()
            );
        }
    }
}
