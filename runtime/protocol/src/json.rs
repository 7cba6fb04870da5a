//! The Convex JSON encoding of values (`convexToJson` / `jsonToConvex`).
//!
//! Int64 travels as `{"$integer": base64(8 LE bytes)}`, bytes as
//! `{"$bytes": base64}`, and the floats JSON cannot carry (NaN, ±∞, −0) as
//! `{"$float": base64(8 LE bytes)}`; every other float is a plain JSON number,
//! and every plain JSON number decodes as a float64, integral or not.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::cell::Cell;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
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

    /// The Convex JSON text of the value: `self.to_json().to_string()`,
    /// written directly.
    pub fn to_json_string(&self) -> String {
        // Infallible: every map key is a string and no impl reports errors.
        serde_json::to_string(self).expect("a Value always serialises")
    }

    /// Decodes Convex JSON, enforcing the key rules and the special encodings.
    pub fn from_json(json: &Json) -> Result<Value> {
        from_json_at(json, 0)
    }

    /// Parses Convex JSON text, with the rules of [`Value::from_json`] but
    /// without building the `serde_json` tree first.
    pub fn from_json_str(text: &str) -> Result<Value> {
        parse_json_str(text, true)
    }

    /// Checks that `text` is Convex JSON, by the rules of
    /// [`Value::from_json_str`], without building the value: for text that
    /// is passed on as it is.
    pub fn validate_json_str(text: &str) -> Result<()> {
        parse_json_str(text, false).map(drop)
    }
}

/// The value of `text` when `build`, else `Null` once `text` is checked.
fn parse_json_str(text: &str, build: bool) -> Result<Value> {
    let rule = Cell::new(None);
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let parsed = Seed {
        depth: 0,
        rule: &rule,
        build,
    }
    .deserialize(&mut deserializer)
    .and_then(|value| deserializer.end().map(|()| value));
    parsed.map_err(|e| {
        rule.take()
            .unwrap_or_else(|| ValueError::InvalidJson(e.to_string()))
    })
}

/// Decodes one value at `depth` straight from a deserializer. A broken
/// Convex rule is kept in `rule`, so that the caller gets the typed error
/// rather than its text. Unless `build`, every rule is checked but the
/// value is not kept (`Null` stands for it).
#[derive(Clone, Copy)]
struct Seed<'a> {
    depth: usize,
    rule: &'a Cell<Option<ValueError>>,
    build: bool,
}

impl Seed<'_> {
    fn child(self) -> Self {
        Seed {
            depth: self.depth + 1,
            ..self
        }
    }

    fn broke<E: serde::de::Error>(self, error: ValueError) -> E {
        let message = error.to_string();
        self.rule.set(Some(error));
        E::custom(message)
    }
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<Value, D::Error> {
        if self.depth > MAX_JSON_DEPTH {
            return Err(self.broke(ValueError::TooDeep {
                max: MAX_JSON_DEPTH,
            }));
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, b: bool) -> std::result::Result<Value, E> {
        Ok(Value::Boolean(b))
    }

    // Every plain JSON number is a float64.
    fn visit_i64<E>(self, n: i64) -> std::result::Result<Value, E> {
        Ok(Value::Float64(n as f64))
    }

    fn visit_u64<E>(self, n: u64) -> std::result::Result<Value, E> {
        Ok(Value::Float64(n as f64))
    }

    fn visit_f64<E>(self, x: f64) -> std::result::Result<Value, E> {
        Ok(Value::Float64(x))
    }

    fn visit_str<E>(self, s: &str) -> std::result::Result<Value, E> {
        Ok(if self.build {
            Value::String(s.to_owned())
        } else {
            Value::Null
        })
    }

    fn visit_string<E>(self, s: String) -> std::result::Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        if !self.build {
            while seq.next_element_seed(self.child())?.is_some() {}
            return Ok(Value::Null);
        }
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element_seed(self.child())? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let mut fields = Object::new();
        let Some(first) = map.next_key::<String>()? else {
            return Ok(Value::Object(fields));
        };
        if first.starts_with('$') {
            // A special encoding is the object's only key.
            let inner: Json = map.next_value()?;
            if map.next_key::<serde::de::IgnoredAny>()?.is_some() {
                let error = validate_field_name(&first).err().unwrap_or_else(|| {
                    ValueError::InvalidFieldName {
                        name: first.chars().take(64).collect(),
                        reason: "field names must not start with '$'",
                    }
                });
                return Err(self.broke(error));
            }
            return decode_special(&first, &inner).map_err(|e| self.broke(e));
        }
        let mut key = Some(first);
        while let Some(name) = key {
            validate_field_name(&name).map_err(|e| self.broke(e))?;
            let value = map.next_value_seed(self.child())?;
            if self.build {
                fields.insert(name, value);
            }
            key = map.next_key::<String>()?;
        }
        Ok(if self.build {
            Value::Object(fields)
        } else {
            Value::Null
        })
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

/// The newtype name under which a [`Value`] passes through serde. Formats
/// that do not know it (serde_json, every other) see the Convex JSON form
/// and write or read it as they would any data; a format that knows it
/// (the guest SDK's conversions between Rust types and values) takes the
/// value whole, so an int64 stays an int64 and bytes stay bytes.
#[doc(hidden)]
pub const VALUE_TOKEN: &str = "$capstan::Value";

/// Writes the same Convex JSON as [`Value::to_json`], without building the
/// `serde_json` tree first.
impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_newtype_struct(VALUE_TOKEN, &ConvexJson(self))
    }
}

