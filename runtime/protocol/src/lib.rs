//! Capstan's wire-level types, shared by the server, the store, the SDK and the
//! clients: the Convex value model with its JSON and binary key encodings, and
//! commit timestamps. serde only, no I/O.
//!
//! # Layout
//! - [`value`]: [`Value`], its types and its total order.
//! - [`json`]: the Convex JSON encoding and the field-name rules.
//! - [`key`]: the order-preserving binary encoding used by index keys and by
//!   documents at rest.
//! - [`timestamp`]: [`Timestamp`], u64 nanoseconds, base64 on the wire.
//! - [`identity`]: who is calling ([`Identity`], [`UserIdentity`]).
//! - [`secret`]: [`constant_time_eq`] for secrets.
//! - [`error`]: the codecs' error type, [`ValueError`].

pub mod error;
pub mod identity;
pub mod json;
pub mod key;
pub mod secret;
pub mod timestamp;
pub mod value;

pub use error::ValueError;
pub use identity::{Identity, UserIdentity};
pub use json::validate_field_name;
pub use secret::constant_time_eq;
pub use timestamp::Timestamp;
pub use value::{Object, Value, ValueType};
