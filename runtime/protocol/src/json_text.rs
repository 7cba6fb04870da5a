//! A value carried as the JSON text it was written in, so that results pass
//! from a function to every client holding them without being parsed and
//! written again.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::error::{Result, ValueError};
use crate::value::Value;

/// The Convex JSON text of one value (a function's result, a ConvexError's
/// data). It is written into messages as it is, never re-encoded.
///
/// Reading one works straight from JSON text (as
/// [`crate::sync::ServerMessage::from_json`] and the HTTP bodies do), not
/// from a buffered document such as a `serde_json::Value`.
#[derive(Clone)]
pub struct JsonText(Box<RawValue>);

impl JsonText {
    /// Takes `text` after checking that it is JSON; the Convex rules are the
    /// writer's to keep (the host checks a function's results by them).
    pub fn from_string(text: String) -> Result<JsonText> {
        RawValue::from_string(text)
            .map(JsonText)
            .map_err(|e| ValueError::InvalidJson(e.to_string()))
    }

    /// `null`.
    pub fn null() -> JsonText {
        JsonText::of(&Value::Null)
    }

    /// The text of `value`, written once.
    pub fn of(value: &Value) -> JsonText {
        // Written straight into the text, without a second reading.
        JsonText(serde_json::value::to_raw_value(value).expect("a Value always serialises"))
    }

    /// A JSON string holding `text`.
    pub fn string(text: &str) -> JsonText {
        JsonText(serde_json::value::to_raw_value(text).expect("a string always serialises"))
    }

    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// Reads the text as a Convex value, by the rules of
    /// [`Value::from_json_str`].
    pub fn to_value(&self) -> Result<Value> {
        Value::from_json_str(self.as_str())
    }
}

impl PartialEq for JsonText {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for JsonText {}

impl fmt::Debug for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Written as the text itself.
impl Serialize for JsonText {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        Box::<RawValue>::deserialize(deserializer).map(JsonText)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_written_as_it_came() {
        let text = JsonText::from_string(r#"{"b":1,"a":{"$integer":"AQAAAAAAAAA="}}"#.into())
            .expect("JSON");
        #[derive(Serialize, Deserialize)]
        struct Holder {
            value: JsonText,
        }
        let json = serde_json::to_string(&Holder {
            value: text.clone(),
        })
        .expect("serialises");
        assert_eq!(json, r#"{"value":{"b":1,"a":{"$integer":"AQAAAAAAAAA="}}}"#);
        let back: Holder = serde_json::from_str(&json).expect("parses");
        assert_eq!(back.value, text);
        assert_eq!(
            text.to_value().expect("a value").get_path("a"),
            Some(&Value::Int64(1))
        );
        assert!(JsonText::from_string("{".into()).is_err());
        assert_eq!(JsonText::null().as_str(), "null");
        assert_eq!(JsonText::string("a\"b").as_str(), r#""a\"b""#);
    }
}
