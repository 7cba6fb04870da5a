//! The Convex JSON encoding of values (`convexToJson` / `jsonToConvex`).
//!
//! Int64 travels as `{"$integer": base64(8 LE bytes)}`, bytes as
//! `{"$bytes": base64}`, and the floats JSON cannot carry (NaN, ±∞, −0) as
//! `{"$float": base64(8 LE bytes)}`; every other float is a plain JSON number,
//! and every plain JSON number decodes as a float64, integral or not.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value as Json;

use crate::error::{Result, ValueError};
use crate::value::{Object, Value};

/// serde_json itself stops at 128 levels; values are bounded well below that
/// so that every recursive walk over a decoded value is safe.
pub const MAX_JSON_DEPTH: usize = 64;

/// Longest object key Convex accepts.
pub const MAX_FIELD_NAME_LEN: usize = 1024;

/// Checks the rules every object key must follow on the wire: non-empty,
/// at most 1024 characters, printable ASCII only, not starting with `$`
/// (those keys are reserved for the special encodings).
pub fn validate_field_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "field names must not be empty"
    } else if name.len() > MAX_FIELD_NAME_LEN {
        "field names must be at most 1024 characters long"
    } else if name.starts_with('$') {
        "field names must not start with '$'"
    } else if !name.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        "field names must contain only printable ASCII characters"
    } else {
        return Ok(());
    };
    Err(ValueError::InvalidFieldName {
        name: name.chars().take(64).collect(),
        reason,
    })
}

fn is_special_float(x: f64) -> bool {
    !x.is_finite() || (x == 0.0 && x.is_sign_negative())
}

fn decode_8_bytes(tag: &'static str, text: &str) -> Result<[u8; 8]> {
    let bytes = STANDARD
        .decode(text)
        .map_err(|e| ValueError::InvalidSpecialValue {
            tag,
            reason: format!("not valid base64: {e}"),
        })?;
    bytes
        .try_into()
        .map_err(|bytes: Vec<u8>| ValueError::InvalidSpecialValue {
            tag,
            reason: format!("expected 8 bytes, found {}", bytes.len()),
        })
}

impl Value {
    /// Encodes the value as Convex JSON.
    pub fn to_json(&self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Int64(i) => special("$integer", STANDARD.encode(i.to_le_bytes())),
            Value::Float64(x) if is_special_float(*x) => {
                special("$float", STANDARD.encode(x.to_le_bytes()))
            }
            Value::Float64(x) => serde_json::Number::from_f64(*x)
                .map(Json::Number)
                .unwrap_or(Json::Null),
            Value::Boolean(b) => Json::Bool(*b),
            Value::String(s) => Json::String(s.clone()),
            Value::Bytes(b) => special("$bytes", STANDARD.encode(b)),
            Value::Array(items) => Json::Array(items.iter().map(Value::to_json).collect()),
            Value::Object(fields) => Json::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// Decodes Convex JSON, enforcing the key rules and the special encodings.
    pub fn from_json(json: &Json) -> Result<Value> {
        from_json_at(json, 0)
    }

    /// Parses Convex JSON text.
    pub fn from_json_str(text: &str) -> Result<Value> {
        let json: Json =
            serde_json::from_str(text).map_err(|e| ValueError::InvalidJson(e.to_string()))?;
        Value::from_json(&json)
    }
}

fn special(tag: &str, text: String) -> Json {
    let mut map = serde_json::Map::new();
    map.insert(tag.to_owned(), Json::String(text));
    Json::Object(map)
}

fn from_json_at(json: &Json, depth: usize) -> Result<Value> {
    if depth > MAX_JSON_DEPTH {
        return Err(ValueError::TooDeep {
            max: MAX_JSON_DEPTH,
        });
    }
    Ok(match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => {
            Value::Float64(n.as_f64().ok_or_else(|| {
                ValueError::InvalidJson(format!("number {n} is not representable"))
            })?)
        }
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| from_json_at(item, depth + 1))
                .collect::<Result<_>>()?,
        ),
        Json::Object(map) => {
            if map.len() == 1
                && let Some((key, inner)) = map.iter().next()
                && key.starts_with('$')
            {
                return decode_special(key, inner);
            }
            let mut fields = Object::new();
            for (key, value) in map {
                validate_field_name(key)?;
                fields.insert(key.clone(), from_json_at(value, depth + 1)?);
            }
            Value::Object(fields)
        }
    })
}

