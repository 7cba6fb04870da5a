//! Between Rust types (through serde) and Convex values.
//!
//! Rust integers become int64 and floats float64. Reading back, an integral
//! float64 is accepted where Rust expects an integer (clients send every
//! number as float64) and an int64 where Rust expects a float.

use capstan_protocol::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

mod direct;
mod text;

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
    value
        .serialize(direct::Serializer)
        .map_err(|e| Error::new(e.0))
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
    T::deserialize(direct::Deserializer(value)).map_err(|e| Error::new(e.0))
}

/// A Rust value from Convex JSON text, without building a [`Value`]
/// first; what Rust sees is what [`from_value`] shows it after parsing the
/// same text.
pub(crate) fn from_text<'de, T: serde::Deserialize<'de>>(text: &'de str) -> Result<T> {
    text::from_text(text).map_err(|e| Error::new(e.to_string()))
}

pub(crate) use text::SystemFields;

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use serde::{Deserialize, Serialize};

    use capstan_protocol::Object;

    use super::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    enum Shape {
        Empty,
        Circle(f64),
        Pair(i32, String),
        Rect { w: u32, h: u32 },
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Unit;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Wrapper(u16);

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Everything {
        name: String,
        count: u32,
        big: i64,
        ratio: f64,
        whole: f64,
        flag: bool,
        letter: char,
        missing: Option<String>,
        present: Option<Vec<u8>>,
        shapes: Vec<Shape>,
        by_number: BTreeMap<u32, String>,
        by_name: HashMap<String, Wrapper>,
        tuple: (i8, Unit, ()),
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
        #[serde(flatten)]
        extra: BTreeMap<String, i64>,
    }

    fn everything() -> Everything {
        Everything {
            name: "n".into(),
            count: 7,
            big: -(1 << 60),
            ratio: 0.25,
            whole: 3.0,
            flag: true,
            letter: 'é',
            missing: None,
            present: Some(vec![0, 255]),
            shapes: vec![
                Shape::Empty,
                Shape::Circle(1.5),
                Shape::Pair(-2, "two".into()),
                Shape::Rect { w: 3, h: 4 },
            ],
            by_number: BTreeMap::from([(1, "one".into()), (20, "twenty".into())]),
            by_name: HashMap::from([("w".into(), Wrapper(9))]),
            tuple: (-1, Unit, ()),
            skipped: None,
            extra: BTreeMap::from([("more".into(), 5)]),
        }
    }

    // The route through `serde_json::Value` that the direct conversions
    // replace, kept as the oracle they must agree with.
    fn plain_to_value(json: serde_json::Value) -> Result<Value> {
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

    fn value_to_plain(value: &Value) -> serde_json::Value {
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
            Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(value_to_plain).collect())
            }
            Value::Object(fields) => serde_json::Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), value_to_plain(v)))
                    .collect(),
            ),
        }
    }

    fn old_to_value<T: Serialize>(value: &T) -> Result<Value> {
        plain_to_value(serde_json::to_value(value)?)
    }

    fn old_from_value<T: DeserializeOwned>(value: &Value) -> Result<T> {
        Ok(serde_json::from_value(value_to_plain(value))?)
    }

    #[test]
    fn direct_conversions_agree_with_the_json_route() {
        let value = to_value(&everything()).unwrap();
        assert!(value == old_to_value(&everything()).unwrap(), "{value:?}");
        let back: Everything = from_value(&value).unwrap();
        assert_eq!(back, everything());
        let old: Everything = old_from_value(&value).unwrap();
        assert_eq!(old, back);
        // ConvexError data travels as serde_json values through the same
        // conversions.
        let plain: serde_json::Value = from_value(&value).unwrap();
        assert_eq!(plain, value_to_plain(&value));
        assert!(to_value(&plain).unwrap() == plain_to_value(plain.clone()).unwrap());

        // Lenient reading: integral floats (as clients send numbers) fill
        // integer fields, int64 fills float fields.
        let mut fields = match value {
            Value::Object(fields) => fields,
            other => panic!("{other:?}"),
        };
        fields.insert("count".into(), Value::Float64(7.0));
        fields.insert("ratio".into(), Value::Int64(2));
        let loose = Value::Object(fields);
        let read: Everything = from_value(&loose).unwrap();
        assert_eq!((read.count, read.ratio), (7, 2.0));
        assert_eq!(read, old_from_value::<Everything>(&loose).unwrap());
    }

    #[test]
    fn non_finite_floats_stay_floats() {
        let nan = to_value(&f64::NAN).unwrap();
        assert!(matches!(nan, Value::Float64(x) if x.is_nan()));
        let back: f64 = from_value(&Value::Float64(f64::INFINITY)).unwrap();
        assert_eq!(back, f64::INFINITY);
    }

    #[test]
    fn direct_conversions_fail_where_the_json_route_fails() {
        assert!(to_value(&u64::MAX).is_err() && old_to_value(&u64::MAX).is_err());
        assert!(to_value(&HashMap::from([((1, 2), 3)])).is_err());
        for (value, what) in [
            (Value::Float64(2.5), "a fraction into u32"),
            (Value::Int64(-1), "a negative into u32"),
            (Value::String("x".into()), "a string into u32"),
        ] {
            let new = from_value::<u32>(&value).map_err(|e| e.message().to_owned());
            let old = old_from_value::<u32>(&value).map_err(|e| e.message().to_owned());
            assert!(new.is_err(), "{what}");
            assert_eq!(new, old, "{what}");
        }
        // Arrays longer than the tuple they fill are refused.
        let three = to_value(&[1, 2, 3]).unwrap();
        assert!(from_value::<(u8, u8)>(&three).is_err());
        assert!(old_from_value::<(u8, u8)>(&three).is_err());
        assert!(from_value::<[u8; 2]>(&three).is_err());
        let two_keys = to_value(&BTreeMap::from([("Circle", 1.0), ("Empty", 0.0)])).unwrap();
        assert!(from_value::<Shape>(&two_keys).is_err());
        assert!(from_value::<Shape>(&Value::String("Unknown".into())).is_err());
    }

    /// `T` read from `value`'s Convex JSON text both ways.
    fn both_routes<T: DeserializeOwned>(value: &Value) -> (Result<T>, Result<T>) {
        let text = value.to_json_string();
        let tree = Value::from_json_str(&text).map_err(|e| Error::new(e.to_string()));
        (from_text(&text), tree.and_then(|tree| from_value(&tree)))
    }

    #[test]
    fn text_reads_what_the_value_route_reads() {
        let value = to_value(&everything()).unwrap();
        let (text, tree) = both_routes::<Everything>(&value);
        assert_eq!(text.unwrap(), tree.unwrap());
        let (text, tree) = both_routes::<serde_json::Value>(&value);
        assert_eq!(text.unwrap(), tree.unwrap());
        // Integers and floats at every edge: int64s, integral floats (as
        // clients send numbers), floats beyond 2^53, and the floats JSON
        // cannot carry.
        for value in [
            Value::Int64(i64::MIN),
            Value::Int64(-1),
            Value::Int64(0),
            Value::Int64(i64::MAX),
            Value::Float64(7.0),
            Value::Float64(-7.0),
            Value::Float64(0.5),
            Value::Float64(-0.0),
            Value::Float64(9_007_199_254_740_992.0),
            Value::Float64(1e300),
            Value::Float64(f64::INFINITY),
            Value::Float64(f64::NEG_INFINITY),
        ] {
            macro_rules! agree {
                ($($ty:ty),*) => {$(
                    let (text, tree) = both_routes::<$ty>(&value);
                    assert_eq!(text.is_ok(), tree.is_ok(), "{value:?} as {}", stringify!($ty));
                    if let (Ok(text), Ok(tree)) = (text, tree) {
                        assert_eq!(
                            format!("{text:?}"),
                            format!("{tree:?}"),
                            "{value:?} as {}",
                            stringify!($ty)
                        );
                    }
                )*};
            }
            agree!(i64, u64, i32, u8, f64, f32, serde_json::Value, Option<i64>);
        }
        // NaN, which equals nothing.
        let (text, tree) = both_routes::<f64>(&Value::Float64(f64::NAN));
        assert!(text.unwrap().is_nan() && tree.unwrap().is_nan());
        // Bytes, nulls, nesting, numeric keys, enums.
        let (text, tree) = both_routes::<Vec<u8>>(&Value::Bytes(vec![0, 1, 255]));
        assert_eq!(text.unwrap(), tree.unwrap());
        let nested = to_value(&vec![
            BTreeMap::from([(3u32, vec![Some(Shape::Empty), None])]),
            BTreeMap::new(),
        ])
        .unwrap();
        let (text, tree) = both_routes::<Vec<BTreeMap<u32, Vec<Option<Shape>>>>>(&nested);
        assert_eq!(text.unwrap(), tree.unwrap());
        // Escaped strings and keys.
        let escaped = Value::Object(Object::from([(
            "say \"hi\"".to_owned(),
            Value::String("line\nbreak \u{1F600}".into()),
        )]));
        let (text, tree) = both_routes::<BTreeMap<String, String>>(&escaped);
        assert_eq!(text.unwrap(), tree.unwrap());
    }

    #[test]
    fn text_fails_where_the_value_route_fails() {
        let value = to_value(&everything()).unwrap();
        for (value, what) in [
            (Value::Float64(2.5), "a fraction"),
            (Value::Int64(-1), "a negative"),
            (Value::String("x".into()), "a string"),
            (value, "an object"),
        ] {
            let (text, tree) = both_routes::<u32>(&value);
            assert!(text.is_err() && tree.is_err(), "{what}");
        }
        let three = to_value(&[1, 2, 3]).unwrap();
        let (text, tree) = both_routes::<(u8, u8)>(&three);
        assert!(text.is_err() && tree.is_err());
        let two_keys = to_value(&BTreeMap::from([("Circle", 1.0), ("Empty", 0.0)])).unwrap();
        let (text, tree) = both_routes::<Shape>(&two_keys);
        assert!(text.is_err() && tree.is_err());
        // Malformed special encodings and trailing text.
        for text in [
            r#"{"$integer": "AAAA"}"#,
            r#"{"$integer": "AAAAAAAAAAA=", "x": 1}"#,
            r#"{"$unknown": "x"}"#,
            r#"{"$bytes": "!!"}"#,
            "1 2",
        ] {
            assert!(from_text::<serde_json::Value>(text).is_err(), "{text}");
        }
    }

    #[test]
    fn documents_read_from_text_as_from_values() {
        use crate::id::Doc;
        let mut fields = match to_value(&everything()).unwrap() {
            Value::Object(fields) => fields,
            other => panic!("{other:?}"),
        };
        fields.insert(
            "_id".into(),
            Value::String("k57b0ctwz6z1yvx2x1tv5hfzk57m5c4j".into()),
        );
        fields.insert("_creationTime".into(), Value::Float64(1_795_748_563_508.25));
        let document = Value::Object(fields);
        let text = document.to_json_string();
        let read: Doc<Everything> = from_text(&text).unwrap();
        let from_tree = Doc::<Everything>::from_value(document.clone()).unwrap();
        assert_eq!(read, from_tree);
        assert_eq!(read.data, everything());
        assert_eq!(read.creation_time, 1_795_748_563_508.25);
        assert_eq!(read.id.as_str(), "k57b0ctwz6z1yvx2x1tv5hfzk57m5c4j");
        // In a list, as a query returns them.
        let list = format!("[{text},{text}]");
        let documents: Vec<Doc<Everything>> = from_text(&list).unwrap();
        assert_eq!(documents.len(), 2);
        assert!(documents.iter().all(|d| *d == from_tree));
        // Without its system fields, a document is refused.
        for missing in ["_id", "_creationTime"] {
            let Value::Object(mut fields) = document.clone() else {
                unreachable!()
            };
            fields.remove(missing);
            let text = Value::Object(fields).to_json_string();
            let error = from_text::<Doc<Everything>>(&text).unwrap_err();
            assert!(error.message().contains(missing), "{error:?}");
        }
    }
}
