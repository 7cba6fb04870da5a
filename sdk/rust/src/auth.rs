//! Who is calling a function.
//!
//! ```ignore
//! #[capstan::mutation]
//! fn send(ctx: &mut MutationCtx, body: String) -> capstan::Result<Id<Message>> {
//!     let identity = ctx
//!         .auth()
//!         .user_identity()?
//!         .ok_or_else(|| capstan::error!("sign in to send messages"))?;
//!     ctx.db().insert(&Message { author: identity.token_identifier, body })
//! }
//! ```
//!
//! | Convex (TypeScript) | Capstan (Rust) |
//! |---|---|
//! | `ctx.auth.getUserIdentity()` | `ctx.auth().user_identity()?` |
//! | `getAuthUserId(ctx)` (Convex Auth) | `ctx.auth().user_id::<User>()?` |
//! | `getAuthSessionId(ctx)` (Convex Auth) | `ctx.auth().session_id()?` |
//!
//! Services that call with a shared secret (a webhook, a cron runner) are
//! checked against a deployment environment variable without the secret
//! ever leaving the server:
//!
//! ```ignore
//! #[capstan::action]
//! fn webhook(ctx: &mut ActionCtx, secret: String) -> capstan::Result<()> {
//!     if !ctx.auth().check_secret("WEBHOOK_SECRET", &secret)? {
//!         return Err(capstan::error!("not allowed"));
//!     }
//!     // …
//!     Ok(())
//! }
//! ```

use std::collections::BTreeMap;
use std::marker::PhantomData;

use serde::Serialize;

use crate::bindings::capstan::runtime::auth as host_auth;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::table::UsersTable;

/// A verified user, as Convex's `UserIdentity`: the token's issuer and
/// subject, the standard OpenID Connect claims present in it, and any
/// other claims in `custom`. A standard claim of an unexpected type (say
/// `"email_verified": "true"`) is kept in `custom` rather than failing.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity {
    /// `<issuer>|<subject>`: the stable key of a user of a third-party
    /// issuer.
    pub token_identifier: String,
    pub subject: String,
    pub issuer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub picture_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub website_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birthday: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// Every other claim, with its JSON value.
    #[serde(flatten)]
    pub custom: BTreeMap<String, serde_json::Value>,
}

impl UserIdentity {
    /// Reads the identity object the server sends. Only `tokenIdentifier`,
    /// `subject` and `issuer` are required.
    pub fn from_json(json: &str) -> Result<UserIdentity> {
        let mut fields: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json)
            .map_err(|e| {
                Error::new(format!(
                    "the server sent an identity that is not a JSON object: {e}"
                ))
            })?;
        let mut required = |name: &str| match fields.remove(name) {
            Some(serde_json::Value::String(text)) => Ok(text),
            _ => Err(Error::new(format!(
                "the server sent an identity without {name:?}"
            ))),
        };
        let mut identity = UserIdentity {
            token_identifier: required("tokenIdentifier")?,
            subject: required("subject")?,
            issuer: required("issuer")?,
            ..UserIdentity::default()
        };
        for (name, slot) in [
            ("name", &mut identity.name),
            ("givenName", &mut identity.given_name),
            ("familyName", &mut identity.family_name),
            ("nickname", &mut identity.nickname),
            ("preferredUsername", &mut identity.preferred_username),
            ("profileUrl", &mut identity.profile_url),
            ("pictureUrl", &mut identity.picture_url),
            ("websiteUrl", &mut identity.website_url),
            ("email", &mut identity.email),
            ("gender", &mut identity.gender),
            ("birthday", &mut identity.birthday),
            ("timezone", &mut identity.timezone),
            ("language", &mut identity.language),
            ("phoneNumber", &mut identity.phone_number),
            ("address", &mut identity.address),
            ("updatedAt", &mut identity.updated_at),
        ] {
            match fields.remove(name) {
                Some(serde_json::Value::String(value)) => *slot = Some(value),
                Some(other) => {
                    identity.custom.insert(name.to_owned(), other);
                }
                None => {}
            }
        }
        for (name, slot) in [
            ("emailVerified", &mut identity.email_verified),
            ("phoneNumberVerified", &mut identity.phone_number_verified),
        ] {
            match fields.remove(name) {
                Some(serde_json::Value::Bool(value)) => *slot = Some(value),
                Some(other) => {
                    identity.custom.insert(name.to_owned(), other);
                }
                None => {}
            }
        }
        identity.custom.extend(fields);
        Ok(identity)
    }
}

/// Who made a call.
#[derive(Clone, Debug, PartialEq)]
pub enum Caller {
    /// No credentials.
    Anonymous,
    /// A verified user, or the user an admin acts as.
    User(Box<UserIdentity>),
    /// The deployment's admin key.
    Admin,
    /// A service key, by name.
    Service { name: String },
}

/// The caller of the current function; from `ctx.auth()`.
#[derive(Debug)]
pub struct Auth<'a> {
    pub(crate) _context: PhantomData<&'a ()>,
}

