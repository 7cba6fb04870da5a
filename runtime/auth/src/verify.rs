//! Token verification: size, header, provider, algorithm, key, signature,
//! then claims, each failure its own [`AuthError`].

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use capstan_protocol::{Clock, UserIdentity};
use serde_json::{Map, Value};

use crate::config::{Algorithm, AuthConfig, JwksSource, Provider};
use crate::error::AuthError;
use crate::keys::{KeySet, Location, RemoteKeys, Want, decode_data_url};

/// Tunables of a [`Verifier`]. The defaults suit production.
#[derive(Clone, Debug)]
pub struct VerifierOptions {
    /// Larger tokens are refused unread.
    pub max_token_size: usize,
    /// Allowed clock difference for `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// Bounds on how long a fetched JWKS is trusted, whatever its
    /// `Cache-Control` says, and the lifetime when it says nothing.
    pub min_cache: Duration,
    pub max_cache: Duration,
    pub default_cache: Duration,
    /// How long keys past their time still serve while the issuer cannot
    /// be reached (at least; a longer `stale-if-error` wins).
    pub stale_if_error: Duration,
    /// The least time between two requests to one issuer: an unknown `kid`
    /// triggers a refetch no more often than this.
    pub refetch_interval: Duration,
    pub fetch_timeout: Duration,
}

impl Default for VerifierOptions {
    fn default() -> Self {
        VerifierOptions {
            max_token_size: 16 * 1024,
            leeway: Duration::from_secs(5),
            min_cache: Duration::from_secs(30),
            max_cache: Duration::from_secs(24 * 3600),
            default_cache: Duration::from_secs(10 * 60),
            stale_if_error: Duration::from_secs(24 * 3600),
            refetch_interval: Duration::from_secs(10),
            fetch_timeout: Duration::from_secs(5),
        }
    }
}

enum Keys {
    Inline(Arc<KeySet>),
    Remote(RemoteKeys),
    /// The server's own issuer: its keys, in process.
    Issuer(crate::issuer::IssuerKeys),
}

