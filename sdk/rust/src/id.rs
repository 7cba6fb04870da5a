//! Typed ids and documents.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use capstan_protocol::Value;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// A table's document type.
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Message {
///     channel: String,
///     body: String,
/// }
///
/// impl capstan::Table for Message {
///     const NAME: &'static str = "messages";
/// }
/// ```
pub trait Table: Serialize + DeserializeOwned {
    const NAME: &'static str;
}

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
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut fields =
            match serde_json::to_value(&self.data).map_err(serde::ser::Error::custom)? {
                serde_json::Value::Object(fields) => fields,
                _ => serde_json::Map::new(),
            };
        fields.insert("_id".into(), serde_json::Value::String(self.id.id.clone()));
        fields.insert(
            "_creationTime".into(),
            serde_json::Value::from(self.creation_time),
        );
        fields.serialize(serializer)
    }
}

impl<T: DeserializeOwned> Doc<T> {
    pub(crate) fn from_value(value: Value) -> Result<Self> {
        let Value::Object(mut fields) = value else {
            return Err(Error::new(
                "the server returned a document that is not an object",
            ));
        };
        let id = match fields.remove("_id") {
            Some(Value::String(id)) => Id::from_string(id),
            _ => return Err(Error::new("the server returned a document without _id")),
        };
        let creation_time = match fields.remove("_creationTime") {
            Some(Value::Float64(time)) => time,
            _ => {
                return Err(Error::new(
                    "the server returned a document without _creationTime",
                ));
            }
        };
        let data = crate::values::from_value(&Value::Object(fields))?;
        Ok(Doc {
            id,
            creation_time,
            data,
        })
    }
}
