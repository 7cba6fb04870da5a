//! Property tests of the value codecs.

use capstan_protocol::key::{decode_key, decode_value, encode_key, encode_to_vec};
use capstan_protocol::{Object, Value};
use proptest::prelude::*;

/// `CAPSTAN_FUZZ_CASES`, or `default` (what CI runs).
fn cases(default: u32) -> u32 {
    std::env::var("CAPSTAN_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn field_name() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_ ]{0,8}"
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::Int64),
        any::<f64>().prop_map(Value::Float64),
        prop_oneof![Just(0.0), Just(-0.0), Just(f64::NAN), Just(f64::INFINITY)]
            .prop_map(Value::Float64),
        any::<bool>().prop_map(Value::Boolean),
        ".{0,8}".prop_map(Value::String),
        "[a\\x00b]{0,4}".prop_map(Value::String),
        proptest::collection::vec(
            prop_oneof![Just(0u8), Just(1), Just(0xff), any::<u8>()],
            0..6
        )
        .prop_map(Value::Bytes),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::btree_map(field_name(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Object>())),
        ]
    })
}

fn same(a: &Value, b: &Value) -> bool {
    // `==` is the total order's equality, which tells -0 from +0 and NaN from
    // NaN by bit pattern; that is the identity the codecs must preserve.
    a == b && encode_to_vec(a) == encode_to_vec(b)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(2000)))]

    #[test]
    fn json_round_trips(v in value()) {
        let text = v.to_json().to_string();
        // The direct writer produces the very same text as the tree.
        prop_assert_eq!(&v.to_json_string(), &text);
        let back = Value::from_json_str(&text).unwrap();
        prop_assert!(same(&v, &back), "{v:?} came back as {back:?} via {text}");
    }

    #[test]
    fn validating_agrees_with_parsing(v in value(), cut in 0usize..64, byte in any::<u8>()) {
        let text = v.to_json_string();
        prop_assert!(Value::validate_json_str(&text).is_ok());
        // Damaged text: each way of reading it reaches the same verdict,
        // with the same error.
        let mut damaged = text.clone().into_bytes();
        let at = cut.min(damaged.len().saturating_sub(1));
        if let Some(slot) = damaged.get_mut(at) {
            *slot = byte;
        }
        if let Ok(damaged) = String::from_utf8(damaged) {
            prop_assert_eq!(
                Value::validate_json_str(&damaged).map_err(|e| e.to_string()),
                Value::from_json_str(&damaged).map(drop).map_err(|e| e.to_string())
            );
        }
    }

    #[test]
    fn key_encoding_round_trips(v in value()) {
        let back = decode_value(&encode_to_vec(&v)).unwrap();
        prop_assert!(same(&v, &back));
    }

    #[test]
    fn key_order_equals_value_order(a in value(), b in value()) {
        prop_assert_eq!(encode_to_vec(&a).cmp(&encode_to_vec(&b)), a.cmp(&b));
    }

    #[test]
    fn tuple_keys_order_like_tuples(a in proptest::collection::vec(proptest::option::of(value()), 1..4),
                                    b in proptest::collection::vec(proptest::option::of(value()), 1..4)) {
        let ka = encode_key(&a.iter().map(Option::as_ref).collect::<Vec<_>>());
        let kb = encode_key(&b.iter().map(Option::as_ref).collect::<Vec<_>>());
        prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
        let back = decode_key(&ka).unwrap();
        prop_assert_eq!(back, a);
    }

    #[test]
    fn corrupt_keys_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        let _ = decode_key(&bytes);
        let _ = decode_value(&bytes);
    }
}

#[test]
fn cross_type_order_is_convex_order() {
    let ordered = [
        Value::Null,
        Value::Int64(i64::MAX),
        Value::Float64(f64::NEG_INFINITY),
        Value::Boolean(false),
        Value::Boolean(true),
        Value::String(String::new()),
        Value::Bytes(vec![]),
        Value::Array(vec![]),
        Value::Object(Object::new()),
    ];
    for pair in ordered.windows(2) {
        assert!(pair[0] < pair[1], "{:?} < {:?}", pair[0], pair[1]);
        assert!(encode_to_vec(&pair[0]) < encode_to_vec(&pair[1]));
    }
    assert!(encode_key(&[None]) < encode_key(&[Some(&Value::Null)]));
}
