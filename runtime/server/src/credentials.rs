//! From credentials to an [`Identity`]: the admin key (optionally acting as
//! a user), service keys, and user tokens checked against the app's auth
//! providers, and when a token's identity expires. HTTP and WebSocket
//! callers go through the same rules.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use capstan_protocol::{Identity, UserIdentity};
use serde_json::Value;

use capstan_protocol::{Clock, ErrorCode};

use crate::app::App;
use crate::error::Error;
use crate::keys::{AdminKey, ServiceKeys};

#[derive(Clone, Debug)]
pub struct Credentials {
    /// Its deployment's auth config says which tokens are users'.
    pub app: App,
    pub admin_key: AdminKey,
    pub service_keys: ServiceKeys,
    /// The clock difference allowed around a token's `exp`, as its
    /// verification allowed.
    pub leeway: Duration,
    /// What a token's expiry is judged by.
    pub clock: Clock,
}

impl Credentials {
    /// The identity of an HTTP request's `Authorization` header:
    /// - none: anonymous;
    /// - `Convex <admin key>[:<base64 of the identity to act as>]`;
    /// - `Bearer <service key>`, `Bearer <admin key>`, or `Bearer <JWT>`.
    pub async fn from_authorization(&self, header: Option<&str>) -> Result<Identity, Error> {
        let Some(header) = header else {
            return Ok(Identity::Anonymous);
        };
        let (scheme, presented) = scheme(header)?;
        if scheme.eq_ignore_ascii_case("convex") {
            let (key, acting) = match presented.split_once(':') {
                Some((key, acting)) => (key, Some(acting)),
                None => (presented, None),
            };
            let impersonating = match acting {
                None => None,
                Some(encoded) => {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(encoded.trim())
                        .map_err(|_| {
                            Error::new(
                                ErrorCode::Unauthorized,
                                "the identity after the admin key is not base64",
                            )
                        })?;
                    let value: Value = serde_json::from_slice(&bytes).map_err(|_| {
                        Error::new(
                            ErrorCode::Unauthorized,
                            "the identity after the admin key is not JSON",
                        )
                    })?;
                    Some(value)
                }
            };
            return self.admin(key, impersonating.as_ref());
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Error::new(
                ErrorCode::Unauthorized,
                "the Authorization header must be `Bearer <token>` or `Convex <admin key>`",
            ));
        }
        let token = presented;
        if ServiceKeys::is_service_key(token) {
            return self
                .service_keys
                .name_of(token)
                .map(|name| Identity::Service { name })
                .ok_or_else(|| {
                    Error::new(
                        ErrorCode::Unauthorized,
                        "the service key is not valid: it was revoked or never issued here",
                    )
                });
        }
        if AdminKey::looks_like(token) {
            return self.admin(token, None);
        }
        self.verify_user_token(token).await
    }

    /// The identity a user token proves, checked against the deployed
    /// app's auth providers.
    pub async fn verify_user_token(&self, token: &str) -> Result<Identity, Error> {
        let refuse = |reason: &dyn std::fmt::Display| {
            Error::new(
                ErrorCode::Unauthorized,
                format!("Could not verify token: {reason}"),
            )
        };
        let Some(deployment) = self.app.deployment() else {
            return Err(refuse(
                &"No auth provider found matching the given token: no app is deployed",
            ));
        };
        if deployment.verifier.is_empty() {
            return Err(refuse(
                &"No auth provider found matching the given token: the app's auth config has no providers",
            ));
        }
        deployment
            .verifier
            .verify(token)
            .await
            .map(|user| Identity::User(Arc::new(user)))
            .map_err(|e| match e {
                // Where the keys live and why they could not be fetched is
                // the operator's business, not an anonymous caller's.
                capstan_auth::AuthError::KeysUnavailable { .. } => Error::with_detail(
                    ErrorCode::Unavailable,
                    "Could not verify token: its issuer's keys cannot be fetched right now",
                    e.to_string(),
                ),
                e => refuse(&e),
            })
    }

    /// How long ago the token behind `identity` expired, if it has, allowing
    /// the leeway its verification allowed.
    pub fn expired(&self, identity: &Identity) -> Option<u64> {
        let expires_at = identity.expires_at()?;
        let now = self.clock.unix_seconds();
        (now > expires_at.saturating_add(self.leeway.as_secs())).then(|| now - expires_at)
    }

    /// For admin endpoints: the admin key itself, checked without verifying
    /// any token. Other known credentials are refused with 403.
    pub fn require_admin(&self, header: Option<&str>) -> Result<(), Error> {
        let needs = || Error::new(ErrorCode::Unauthorized, "this endpoint needs the admin key");
        let (scheme, presented) = scheme(header.ok_or_else(needs)?)?;
        if !scheme.eq_ignore_ascii_case("convex") && !scheme.eq_ignore_ascii_case("bearer") {
            return Err(needs());
        }
        let (key, acting) = match presented.split_once(':') {
            Some((key, _)) => (key, true),
            None => (presented, false),
        };
        if self.admin_key.matches(key) {
            return match acting {
                false => Ok(()),
                true => Err(Error::new(
                    ErrorCode::Forbidden,
                    "admin endpoints take the admin key itself, not a user it acts as",
                )),
            };
        }
        if ServiceKeys::is_service_key(presented) && self.service_keys.name_of(presented).is_some()
        {
            return Err(Error::new(
                ErrorCode::Forbidden,
                "a service key calls functions; this endpoint needs the admin key",
            ));
        }
        Err(needs())
    }

    /// The admin identity, acting as `impersonating` if given.
    pub fn admin(&self, key: &str, impersonating: Option<&Value>) -> Result<Identity, Error> {
        if !self.admin_key.matches(key) {
            return Err(Error::new(
                ErrorCode::Unauthorized,
                "the admin key is not this deployment's",
            ));
        }
        let impersonating = impersonating.map(impersonated).transpose()?.map(Arc::new);
        Ok(Identity::Admin { impersonating })
    }
}

