//! serde straight from Convex JSON text to Rust, without building a
//! [`capstan_protocol::Value`] first: for documents the server sends, where
//! decoding every field into a tree and then again into Rust doubled the
//! work of every read.
//!
//! What Rust sees is what [`super::from_value`] shows it after parsing the
//! same text: every plain JSON number is a float64 (offered as an integer
//! when integral and within ±2^53), `{"$integer": …}` an int64,
//! `{"$float": …}` a float64 JSON cannot carry, `{"$bytes": …}` an array of
//! numbers (which `Vec<u8>` and [`super::Bytes`] read), a `Value` field the
//! value whole, enums Convex-style. The text comes from the server, which
//! checked every value when it was stored; field names are not checked
//! again.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use capstan_protocol::json::VALUE_TOKEN;
use serde::de::{self, DeserializeSeed, Visitor};

use super::key::Key;
use super::offer_f64;

/// A Convex JSON reading of `D`, a deserializer of plain JSON.
pub struct Convex<D>(pub D);

fn eight_bytes<E: de::Error>(tag: &str, text: &str) -> Result<[u8; 8], E> {
    let bytes = STANDARD
        .decode(text)
        .map_err(|e| E::custom(format!("{tag}: not valid base64: {e}")))?;
    bytes.try_into().map_err(|bytes: Vec<u8>| {
        E::custom(format!("{tag}: expected 8 bytes, found {}", bytes.len()))
    })
}

impl<'de, D: de::Deserializer<'de>> de::Deserializer<'de> for Convex<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(Any(visitor))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_option(Optional(visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        if name == VALUE_TOKEN {
            // A `Value` reads the Convex JSON text itself.
            return visitor.visit_newtype_struct(self.0);
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_enum(name, variants, Enum(visitor))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

/// Reads one value with `V`, wrapping what it is given.
struct Any<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for Any<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.expecting(f)
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_unit()
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<V::Value, E> {
        self.0.visit_bool(b)
    }

    // Every plain JSON number is a float64.
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<V::Value, E> {
        offer_f64(n as f64, self.0)
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<V::Value, E> {
        offer_f64(n as f64, self.0)
    }

    fn visit_f64<E: de::Error>(self, x: f64) -> Result<V::Value, E> {
        offer_f64(x, self.0)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<V::Value, E> {
        self.0.visit_str(s)
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<V::Value, E> {
        self.0.visit_borrowed_str(s)
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<V::Value, E> {
        self.0.visit_string(s)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.0.visit_seq(Seq(seq))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<V::Value, A::Error> {
        let Some(first) = map.next_key_seed(Text)? else {
            return self.0.visit_map(Map {
                inner: map,
                first: None,
            });
        };
        if !first.starts_with('$') {
            return self.0.visit_map(Map {
                inner: map,
                first: Some(first),
            });
        }
        // A special encoding is the object's only key.
        let text = map.next_value_seed(Text)?;
        if map.next_key::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::custom(format!(
                "field names must not start with '$': {first:?}"
            )));
        }
        match &*first {
            "$integer" => {
                let n = i64::from_le_bytes(eight_bytes("$integer", &text)?);
                // Like serde_json: non-negative integers are offered as u64.
                match u64::try_from(n) {
                    Ok(u) => self.0.visit_u64(u),
                    Err(_) => self.0.visit_i64(n),
                }
            }
            "$float" => offer_f64(f64::from_le_bytes(eight_bytes("$float", &text)?), self.0),
            "$bytes" => {
                let bytes = STANDARD
                    .decode(&*text)
                    .map_err(|e| de::Error::custom(format!("$bytes: not valid base64: {e}")))?;
                let mut seq = de::value::SeqDeserializer::<_, A::Error>::new(
                    bytes.into_iter().map(u64::from),
                );
                let value = self.0.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            other => Err(de::Error::custom(format!(
                "field names must not start with '$': {other:?}"
            ))),
        }
    }
}

/// A string, borrowed from the text when it has no escapes.
struct Text;

impl<'de> DeserializeSeed<'de> for Text {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Text {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(s))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s))
    }
}

