//! Between Rust types (through serde) and Convex values.
//!
//! Rust integers become int64 and floats float64. Reading back, an integral
//! float64 is accepted where Rust expects an integer (clients send every
//! number as float64) and an int64 where Rust expects a float.

use capstan_protocol::{Object, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// The largest integer a float64 holds exactly.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_992.0;

/// A Rust value as a Convex value.
///
/// ```
/// use capstan_protocol::Value;
/// assert_eq!(capstan::to_value(&5_i64)?, Value::Int64(5));
/// assert_eq!(capstan::to_value(&2.5)?, Value::Float64(2.5));
/// # Ok::<(), capstan::Error>(())
/// ```
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value> {
    plain_to_value(serde_json::to_value(value)?)
}

/// A Convex value as a Rust value.
///
/// ```
/// use capstan_protocol::Value;
/// let n: u32 = capstan::from_value(&Value::Float64(3.0))?;
/// assert_eq!(n, 3);
/// # Ok::<(), capstan::Error>(())
/// ```
pub fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T> {
    Ok(serde_json::from_value(value_to_plain(value))?)
}

pub(crate) fn plain_to_value(json: serde_json::Value) -> Result<Value> {
    Ok(match json {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Boolean(b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Int64(i),
            (None, Some(u)) => {
                return Err(Error::new(format!("{u} does not fit in an int64")));
            }
            _ => Value::Float64(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::String(s),
        serde_json::Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(plain_to_value)
                .collect::<Result<_>>()?,
        ),
        serde_json::Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| Ok((k, plain_to_value(v)?)))
                .collect::<Result<Object>>()?,
        ),
    })
}

pub(crate) fn value_to_plain(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Int64(i) => serde_json::Value::from(*i),
        Value::Float64(x) if x.fract() == 0.0 && x.abs() <= MAX_SAFE_INTEGER => {
            serde_json::Value::from(*x as i64)
        }
        Value::Float64(x) => serde_json::Number::from_f64(*x)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Value::Boolean(b) => serde_json::Value::Bool(*b),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Bytes(bytes) => {
            serde_json::Value::Array(bytes.iter().map(|b| (*b).into()).collect())
        }
        Value::Array(items) => serde_json::Value::Array(items.iter().map(value_to_plain).collect()),
        Value::Object(fields) => serde_json::Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), value_to_plain(v)))
                .collect(),
        ),
    }
}