/// `<scheme> <credentials>`, the scheme in any case.
fn scheme(header: &str) -> Result<(&str, &str), Error> {
    header
        .trim()
        .split_once(' ')
        .map(|(scheme, rest)| (scheme, rest.trim()))
        .ok_or_else(|| {
            Error::new(
                ErrorCode::Unauthorized,
                "the Authorization header must be `Bearer <token>` or `Convex <admin key>`",
            )
        })
}

/// The user an admin acts as, from Convex's `UserIdentityAttributes`
/// (camelCase fields and custom claims; `tokenIdentifier`, or `issuer` and
/// `subject`).
pub fn impersonated(attributes: &Value) -> Result<UserIdentity, Error> {
    let refuse = |message| Error::new(ErrorCode::Unauthorized, message);
    let Value::Object(object) = attributes else {
        return Err(refuse("the identity to act as must be an object"));
    };
    let text = |field: &str| object.get(field).and_then(Value::as_str).map(str::to_owned);
    let (issuer, subject) = match (text("issuer"), text("subject")) {
        (Some(issuer), Some(subject)) => (issuer, subject),
        _ => match text("tokenIdentifier")
            .as_deref()
            .and_then(|t| t.split_once('|'))
        {
            Some((issuer, subject)) => (issuer.to_owned(), subject.to_owned()),
            None => {
                return Err(refuse(
                    "the identity to act as needs \"issuer\" and \"subject\", or a \"tokenIdentifier\" of the form issuer|subject",
                ));
            }
        },
    };
    let token_identifier = text("tokenIdentifier").unwrap_or_else(|| format!("{issuer}|{subject}"));
    let fields = object
        .iter()
        .filter(|(key, _)| !key.starts_with('$'))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    Ok(UserIdentity::new(
        token_identifier,
        issuer,
        subject,
        fields,
        None,
    ))
}