impl Auth<'_> {
    /// Who is calling.
    pub fn caller(&self) -> Result<Caller> {
        Ok(match host_auth::identity() {
            host_auth::Caller::Anonymous => Caller::Anonymous,
            host_auth::Caller::User(json) => Caller::User(Box::new(parse_identity(&json)?)),
            host_auth::Caller::Admin => Caller::Admin,
            host_auth::Caller::Service(name) => Caller::Service { name },
        })
    }

    /// The calling user, or `None` for anonymous, admin and service callers.
    /// Convex: `ctx.auth.getUserIdentity()`.
    #[doc(alias = "getUserIdentity")]
    pub fn user_identity(&self) -> Result<Option<UserIdentity>> {
        match host_auth::identity() {
            host_auth::Caller::User(json) => parse_identity(&json).map(Some),
            _ => Ok(None),
        }
    }

    /// The signed-in user's id in the `users` table: [`User`], or the
    /// app's own type for that table. Convex Auth: `getAuthUserId(ctx)`.
    ///
    /// It reads the token's subject, `<userId>|<sessionId>`, the format of
    /// Capstan's built-in issuer and of Convex Auth; it is only meaningful
    /// for such tokens: third-party subjects may contain `|` too (Auth0's
    /// are `auth0|…`), so key their users by
    /// [`UserIdentity::token_identifier`] instead.
    #[doc(alias = "getAuthUserId")]
    pub fn user_id<U: UsersTable>(&self) -> Result<Option<Id<U>>> {
        Ok(self
            .user_identity()?
            .map(|identity| Id::from_string(subject_part(&identity.subject, 0))))
    }

    /// For `<userId>|<sessionId>` subjects: the session's id (see
    /// [`Auth::user_id`] for other issuers). Convex Auth:
    /// `getAuthSessionId(ctx)`.
    #[doc(alias = "getAuthSessionId")]
    pub fn session_id(&self) -> Result<Option<Id<Session>>> {
        Ok(self.user_identity()?.and_then(|identity| {
            identity
                .subject
                .split_once('|')
                .map(|(_, session)| Id::from_string(session))
        }))
    }

    /// Whether `presented` equals the deployment environment variable
    /// `name`. The comparison runs on the server in constant time; the
    /// secret never enters the function. An error if `name` is not set.
    pub fn check_secret(&self, name: &str, presented: &str) -> Result<bool> {
        host_auth::check_secret(name, presented).map_err(Error::from_host)
    }
}

fn subject_part(subject: &str, index: usize) -> &str {
    subject.split('|').nth(index).unwrap_or(subject)
}

fn parse_identity(json: &str) -> Result<UserIdentity> {
    UserIdentity::from_json(json)
}

/// A user, as Capstan's built-in auth and Convex Auth store them in the
/// `users` table. Every field is optional; an app that adds fields to its
/// users declares its own `users` type (`#[table(name = "users", …)]`) and
/// uses that instead.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize, crate::Table)]
#[serde(rename_all = "camelCase")]
#[table(name = "users", index(email = [email]), index(phone = [phone]))]
pub struct User {
    pub name: Option<String>,
    pub image: Option<String>,
    pub email: Option<String>,
    /// When the email was verified, in milliseconds since the epoch.
    pub email_verification_time: Option<f64>,
    pub phone: Option<String>,
    pub phone_verification_time: Option<f64>,
    pub is_anonymous: Option<bool>,
}

/// A refresh token of a session (`authRefreshTokens`); read by
/// [`MutationCtx::invalidate_sessions`](crate::MutationCtx::invalidate_sessions).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, crate::Table)]
#[serde(rename_all = "camelCase")]
#[table(
    name = "authRefreshTokens",
    index(sessionId = [session_id]),
    index(sessionIdAndParentRefreshTokenId = [session_id, parent_refresh_token_id])
)]
pub struct RefreshToken {
    pub session_id: Id<Session>,
    pub expiration_time: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_used_time: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_refresh_token_id: Option<Id<RefreshToken>>,
    /// SHA-256 of the token's secret (built-in auth; absent for tokens
    /// imported from Convex Auth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_hash: Option<String>,
}

/// A signed-in session (Convex Auth's `authSessions`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, crate::Table)]
#[serde(rename_all = "camelCase")]
#[table(name = "authSessions", index(userId = [user_id]))]
pub struct Session {
    pub user_id: Id<User>,
    /// When the session ends, in milliseconds since the epoch.
    pub expiration_time: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_read_leniently() {
        let identity = UserIdentity::from_json(
            r#"{"tokenIdentifier":"https://a|u","subject":"u","issuer":"https://a",
                "email":"ada@example.com","emailVerified":"true","name":["A","B"],
                "updatedAt":1700000000.5,"role":"admin"}"#,
        )
        .unwrap();
        assert_eq!(identity.email.as_deref(), Some("ada@example.com"));
        assert_eq!(identity.email_verified, None);
        assert_eq!(identity.name, None);
        assert_eq!(identity.custom["emailVerified"], "true");
        assert_eq!(identity.custom["name"], serde_json::json!(["A", "B"]));
        assert_eq!(identity.custom["role"], "admin");
        assert!(identity.custom.contains_key("updatedAt"));
        assert!(UserIdentity::from_json(r#"{"subject":"u"}"#).is_err());
        // Written back, it is the object it was read from.
        let again: serde_json::Value = serde_json::to_value(&identity).unwrap();
        assert_eq!(again["emailVerified"], "true");
    }
}
