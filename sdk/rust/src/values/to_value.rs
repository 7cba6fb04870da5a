//! serde straight to [`Value`], by the number rules of [`super`]: Rust
//! integers and floats become float64 (integers only where a float64 holds
//! them exactly), [`Int64`](super::Int64) an int64, `serialize_bytes`
//! (`Bytes`, `serde_bytes`) bytes, a [`Value`] itself, enums Convex-style
//! (`"Variant"` or `{"Variant": …}`). A field or map entry that is `None`
//! is left out, as Convex leaves out `undefined`; in an array it is `null`.

use capstan_protocol::json::VALUE_TOKEN;
use capstan_protocol::{Object, Value};
use serde::ser::{self, Serialize};

use super::MAX_SAFE_INTEGER;
use super::key::KeySerializer;

/// A conversion failure; becomes [`crate::Error`].
#[derive(Debug)]
pub struct Failure(pub String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

impl ser::Error for Failure {
    fn custom<T: std::fmt::Display>(message: T) -> Self {
        Failure(message.to_string())
    }
}

impl serde::de::Error for Failure {
    fn custom<T: std::fmt::Display>(message: T) -> Self {
        Failure(message.to_string())
    }
}

pub(super) type Result<T> = std::result::Result<T, Failure>;

/// `T` as a value; `None` where `T` is a `None` (a struct field then
/// leaves it out, anything else holds `null`).
pub fn to_slot<T: Serialize + ?Sized>(value: &T) -> Result<Option<Value>> {
    value.serialize(Serializer)
}

pub struct Serializer;

/// An integer as a float64, or why a float64 cannot hold it.
fn integer(n: i128) -> Result<Option<Value>> {
    if n.unsigned_abs() <= MAX_SAFE_INTEGER as u128 {
        Ok(Some(Value::Float64(n as f64)))
    } else {
        Err(beyond(n))
    }
}

fn beyond(n: impl std::fmt::Display) -> Failure {
    Failure(format!(
        "{n} is beyond ±2^53, where a JavaScript number (a float64) would round it; \
         store it as capstan::Int64 (a BigInt in JavaScript)"
    ))
}

pub struct Seq(Vec<Value>);
/// A tuple variant: its name and items.
pub struct VariantSeq(&'static str, Seq);
pub struct Map {
    fields: Object,
    key: Option<String>,
}
/// A struct variant: its name and fields.
pub struct VariantMap(&'static str, Map);

fn tagged(variant: &str, value: Value) -> Value {
    Value::Object(Object::from([(variant.to_owned(), value)]))
}

impl ser::Serializer for Serializer {
    type Ok = Option<Value>;
    type Error = Failure;
    type SerializeSeq = Seq;
    type SerializeTuple = Seq;
    type SerializeTupleStruct = Seq;
    type SerializeTupleVariant = VariantSeq;
    type SerializeMap = Map;
    type SerializeStruct = Map;
    type SerializeStructVariant = VariantMap;

    fn serialize_bool(self, v: bool) -> Result<Option<Value>> {
        Ok(Some(Value::Boolean(v)))
    }
    fn serialize_i8(self, v: i8) -> Result<Option<Value>> {
        integer(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<Option<Value>> {
        integer(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<Option<Value>> {
        integer(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<Option<Value>> {
        integer(v.into())
    }
    fn serialize_i128(self, v: i128) -> Result<Option<Value>> {
        integer(v)
    }
    fn serialize_u8(self, v: u8) -> Result<Option<Value>> {
        integer(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<Option<Value>> {
        integer(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<Option<Value>> {
        integer(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<Option<Value>> {
        integer(v.into())
    }
    fn serialize_u128(self, v: u128) -> Result<Option<Value>> {
        i128::try_from(v).map_err(|_| beyond(v)).and_then(integer)
    }
    fn serialize_f32(self, v: f32) -> Result<Option<Value>> {
        Ok(Some(Value::Float64(v.into())))
    }
    fn serialize_f64(self, v: f64) -> Result<Option<Value>> {
        Ok(Some(Value::Float64(v)))
    }
    fn serialize_char(self, v: char) -> Result<Option<Value>> {
        Ok(Some(Value::String(v.to_string())))
    }
    fn serialize_str(self, v: &str) -> Result<Option<Value>> {
        Ok(Some(Value::String(v.to_owned())))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Option<Value>> {
        Ok(Some(Value::Bytes(v.to_vec())))
    }
    fn serialize_none(self) -> Result<Option<Value>> {
        Ok(None)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Option<Value>> {
        // `Some(None)` (of an `Option<Option<T>>`) is a `null` that is there.
        present(value).map(Some)
    }
    fn serialize_unit(self) -> Result<Option<Value>> {
        Ok(Some(Value::Null))
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Option<Value>> {
        Ok(Some(Value::Null))
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Option<Value>> {
        Ok(Some(Value::String(variant.to_owned())))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<Option<Value>> {
        if name == VALUE_TOKEN {
            // A `Value` (or a type written as one, like `Int64`): its Convex
            // JSON form, decoded back into the value it came from.
            let json = value
                .serialize(serde_json::value::Serializer)
                .map_err(|e| Failure(e.to_string()))?;
            return Value::from_json(&json)
                .map(Some)
                .map_err(|e| Failure(e.to_string()));
        }
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Option<Value>> {
        Ok(Some(tagged(variant, present(value)?)))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Seq> {
        Ok(Seq(Vec::with_capacity(len.unwrap_or(0).min(1024))))
    }
    fn serialize_tuple(self, len: usize) -> Result<Seq> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Seq> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantSeq> {
        Ok(VariantSeq(variant, self.serialize_seq(Some(len))?))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Map> {
        Ok(Map {
            fields: Object::new(),
            key: None,
        })
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Map> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantMap> {
        Ok(VariantMap(variant, self.serialize_map(Some(len))?))
    }
}

/// `value` where it must be present: a `None` is `null`.
fn present<T: Serialize + ?Sized>(value: &T) -> Result<Value> {
    Ok(value.serialize(Serializer)?.unwrap_or(Value::Null))
}

impl ser::SerializeSeq for Seq {
    type Ok = Option<Value>;
    type Error = Failure;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.0.push(present(value)?);
        Ok(())
    }
    fn end(self) -> Result<Option<Value>> {
        Ok(Some(Value::Array(self.0)))
    }
}

impl ser::SerializeTuple for Seq {
    type Ok = Option<Value>;
    type Error = Failure;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<Option<Value>> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for Seq {
    type Ok = Option<Value>;
    type Error = Failure;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<Option<Value>> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleVariant for VariantSeq {
    type Ok = Option<Value>;
    type Error = Failure;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        ser::SerializeSeq::serialize_element(&mut self.1, value)
    }
    fn end(self) -> Result<Option<Value>> {
        Ok(Some(tagged(self.0, Value::Array(self.1.0))))
    }
}

impl ser::SerializeMap for Map {
    type Ok = Option<Value>;
    type Error = Failure;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<()> {
        self.key = Some(key.serialize(KeySerializer)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let key = self
            .key
            .take()
            .ok_or_else(|| Failure("a map value came without its key".into()))?;
        if let Some(value) = value.serialize(Serializer)? {
            self.fields.insert(key, value);
        }
        Ok(())
    }
    fn end(self) -> Result<Option<Value>> {
        Ok(Some(Value::Object(self.fields)))
    }
}

impl ser::SerializeStruct for Map {
    type Ok = Option<Value>;
    type Error = Failure;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        if let Some(value) = value.serialize(Serializer)? {
            self.fields.insert(key.to_owned(), value);
        }
        Ok(())
    }
    fn end(self) -> Result<Option<Value>> {
        Ok(Some(Value::Object(self.fields)))
    }
}

impl ser::SerializeStructVariant for VariantMap {
    type Ok = Option<Value>;
    type Error = Failure;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        ser::SerializeStruct::serialize_field(&mut self.1, key, value)
    }
    fn end(self) -> Result<Option<Value>> {
        Ok(Some(tagged(self.0, Value::Object(self.1.fields))))
    }
}