/// Verifies tokens against one auth config. Cheap to share; keys are cached
/// inside, so keep one per deployment.
pub struct Verifier {
    providers: Vec<(Provider, Keys)>,
    http: reqwest::Client,
    options: VerifierOptions,
    /// What `exp`, `nbf` and `iat` are judged by, and how long cached
    /// keys have been kept.
    clock: Clock,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field(
                "issuers",
                &self
                    .providers
                    .iter()
                    .map(|(p, _)| p.issuer())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Why a redirect from `previous` (the URLs so far) to `next` is not
/// followed: keys asked for over https stay on https, as a redirect to plain
/// http would let anyone on the way replace them; and at most 3 redirects.
fn redirect_refusal(previous: &[reqwest::Url], next: &reqwest::Url) -> Option<&'static str> {
    if next.scheme() != "https" && previous.iter().any(|url| url.scheme() == "https") {
        Some("a redirect from https to plain http was refused")
    } else if previous.len() > 3 {
        Some("more than 3 redirects")
    } else {
        None
    }
}

impl Verifier {
    pub fn new(
        config: &AuthConfig,
        options: VerifierOptions,
        clock: Clock,
    ) -> Result<Verifier, AuthError> {
        let invalid = AuthError::InvalidConfig;
        let mut providers = Vec::new();
        for provider in config.providers().map_err(invalid)? {
            let keys = match &provider {
                Provider::Oidc {
                    issuer, algorithms, ..
                } => Keys::Remote(RemoteKeys::new(
                    Location::Discovery {
                        issuer: issuer.clone(),
                    },
                    algorithms.clone(),
                )),
                Provider::CustomJwt {
                    jwks, algorithm, ..
                } => match jwks {
                    JwksSource::Inline(value) => Keys::Inline(Arc::new(
                        KeySet::parse(value, &[*algorithm]).map_err(invalid)?,
                    )),
                    JwksSource::Url(url) => match url.strip_prefix("data:") {
                        Some(data) => Keys::Inline(Arc::new(
                            KeySet::parse(&decode_data_url(data).map_err(invalid)?, &[*algorithm])
                                .map_err(invalid)?,
                        )),
                        None => Keys::Remote(RemoteKeys::new(
                            Location::Jwks { url: url.clone() },
                            vec![*algorithm],
                        )),
                    },
                },
            };
            providers.push((provider, keys));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(options.fetch_timeout)
            .redirect(reqwest::redirect::Policy::custom(
                |attempt| match redirect_refusal(attempt.previous(), attempt.url()) {
                    Some(reason) => attempt.error(reason),
                    None => attempt.follow(),
                },
            ))
            .build()
            .map_err(|e| {
                AuthError::InvalidConfig(format!(
                    "cannot build the HTTP client for auth providers: {e}"
                ))
            })?;
        Ok(Verifier {
            providers,
            http,
            options,
            clock,
        })
    }

    /// Trusts the server's own `issuer` too, before the configured
    /// providers: its tokens are checked like an OIDC provider's, with its
    /// keys read in process rather than fetched.
    pub fn trusting(mut self, issuer: &crate::issuer::Issuer) -> Verifier {
        self.providers.insert(
            0,
            (
                Provider::Oidc {
                    issuer: issuer.url.trim_end_matches('/').to_owned(),
                    application_id: issuer.audience.clone(),
                    algorithms: Algorithm::ALL.to_vec(),
                },
                Keys::Issuer(issuer.keys.clone()),
            ),
        );
        self
    }

    /// Whether any provider is configured.
    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    /// Verifies `token` now, by the verifier's clock.
    pub async fn verify(&self, token: &str) -> Result<UserIdentity, AuthError> {
        self.verify_at(token, self.clock.unix_seconds()).await
    }

    /// Verifies `token` as of `now` (seconds since the Unix epoch).
    pub async fn verify_at(&self, token: &str, now: u64) -> Result<UserIdentity, AuthError> {
        if token.len() > self.options.max_token_size {
            return Err(AuthError::TooLarge {
                size: token.len(),
                limit: self.options.max_token_size,
            });
        }
        let parts = Parts::split(token)?;
        let header = decode_object(parts.header, "header")?;
        let alg_name = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or_else(|| AuthError::Malformed("the header has no \"alg\"".into()))?;
        let algorithm = Algorithm::parse(alg_name)
            .ok_or_else(|| AuthError::AlgorithmNotAllowed(shorten(alg_name)))?;
        let kid = match header.get("kid") {
            None | Some(Value::Null) => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err(AuthError::Malformed("\"kid\" is not a string".into())),
        };
        let claims = decode_object(parts.payload, "payload")?;
        let (provider, keys) = self.route(&claims)?;

        match provider {
            Provider::Oidc { algorithms, .. } if !algorithms.contains(&algorithm) => {
                return Err(AuthError::AlgorithmMismatch {
                    found: algorithm.to_string(),
                    expected: algorithms
                        .iter()
                        .map(|a| a.name())
                        .collect::<Vec<_>>()
                        .join(", "),
                    issuer: provider.issuer().to_owned(),
                });
            }
            Provider::CustomJwt {
                algorithm: expected,
                ..
            } => {
                if *expected != algorithm {
                    return Err(AuthError::AlgorithmMismatch {
                        found: algorithm.to_string(),
                        expected: expected.to_string(),
                        issuer: provider.issuer().to_owned(),
                    });
                }
                if kid.is_none() {
                    return Err(AuthError::MissingKid);
                }
            }
            Provider::Oidc { .. } => {}
        }

        let set = match keys {
            Keys::Inline(set) => set.clone(),
            Keys::Issuer(keys) => keys.key_set(),
            Keys::Remote(remote) => {
                let want = kid.map_or(Want::Any, Want::Kid);
                remote
                    .get(&self.http, want, &self.options, &self.clock)
                    .await?
            }
        };
        let mut candidates = set
            .keys
            .iter()
            .filter(|key| key.algorithm == algorithm)
            .filter(|key| kid.is_none() || key.kid.as_deref() == kid);
        let key = match (candidates.next(), candidates.next()) {
            (Some(key), None) => key,
            (None, _) => {
                return Err(AuthError::NoMatchingKey {
                    issuer: provider.issuer().to_owned(),
                    kid: kid.map(shorten),
                    algorithm: algorithm.to_string(),
                });
            }
            (Some(_), Some(_)) => {
                return Err(AuthError::AmbiguousKey {
                    issuer: provider.issuer().to_owned(),
                });
            }
        };
        let valid = jsonwebtoken::crypto::verify(
            parts.signature,
            parts.signed.as_bytes(),
            &key.decoding,
            algorithm.jsonwebtoken(),
        )
        .unwrap_or(false);
        if !valid {
            return Err(AuthError::InvalidSignature);
        }

        let leeway = self.options.leeway.as_secs();
        let exp = time_claim(&claims, "exp")?.ok_or(AuthError::MissingClaim("exp"))?;
        if now > exp.saturating_add(leeway) {
            return Err(AuthError::Expired { seconds: now - exp });
        }
        if let Some(nbf) = time_claim(&claims, "nbf")?
            && nbf > now.saturating_add(leeway)
        {
            return Err(AuthError::NotYetValid { seconds: nbf - now });
        }
        // Convex does not range-check an OIDC token's `iat`; custom JWTs
        // must not be issued in the future.
        if let Some(iat) = time_claim(&claims, "iat")?
            && matches!(provider, Provider::CustomJwt { .. })
            && iat > now.saturating_add(leeway)
        {
            return Err(AuthError::IssuedInFuture { seconds: iat - now });
        }
        crate::identity::user_identity(
            provider.issuer(),
            &claims,
            matches!(provider, Provider::Oidc { .. }),
            exp,
        )
    }

    /// The first provider whose issuer is the token's `iss` and whose
    /// application ID, if it has one, is among the token's audiences.
    fn route(&self, claims: &Map<String, Value>) -> Result<&(Provider, Keys), AuthError> {
        let iss = match claims.get("iss") {
            Some(Value::String(iss)) => iss,
            Some(_) => {
                return Err(AuthError::InvalidClaim {
                    claim: "iss",
                    reason: "it must be a string".into(),
                });
            }
            None => return Err(AuthError::MissingClaim("iss")),
        };
        let issuer = if iss.contains("://") {
            iss.trim_end_matches('/').to_owned()
        } else {
            format!("https://{}", iss.trim_end_matches('/'))
        };
        let audiences: Vec<&str> = match claims.get("aud") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(aud)) => vec![aud.as_str()],
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            Some(_) => {
                return Err(AuthError::InvalidClaim {
                    claim: "aud",
                    reason: "it must be a string or an array of strings".into(),
                });
            }
        };
        let found = self
            .providers
            .iter()
            .find(|(provider, _)| {
                provider.issuer() == issuer
                    && provider
                        .application_id()
                        .is_none_or(|id| audiences.contains(&id))
            })
            .ok_or_else(|| AuthError::NoAuthProvider {
                issuer: shorten(iss),
                audience: shorten(&audiences.join(", ")),
            })?;
        // As Convex: an OIDC token also meant for other audiences is not
        // trusted.
        if let (Provider::Oidc { application_id, .. }, _) = found
            && audiences.iter().any(|aud| aud != application_id)
        {
            return Err(AuthError::InvalidClaim {
                claim: "aud",
                reason: format!(
                    "it names audiences besides {application_id:?}; an OIDC token for this app must name only it"
                ),
            });
        }
        Ok(found)
    }
}

