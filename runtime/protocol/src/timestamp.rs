//! Commit timestamps.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Result, ValueError};

/// A commit timestamp: nanoseconds since the Unix epoch, strictly increasing
/// across commits and restarts. On the wire it is the padded base64 of its
/// eight little-endian bytes (`0` is `"AAAAAAAAAAA="`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    pub const MIN: Timestamp = Timestamp(0);
    /// The wire format is read as a signed 64-bit integer by clients.
    pub const MAX: Timestamp = Timestamp(i64::MAX as u64);

    pub const fn new(nanos: u64) -> Self {
        Timestamp(nanos)
    }

    pub const fn nanos(self) -> u64 {
        self.0
    }

    /// The timestamp as milliseconds since the epoch, the unit of
    /// `_creationTime`.
    pub fn millis_f64(self) -> f64 {
        self.0 as f64 / 1_000_000.0
    }

    pub fn succ(self) -> Timestamp {
        Timestamp(self.0.saturating_add(1))
    }

    pub fn saturating_sub_nanos(self, nanos: u64) -> Timestamp {
        Timestamp(self.0.saturating_sub(nanos))
    }

    pub fn to_wire(self) -> String {
        STANDARD.encode(self.0.to_le_bytes())
    }

    /// Parses the wire form. Clients also accept the URL-safe alphabet, so this
    /// does too.
    pub fn from_wire(text: &str) -> Result<Timestamp> {
        let normalised: String = text
            .chars()
            .map(|c| match c {
                '-' => '+',
                '_' => '/',
                c => c,
            })
            .collect();
        let bytes = STANDARD
            .decode(normalised)
            .map_err(|e| ValueError::InvalidTimestamp(e.to_string()))?;
        let array: [u8; 8] = bytes.try_into().map_err(|bytes: Vec<u8>| {
            ValueError::InvalidTimestamp(format!("expected 8 bytes, found {}", bytes.len()))
        })?;
        Ok(Timestamp(u64::from_le_bytes(array)))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_wire())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Timestamp::from_wire(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_matches_the_spec() {
        assert_eq!(Timestamp::new(0).to_wire(), "AAAAAAAAAAA=");
        assert_eq!(
            Timestamp::new(1_700_000_000_000_000_000).to_wire(),
            "AAAqNv6clxc="
        );
        assert_eq!(
            Timestamp::from_wire("AAAqNv6clxc=").unwrap(),
            Timestamp::new(1_700_000_000_000_000_000)
        );
        assert!(Timestamp::from_wire("AAAA").is_err());
    }
}
