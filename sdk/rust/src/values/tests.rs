//! The number rules, values kept whole, strict arguments, and the two
//! reading routes (from a value, from text) against each other.

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
    big: Int64,
    ratio: f64,
    whole: f64,
    flag: bool,
    letter: char,
    missing: Option<String>,
    present: Option<Vec<u8>>,
    bytes: Bytes,
    any: Value,
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
        big: Int64(-(1 << 60)),
        ratio: 0.25,
        whole: 3.0,
        flag: true,
        letter: 'é',
        missing: None,
        present: Some(vec![0, 255]),
        bytes: Bytes(vec![1, 2, 3]),
        any: every_type(),
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

/// A value holding every Convex type at its edges.
fn every_type() -> Value {
    Value::Object(Object::from([
        ("int_min".into(), Value::Int64(i64::MIN)),
        ("int_max".into(), Value::Int64(i64::MAX)),
        ("int_zero".into(), Value::Int64(0)),
        ("int_neg".into(), Value::Int64(-1)),
        ("nan".into(), Value::Float64(f64::NAN)),
        ("neg_zero".into(), Value::Float64(-0.0)),
        ("inf".into(), Value::Float64(f64::INFINITY)),
        ("neg_inf".into(), Value::Float64(f64::NEG_INFINITY)),
        ("half".into(), Value::Float64(0.5)),
        ("whole".into(), Value::Float64(3.0)),
        (
            "beyond_2_53".into(),
            Value::Float64(9_007_199_254_740_994.0),
        ),
        ("bytes".into(), Value::Bytes((0..=255).collect())),
        ("no_bytes".into(), Value::Bytes(Vec::new())),
        (
            "text".into(),
            Value::String("line\nbreak \"q\" \u{1F600}".into()),
        ),
        ("flag".into(), Value::Boolean(false)),
        ("null".into(), Value::Null),
        (
            "nested".into(),
            Value::Array(vec![
                Value::Int64(1),
                Value::Array(vec![Value::Bytes(vec![9]), Value::Object(Object::new())]),
                Value::Object(Object::from([("deep".into(), Value::Int64(-5))])),
            ]),
        ),
    ]))
}

#[test]
fn rust_integers_are_float64_and_int64_is_asked_for() {
    assert_eq!(to_value(&7_u8).unwrap(), Value::Float64(7.0));
    assert_eq!(to_value(&-7_i32).unwrap(), Value::Float64(-7.0));
    assert_eq!(to_value(&7_usize).unwrap(), Value::Float64(7.0));
    assert_eq!(
        to_value(&(1_i64 << 53)).unwrap(),
        Value::Float64(9_007_199_254_740_992.0)
    );
    assert_eq!(
        to_value(&-(1_i64 << 53)).unwrap(),
        Value::Float64(-9_007_199_254_740_992.0)
    );
    for too_big in [
        to_value(&((1_i64 << 53) + 1)),
        to_value(&u64::MAX),
        to_value(&i64::MIN),
        to_value(&u128::MAX),
    ] {
        let error = too_big.unwrap_err();
        assert!(error.message().contains("capstan::Int64"), "{error:?}");
    }
    assert_eq!(to_value(&Int64(i64::MIN)).unwrap(), Value::Int64(i64::MIN));
    assert_eq!(to_value(&Bytes(vec![1])).unwrap(), Value::Bytes(vec![1]));
    assert_eq!(
        to_value(&vec![1_u8]).unwrap(),
        Value::Array(vec![Value::Float64(1.0)])
    );
    // serde_json numbers follow the same rule, so `json!` data does too.
    assert_eq!(
        to_value(&serde_json::json!({"n": 3, "f": 1.5, "neg": -2})).unwrap(),
        Value::Object(Object::from([
            ("f".into(), Value::Float64(1.5)),
            ("n".into(), Value::Float64(3.0)),
            ("neg".into(), Value::Float64(-2.0)),
        ]))
    );
    // int64 is read only from an int64, as `v.int64()` checks.
    assert!(from_value::<Int64>(&Value::Float64(3.0)).is_err());
    assert_eq!(from_value::<Int64>(&Value::Int64(3)).unwrap(), Int64(3));
}

