//! serde straight from [`Value`] to Rust, by the number rules of
//! [`super`]: an integral float64 within ±2^53 is offered as an integer
//! (clients send every number as float64), an int64 as an integer too,
//! bytes as bytes or as an array of numbers, a [`Value`] field takes the
//! value whole.
//!
//! In strict mode (function arguments) an object read into a struct must
//! not hold fields the struct does not name, at any depth: the
//! `deny_unknown_fields` of every struct, as Convex's argument validators
//! refuse extra fields.

use capstan_protocol::Value;
use capstan_protocol::json::VALUE_TOKEN;
use serde::de::{self, IntoDeserializer, Visitor};

use super::key::Key;
use super::to_value::{Failure, Result};

#[derive(Clone, Copy)]
pub struct Deserializer<'a> {
    value: &'a Value,
    strict: bool,
}

impl<'a> Deserializer<'a> {
    /// Reads `value` leniently: unknown fields are ignored.
    pub fn new(value: &'a Value) -> Self {
        Deserializer {
            value,
            strict: false,
        }
    }

    /// Reads `value` refusing fields a struct does not name.
    pub fn strict(value: &'a Value) -> Self {
        Deserializer {
            value,
            strict: true,
        }
    }

    fn child(self, value: &'a Value) -> Self {
        Deserializer { value, ..self }
    }

    fn visit_object<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        let Value::Object(fields) = self.value else {
            return de::Deserializer::deserialize_any(self, visitor);
        };
        let mut map = de::value::MapDeserializer::new(
            fields
                .iter()
                .map(|(k, v)| (Key::new(k.as_str()), self.child(v))),
        );
        let value = visitor.visit_map(&mut map)?;
        map.end()?;
        Ok(value)
    }
}

impl<'de> de::Deserializer<'de> for Deserializer<'de> {
    type Error = Failure;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            // Like serde_json: non-negative integers are offered as u64.
            Value::Int64(i) => match u64::try_from(*i) {
                Ok(u) => visitor.visit_u64(u),
                Err(_) => visitor.visit_i64(*i),
            },
            Value::Float64(x) => super::offer_f64(*x, visitor),
            Value::Boolean(b) => visitor.visit_bool(*b),
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Bytes(bytes) => {
                let mut seq = de::value::SeqDeserializer::new(bytes.iter().map(|b| u64::from(*b)));
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            // `end` refuses items the visitor left unread (a tuple read
            // from a longer array), as serde_json does.
            Value::Array(items) => {
                let mut seq =
                    de::value::SeqDeserializer::new(items.iter().map(|item| self.child(item)));
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            Value::Object(_) => self.visit_object(visitor),
        }
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.value {
            Value::Bytes(bytes) => visitor.visit_borrowed_bytes(bytes),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        if name == VALUE_TOKEN {
            // A `Value` field: it reads the Convex JSON form of this one.
            return visitor
                .visit_newtype_struct(self.value.to_json())
                .map_err(|e| Failure(e.to_string()));
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        known: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        if self.strict
            && let Value::Object(fields) = self.value
            && let Some(unknown) = fields.keys().find(|k| !known.contains(&k.as_str()))
        {
            return Err(de::Error::unknown_field(unknown, known));
        }
        self.visit_object(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        match self.value {
            Value::String(variant) => {
                visitor.visit_enum(de::value::BorrowedStrDeserializer::<Failure>::new(variant))
            }
            Value::Object(fields) => {
                let mut entries = fields.iter();
                match (entries.next(), entries.next()) {
                    (Some((variant, value)), None) => visitor.visit_enum(Enum {
                        variant,
                        value: self.child(value),
                    }),
                    _ => Err(de::Error::invalid_value(
                        de::Unexpected::Map,
                        &"an object with exactly one key",
                    )),
                }
            }
            _ => Err(de::Error::invalid_type(
                unexpected(self.value),
                &"a string or an object with one key",
            )),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        unit unit_struct seq tuple tuple_struct map identifier ignored_any
    }
}

impl<'de> IntoDeserializer<'de, Failure> for Deserializer<'de> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

fn unexpected(value: &Value) -> de::Unexpected<'_> {
    match value {
        Value::Null => de::Unexpected::Unit,
        Value::Int64(i) => de::Unexpected::Signed(*i),
        Value::Float64(x) => de::Unexpected::Float(*x),
        Value::Boolean(b) => de::Unexpected::Bool(*b),
        Value::String(s) => de::Unexpected::Str(s),
        Value::Bytes(_) | Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}

struct Enum<'a> {
    variant: &'a str,
    value: Deserializer<'a>,
}

impl<'de> de::EnumAccess<'de> for Enum<'de> {
    type Error = Failure;
    type Variant = Deserializer<'de>;
    fn variant_seed<V: de::DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Deserializer<'de>)> {
        let variant = seed.deserialize(de::value::BorrowedStrDeserializer::<Failure>::new(
            self.variant,
        ))?;
        Ok((variant, self.value))
    }
}

impl<'de> de::VariantAccess<'de> for Deserializer<'de> {
    type Error = Failure;
    fn unit_variant(self) -> Result<()> {
        de::Deserialize::deserialize(self)
    }
    fn newtype_variant_seed<T: de::DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value> {
        de::Deserializer::deserialize_seq(self, visitor)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        de::Deserializer::deserialize_struct(self, "", fields, visitor)
    }
}
