//! Document validators (Convex's `v.*`), checked on every write to a table
//! whose schema declares one, and against every existing document when such a
//! schema is deployed.

use std::collections::BTreeMap;

use capstan_protocol::Value;
use serde::{Deserialize, Serialize};

/// A validator, serialized in the shape of Convex's exported validators:
/// `{"type":"string"}`, `{"type":"id","tableName":"users"}`,
/// `{"type":"object","value":{"name":{"fieldType":{"type":"string"},"optional":false}}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum Validator {
    Any,
    Null,
    Int64,
    Float64,
    Boolean,
    String,
    Bytes,
    Literal {
        value: Value,
    },
    Id {
        #[serde(rename = "tableName")]
        table_name: String,
    },
    Array {
        value: Box<Validator>,
    },
    Object {
        value: BTreeMap<String, FieldValidator>,
    },
    Record {
        keys: Box<Validator>,
        values: Box<FieldValidator>,
    },
    Union {
        value: Vec<Validator>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldValidator {
    pub field_type: Validator,
    #[serde(default)]
    pub optional: bool,
}

/// Answers whether a string is an id of the named table; ids are checked
/// against the live catalog, which the validator itself does not know.
pub trait IdCheck {
    fn is_id_of(&self, text: &str, table: &str) -> bool;
}

impl Validator {
    /// Checks `value`; the error names the path of the first offending field.
    pub fn check(&self, value: &Value, ids: &dyn IdCheck) -> Result<(), String> {
        self.check_at(value, ids, &mut String::new())
    }

    fn check_at(&self, value: &Value, ids: &dyn IdCheck, path: &mut String) -> Result<(), String> {
        let mismatch = |expected: &str| {
            let at = if path.is_empty() {
                "value".to_owned()
            } else {
                format!("field {path:?}")
            };
            Err(format!("{at} is {value}, expected {expected}"))
        };
        match (self, value) {
            (Validator::Any, _)
            | (Validator::Null, Value::Null)
            | (Validator::Int64, Value::Int64(_))
            | (Validator::Float64, Value::Float64(_))
            | (Validator::Boolean, Value::Boolean(_))
            | (Validator::String, Value::String(_))
            | (Validator::Bytes, Value::Bytes(_)) => Ok(()),
            (Validator::Literal { value: expected }, actual) if expected == actual => Ok(()),
            (Validator::Literal { value: expected }, _) => mismatch(&expected.to_string()),
            (Validator::Id { table_name }, Value::String(text))
                if ids.is_id_of(text, table_name) =>
            {
                Ok(())
            }
            (Validator::Id { table_name }, _) => {
                mismatch(&format!("an id of table {table_name:?}"))
            }
            (Validator::Array { value: item }, Value::Array(items)) => {
                for (i, element) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    item.check_at(element, ids, path)?;
                    path.truncate(len);
                }
                Ok(())
            }
            (Validator::Object { value: fields }, Value::Object(object)) => {
                for (name, field) in fields {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(name);
                    match object.get(name) {
                        Some(inner) => field.field_type.check_at(inner, ids, path)?,
                        None if field.optional => {}
                        None => return Err(format!("required field {path:?} is missing")),
                    }
                    path.truncate(len);
                }
                if let Some(extra) = object
                    .keys()
                    .find(|k| !fields.contains_key(*k) && !is_system_field(path, k))
                {
                    let at = if path.is_empty() {
                        String::new()
                    } else {
                        format!(" in {path:?}")
                    };
                    return Err(format!("field {extra:?}{at} is not in the validator"));
                }
                Ok(())
            }
            (Validator::Record { keys, values }, Value::Object(object)) => {
                for (name, inner) in object {
                    if is_system_field(path, name) {
                        continue;
                    }
                    keys.check_at(&Value::String(name.clone()), ids, path)?;
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(name);
                    values.field_type.check_at(inner, ids, path)?;
                    path.truncate(len);
                }
                Ok(())
            }
            (Validator::Union { value: options }, _) => {
                if options
                    .iter()
                    .any(|option| option.check_at(value, ids, &mut path.clone()).is_ok())
                {
                    Ok(())
                } else {
                    mismatch("one of the union's members")
                }
            }
            (other, _) => mismatch(other.type_name()),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Validator::Any => "any",
            Validator::Null => "null",
            Validator::Int64 => "int64",
            Validator::Float64 => "float64",
            Validator::Boolean => "boolean",
            Validator::String => "string",
            Validator::Bytes => "bytes",
            Validator::Literal { .. } => "a literal",
            Validator::Id { .. } => "an id",
            Validator::Array { .. } => "array",
            Validator::Object { .. } => "object",
            Validator::Record { .. } => "record",
            Validator::Union { .. } => "union",
        }
    }

    /// Tables named by `v.id(..)` anywhere inside, for checking that a
    /// schema only refers to tables it declares.
    pub fn referenced_tables<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Validator::Id { table_name } => out.push(table_name),
            Validator::Array { value } => value.referenced_tables(out),
            Validator::Object { value } => value
                .values()
                .for_each(|f| f.field_type.referenced_tables(out)),
            Validator::Record { keys, values } => {
                keys.referenced_tables(out);
                values.field_type.referenced_tables(out);
            }
            Validator::Union { value } => value.iter().for_each(|v| v.referenced_tables(out)),
            _ => {}
        }
    }
}

/// `_id` and `_creationTime` are present on every stored document and are not
/// declared by document validators.
fn is_system_field(path: &str, name: &str) -> bool {
    path.is_empty() && (name == "_id" || name == "_creationTime")
}
