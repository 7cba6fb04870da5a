//! Who is calling a function.
//!
//! ```ignore
//! #[capstan::mutation]
//! fn send(ctx: &mut MutationCtx, args: SendArgs) -> capstan::Result<Id<Message>> {
//!     let identity = ctx
//!         .auth()
//!         .get_user_identity()?
//!         .ok_or_else(|| capstan::error!("sign in to send messages"))?;
//!     ctx.db().insert(&Message { author: identity.token_identifier, body: args.body })
//! }
//! ```
//!
//! Services that call with a shared secret (a webhook, a cron runner) are
//! checked against a deployment environment variable without the secret
//! ever leaving the server:
//!
//! ```ignore
//! #[capstan::action]
//! fn webhook(ctx: &mut ActionCtx, args: Hook) -> capstan::Result<()> {
//!     if !ctx.auth().check_secret("WEBHOOK_SECRET", &args.secret)? {
//!         return Err(capstan::error!("not allowed"));
//!     }
//!     // …
//!     Ok(())
//! }
//! ```

use std::collections::BTreeMap;
use std::marker::PhantomData;

use serde::{Deserialize, Serialize};

use crate::bindings::capstan::runtime::auth as host_auth;
use crate::error::{Error, Result};

/// A verified user, as Convex's `UserIdentity`: the token's issuer and
/// subject, the standard OpenID Connect claims present in it, and any
/// other claims in `custom`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity {
    /// `<issuer>|<subject>`: a stable key for the user of a third-party
    /// issuer (Capstan's own tokens include the session in the subject; use
    /// [`Auth::get_auth_user_id`] for those).
    pub token_identifier: String,
    pub subject: String,
    pub issuer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthday: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number_verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// Every other claim, with its JSON value.
    #[serde(flatten)]
    pub custom: BTreeMap<String, serde_json::Value>,
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
    pub fn get_user_identity(&self) -> Result<Option<UserIdentity>> {
        match host_auth::identity() {
            host_auth::Caller::User(json) => parse_identity(&json).map(Some),
            _ => Ok(None),
        }
    }

    /// For tokens whose subject is `<userId>|<sessionId>` (Capstan's own
    /// issuer, like Convex Auth's): the user's id. For other tokens, the
    /// whole subject.
    pub fn get_auth_user_id(&self) -> Result<Option<String>> {
        Ok(self
            .get_user_identity()?
            .map(|identity| subject_part(&identity.subject, 0).to_owned()))
    }

    /// For `<userId>|<sessionId>` subjects: the session's id.
    pub fn get_auth_session_id(&self) -> Result<Option<String>> {
        Ok(self.get_user_identity()?.and_then(|identity| {
            identity
                .subject
                .split_once('|')
                .map(|(_, session)| session.to_owned())
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
    serde_json::from_str(json).map_err(|e| {
        Error::new(format!(
            "the server sent an identity this SDK cannot read: {e}"
        ))
    })
}
