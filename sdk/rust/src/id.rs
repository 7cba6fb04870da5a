//! Typed ids and documents.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Result;

/// The id of a document of table `T`. On the wire and in documents it is a
/// plain string.
pub struct Id<T> {
    id: String,
    table: PhantomData<fn() -> T>,
}

impl<T> Id<T> {
    /// Wraps an id string. The server checks ids when they are used, so a
    /// forged or foreign id fails then.
    pub fn from_string(id: impl Into<String>) -> Self {
        Id {
            id: id.into(),
            table: PhantomData,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.id
    }
}

impl<T> Clone for Id<T> {
    fn clone(&self) -> Self {
        Id::from_string(self.id.clone())
    }
}

impl<T> PartialEq for Id<T> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl<T> Eq for Id<T> {}

impl<T> std::hash::Hash for Id<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl<T> fmt::Debug for Id<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.id)
    }
}

impl<T> fmt::Display for Id<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl<T> Serialize for Id<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.id)
    }
}

impl<'de, T> Deserialize<'de> for Id<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Id::from_string)
    }
}

/// A stored document: its id, creation time, and fields as `T`. Derefs to `T`.
#[derive(Clone, Debug, PartialEq)]
pub struct Doc<T> {
    pub id: Id<T>,
    /// Milliseconds since the Unix epoch.
    pub creation_time: f64,
    /// The user's fields. `Doc` derefs to this.
    pub data: T,
}

impl<T> Deref for Doc<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.data
    }
}

impl<T: Serialize> Serialize for Doc<T> {
    /// As clients see documents: the fields with `_id` and `_creationTime`.
    /// `T` must serialize as a struct or map.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Fields<'a, T> {
            #[serde(flatten)]
            data: &'a T,
            #[serde(rename = "_id")]
            id: &'a str,
            #[serde(rename = "_creationTime")]
            creation_time: f64,
        }
        Fields {
            data: &self.data,
            id: &self.id.id,
            creation_time: self.creation_time,
        }
        .serialize(serializer)
    }
}

impl<T: DeserializeOwned> Doc<T> {
    /// A document from a decoded value (what the text route is checked
    /// against).
    #[cfg(test)]
    pub(crate) fn from_value(value: capstan_protocol::Value) -> Result<Self> {
        if !matches!(value, capstan_protocol::Value::Object(_)) {
            return Err(crate::Error::new(
                "the server returned a document that is not an object",
            ));
        }
        crate::values::from_value(&value)
    }

    /// A document from the Convex JSON text the server sends.
    pub(crate) fn from_text(text: &str) -> Result<Self> {
        crate::values::from_text(text)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Doc<T> {
    /// From a document as the server sends it: `_id` and `_creationTime`
    /// become [`Doc::id`] and [`Doc::creation_time`], the other fields `T`.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        deserializer.deserialize_map(DocVisitor(PhantomData))
    }
}

struct DocVisitor<T>(PhantomData<fn() -> T>);

impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for DocVisitor<T> {
    type Value = Doc<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a document")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        map: A,
    ) -> std::result::Result<Doc<T>, A::Error> {
        use serde::de::Error as _;
        let mut fields = crate::values::SystemFields::new(map);
        let data = T::deserialize(serde::de::value::MapAccessDeserializer::new(&mut fields))?;
        let (id, creation_time) = fields.finish()?;
        Ok(Doc {
            id: Id::from_string(
                id.ok_or_else(|| A::Error::custom("the server returned a document without _id"))?,
            ),
            creation_time: creation_time.ok_or_else(|| {
                A::Error::custom("the server returned a document without _creationTime")
            })?,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use capstan_protocol::Value;
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Row {
        count: crate::Int64,
        name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    }

    #[test]
    fn documents_serialize_with_their_system_fields_and_read_back() {
        let doc = Doc {
            id: Id::<Row>::from_string("j57abc"),
            creation_time: 1_700_000_000_000.5,
            data: Row {
                count: crate::Int64(1 << 60),
                name: "a".into(),
                note: None,
            },
        };
        let value = crate::to_value(&doc).unwrap();
        let Value::Object(fields) = &value else {
            panic!("{value:?}")
        };
        assert_eq!(
            fields.keys().map(String::as_str).collect::<Vec<_>>(),
            ["_creationTime", "_id", "count", "name"]
        );
        // An int64 field stays int64 (not a float64 on the way through).
        assert_eq!(fields["count"], Value::Int64(1 << 60));
        assert_eq!(fields["_id"], Value::String("j57abc".into()));
        assert_eq!(fields["_creationTime"], Value::Float64(1_700_000_000_000.5));
        assert_eq!(Doc::<Row>::from_value(value).unwrap(), doc);
    }

    #[test]
    fn a_document_whose_fields_are_not_a_map_is_an_error() {
        let doc = Doc {
            id: Id::<f64>::from_string("j57abc"),
            creation_time: 1.0,
            data: 5.0,
        };
        assert!(crate::to_value(&doc).is_err());
    }
}
