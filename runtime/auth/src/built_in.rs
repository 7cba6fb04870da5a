//! The `builtIn` part of an app's auth config: how Capstan signs users in
//! itself. Provider ids are what clients name in `signIn(id, params)`,
//! as with Convex Auth's `convexAuth({ providers })`:
//!
//! ```json
//! { "auth": { "builtIn": { "providers": {
//!     "password": { "type": "password", "reset": { "type": "email" } },
//!     "email": { "type": "email", "link": true },
//!     "anonymous": { "type": "anonymous" },
//!     "github": { "type": "github" }
//! } } } }
//! ```
//!
//! Secrets (OAuth client secrets, the SMTP password) never live here: they
//! are deployment environment variables.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::normalize_issuer;

/// Built-in sign-in: its providers, tokens and sessions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BuiltInConfig {
    /// Sign-in methods by the id clients call them by.
    pub providers: BTreeMap<String, SignInProvider>,
    /// Access tokens.
    #[serde(default)]
    pub token: TokenConfig,
    #[serde(default)]
    pub session: SessionConfig,
    /// Failed password and code attempts one account (or address) may make
    /// in an hour before it must wait.
    #[serde(default = "ten")]
    pub failed_attempts_per_hour: u32,
    /// Codes and links one address (email or phone) may be sent in an hour.
    #[serde(default = "ten")]
    pub sends_per_hour: u32,
    /// Origins (besides `SITE_URL`) that `redirectTo` may point at, e.g. an
    /// app's `myapp://` scheme or a preview site.
    #[serde(default)]
    pub redirect_origins: Vec<String>,
    /// The app's internal functions sign-in calls ([`Hooks`]).
    #[serde(default)]
    pub hooks: Hooks,
}

/// Internal functions of the app that sign-in calls, by path.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Hooks {
    /// Query: fields for a new or updated user.
    pub user_fields: Option<String>,
    /// Mutation: told after a user is written.
    pub after_user_created_or_updated: Option<String>,
    /// Query: an error refuses the session.
    pub before_session_creation: Option<String>,
    /// Query: claims for the user's access tokens.
    pub custom_claims: Option<String>,
}

fn ten() -> u32 {
    10
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TokenConfig {
    /// `aud` of issued tokens.
    pub audience: String,
    pub lifetime_seconds: u64,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            audience: "convex".into(),
            lifetime_seconds: 3600,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SessionConfig {
    /// A session ends this long after sign-in, however active.
    pub total_seconds: u64,
    /// A session ends when its refresh token goes unused this long.
    pub inactive_seconds: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            total_seconds: 30 * 86_400,
            inactive_seconds: 30 * 86_400,
        }
    }
}

/// One way to sign in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum SignInProvider {
    Password(PasswordProvider),
    Email(MessageProvider),
    Phone(MessageProvider),
    Anonymous {},
    Github(OAuthProvider),
    Google(OAuthProvider),
    Apple(OAuthProvider),
    Oidc(OAuthProvider),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PasswordProvider {
    #[serde(default = "eight")]
    pub min_length: usize,
    #[serde(default = "max_password")]
    pub max_length: usize,
    /// Require a letter and a digit.
    #[serde(default)]
    pub require_letters_and_digits: bool,
    /// Verify the email at sign-up with a code sent this way; until then
    /// sign-in answers `{tokens: null}` and sends a new code.
    #[serde(default)]
    pub verify: Option<MessageProvider>,
    /// Reset forgotten passwords with a code sent this way.
    #[serde(default)]
    pub reset: Option<MessageProvider>,
}

fn eight() -> usize {
    8
}

fn max_password() -> usize {
    256
}