#[test]
fn none_is_left_out_of_objects_and_null_in_arrays() {
    #[derive(Serialize)]
    struct Partial {
        set: Option<u8>,
        unset: Option<u8>,
        map: BTreeMap<String, Option<u8>>,
        list: Vec<Option<u8>>,
    }
    let value = to_value(&Partial {
        set: Some(1),
        unset: None,
        map: BTreeMap::from([("a".into(), None), ("b".into(), Some(2))]),
        list: vec![None, Some(3)],
    })
    .unwrap();
    assert_eq!(
        value,
        Value::Object(Object::from([
            ("set".into(), Value::Float64(1.0)),
            (
                "map".into(),
                Value::Object(Object::from([("b".into(), Value::Float64(2.0))]))
            ),
            (
                "list".into(),
                Value::Array(vec![Value::Null, Value::Float64(3.0)])
            ),
        ]))
    );
    assert_eq!(to_value(&None::<u8>).unwrap(), Value::Null);

    // `Option<Option<T>>`: `Some(None)` is a null that is there.
    #[derive(Serialize)]
    struct Nullable {
        explicit: Option<Option<u8>>,
        absent: Option<Option<u8>>,
    }
    let value = to_value(&Nullable {
        explicit: Some(None),
        absent: None,
    })
    .unwrap();
    assert_eq!(
        value,
        Value::Object(Object::from([("explicit".into(), Value::Null)]))
    );
}

#[test]
fn negative_zero_reads_back_as_negative_zero() {
    let value = Value::Float64(-0.0);
    let (text, tree) = both_routes::<f64>(&value);
    assert!(text.unwrap().is_sign_negative() && tree.unwrap().is_sign_negative());
    let (text, tree) = both_routes::<Value>(&value);
    assert!(matches!(text.unwrap(), Value::Float64(x) if x.is_sign_negative()));
    assert!(matches!(tree.unwrap(), Value::Float64(x) if x.is_sign_negative()));
}

#[test]
fn values_survive_every_route_whole() {
    let value = every_type();
    assert_eq!(to_value(&value).unwrap(), value);
    assert_eq!(from_value::<Value>(&value).unwrap(), value);
    assert_eq!(from_value_strict::<Value>(&value).unwrap(), value);
    let text = value.to_json_string();
    assert_eq!(from_text::<Value>(&text).unwrap(), value);
    assert_eq!(Value::from_json_str(&text).unwrap(), value);

    // Inside structs, lists and options too.
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Holder {
        one: Value,
        many: Vec<Value>,
        maybe: Option<Value>,
    }
    let holder = Holder {
        one: value.clone(),
        many: vec![Value::Int64(7), Value::Bytes(vec![0])],
        maybe: Some(Value::Float64(-0.0)),
    };
    let as_value = to_value(&holder).unwrap();
    assert_eq!(as_value.as_object().unwrap()["one"], value);
    assert_eq!(from_value::<Holder>(&as_value).unwrap(), holder);
    assert_eq!(
        from_text::<Holder>(&as_value.to_json_string()).unwrap(),
        holder
    );
}

#[test]
fn structs_read_back_as_written_by_both_routes() {
    let value = to_value(&everything()).unwrap();
    let fields = value.as_object().unwrap();
    assert_eq!(fields["count"], Value::Float64(7.0));
    assert_eq!(fields["big"], Value::Int64(-(1 << 60)));
    assert_eq!(fields["bytes"], Value::Bytes(vec![1, 2, 3]));
    assert_eq!(fields["any"], every_type());
    assert!(!fields.contains_key("missing") && !fields.contains_key("skipped"));
    assert_eq!(from_value::<Everything>(&value).unwrap(), everything());
    assert_eq!(
        from_text::<Everything>(&value.to_json_string()).unwrap(),
        everything()
    );
    // ConvexError data travels as serde_json values through the same
    // conversions.
    let plain: serde_json::Value = from_value(&value).unwrap();
    assert_eq!(plain["count"], serde_json::json!(7));

    // Lenient reading: integral floats (as clients send numbers) fill
    // integer fields, int64 fills float fields.
    let mut fields = fields.clone();
    fields.insert("ratio".into(), Value::Int64(2));
    let read: Everything = from_value(&Value::Object(fields)).unwrap();
    assert_eq!((read.count, read.ratio), (7, 2.0));
}

