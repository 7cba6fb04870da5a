//! OAuth and OpenID Connect sign-in: the first step (`signIn("github")`)
//! records a verifier, bound to the caller's session if any, and answers
//! with the URL the browser goes to (`/api/auth/signin/<provider>`), which
//! [`super::routes`] serves.

use capstan_protocol::Value;
use serde_json::{Value as Json, json};

use super::flows::param;
use super::records::object;
use super::tables::VERIFIERS;
use super::{AuthError, Flow};

/// `{redirect, verifier}` for the browser to start signing in with
/// `provider`.
pub async fn start(flow: &Flow<'_>, provider: &str, params: &Json) -> Result<Json, AuthError> {
    let redirect_to = match params.get("redirectTo") {
        None | Some(Json::Null) => None,
        Some(Json::String(target)) => {
            // Refused now rather than after the provider's round trip.
            super::redirects::destination(flow, Some(target))?;
            Some(target.clone())
        }
        Some(_) => {
            return Err(AuthError::refused(
                "InvalidArguments",
                "`redirectTo` must be a string",
            ));
        }
    };
    let session = flow.auth.session_of(&flow.caller.identity).map(|(_, s)| s);
    let verifier = flow
        .auth
        .transact(|tx, _| {
            Ok(tx
                .insert(
                    VERIFIERS,
                    object([("sessionId", session.clone().map(Value::String))]),
                )?
                .to_string())
        })
        .await?;
    let mut url = format!(
        "{}/api/auth/signin/{provider}?code={verifier}",
        flow.auth.issuer.url
    );
    if let Some(target) = redirect_to.as_deref().or(param(params, "redirectTo")) {
        url.push_str("&redirectTo=");
        url.push_str(&urlencoding(target));
    }
    Ok(json!({ "redirect": url, "verifier": verifier }))
}

/// Percent-encodes a query parameter value.
pub fn urlencoding(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