fn decode_special(key: &str, inner: &Json) -> Result<Value> {
    let text = |tag: &'static str| {
        inner
            .as_str()
            .ok_or_else(|| ValueError::InvalidSpecialValue {
                tag,
                reason: "expected a base64 string".to_owned(),
            })
    };
    match key {
        "$integer" => Ok(Value::Int64(i64::from_le_bytes(decode_8_bytes(
            "$integer",
            text("$integer")?,
        )?))),
        "$float" => {
            let x = f64::from_le_bytes(decode_8_bytes("$float", text("$float")?)?);
            if !is_special_float(x) {
                return Err(ValueError::InvalidSpecialValue {
                    tag: "$float",
                    reason: format!("float {x} should be encoded as a number"),
                });
            }
            Ok(Value::Float64(x))
        }
        "$bytes" => Ok(Value::Bytes(STANDARD.decode(text("$bytes")?).map_err(
            |e| ValueError::InvalidSpecialValue {
                tag: "$bytes",
                reason: format!("not valid base64: {e}"),
            },
        )?)),
        other => Err(ValueError::InvalidFieldName {
            name: other.chars().take(64).collect(),
            reason: "field names must not start with '$'",
        }),
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let json = Json::deserialize(deserializer)?;
        Value::from_json(&json).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn special_values_match_the_spec_examples() {
        assert_eq!(
            Value::Int64(1).to_json(),
            json!({"$integer": "AQAAAAAAAAA="})
        );
        assert_eq!(
            Value::Int64(-1).to_json(),
            json!({"$integer": "//////////8="})
        );
        assert_eq!(
            Value::Float64(f64::NAN).to_json(),
            json!({"$float": "AAAAAAAA+H8="})
        );
        assert_eq!(
            Value::Float64(f64::INFINITY).to_json(),
            json!({"$float": "AAAAAAAA8H8="})
        );
        assert_eq!(
            Value::Float64(f64::NEG_INFINITY).to_json(),
            json!({"$float": "AAAAAAAA8P8="})
        );
        assert_eq!(
            Value::Float64(-0.0).to_json(),
            json!({"$float": "AAAAAAAAAIA="})
        );
        assert_eq!(
            Value::Bytes(vec![1, 2, 3]).to_json(),
            json!({"$bytes": "AQID"})
        );
        assert_eq!(Value::Float64(1.5).to_json(), json!(1.5));
    }

    #[test]
    fn plain_numbers_decode_as_floats_even_when_integral() {
        assert_eq!(Value::from_json(&json!(3)).unwrap(), Value::Float64(3.0));
    }

    #[test]
    fn object_keys_come_out_sorted() {
        let value = Value::from_json_str(r#"{"b":1,"a":2,"B":3}"#).unwrap();
        assert_eq!(value.to_json().to_string(), r#"{"B":3.0,"a":2.0,"b":1.0}"#);
    }

    #[test]
    fn bad_inputs_are_refused_with_a_reason() {
        let cases = [
            json!({"$float": "AAAAAAAA+D8="}), // 1.5 must be a plain number
            json!({"$integer": "AQ=="}),       // not 8 bytes
            json!({"$bytes": "***"}),
            json!({"$set": []}),
            json!({"$integer": 1}),
            json!({"a": 1, "$b": 2}),
            json!({"é": 1}),
            json!({"": 1}),
        ];
        for case in cases {
            let err = Value::from_json(&case).expect_err(&case.to_string());
            assert!(!err.to_string().is_empty());
        }
        let long = "x".repeat(1025);
        assert!(Value::from_json(&json!({ long: 1 })).is_err());
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut json = json!(1);
        for _ in 0..(MAX_JSON_DEPTH + 2) {
            json = json!([json]);
        }
        assert!(matches!(
            Value::from_json(&json),
            Err(ValueError::TooDeep { .. })
        ));
    }
}
