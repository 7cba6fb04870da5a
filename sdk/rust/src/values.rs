//! Between Rust types (through serde) and Convex values.
//!
//! # How Rust types map to Convex types, and so to JavaScript
//!
//! | Rust | Convex | JavaScript |
//! |---|---|---|
//! | `f64`, `f32`, and every integer type (`u32`, `i64`, `usize`, …) | float64 | `number` |
//! | [`Int64`] | int64 | `bigint` |
//! | `bool` | boolean | `boolean` |
//! | `String`, `&str`, `char` | string | `string` |
//! | [`Bytes`] (or any `serialize_bytes` type, like `serde_bytes`) | bytes | `ArrayBuffer` |
//! | `Vec<T>`, arrays, sets, tuples | array | `Array` |
//! | structs, `BTreeMap<String, T>`, `HashMap<String, T>` | object | `Object` |
//! | `Option<T>` | the field is left out when `None` (`null` in an array) | `undefined` |
//! | `()` | null | `null` |
//! | [`Id<T>`](crate::Id) | string | `Id<"table">` |
//! | [`Value`], `serde_json::Value` | any | any |
//!
//! Most clients are JavaScript, so a Rust integer is a float64, a plain JS
//! `number`, as in Convex, where every number is a float64 unless the app
//! asks for `v.int64()`. Writing an integer beyond ±2^53, where a float64
//! would round it, is an error that names [`Int64`]; ask for int64 with
//! [`Int64`], which JavaScript clients see as a `bigint`. `serde_json`
//! numbers (and so [`crate::json!`] values and ConvexError data) follow the
//! same rule.
//!
//! Reading is lenient where no information is lost: an integral float64
//! fills an integer field, an int64 fills any number field it fits, and
//! fields a struct does not name are ignored. Function arguments are the
//! exception: there, as with Convex's validators, an object field the
//! arguments' struct does not name is refused, at any depth.
//!
//! A [`Value`], or a struct holding one, survives every trip unchanged:
//! int64, bytes, NaN, −0 and ±∞ included.
//!
//! One limit comes from serde itself: inside `#[serde(flatten)]` fields
//! and internally tagged or untagged enums, serde reads the content into a
//! buffer of its own first, which has no int64 or bytes. There an
//! [`Int64`] arrives as a number (and is refused), bytes as a list of
//! numbers, and unknown fields are not refused. Keep int64, bytes and
//! [`Value`] fields in plain structs and externally tagged enums.

use capstan_protocol::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

mod from_value;
mod key;
mod special;
mod text;
mod to_value;

pub use special::{Bytes, Int64};

/// The largest integer a float64 holds exactly.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_992.0;

/// Offers a float64 to `visitor` as both reading routes do: an integral
/// one within ±2^53 as an integer (clients send every number as a
/// float64), any other as a float; −0 stays a float, to read back as −0.
fn offer_f64<'de, V: serde::de::Visitor<'de>, E: serde::de::Error>(
    x: f64,
    visitor: V,
) -> std::result::Result<V::Value, E> {
    if x.fract() != 0.0 || x.abs() > MAX_SAFE_INTEGER || (x == 0.0 && x.is_sign_negative()) {
        visitor.visit_f64(x)
    } else if x >= 0.0 {
        visitor.visit_u64(x as u64)
    } else {
        visitor.visit_i64(x as i64)
    }
}

/// A Rust value as a Convex value.
///
/// ```
/// use capstan::{Int64, Value};
/// assert_eq!(capstan::to_value(&5_u32)?, Value::Float64(5.0));
/// assert_eq!(capstan::to_value(&Int64(5))?, Value::Int64(5));
/// assert!(capstan::to_value(&u64::MAX).is_err());
/// # Ok::<(), capstan::Error>(())
/// ```
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value> {
    to_value::to_slot(value)
        .map(|value| value.unwrap_or(Value::Null))
        .map_err(|e| Error::new(e.0))
}

/// `value` as a Convex value, and `None` when it is a `None`: what a
/// field of it would hold.
pub(crate) fn to_field<T: Serialize + ?Sized>(value: &T) -> Result<Option<Value>> {
    to_value::to_slot(value).map_err(|e| Error::new(e.0))
}

/// A Convex value as a Rust value.
///
/// ```
/// use capstan::Value;
/// let n: u32 = capstan::from_value(&Value::Float64(3.0))?;
/// assert_eq!(n, 3);
/// # Ok::<(), capstan::Error>(())
/// ```
pub fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T> {
    T::deserialize(from_value::Deserializer::new(value)).map_err(|e| Error::new(e.0))
}

/// [`from_value`] refusing object fields that a struct does not name, as
/// function arguments are read.
pub(crate) fn from_value_strict<T: DeserializeOwned>(value: &Value) -> Result<T> {
    T::deserialize(from_value::Deserializer::strict(value)).map_err(|e| Error::new(e.0))
}

/// A Rust value from Convex JSON text, without building a [`Value`]
/// first; what Rust sees is what [`from_value`] shows it after parsing the
/// same text.
pub(crate) fn from_text<'de, T: serde::Deserialize<'de>>(text: &'de str) -> Result<T> {
    text::from_text(text).map_err(|e| Error::new(e.to_string()))
}

pub(crate) use text::SystemFields;

#[cfg(test)]
mod tests;
