//! Capstan's wire-level types, shared by the server, the host, the store, the
//! SDK and the clients: the messages of the sync protocol and the bodies of
//! the HTTP API, the codes of what can fail, function paths and kinds, the
//! Convex value model with its JSON and binary key encodings, and commit
//! timestamps. serde only, no I/O.
//!
//! # Layout
//! - [`sync`]: the sync protocol's messages, both directions.
//! - [`http`]: the HTTP API's bodies, function calls and admin alike.
//! - [`error_code`]: [`ErrorCode`], every kind of failure a client meets,
//!   and how each reaches it (HTTP status, close frame, public message).
//! - [`function`]: [`FunctionKind`], [`Visibility`], [`FunctionInfo`],
//!   [`FunctionFailure`]; [`path`]: [`FunctionPath`], canonical on parse.
//! - [`json_text`]: [`JsonText`], a value passed on as the text it came in.
//! - [`value`]: [`Value`], its types and its total order.
//! - [`json`]: the Convex JSON encoding and the field-name rules.
//! - [`key`]: the order-preserving binary encoding used by index keys and by
//!   documents at rest.
//! - [`timestamp`]: [`Timestamp`], u64 nanoseconds, base64 on the wire.
//! - [`identity`]: who is calling ([`Identity`], [`UserIdentity`]).
//! - [`secret`]: [`constant_time_eq`] for secrets.
//! - [`clock`]: [`Clock`], the time every expiry is judged by, and
//!   [`ManualClock`] for tests.
//! - [`error`]: the codecs' error type, [`ValueError`].
//! - [`address`]: whether an address names this machine.

pub mod address;
pub mod clock;
pub mod error;
pub mod error_code;
pub mod function;
pub mod http;
pub mod identity;
pub mod json;
pub mod json_text;
pub mod key;
pub mod path;
pub mod secret;
pub mod sync;
pub mod timestamp;
pub mod value;

pub use clock::{Clock, ManualClock};
pub use error::ValueError;
pub use error_code::{ErrorCode, SocketClose};
pub use function::{FunctionFailure, FunctionInfo, FunctionKind, Visibility};
pub use identity::{Identity, UserIdentity};
pub use json::validate_field_name;
pub use json_text::JsonText;
pub use path::FunctionPath;
pub use secret::constant_time_eq;
pub use timestamp::Timestamp;
pub use value::{Object, Value, ValueType};
