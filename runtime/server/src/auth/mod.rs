//! Built-in auth: Capstan signs users in itself, keeping Convex Auth's
//! contract (`auth:signIn`, `auth:signOut`, `auth:isAuthenticated`, the
//! auth tables, the token and refresh-token shapes) so the unmodified
//! `@convex-dev/auth` client works. `README.md` beside this file follows a
//! sign-in through it.
//!
//! # Layout
//! - [`SignIn`]: the service: the issuer, the store, the clock; runs the
//!   native functions ([`functions`]).
//! - [`flows`]: `auth:signIn`'s decision tree and each provider's steps.
//! - [`sessions`]: sessions and refresh tokens (hashed, rotated, reuse ends
//!   the session).
//! - [`accounts`]: users, accounts, linking, the failed-attempt budget.
//! - [`records`]: typed helpers over the auth tables' documents.
//! - [`tables`]: the tables and indexes, merged into the app's schema.
//! - [`signing_keys`]: the issuer's keys in the data directory.
//! - [`routes`]: `/.well-known/openid-configuration` and `jwks.json`.

pub mod accounts;
pub mod cleanup;
pub mod codes;
pub mod flows;
pub mod hooks;
pub mod messages;
pub mod oauth;
pub mod password;
pub mod records;
pub mod redirects;
pub mod routes;
pub mod sessions;
pub mod signing_keys;
pub mod tables;

use std::sync::Arc;

use capstan_auth::Issuer;
use capstan_auth::built_in::BuiltInConfig;
use capstan_host::{Environment, Failure, FunctionKind};
use capstan_protocol::{Clock, ErrorCode, Identity};
use capstan_store::Store;

use crate::app::{Caller, FunctionResult};
use crate::error::Error;

pub const SIGN_IN: &str = "auth:signIn";
pub const SIGN_OUT: &str = "auth:signOut";
pub const IS_AUTHENTICATED: &str = "auth:isAuthenticated";

/// The functions built-in auth serves, by path, with their kinds.
pub fn function_kind(path: &str) -> Option<FunctionKind> {
    match path {
        SIGN_IN | SIGN_OUT => Some(FunctionKind::Action),
        IS_AUTHENTICATED => Some(FunctionKind::Query),
        _ => None,
    }
}

/// The functions built-in auth serves, described as the app's are.
pub fn functions() -> impl Iterator<Item = capstan_protocol::FunctionInfo> {
    [SIGN_IN, SIGN_OUT, IS_AUTHENTICATED]
        .into_iter()
        .filter_map(|path| {
            Some(capstan_protocol::FunctionInfo {
                path: capstan_protocol::FunctionPath::parse(path),
                kind: function_kind(path)?,
                visibility: capstan_protocol::Visibility::Public,
            })
        })
}

/// Why a step of sign-in did not go through.
#[derive(Debug)]
pub enum AuthError {
    /// The caller's doing (a wrong password, an expired code): the client
    /// sees `message`, and `code` as the error's data.
    Refused { code: &'static str, message: String },
    /// The store failed or refused a write.
    Store(capstan_store::Error),
    /// Something inside the server.
    Internal(String),
}

impl AuthError {
    pub fn refused(code: &'static str, message: impl Into<String>) -> AuthError {
        AuthError::Refused {
            code,
            message: message.into(),
        }
    }

    pub fn internal(detail: impl Into<String>) -> AuthError {
        AuthError::Internal(detail.into())
    }

    fn into_failure(self) -> Failure {
        match self {
            AuthError::Refused { code, message } => Failure::Function {
                message,
                data: Some(serde_json::json!({ "code": code }).to_string()),
            },
            AuthError::Store(error) => match error.code() {
                capstan_store::ErrorCode::SchemaViolation
                | capstan_store::ErrorCode::LimitExceeded
                | capstan_store::ErrorCode::BadRequest => Failure::Function {
                    message: format!("Could not save the user: {error}"),
                    data: None,
                },
                _ => Failure::Internal(format!("auth: {error}")),
            },
            AuthError::Internal(detail) => Failure::Internal(format!("auth: {detail}")),
        }
    }
}

impl From<capstan_store::Error> for AuthError {
    fn from(error: capstan_store::Error) -> Self {
        AuthError::Store(error)
    }
}

/// The sign-in service of a server.
#[derive(Debug)]
pub struct SignIn {
    pub(crate) store: Store,
    pub issuer: Issuer,
    pub(crate) clock: Clock,
    /// Password hashes computed at once (each takes 19 MiB and a core for
    /// tens of milliseconds).
    hashing: tokio::sync::Semaphore,
    pub(crate) messenger: messages::Messenger,
    /// Where the signing keys live (the data directory).
    keys_dir: std::path::PathBuf,
    /// Talks to OAuth providers.
    pub(crate) http: reqwest::Client,
}

/// One call's view: the service, the deployment's config and environment,
/// and the caller.
#[derive(Debug)]
pub struct Flow<'a> {
    pub auth: &'a SignIn,
    /// Runs the app's hooks.
    pub app: &'a crate::app::App,
    pub config: &'a BuiltInConfig,
    pub environment: &'a Environment,
    pub caller: &'a Caller,
}

