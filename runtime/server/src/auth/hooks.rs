//! The app's hooks into sign-in, as internal functions named in the config
//! (`auth.builtIn.hooks`), written in Rust with the normal SDK:
//!
//! - `userFields` (query): `{provider, type, profile, params}` → fields for
//!   the user document (say, a display name from the sign-up form or the
//!   provider's profile); the app's `users` validator checks the result.
//! - `afterUserCreatedOrUpdated` (mutation): `{userId, provider, type,
//!   created}`, after the user is written (a welcome row, a counter).
//! - `beforeSessionCreation` (query): `{userId}`; an error refuses the
//!   session (a banned user), before a sign-in and before each refresh.
//! - `customClaims` (query): `{userId, sessionId}` → claims added to every
//!   access token, at sign-in and at each refresh.

use capstan_host::FunctionKind;
use capstan_protocol::{Object, Value};
use serde_json::{Value as Json, json};

use super::{AuthError, Flow};

/// Runs hook `path` with `args`; its value, or its error as a refusal.
async fn run(
    flow: &Flow<'_>,
    kind: FunctionKind,
    path: &str,
    args: Json,
) -> Result<Json, AuthError> {
    let result = flow
        .app
        .run_hook(kind, path, args.to_string(), flow.caller)
        .await
        .map_err(|e| AuthError::internal(format!("hook {path}: {}", e.public_message())))?;
    match result.result {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            AuthError::internal(format!("hook {path} returned something unreadable: {e}"))
        }),
        Err(capstan_host::Failure::Function { message, .. }) => {
            Err(AuthError::refused("Refused", message))
        }
        Err(other) => Err(AuthError::internal(format!(
            "hook {path} failed: {}",
            other.into_public().message
        ))),
    }
}

/// The fields `userFields` adds for a user made or updated by `provider`.
pub async fn user_fields(
    flow: &Flow<'_>,
    provider: &str,
    kind: &str,
    profile: &super::accounts::Profile,
    params: &Json,
) -> Result<Object, AuthError> {
    let Some(path) = flow.config.hooks.user_fields.as_deref() else {
        return Ok(Object::new());
    };
    // Secrets in the parameters never reach the app's code.
    let mut params = params.clone();
    if let Some(object) = params.as_object_mut() {
        for secret in ["password", "newPassword", "code"] {
            object.remove(secret);
        }
    }
    let mut known = serde_json::Map::new();
    if let Some(email) = &profile.email {
        known.insert("email".into(), json!(email));
    }
    if let Some(phone) = &profile.phone {
        known.insert("phone".into(), json!(phone));
    }
    for (name, value) in &profile.fields {
        known.insert(name.clone(), value.to_json());
    }
    let value = run(
        flow,
        FunctionKind::Query,
        path,
        json!({ "provider": provider, "type": kind, "profile": known, "params": params }),
    )
    .await?;
    match Value::from_json(&value) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(Value::Null) => Ok(Object::new()),
        _ => Err(AuthError::internal(format!(
            "hook {path} must return an object of user fields"
        ))),
    }
}

/// Tells `afterUserCreatedOrUpdated` about `user`.
pub async fn after_user(
    flow: &Flow<'_>,
    user: &str,
    provider: &str,
    kind: &str,
    created: bool,
) -> Result<(), AuthError> {
    let Some(path) = flow.config.hooks.after_user_created_or_updated.as_deref() else {
        return Ok(());
    };
    run(
        flow,
        FunctionKind::Mutation,
        path,
        json!({ "userId": user, "provider": provider, "type": kind, "created": created }),
    )
    .await
    .map(|_| ())
}

/// Whether `beforeSessionCreation` lets `user` have a session.
pub async fn check_session(flow: &Flow<'_>, user: &str) -> Result<(), AuthError> {
    let Some(path) = flow.config.hooks.before_session_creation.as_deref() else {
        return Ok(());
    };
    run(flow, FunctionKind::Query, path, json!({ "userId": user }))
        .await
        .map(|_| ())
}

/// The claims `customClaims` adds to `user`'s token.
pub async fn custom_claims(
    flow: &Flow<'_>,
    user: &str,
    session: &str,
) -> Result<serde_json::Map<String, Json>, AuthError> {
    let Some(path) = flow.config.hooks.custom_claims.as_deref() else {
        return Ok(serde_json::Map::new());
    };
    match run(
        flow,
        FunctionKind::Query,
        path,
        json!({ "userId": user, "sessionId": session }),
    )
    .await?
    {
        Json::Object(claims) => Ok(claims),
        Json::Null => Ok(serde_json::Map::new()),
        _ => Err(AuthError::internal(format!(
            "hook {path} must return an object of claims"
        ))),
    }
}