#[test]
fn conversions_fail_with_a_reason() {
    assert!(to_value(&HashMap::from([((1, 2), 3)])).is_err());
    for (value, what) in [
        (Value::Float64(2.5), "a fraction into u32"),
        (Value::Int64(-1), "a negative into u32"),
        (Value::String("x".into()), "a string into u32"),
    ] {
        assert!(from_value::<u32>(&value).is_err(), "{what}");
    }
    // Arrays longer than the tuple they fill are refused.
    let three = to_value(&[1, 2, 3]).unwrap();
    assert!(from_value::<(u8, u8)>(&three).is_err());
    assert!(from_value::<[u8; 2]>(&three).is_err());
    let two_keys = to_value(&BTreeMap::from([("Circle", 1.0), ("Empty", 0.0)])).unwrap();
    assert!(from_value::<Shape>(&two_keys).is_err());
    assert!(from_value::<Shape>(&Value::String("Unknown".into())).is_err());
}

#[test]
fn strict_reading_refuses_fields_a_struct_does_not_name() {
    #[derive(Deserialize, Debug)]
    #[expect(dead_code, reason = "only read")]
    struct Inner {
        #[serde(alias = "older")]
        name: String,
    }
    #[derive(Deserialize, Debug)]
    #[expect(dead_code, reason = "only read")]
    struct Args {
        inner: Inner,
        list: Vec<Inner>,
        #[serde(default)]
        shape: Option<Shape>,
    }
    let args = |inner: Value, extra: Option<(&str, Value)>| {
        let mut fields = Object::from([
            ("inner".to_owned(), inner),
            (
                "list".to_owned(),
                Value::Array(vec![Value::Object(Object::from([(
                    "name".to_owned(),
                    Value::String("b".into()),
                )]))]),
            ),
        ]);
        if let Some((name, value)) = extra {
            fields.insert(name.to_owned(), value);
        }
        Value::Object(fields)
    };
    let inner = |fields: &[(&str, &str)]| {
        Value::Object(
            fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Value::String((*v).into())))
                .collect(),
        )
    };
    let fine = args(inner(&[("name", "a")]), None);
    assert!(from_value_strict::<Args>(&fine).is_ok());
    // An alias is a name the struct knows.
    assert!(from_value_strict::<Args>(&args(inner(&[("older", "a")]), None)).is_ok());

    let top = args(inner(&[("name", "a")]), Some(("chanel", Value::Null)));
    let error = from_value_strict::<Args>(&top).unwrap_err();
    assert!(
        error.message().contains("unknown field `chanel`"),
        "{error:?}"
    );
    let nested = args(inner(&[("name", "a"), ("nmae", "b")]), None);
    let error = from_value_strict::<Args>(&nested).unwrap_err();
    assert!(
        error.message().contains("unknown field `nmae`"),
        "{error:?}"
    );
    let variant = args(
        inner(&[("name", "a")]),
        Some((
            "shape",
            Value::Object(Object::from([(
                "Rect".into(),
                Value::Object(Object::from([
                    ("w".into(), Value::Float64(1.0)),
                    ("h".into(), Value::Float64(1.0)),
                    ("d".into(), Value::Float64(1.0)),
                ])),
            )])),
        )),
    );
    let error = from_value_strict::<Args>(&variant).unwrap_err();
    assert!(error.message().contains("unknown field `d`"), "{error:?}");
    // Lenient reading (documents) ignores them.
    assert!(from_value::<Args>(&top).is_ok() && from_value::<Args>(&nested).is_ok());
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
        agree!(
            i64,
            u64,
            i32,
            u8,
            f64,
            f32,
            serde_json::Value,
            Option<i64>,
            Value,
            Int64
        );
    }
    // NaN, which equals nothing.
    let (text, tree) = both_routes::<f64>(&Value::Float64(f64::NAN));
    assert!(text.unwrap().is_nan() && tree.unwrap().is_nan());
    // Bytes, as bytes or as a list of numbers.
    let (text, tree) = both_routes::<Vec<u8>>(&Value::Bytes(vec![0, 1, 255]));
    assert_eq!(text.unwrap(), tree.unwrap());
    let (text, tree) = both_routes::<Bytes>(&Value::Bytes(vec![0, 1, 255]));
    assert_eq!(text.unwrap(), tree.unwrap());
    // Nulls, nesting, numeric keys, enums.
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
        assert!(from_text::<Value>(text).is_err(), "{text}");
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