/// How codes and links are made and sent (email or SMS).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MessageProvider {
    /// Inside a password provider's `reset` and `verify`: `"email"`, as the
    /// kind of message (optional).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Send a link (`<redirectTo or SITE_URL>?code=…`) that signs in when
    /// opened, rather than only a code to type.
    #[serde(default)]
    pub link: bool,
    /// Digits in a code to type; links carry 32 letters and digits.
    #[serde(default = "eight")]
    pub code_length: usize,
    /// How long a code or link works.
    #[serde(default)]
    pub max_age_seconds: Option<u64>,
    /// Email: the `From` address (default: env `AUTH_EMAIL_FROM`).
    #[serde(default)]
    pub from: Option<String>,
    /// Email: the subject line.
    #[serde(default)]
    pub subject: Option<String>,
    /// The message text; `{code}`, `{url}`, `{minutes}` and `{identifier}`
    /// are filled in.
    #[serde(default)]
    pub template: Option<String>,
    /// Phone: the URL a JSON `{to, code, url, message}` is POSTed to, for
    /// any SMS gateway (its bearer token from env `AUTH_<ID>_KEY`).
    #[serde(default)]
    pub webhook: Option<String>,
}

impl MessageProvider {
    /// How long a code stays valid: an hour for typed codes, a day for
    /// links, unless configured.
    pub fn max_age(&self) -> u64 {
        self.max_age_seconds
            .unwrap_or(if self.link { 86_400 } else { 3_600 })
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OAuthProvider {
    /// OIDC: the issuer, found by discovery.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Scopes asked for (default: the preset's, or `openid profile email`).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

impl BuiltInConfig {
    /// Checks every provider; the error names the provider.
    pub fn validate(&self) -> Result<(), String> {
        if self.providers.is_empty() {
            return Err("auth.builtIn.providers is empty: add at least one way to sign in".into());
        }
        if self.token.audience.is_empty() {
            return Err("auth.builtIn.token.audience is empty".into());
        }
        if !(60..=86_400).contains(&self.token.lifetime_seconds) {
            return Err("auth.builtIn.token.lifetimeSeconds must be between 60 and 86400".into());
        }
        if self.session.total_seconds < 60 || self.session.inactive_seconds < 60 {
            return Err("auth.builtIn.session durations must be at least 60 seconds".into());
        }
        if self.failed_attempts_per_hour == 0 || self.sends_per_hour == 0 {
            return Err(
                "auth.builtIn: failedAttemptsPerHour and sendsPerHour must be at least 1".into(),
            );
        }
        for origin in &self.redirect_origins {
            if !origin.contains("://") || origin.ends_with('/') && !origin.ends_with("://") {
                return Err(format!(
                    "auth.builtIn.redirectOrigins: {origin:?} is not an origin such as \"https://app.example.com\" or \"myapp://\""
                ));
            }
        }
        for (id, provider) in &self.providers {
            let valid_id = !id.is_empty()
                && id.len() <= 64
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid_id {
                return Err(format!(
                    "auth provider id {id:?}: use letters, digits, '-' and '_'"
                ));
            }
            provider
                .validate()
                .map_err(|e| format!("auth provider {id:?}: {e}"))?;
        }
        Ok(())
    }

    /// The provider called `id`.
    pub fn provider(&self, id: &str) -> Option<&SignInProvider> {
        self.providers.get(id)
    }
}

impl SignInProvider {
    fn validate(&self) -> Result<(), String> {
        match self {
            SignInProvider::Password(password) => {
                if password.min_length < 1 || password.max_length < password.min_length {
                    return Err("minLength must be at least 1 and at most maxLength".into());
                }
                if password.max_length > crate::password::MAX_PASSWORD_BYTES {
                    return Err(format!(
                        "maxLength is at most {}",
                        crate::password::MAX_PASSWORD_BYTES
                    ));
                }
                for message in [&password.verify, &password.reset].into_iter().flatten() {
                    if message.kind.as_deref().is_some_and(|kind| kind != "email") {
                        return Err("password reset and verification codes go by email: \"type\": \"email\"".into());
                    }
                    message.validate(false)?;
                }
                Ok(())
            }
            SignInProvider::Email(message) | SignInProvider::Phone(message)
                if message.kind.is_some() =>
            {
                Err("\"type\" is given once".into())
            }
            SignInProvider::Email(message) => message.validate(false),
            SignInProvider::Phone(message) => message.validate(true),
            SignInProvider::Anonymous {} => Ok(()),
            SignInProvider::Github(oauth)
            | SignInProvider::Google(oauth)
            | SignInProvider::Apple(oauth) => {
                if oauth.issuer.is_some() {
                    return Err(
                        "\"issuer\" is for \"type\": \"oidc\"; this preset knows its own".into(),
                    );
                }
                Ok(())
            }
            SignInProvider::Oidc(oauth) => {
                let issuer = oauth
                    .issuer
                    .as_deref()
                    .ok_or("an OIDC provider needs \"issuer\"")?;
                normalize_issuer(issuer).map(|_| ())
            }
        }
    }

    /// Whether signing in goes through a browser redirect.
    pub fn is_oauth(&self) -> bool {
        matches!(
            self,
            SignInProvider::Github(_)
                | SignInProvider::Google(_)
                | SignInProvider::Apple(_)
                | SignInProvider::Oidc(_)
        )
    }
}

impl MessageProvider {
    fn validate(&self, phone: bool) -> Result<(), String> {
        if !(6..=12).contains(&self.code_length) {
            return Err("codeLength must be between 6 and 12".into());
        }
        if let Some(age) = self.max_age_seconds
            && !(60..=7 * 86_400).contains(&age)
        {
            return Err("maxAgeSeconds must be between 60 and 604800".into());
        }
        if phone {
            let webhook = self
                .webhook
                .as_deref()
                .ok_or("a phone provider needs \"webhook\", the URL its messages are POSTed to")?;
            if !(webhook.starts_with("https://") || webhook.starts_with("http://")) {
                return Err(format!("webhook {webhook:?} is not an http(s) URL"));
            }
        } else if self.webhook.is_some() {
            return Err("\"webhook\" is for phone providers; email goes over SMTP".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> Result<BuiltInConfig, String> {
        let config: BuiltInConfig = serde_json::from_value(json).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    #[test]
    fn a_full_config_parses() {
        let config = parse(serde_json::json!({"providers": {
            "password": {"type": "password", "reset": {"type": "email"}},
            "email": {"type": "email", "link": true},
            "sms": {"type": "phone", "webhook": "https://sms.example.com/send"},
            "anonymous": {"type": "anonymous"},
            "github": {"type": "github"},
            "okta": {"type": "oidc", "issuer": "https://example.okta.com"},
        }}))
        .unwrap();
        assert_eq!(config.token.audience, "convex");
        assert!(config.provider("github").unwrap().is_oauth());
    }

    #[test]
    fn mistakes_are_named() {
        for (json, expected) in [
            (serde_json::json!({"providers": {}}), "empty"),
            (
                serde_json::json!({"providers": {"x": {"type": "saml"}}}),
                "unknown variant",
            ),
            (
                serde_json::json!({"providers": {"p": {"type": "password", "minLenght": 3}}}),
                "unknown field",
            ),
            (
                serde_json::json!({"providers": {"sms": {"type": "phone"}}}),
                "webhook",
            ),
            (
                serde_json::json!({"providers": {"o": {"type": "oidc"}}}),
                "issuer",
            ),
            (
                serde_json::json!({"providers": {"bad id": {"type": "anonymous"}}}),
                "letters",
            ),
            (
                serde_json::json!({"providers": {"a": {"type": "anonymous"}}, "token": {"audience": "x", "lifetimeSeconds": 5}}),
                "lifetimeSeconds",
            ),
        ] {
            let error = parse(json.clone()).unwrap_err();
            assert!(error.contains(expected), "{json}: {error}");
        }
    }
}