/// Wraps each element's deserializer.
struct Seq<A>(A);

impl<'de, A: de::SeqAccess<'de>> de::SeqAccess<'de> for Seq<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(Wrapped(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

/// An object's entries, its first key already read.
struct Map<'de, A> {
    inner: A,
    first: Option<Cow<'de, str>>,
}

impl<'de, A: de::MapAccess<'de>> de::MapAccess<'de> for Map<'de, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        match self.first.take() {
            Some(first) => key(seed, first).map(Some),
            None => self.inner.next_key_seed(seed),
        }
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.inner.next_value_seed(Wrapped(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// A seed whose deserializer is read as Convex JSON.
struct Wrapped<T>(T);

impl<'de, T: DeserializeSeed<'de>> DeserializeSeed<'de> for Wrapped<T> {
    type Value = T::Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<T::Value, D::Error> {
        self.0.deserialize(Convex(deserializer))
    }
}

/// `null` or a value.
struct Optional<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for Optional<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.expecting(f)
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_none()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        self.0.visit_some(Convex(deserializer))
    }
}

/// A variant name, or an object with the variant as its one key.
struct Enum<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for Enum<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.expecting(f)
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.0.visit_enum(EnumAccess(data))
    }
}

struct EnumAccess<A>(A);

impl<'de, A: de::EnumAccess<'de>> de::EnumAccess<'de> for EnumAccess<A> {
    type Error = A::Error;
    type Variant = VariantAccess<A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), A::Error> {
        let (variant, access) = self.0.variant_seed(seed)?;
        Ok((variant, VariantAccess(access)))
    }
}

struct VariantAccess<A>(A);

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for VariantAccess<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.0.newtype_variant_seed(Wrapped(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.0.tuple_variant(len, Any(visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.0.struct_variant(fields, Any(visitor))
    }
}

/// `T` from Convex JSON text.
pub fn from_text<'de, T: de::Deserialize<'de>>(text: &'de str) -> Result<T, serde_json::Error> {
    let mut json = serde_json::Deserializer::from_str(text);
    let value = T::deserialize(Convex(&mut json))?;
    json.end()?;
    Ok(value)
}

/// Gives a key read as [`Text`] to `seed`, which may want it as a number.
fn key<'de, K: DeserializeSeed<'de>, E: de::Error>(
    seed: K,
    key: Cow<'de, str>,
) -> Result<K::Value, E> {
    match key {
        Cow::Borrowed(key) => seed.deserialize(Key::<E>::new(key)),
        Cow::Owned(key) => seed.deserialize(de::value::StringDeserializer::<E>::new(key)),
    }
}

/// A document's fields without `_id` and `_creationTime`, which it keeps.
pub struct SystemFields<A> {
    inner: A,
    id: Option<String>,
    creation_time: Option<f64>,
}

impl<'de, A: de::MapAccess<'de>> SystemFields<A> {
    pub fn new(inner: A) -> Self {
        SystemFields {
            inner,
            id: None,
            creation_time: None,
        }
    }

    /// Reads what the document's type left unread; returns the system
    /// fields.
    pub fn finish(mut self) -> Result<(Option<String>, Option<f64>), A::Error> {
        while de::MapAccess::next_key::<de::IgnoredAny>(&mut self)?.is_some() {
            de::MapAccess::next_value::<de::IgnoredAny>(&mut self)?;
        }
        Ok((self.id, self.creation_time))
    }
}

impl<'de, A: de::MapAccess<'de>> de::MapAccess<'de> for SystemFields<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        while let Some(name) = self.inner.next_key_seed(Text)? {
            match &*name {
                "_id" => self.id = Some(self.inner.next_value()?),
                "_creationTime" => self.creation_time = Some(self.inner.next_value()?),
                _ => return key(seed, name).map(Some),
            }
        }
        Ok(None)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.inner.next_value_seed(seed)
    }
}
