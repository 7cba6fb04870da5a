//! The auth section of an app's config: the token issuers it trusts.
//!
//! The fields follow Convex's `auth.config.ts`, so a config moves over as is:
//!
//! ```json
//! { "providers": [
//!     { "domain": "https://clerk.example.com", "applicationID": "convex" },
//!     { "type": "customJwt", "issuer": "https://auth.example.com",
//!       "jwks": "https://auth.example.com/.well-known/jwks.json",
//!       "algorithm": "ES256", "applicationID": "my-app" }
//! ] }
//! ```
//!
//! `jwks` may also be a JWKS object written inline. Every provider is
//! checked when the app is deployed ([`AuthConfig::validate`]); a bad one
//! fails the deploy with the reason.

use capstan_protocol::address::is_loopback;
use serde::{Deserialize, Serialize};

use crate::error::AuthError;

/// The providers, in the order tokens are matched against them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    /// Capstan signs users in itself ([`crate::built_in`]).
    #[serde(default, rename = "builtIn", skip_serializing_if = "Option::is_none")]
    pub built_in: Option<crate::built_in::BuiltInConfig>,
}

/// One provider as written in the config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProviderConfig {
    /// `"customJwt"` for a custom JWT provider; absent for OIDC.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// OIDC: the issuer URL, where discovery starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// The audience tokens must carry. Required for OIDC.
    #[serde(
        default,
        rename = "applicationID",
        skip_serializing_if = "Option::is_none"
    )]
    pub application_id: Option<String>,
    /// Custom JWT: the `iss` of its tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Custom JWT: a JWKS URL (`https:`, `http:` or `data:`), or the JWKS
    /// itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    /// Custom JWT: the one algorithm its tokens use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// OIDC: the algorithms accepted (default: RS256, ES256 and EdDSA, as
    /// far as the issuer's discovery document lists them in
    /// `id_token_signing_alg_values_supported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithms: Option<Vec<String>>,
}

/// The signature algorithms Capstan accepts. `none` and the HMAC family
/// are never accepted: a provider's keys are public.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Rs256,
    Es256,
    EdDsa,
}

impl Algorithm {
    pub const ALL: [Algorithm; 3] = [Algorithm::Rs256, Algorithm::Es256, Algorithm::EdDsa];

    pub fn parse(name: &str) -> Option<Algorithm> {
        match name {
            "RS256" => Some(Algorithm::Rs256),
            "ES256" => Some(Algorithm::Es256),
            "EdDSA" => Some(Algorithm::EdDsa),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Es256 => "ES256",
            Algorithm::EdDsa => "EdDSA",
        }
    }

