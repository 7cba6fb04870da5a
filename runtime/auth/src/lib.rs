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
//! - [`built_in`]: how Capstan signs users in itself, as configured.
//! - [`issuer`]: the server as its own issuer: signing keys (made,
//!   rotated, imported), their JWKS, and the tokens they sign.
//! - [`password`]: Argon2id hashes, and Convex Auth's scrypt ones checked.
//! - [`AuthError`]: which check failed, in words a developer can act on.
//! - [`constant_time_eq`]: comparing secrets.
//!
//! [`UserIdentity`]: capstan_protocol::UserIdentity
//! [`Clock`]: capstan_protocol::Clock

pub mod built_in;
pub mod config;
mod error;
mod identity;
pub mod issuer;
mod keys;
pub mod password;
mod verify;

pub use capstan_protocol::constant_time_eq;
pub use config::{Algorithm, AuthConfig, ProviderConfig};
pub use error::AuthError;
pub use issuer::{Issuer, IssuerKeys, KeyRing, SigningKey};
pub use verify::{Verifier, VerifierOptions};