impl SignIn {
    pub fn new(
        store: Store,
        issuer: Issuer,
        clock: Clock,
        messenger: messages::Messenger,
        keys_dir: std::path::PathBuf,
    ) -> SignIn {
        SignIn {
            store,
            issuer,
            clock,
            hashing: tokio::sync::Semaphore::new(4),
            messenger,
            keys_dir,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::limited(3))
                .build()
                .unwrap_or_default(),
        }
    }

    /// Makes a new signing key current; tokens signed with the old one stay
    /// valid until they expire. The new key's `kid`.
    pub fn rotate_keys(&self, algorithm: capstan_auth::Algorithm) -> Result<String, Error> {
        let _cluster = crate::shared_state::serialize(&self.keys_dir, crate::data_dir::AUTH_KEYS)?;
        let ring = signing_keys::rotate(&self.keys_dir, algorithm, self.clock.unix_seconds())?;
        self.publish(ring)
    }

    /// Makes Convex Auth's `JWT_PRIVATE_KEY` the current signing key.
    pub fn import_key(&self, private_key: &str) -> Result<String, Error> {
        let _cluster = crate::shared_state::serialize(&self.keys_dir, crate::data_dir::AUTH_KEYS)?;
        let ring =
            signing_keys::import_convex(&self.keys_dir, private_key, self.clock.unix_seconds())?;
        self.publish(ring)
    }

    /// Serves the keys in the data directory again, after another node
    /// rotated or imported one.
    pub fn reload_keys(&self) -> Result<(), Error> {
        let path = signing_keys::path(&self.keys_dir);
        let bytes = std::fs::read(&path)
            .map_err(|e| Error::internal(format!("cannot read {}: {e}", path.display())))?;
        let ring: capstan_auth::KeyRing = serde_json::from_slice(&bytes)
            .map_err(|e| Error::internal(format!("{}: {e}", path.display())))?;
        self.publish(ring).map(drop)
    }

    fn publish(&self, ring: capstan_auth::KeyRing) -> Result<String, Error> {
        let kid = ring
            .current()
            .map(|key| key.kid.clone())
            .unwrap_or_default();
        self.issuer.keys.replace(ring).map_err(Error::config)?;
        Ok(kid)
    }

    /// Milliseconds since the Unix epoch, by the server's clock.
    pub fn now_ms(&self) -> f64 {
        self.clock.since_epoch().as_secs_f64() * 1000.0
    }

    /// Runs `step` in a transaction and commits it, again at a newer
    /// snapshot if a concurrent commit conflicts.
    pub async fn transact<T>(
        &self,
        mut step: impl FnMut(&mut records::Tx, f64) -> Result<T, AuthError>,
    ) -> Result<T, AuthError> {
        for _ in 0..32 {
            let mut tx = self.store.begin();
            let value = step(&mut tx, self.now_ms())?;
            match self.store.commit(tx).await? {
                Ok(_) => return Ok(value),
                Err(_conflict) => tokio::task::yield_now().await,
            }
        }
        Err(AuthError::internal(
            "sign-in kept conflicting with other writes",
        ))
    }

    /// Runs CPU-heavy password work off the runtime's threads, a few at once.
    pub async fn hash_work<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|_| AuthError::internal("shutting down"))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| AuthError::internal(format!("password work failed: {e}")))
    }

    /// The session of a caller signed in by this issuer: `(user, session)`.
    pub fn session_of(&self, identity: &Identity) -> Option<(String, String)> {
        let user = match identity {
            Identity::User(user) => user,
            Identity::Admin {
                impersonating: Some(user),
            } => user,
            _ => return None,
        };
        if user.issuer.trim_end_matches('/') != self.issuer.url.trim_end_matches('/') {
            return None;
        }
        let (user_id, session) = user.subject.split_once('|')?;
        Some((user_id.to_owned(), session.to_owned()))
    }

    /// Runs the native function at `path`.
    pub async fn call(
        &self,
        app: &crate::app::App,
        config: &BuiltInConfig,
        environment: &Environment,
        path: &str,
        args: &str,
        caller: &Caller,
    ) -> Result<FunctionResult, Error> {
        let flow = Flow {
            auth: self,
            app,
            config,
            environment,
            caller,
        };
        let result = match path {
            SIGN_IN => flows::sign_in(&flow, args).await,
            SIGN_OUT => flows::sign_out(&flow).await.map(|()| "null".to_owned()),
            IS_AUTHENTICATED => Ok(is_authenticated(&caller.identity).to_string()),
            _ => {
                return Err(Error::new(
                    ErrorCode::NotFound,
                    format!("Could not find public function for '{path}'"),
                ));
            }
        };
        Ok(FunctionResult {
            result: result.map_err(AuthError::into_failure),
            log_lines: Vec::new(),
            ts: None,
        })
    }
}

/// `auth:isAuthenticated`: whether the caller presented a user token.
pub fn is_authenticated(identity: &Identity) -> bool {
    matches!(
        identity,
        Identity::User(_)
            | Identity::Admin {
                impersonating: Some(_)
            }
    )
}

/// Shared across the server.
pub type SharedSignIn = Arc<SignIn>;
