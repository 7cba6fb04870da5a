//! Document ids and table numbers.
//!
//! An id's string form carries the number of its table, 128 random bits that
//! make it unguessable, and a checksum, in 36 characters of Crockford base32:
//! `base32(random[16] ++ table[4, BE] ++ fletcher16[2])`. Its stored form is
//! `table ++ random` (20 bytes), so a table's documents are contiguous.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The stable number of a table, assigned when the table is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TableNumber(pub u32);

/// The stable number of an index, unique across tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IndexId(pub u32);

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DocumentId {
    table: TableNumber,
    random: [u8; 16],
}

/// Length of an id's stored form.
pub const ID_BYTES: usize = 20;
const ENCODED_LEN: usize = 36;
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

impl DocumentId {
    pub fn new(table: TableNumber, random: [u8; 16]) -> Self {
        DocumentId { table, random }
    }

    pub fn table(&self) -> TableNumber {
        self.table
    }

    /// The 128 random bits: with a table number, an id.
    pub fn random(&self) -> [u8; 16] {
        self.random
    }

    /// The stored form: table number then random bytes.
    pub fn to_bytes(&self) -> [u8; ID_BYTES] {
        let mut out = [0u8; ID_BYTES];
        out[..4].copy_from_slice(&self.table.0.to_be_bytes());
        out[4..].copy_from_slice(&self.random);
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != ID_BYTES {
            return Err(Error::Corrupt(format!(
                "stored id of {} bytes",
                bytes.len()
            )));
        }
        let mut table = [0u8; 4];
        table.copy_from_slice(&bytes[..4]);
        let mut random = [0u8; 16];
        random.copy_from_slice(&bytes[4..]);
        Ok(DocumentId {
            table: TableNumber(u32::from_be_bytes(table)),
            random,
        })
    }

    fn payload(&self) -> [u8; 22] {
        let mut payload = [0u8; 22];
        payload[..16].copy_from_slice(&self.random);
        payload[16..20].copy_from_slice(&self.table.0.to_be_bytes());
        let check = fletcher16(&payload[..20]);
        payload[20..].copy_from_slice(&check.to_be_bytes());
        payload
    }
}

fn fletcher16(bytes: &[u8]) -> u16 {
    let (mut a, mut b) = (0u16, 0u16);
    for &byte in bytes {
        a = (a + u16::from(byte)) % 255;
        b = (b + a) % 255;
    }
    (b << 8) | a
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // 22 bytes = 176 bits, written 5 bits at a time; the last character
        // carries the final bit followed by four zero bits.
        let payload = self.payload();
        let mut out = String::with_capacity(ENCODED_LEN);
        let (mut acc, mut bits) = (0u32, 0u32);
        for byte in payload {
            acc = (acc << 8) | u32::from(byte);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
            }
        }
        if bits > 0 {
            out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
        }
        f.write_str(&out)
    }
}

impl fmt::Debug for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocumentId({self})")
    }
}

impl FromStr for DocumentId {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let invalid = |reason| Error::InvalidId {
            id: text.chars().take(64).collect(),
            reason,
        };
        if text.len() != ENCODED_LEN {
            return Err(invalid("an id is 36 characters long"));
        }
        let mut payload = [0u8; 22];
        let (mut acc, mut bits, mut filled) = (0u32, 0u32, 0usize);
        for c in text.bytes() {
            let digit = ALPHABET
                .iter()
                .position(|&a| a == c)
                .ok_or_else(|| invalid("an id contains only lowercase base32 characters"))?;
            acc = (acc << 5) | digit as u32;
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                payload[filled] = (acc >> bits) as u8;
                filled += 1;
            }
        }
        if acc & ((1 << bits) - 1) != 0 {
            return Err(invalid("an id's padding bits are zero"));
        }
        let check = u16::from_be_bytes([payload[20], payload[21]]);
        if check != fletcher16(&payload[..20]) {
            return Err(invalid("checksum mismatch"));
        }
        let mut random = [0u8; 16];
        random.copy_from_slice(&payload[..16]);
        let table = TableNumber(u32::from_be_bytes([
            payload[16],
            payload[17],
            payload[18],
            payload[19],
        ]));
        Ok(DocumentId { table, random })
    }
}

impl Serialize for DocumentId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DocumentId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_tampering() {
        let id = DocumentId::new(TableNumber(7), *b"0123456789abcdef");
        let text = id.to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(text.parse::<DocumentId>().unwrap(), id);
        assert_eq!(DocumentId::from_bytes(&id.to_bytes()).unwrap(), id);

        let mut tampered = text.into_bytes();
        tampered[3] = if tampered[3] == b'a' { b'b' } else { b'a' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(tampered.parse::<DocumentId>().is_err());
        assert!("short".parse::<DocumentId>().is_err());
        assert!("I".repeat(36).parse::<DocumentId>().is_err());
    }
}