/// A value in its Convex JSON form.
struct ConvexJson<'a>(&'a Value);

impl Serialize for ConvexJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        fn special<S: Serializer>(
            serializer: S,
            tag: &str,
            bytes: &[u8],
        ) -> std::result::Result<S::Ok, S::Error> {
            let mut map = serializer.serialize_map(Some(1))?;
            map.serialize_entry(tag, &STANDARD.encode(bytes))?;
            map.end()
        }
        match self.0 {
            Value::Null => serializer.serialize_unit(),
            Value::Int64(i) => special(serializer, "$integer", &i.to_le_bytes()),
            Value::Float64(x) if is_special_float(*x) => {
                special(serializer, "$float", &x.to_le_bytes())
            }
            Value::Float64(x) => serializer.serialize_f64(*x),
            Value::Boolean(b) => serializer.serialize_bool(*b),
            Value::String(s) => serializer.serialize_str(s),
            Value::Bytes(b) => special(serializer, "$bytes", b),
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&ConvexJson(item))?;
                }
                seq.end()
            }
            Value::Object(fields) => {
                let mut map = serializer.serialize_map(Some(fields.len()))?;
                for (name, value) in fields {
                    map.serialize_entry(name, &ConvexJson(value))?;
                }
                map.end()
            }
        }
    }
}

/// Reads Convex JSON, with the rules of [`Value::from_json_str`].
impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let rule = Cell::new(None);
        deserializer.deserialize_newtype_struct(
            VALUE_TOKEN,
            Newtype(Seed {
                depth: 0,
                rule: &rule,
                build: true,
            }),
        )
    }
}

/// Takes the Convex JSON form out of [`VALUE_TOKEN`]'s newtype, or straight
/// from a format that does not pass newtypes on.
struct Newtype<'a>(Seed<'a>);

impl<'de> Visitor<'de> for Newtype<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a Convex value")
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<Value, D::Error> {
        self.0.deserialize(deserializer)
    }

    fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<Value, E> {
        self.0.visit_unit()
    }

    fn visit_bool<E: serde::de::Error>(self, b: bool) -> std::result::Result<Value, E> {
        self.0.visit_bool(b)
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> std::result::Result<Value, E> {
        self.0.visit_i64(n)
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> std::result::Result<Value, E> {
        self.0.visit_u64(n)
    }

    fn visit_f64<E: serde::de::Error>(self, x: f64) -> std::result::Result<Value, E> {
        self.0.visit_f64(x)
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> std::result::Result<Value, E> {
        self.0.visit_str(s)
    }

    fn visit_string<E: serde::de::Error>(self, s: String) -> std::result::Result<Value, E> {
        self.0.visit_string(s)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> std::result::Result<Value, A::Error> {
        self.0.visit_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<Value, A::Error> {
        self.0.visit_map(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_decoding_follows_the_tree_decoding() {
        let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        let cases = [
            r#"{"a":1,"b":[true,null,"x",{"$integer":"AQAAAAAAAAA="}],"c":{"d":-0.5}}"#.to_owned(),
            r#"{"$bytes":"AQID"}"#.to_owned(),
            r#"{"$float":"AAAAAAAA+H8="}"#.to_owned(),
            r#"{"a":1,"a":2}"#.to_owned(),
            r#"18446744073709551615"#.to_owned(),
            deep(MAX_JSON_DEPTH),
            // Each breaks one rule.
            deep(MAX_JSON_DEPTH + 1),
            deep(200),
            r#"{"$integer":"AQAAAAAAAAA=","a":1}"#.to_owned(),
            r#"{"$integer":"AQ=="}"#.to_owned(),
            r#"{"$integer":5}"#.to_owned(),
            r#"{"$float":"AAAAAAAA8D8="}"#.to_owned(),
            r#"{"$other":"x"}"#.to_owned(),
            r#"{"ok":{"":1}}"#.to_owned(),
            r#"{"tab\there":1}"#.to_owned(),
            r#"{"a":1"#.to_owned(),
            r#"{"a":1} trailing"#.to_owned(),
            String::new(),
        ];
        for text in cases {
            let tree = serde_json::from_str::<Json>(&text)
                .map_err(|e| ValueError::InvalidJson(e.to_string()))
                .and_then(|json| Value::from_json(&json));
            let direct = Value::from_json_str(&text);
            // Checking without building reaches the same verdict.
            assert_eq!(
                Value::validate_json_str(&text).map_err(|e| e.to_string()),
                direct.as_ref().map(drop).map_err(|e| e.to_string()),
                "{text}"
            );
            match (&tree, &direct) {
                (Ok(a), Ok(b)) => assert!(a == b, "{text}: {a:?} vs {b:?}"),
                (Err(ValueError::InvalidJson(_)), Err(ValueError::InvalidJson(_))) => {}
                // serde_json's own limit (128) stops the tree sooner.
                (Err(ValueError::InvalidJson(_)), Err(ValueError::TooDeep { .. })) => {}
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{text}"),
                _ => panic!("{text}: {tree:?} vs {direct:?}"),
            }
        }
    }

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
