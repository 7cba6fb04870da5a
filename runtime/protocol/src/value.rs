//! The Convex value model and its total order.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

/// The fields of an object, kept sorted by key so that equal objects encode
/// identically (the JSON encoding sorts keys, and so does the index key).
pub type Object = BTreeMap<String, Value>;

/// A Convex value.
///
/// Values of different types are totally ordered by type first, in the order of
/// the variants here (`Null < Int64 < Float64 < Boolean < String < Bytes < Array <
/// Object`), and then within a type. Floats use IEEE-754 `totalOrder`
/// (`-NaN < -inf < … < -0 < +0 < … < +inf < NaN`), so the order is total and
/// `Eq` holds even for NaN. A missing field ("undefined") sorts before every
/// value; index keys represent it with [`crate::key::KeyValue`]'s `None`.
#[derive(Clone)]
pub enum Value {
    Null,
    Int64(i64),
    Float64(f64),
    Boolean(bool),
    String(String),
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    Object(Object),
}

/// The type of a [`Value`], in the cross-type sort order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ValueType {
    Null,
    Int64,
    Float64,
    Boolean,
    String,
    Bytes,
    Array,
    Object,
}

impl ValueType {
    /// The name Convex uses in error messages and validators.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::Null => "null",
            ValueType::Int64 => "int64",
            ValueType::Float64 => "float64",
            ValueType::Boolean => "boolean",
            ValueType::String => "string",
            ValueType::Bytes => "bytes",
            ValueType::Array => "array",
            ValueType::Object => "object",
        }
    }
}

impl Value {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::Null => ValueType::Null,
            Value::Int64(_) => ValueType::Int64,
            Value::Float64(_) => ValueType::Float64,
            Value::Boolean(_) => ValueType::Boolean,
            Value::String(_) => ValueType::String,
            Value::Bytes(_) => ValueType::Bytes,
            Value::Array(_) => ValueType::Array,
            Value::Object(_) => ValueType::Object,
        }
    }

    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(object) => Some(object),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Follows a dotted field path (`"author.name"`) through nested objects.
    /// `None` means the field is missing (Convex's `undefined`).
    pub fn get_path(&self, path: &str) -> Option<&Value> {
        let mut current = self;
        for part in path.split('.') {
            current = current.as_object()?.get(part)?;
        }
        Some(current)
    }

    /// The size Convex charges for this value, in bytes: the measure behind the
    /// document-size and transaction-bytes limits.
    pub fn size(&self) -> usize {
        match self {
            Value::Null => 1,
            Value::Int64(_) | Value::Float64(_) => 9,
            Value::Boolean(_) => 2,
            Value::String(s) => s.len() + 2,
            Value::Bytes(b) => b.len() + 2,
            Value::Array(items) => 2 + items.iter().map(Value::size).sum::<usize>(),
            Value::Object(fields) => {
                2 + fields
                    .iter()
                    .map(|(k, v)| k.len() + 1 + v.size())
                    .sum::<usize>()
            }
        }
    }

    /// How deeply arrays and objects nest: a scalar is 0, `[1]` is 1.
    pub fn nesting_depth(&self) -> usize {
        match self {
            Value::Array(items) => 1 + items.iter().map(Value::nesting_depth).max().unwrap_or(0),
            Value::Object(fields) => {
                1 + fields.values().map(Value::nesting_depth).max().unwrap_or(0)
            }
            _ => 0,
        }
    }
}

fn float_cmp(a: f64, b: f64) -> Ordering {
    a.total_cmp(&b)
}

impl Ord for Value {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Value::Null, Value::Null) => Ordering::Equal,
            (Value::Int64(a), Value::Int64(b)) => a.cmp(b),
            (Value::Float64(a), Value::Float64(b)) => float_cmp(*a, *b),
            (Value::Boolean(a), Value::Boolean(b)) => a.cmp(b),
            (Value::String(a), Value::String(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Value::Bytes(a), Value::Bytes(b)) => a.cmp(b),
            (Value::Array(a), Value::Array(b)) => a.cmp(b),
            (Value::Object(a), Value::Object(b)) => a.iter().cmp(b.iter()),
            (a, b) => a.value_type().cmp(&b.value_type()),
        }
    }
}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Value {}

impl std::hash::Hash for Value {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.value_type().hash(state);
        match self {
            Value::Null => {}
            Value::Int64(i) => i.hash(state),
            Value::Float64(f) => f.to_bits().hash(state),
            Value::Boolean(b) => b.hash(state),
            Value::String(s) => s.hash(state),
            Value::Bytes(b) => b.hash(state),
            Value::Array(items) => items.hash(state),
            Value::Object(fields) => fields.hash(state),
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Int64(i) => write!(f, "{i}n"),
            Value::Float64(x) => write!(f, "{x:?}"),
            Value::Boolean(b) => write!(f, "{b}"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => write!(f, "bytes({} B)", b.len()),
            Value::Array(items) => f.debug_list().entries(items).finish(),
            Value::Object(fields) => f.debug_map().entries(fields).finish(),
        }
    }
}

/// Displays the value as its Convex JSON text.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int64(i)
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Value::Float64(x)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Boolean(b)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        Value::Bytes(b)
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Self {
        Value::Array(items)
    }
}

impl From<Object> for Value {
    fn from(fields: Object) -> Self {
        Value::Object(fields)
    }
}
