//! The Convex types no plain Rust type stands for: int64 and bytes.

use std::fmt;

use capstan_protocol::Value;
use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::{Serialize, Serializer};

/// A Convex int64: a `bigint` in JavaScript. Plain Rust integers are
/// float64s (JavaScript `number`s); use this where the app wants int64,
/// as Convex's `v.int64()`.
///
/// ```
/// use capstan::{Int64, Value};
/// assert_eq!(capstan::to_value(&Int64(1 << 60))?, Value::Int64(1 << 60));
/// let back: Int64 = capstan::from_value(&Value::Int64(-7))?;
/// assert_eq!(back, Int64(-7));
/// // A float64 is not an int64, as `v.int64()` would refuse it.
/// assert!(capstan::from_value::<Int64>(&Value::Float64(3.0)).is_err());
/// # Ok::<(), capstan::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Int64(pub i64);

impl From<i64> for Int64 {
    fn from(n: i64) -> Self {
        Int64(n)
    }
}

impl From<Int64> for i64 {
    fn from(n: Int64) -> Self {
        n.0
    }
}

impl fmt::Display for Int64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Int64 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Value::Int64(self.0).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Int64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Int64(n) => Ok(Int64(n)),
            other => Err(de::Error::custom(format!(
                "expected an int64 (a bigint in JavaScript), found a {}",
                other.value_type().name()
            ))),
        }
    }
}

/// Convex bytes: an `ArrayBuffer` in JavaScript. (`Vec<u8>` is an array
/// of numbers.)
///
/// ```
/// use capstan::{Bytes, Value};
/// assert_eq!(capstan::to_value(&Bytes(vec![0, 255]))?, Value::Bytes(vec![0, 255]));
/// let back: Bytes = capstan::from_value(&Value::Bytes(vec![1, 2]))?;
/// assert_eq!(back.0, [1, 2]);
/// # Ok::<(), capstan::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(pub Vec<u8>);

impl From<Vec<u8>> for Bytes {
    fn from(bytes: Vec<u8>) -> Self {
        Bytes(bytes)
    }
}

impl From<Bytes> for Vec<u8> {
    fn from(bytes: Bytes) -> Self {
        bytes.0
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_byte_buf(BytesVisitor)
    }
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Bytes;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bytes")
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Bytes, E> {
        Ok(Bytes(bytes.to_vec()))
    }

    fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Bytes, E> {
        Ok(Bytes(bytes))
    }

    /// The text route reads `{"$bytes": …}` as a list of numbers.
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
        while let Some(byte) = seq.next_element::<u8>()? {
            bytes.push(byte);
        }
        Ok(Bytes(bytes))
    }
}