/// Keeps attacker-chosen text in error messages short.
fn shorten(text: &str) -> String {
    const MAX: usize = 200;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

struct Parts<'a> {
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
    /// `header.payload`, what the signature covers.
    signed: &'a str,
}

impl<'a> Parts<'a> {
    fn split(token: &'a str) -> Result<Parts<'a>, AuthError> {
        let token = token.trim();
        let mut pieces = token.split('.');
        match (pieces.next(), pieces.next(), pieces.next(), pieces.next()) {
            (Some(header), Some(payload), Some(signature), None) => Ok(Parts {
                header,
                payload,
                signature,
                signed: &token[..header.len() + 1 + payload.len()],
            }),
            _ => Err(AuthError::Malformed(
                "a JWT has three '.'-separated parts".into(),
            )),
        }
    }
}

fn decode_object(part: &str, what: &str) -> Result<Map<String, Value>, AuthError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| AuthError::Malformed(format!("the {what} is not base64url")))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(AuthError::Malformed(format!(
            "the {what} is not a JSON object"
        ))),
    }
}

/// A NumericDate claim, in whole seconds.
fn time_claim(claims: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| f as u64)
        }) {
            Some(seconds) => Ok(Some(seconds)),
            None => Err(AuthError::InvalidClaim {
                claim: name,
                reason: "it must be a non-negative number of seconds".into(),
            }),
        },
        Some(_) => Err(AuthError::InvalidClaim {
            claim: name,
            reason: "it must be a number of seconds".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::redirect_refusal;

    #[test]
    fn redirects_never_leave_https_and_are_few() {
        let url = |text: &str| reqwest::Url::parse(text).expect("a URL");
        let https = url("https://issuer.example.com/jwks");
        let http = url("http://issuer.example.com/jwks");
        assert!(redirect_refusal(std::slice::from_ref(&https), &http).is_some());
        assert!(redirect_refusal(std::slice::from_ref(&https), &https).is_none());
        assert!(redirect_refusal(std::slice::from_ref(&http), &http).is_none());
        assert!(redirect_refusal(&[http.clone(), https.clone()], &http).is_some());
        let many = vec![https.clone(); 4];
        assert!(redirect_refusal(&many, &https).is_some());
    }
}
