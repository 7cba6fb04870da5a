//! An order-preserving binary encoding of values, for index keys and for
//! documents at rest.
//!
//! For any two values `a` and `b`, `encode(a) < encode(b)` (bytewise) exactly
//! when `a < b` in [`Value`]'s order, and the encoding of a tuple is the
//! concatenation of its elements' encodings. Every encoding is self-delimiting
//! (no encoding is a prefix of another), so "all keys whose first fields equal
//! `p`" is exactly "all keys starting with `encode(p)`", which turns index
//! range queries into byte ranges.
//!
//! ```text
//! undefined 01 | null 02 | int64 03 + 8 bytes | float64 04 + 8 bytes
//! false 05 | true 06 | string 07 + escaped + 00 01 | bytes 08 + escaped + 00 01
//! array 09 + elements + 00 | object 0A + (01 + key + value)* + 00
//! escaped: every 00 byte becomes 00 FF
//! ```

use crate::error::{Result, ValueError};
use crate::value::{Object, Value};

const UNDEFINED: u8 = 0x01;
const NULL: u8 = 0x02;
const INT64: u8 = 0x03;
const FLOAT64: u8 = 0x04;
const FALSE: u8 = 0x05;
const TRUE: u8 = 0x06;
const STRING: u8 = 0x07;
const BYTES: u8 = 0x08;
const ARRAY: u8 = 0x09;
const OBJECT: u8 = 0x0a;
const END: u8 = 0x00;
const MORE: u8 = 0x01;

/// One component of an index key: a value, or `None` for a missing field,
/// which sorts before every value.
pub type KeyValue<'a> = Option<&'a Value>;

/// Appends the encoding of `value` to `out`.
pub fn encode_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(NULL),
        Value::Int64(i) => {
            out.push(INT64);
            out.extend_from_slice(&((*i as u64) ^ (1 << 63)).to_be_bytes());
        }
        Value::Float64(x) => {
            out.push(FLOAT64);
            let bits = x.to_bits();
            let ordered = if bits >> 63 == 1 {
                !bits
            } else {
                bits | (1 << 63)
            };
            out.extend_from_slice(&ordered.to_be_bytes());
        }
        Value::Boolean(false) => out.push(FALSE),
        Value::Boolean(true) => out.push(TRUE),
        Value::String(s) => {
            out.push(STRING);
            encode_escaped(s.as_bytes(), out);
        }
        Value::Bytes(b) => {
            out.push(BYTES);
            encode_escaped(b, out);
        }
        Value::Array(items) => {
            out.push(ARRAY);
            for item in items {
                encode_value(item, out);
            }
            out.push(END);
        }
        Value::Object(fields) => encode_object(fields, out),
    }
}

/// Appends the encoding of an object, exactly as [`encode_value`] would for
/// `Value::Object(fields)`.
pub fn encode_object(fields: &Object, out: &mut Vec<u8>) {
    out.push(OBJECT);
    for (key, value) in fields {
        out.push(MORE);
        encode_escaped(key.as_bytes(), out);
        encode_value(value, out);
    }
    out.push(END);
}

/// Appends the encoding of one key component.
pub fn encode_key_value(value: KeyValue<'_>, out: &mut Vec<u8>) {
    match value {
        None => out.push(UNDEFINED),
        Some(value) => encode_value(value, out),
    }
}

/// Encodes a tuple of key components.
pub fn encode_key(values: &[KeyValue<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for value in values {
        encode_key_value(*value, &mut out);
    }
    out
}

/// Encodes one value on its own.
pub fn encode_to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_value(value, &mut out);
    out
}

fn encode_escaped(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xff);
        }
    }
    out.extend_from_slice(&[0x00, 0x01]);
}

/// Decodes a single encoded value that fills `bytes` exactly.
pub fn decode_value(bytes: &[u8]) -> Result<Value> {
    let mut reader = Reader { bytes, pos: 0 };
    let value = reader
        .key_value(0)?
        .ok_or(ValueError::CorruptKey("undefined is not a value"))?;
    reader.finish()?;
    Ok(value)
}

/// Decodes a whole tuple of key components.
pub fn decode_key(bytes: &[u8]) -> Result<Vec<Option<Value>>> {
    let mut reader = Reader { bytes, pos: 0 };
    let mut values = Vec::new();
    while reader.pos < bytes.len() {
        values.push(reader.key_value(0)?);
    }
    Ok(values)
}

/// The smallest byte string greater than every string that starts with
/// `prefix`, or `None` when no such string exists (the prefix is all `FF`).
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last < 0xff {
            out.push(last + 1);
            return Some(out);
        }
    }
    None
}

/// Decoding recursion bound; far above any depth the codecs accept.
const MAX_DECODE_DEPTH: usize = 128;

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or(ValueError::CorruptKey("unexpected end"))?;
        self.pos += 1;
        Ok(b)
    }

    fn peek(&self) -> Result<u8> {
        self.bytes
            .get(self.pos)
            .copied()
            .ok_or(ValueError::CorruptKey("unexpected end"))
    }

    fn eight(&mut self) -> Result<u64> {
        let end = self.pos + 8;
        let slice = self
            .bytes
            .get(self.pos..end)
            .ok_or(ValueError::CorruptKey("truncated number"))?;
        self.pos = end;
        let mut array = [0u8; 8];
        array.copy_from_slice(slice);
        Ok(u64::from_be_bytes(array))
    }

    fn escaped(&mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let b = self.byte()?;
            if b != 0 {
                out.push(b);
                continue;
            }
            match self.byte()? {
                0xff => out.push(0),
                0x01 => return Ok(out),
                _ => return Err(ValueError::CorruptKey("bad escape")),
            }
        }
    }

    fn string(&mut self) -> Result<String> {
        String::from_utf8(self.escaped()?)
            .map_err(|_| ValueError::CorruptKey("string is not UTF-8"))
    }

    fn key_value(&mut self, depth: usize) -> Result<Option<Value>> {
        if depth > MAX_DECODE_DEPTH {
            return Err(ValueError::CorruptKey("nested too deeply"));
        }
        Ok(Some(match self.byte()? {
            UNDEFINED => return Ok(None),
            NULL => Value::Null,
            INT64 => Value::Int64((self.eight()? ^ (1 << 63)) as i64),
            FLOAT64 => {
                let ordered = self.eight()?;
                let bits = if ordered >> 63 == 1 {
                    ordered & !(1 << 63)
                } else {
                    !ordered
                };
                Value::Float64(f64::from_bits(bits))
            }
            FALSE => Value::Boolean(false),
            TRUE => Value::Boolean(true),
            STRING => Value::String(self.string()?),
            BYTES => Value::Bytes(self.escaped()?),
            ARRAY => {
                let mut items = Vec::new();
                while self.peek()? != END {
                    items.push(
                        self.key_value(depth + 1)?
                            .ok_or(ValueError::CorruptKey("undefined inside an array"))?,
                    );
                }
                self.pos += 1;
                Value::Array(items)
            }
            OBJECT => {
                let mut fields = Object::new();
                loop {
                    match self.byte()? {
                        END => break,
                        MORE => {
                            let key = self.string()?;
                            let value = self
                                .key_value(depth + 1)?
                                .ok_or(ValueError::CorruptKey("undefined field value"))?;
                            fields.insert(key, value);
                        }
                        _ => return Err(ValueError::CorruptKey("bad object marker")),
                    }
                }
                Value::Object(fields)
            }
            _ => return Err(ValueError::CorruptKey("unknown type tag")),
        }))
    }

    fn finish(&self) -> Result<()> {
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(ValueError::CorruptKey("trailing bytes"))
        }
    }
}