    pub(crate) fn jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            Algorithm::Rs256 => jsonwebtoken::Algorithm::RS256,
            Algorithm::Es256 => jsonwebtoken::Algorithm::ES256,
            Algorithm::EdDsa => jsonwebtoken::Algorithm::EdDSA,
        }
    }

    /// The JWK `kty` of this algorithm's keys.
    pub(crate) fn key_type(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RSA",
            Algorithm::Es256 => "EC",
            Algorithm::EdDsa => "OKP",
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A provider checked and ready for use.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Provider {
    Oidc {
        issuer: String,
        application_id: String,
        algorithms: Vec<Algorithm>,
    },
    CustomJwt {
        issuer: String,
        application_id: Option<String>,
        algorithm: Algorithm,
        jwks: JwksSource,
    },
}

impl Provider {
    pub(crate) fn issuer(&self) -> &str {
        match self {
            Provider::Oidc { issuer, .. } | Provider::CustomJwt { issuer, .. } => issuer,
        }
    }

    pub(crate) fn application_id(&self) -> Option<&str> {
        match self {
            Provider::Oidc { application_id, .. } => Some(application_id),
            Provider::CustomJwt { application_id, .. } => application_id.as_deref(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum JwksSource {
    Url(String),
    Inline(serde_json::Value),
}

impl AuthConfig {
    /// Checks every provider; the error names the provider and the problem.
    pub fn validate(&self) -> Result<(), AuthError> {
        if let Some(built_in) = &self.built_in {
            built_in.validate().map_err(AuthError::InvalidConfig)?;
        }
        self.providers()
            .map(|_| ())
            .map_err(AuthError::InvalidConfig)
    }

    /// What a valid config allows that its author may not mean: a custom
    /// JWT provider without `applicationID` accepts its issuer's tokens
    /// for any audience, those meant for other apps included.
    pub fn warnings(&self) -> Vec<String> {
        self.providers
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.kind.as_deref() == Some("customJwt")
                    && p.application_id.as_deref().is_none_or(str::is_empty)
            })
            .map(|(index, p)| {
                format!(
                    "auth provider {index} ({}) has no \"applicationID\": tokens of that issuer are accepted whatever their audience",
                    p.issuer.as_deref().unwrap_or("?")
                )
            })
            .collect()
    }

    pub(crate) fn providers(&self) -> Result<Vec<Provider>, String> {
        self.providers
            .iter()
            .enumerate()
            .map(|(index, provider)| {
                provider
                    .check()
                    .map_err(|e| format!("auth provider {index}: {e}"))
            })
            .collect()
    }
}

impl ProviderConfig {
    fn check(&self) -> Result<Provider, String> {
        match self.kind.as_deref() {
            None | Some("oidc") => {
                for (field, present) in [
                    ("issuer", self.issuer.is_some()),
                    ("jwks", self.jwks.is_some()),
                    ("algorithm", self.algorithm.is_some()),
                ] {
                    if present {
                        return Err(format!(
                            "{field:?} belongs to custom JWT providers (\"type\": \"customJwt\"); an OIDC provider has \"domain\" and \"applicationID\""
                        ));
                    }
                }
                let domain = self
                    .domain
                    .as_deref()
                    .ok_or("an OIDC provider needs \"domain\", its issuer URL")?;
                let application_id = self
                    .application_id
                    .clone()
                    .filter(|id| !id.is_empty())
                    .ok_or(
                        "an OIDC provider needs \"applicationID\", the audience of its tokens",
                    )?;
                let algorithms = match &self.algorithms {
                    None => Algorithm::ALL.to_vec(),
                    Some(names) if names.is_empty() => {
                        return Err("\"algorithms\" is empty".into());
                    }
                    Some(names) => names
                        .iter()
                        .map(|name| parse_algorithm(name))
                        .collect::<Result<_, _>>()?,
                };
                Ok(Provider::Oidc {
                    issuer: normalize_issuer(domain)?,
                    application_id,
                    algorithms,
                })
            }
            Some("customJwt") => {
                if self.domain.is_some() {
                    return Err(
                        "a custom JWT provider names its \"issuer\", not a \"domain\"".into(),
                    );
                }
                if self.algorithms.is_some() {
                    return Err(
                        "a custom JWT provider has one \"algorithm\", not \"algorithms\"".into(),
                    );
                }
                let issuer = self
                    .issuer
                    .as_deref()
                    .ok_or("a custom JWT provider needs \"issuer\"")?;
                let algorithm =
                    parse_algorithm(self.algorithm.as_deref().ok_or(
                        "a custom JWT provider needs \"algorithm\" (RS256, ES256 or EdDSA)",
                    )?)?;
                let jwks = match &self.jwks {
                    None => {
                        return Err("a custom JWT provider needs \"jwks\", a URL or a JWKS".into());
                    }
                    Some(serde_json::Value::String(url)) => {
                        if !(url.starts_with("https://")
                            || url.starts_with("http://")
                            || url.starts_with("data:"))
                        {
                            return Err(format!(
                                "\"jwks\" must be an https:, http: or data: URL, or a JWKS object; got {url:?}"
                            ));
                        }
                        if let Some(rest) = url.strip_prefix("http://")
                            && !is_loopback(rest)
                        {
                            return Err(format!(
                                "\"jwks\" {url:?} is plain http: keys must come over https (http is for loopback only)"
                            ));
                        }
                        JwksSource::Url(url.clone())
                    }
                    Some(value @ serde_json::Value::Object(_)) => {
                        crate::keys::KeySet::parse(value, &[algorithm])
                            .map_err(|e| format!("the inline \"jwks\" is invalid: {e}"))?;
                        JwksSource::Inline(value.clone())
                    }
                    Some(_) => return Err("\"jwks\" must be a URL or a JWKS object".into()),
                };
                Ok(Provider::CustomJwt {
                    issuer: normalize_issuer(issuer)?,
                    application_id: self.application_id.clone().filter(|id| !id.is_empty()),
                    algorithm,
                    jwks,
                })
            }
            Some(other) => Err(format!(
                "unknown provider type {other:?}: use \"customJwt\", or no type for OIDC"
            )),
        }
    }
}

fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    Algorithm::parse(name)
        .ok_or_else(|| format!("algorithm {name:?} is not supported: use RS256, ES256 or EdDSA"))
}

/// An issuer as tokens carry it: a scheme (`https://` when none is
/// written), no trailing `/`.
pub fn normalize_issuer(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("the issuer is empty".into());
    }
    if text.starts_with('"') {
        return Err(format!("the issuer {text:?} starts with a quote"));
    }
    let with_scheme = if text.contains("://") {
        text.to_owned()
    } else {
        format!("https://{text}")
    };
    let (scheme, rest) = with_scheme
        .split_once("://")
        .ok_or_else(|| format!("{text:?} is not a URL"))?;
    if scheme != "https" && scheme != "http" {
        return Err(format!("the issuer {text:?} must be an http or https URL"));
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("the issuer {text:?} has no host"));
    }
    if scheme == "http" && !is_loopback(host) {
        return Err(format!(
            "the issuer {text:?} is plain http: its keys could be replaced on the way; use https (http is for loopback only)"
        ));
    }
    Ok(with_scheme.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: serde_json::Value) -> Result<(), String> {
        serde_json::from_value::<AuthConfig>(json)
            .map_err(|e| e.to_string())?
            .validate()
            .map_err(|e| match e {
                AuthError::InvalidConfig(reason) => reason,
                other => other.to_string(),
            })
    }

    #[test]
    fn convex_shaped_configs_are_accepted() {
        config(serde_json::json!({"providers": [
            {"domain": "https://clerk.example.com/", "applicationID": "convex"},
            {"domain": "auth.example.com", "applicationID": "app"},
            {"type": "customJwt", "issuer": "https://issuer.example.com",
             "jwks": "https://issuer.example.com/jwks", "algorithm": "ES256"},
            {"type": "customJwt", "issuer": "http://127.0.0.1:9000", "applicationID": "x",
             "jwks": {"keys": []}, "algorithm": "RS256"},
        ]}))
        .unwrap();
        config(serde_json::json!({})).unwrap();
    }

    #[test]
    fn bad_providers_are_refused_with_the_reason() {
        let cases = [
            (
                serde_json::json!({"domain": "https://a.example.com"}),
                "applicationID",
            ),
            (serde_json::json!({"applicationID": "x"}), "domain"),
            (
                serde_json::json!({"domain": "ftp://a.example.com", "applicationID": "x"}),
                "http or https",
            ),
            (
                serde_json::json!({"domain": "https://a.example.com", "applicationID": "x", "algorithms": ["HS256"]}),
                "not supported",
            ),
            (
                serde_json::json!({"type": "customJwt", "issuer": "https://a", "jwks": "https://a/j"}),
                "algorithm",
            ),
            (
                serde_json::json!({"type": "customJwt", "issuer": "https://a", "algorithm": "none", "jwks": "https://a/j"}),
                "not supported",
            ),
            (
                serde_json::json!({"type": "customJwt", "issuer": "https://a", "algorithm": "RS256"}),
                "jwks",
            ),
            (
                serde_json::json!({"type": "customJwt", "issuer": "https://a", "algorithm": "RS256", "jwks": "file:///etc/passwd"}),
                "URL",
            ),
            (
                serde_json::json!({"type": "customJwt", "issuer": "https://a", "algorithm": "RS256", "jwks": {"keys": [{"kty": "RSA"}]}}),
                "inline",
            ),
            (
                serde_json::json!({"type": "saml", "issuer": "https://a"}),
                "unknown provider type",
            ),
            (
                serde_json::json!({"domain": "https://a", "applicationID": "x", "jwks": "https://a/j"}),
                "custom JWT",
            ),
        ];
        for (provider, expected) in cases {
            let error = config(serde_json::json!({ "providers": [provider] })).unwrap_err();
            assert!(error.contains(expected), "{provider}: {error}");
            assert!(error.starts_with("auth provider 0"), "{error}");
        }
        let error = config(serde_json::json!({"providers": [{"domian": "x"}]})).unwrap_err();
        assert!(error.contains("unknown field"), "{error}");
    }

    #[test]
    fn issuers_are_normalized_like_tokens_carry_them() {
        assert_eq!(
            normalize_issuer("auth.example.com/").unwrap(),
            "https://auth.example.com"
        );
        assert_eq!(
            normalize_issuer("http://localhost:3000").unwrap(),
            "http://localhost:3000"
        );
        assert!(normalize_issuer("https://").is_err());
        assert!(normalize_issuer("\"https://a\"").is_err());
    }
}
