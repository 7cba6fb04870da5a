//! Who is calling: verification of OpenID Connect and custom JWTs against
//! an app's auth config. `README.md` beside this crate follows one token
//! through it.
//!
//! # Layout
//! - [`config`]: the providers an app trusts, as deployed with it, and
//!   their validation.
//! - [`Verifier`]: checks a token (size, algorithm, provider, signature,
//!   claims, by the [`Clock`] it is given) and returns the caller's
//!   [`UserIdentity`]. Keys come from each provider's JWKS, found through
//!   OIDC discovery or configured, cached by `Cache-Control` and refetched
//!   on an unknown `kid` at a bounded rate.
//! - [`AuthError`]: which check failed, in words a developer can act on.
//! - [`constant_time_eq`]: comparing secrets.
//!
//! [`UserIdentity`]: capstan_protocol::UserIdentity
//! [`Clock`]: capstan_protocol::Clock

pub mod config;
mod error;
mod identity;
mod keys;
mod verify;

pub use capstan_protocol::constant_time_eq;
pub use config::{Algorithm, AuthConfig, ProviderConfig};
pub use error::AuthError;
pub use verify::{Verifier, VerifierOptions};
