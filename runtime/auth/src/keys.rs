//! A provider's signing keys: parsed from a JWKS, fetched (through OIDC
//! discovery or a configured URL), cached by `Cache-Control`, refetched on
//! an unknown `kid` at most once per refetch interval, and kept past their
//! time when the issuer cannot be reached (stale-if-error).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use capstan_protocol::Clock;
use jsonwebtoken::DecodingKey;

use crate::config::Algorithm;
use crate::error::AuthError;
use crate::verify::VerifierOptions;

/// Largest discovery document or JWKS read.
const MAX_DOCUMENT: usize = 1 << 20;
/// The smallest RSA modulus accepted (NIST's floor since 2013).
const MIN_RSA_BITS: usize = 2048;

/// The bit length of a JWK's base64url modulus.
fn rsa_modulus_bits(n: &str) -> Option<usize> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(n.trim_end_matches('='))
        .ok()?;
    let first = bytes.iter().position(|b| *b != 0)?;
    Some((bytes.len() - first) * 8 - bytes[first].leading_zeros() as usize)
}

/// The longest a response's `stale-if-error` keeps keys in use.
const MAX_STALE_IF_ERROR: Duration = Duration::from_secs(7 * 86_400);

/// One public key of a JWKS.
pub(crate) struct Key {
    pub kid: Option<String>,
    pub algorithm: Algorithm,
    pub decoding: DecodingKey,
}

/// The usable keys of a JWKS: keys of other types or uses are left out.
#[derive(Default)]
pub(crate) struct KeySet {
    pub keys: Vec<Key>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| (&k.kid, k.algorithm)))
            .finish()
    }
}

impl KeySet {
    /// Keeps the keys usable with one of `algorithms`. A key of a usable
    /// type that is malformed is an error; keys for encryption, other
    /// curves or symmetric keys are skipped.
    pub fn parse(jwks: &serde_json::Value, algorithms: &[Algorithm]) -> Result<KeySet, String> {
        let keys = jwks
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or("a JWKS is an object with a \"keys\" array")?;
        let mut set = KeySet::default();
        for (index, jwk) in keys.iter().enumerate() {
            let text = |field: &str| jwk.get(field).and_then(|v| v.as_str());
            if text("use").is_some_and(|usage| usage != "sig") {
                continue;
            }
            let algorithm = match (text("kty"), text("crv")) {
                (Some("RSA"), _) => Algorithm::Rs256,
                (Some("EC"), Some("P-256")) => Algorithm::Es256,
                (Some("OKP"), Some("Ed25519")) => Algorithm::EdDsa,
                _ => continue,
            };
            if !algorithms.contains(&algorithm) {
                continue;
            }
            if let Some(alg) = text("alg")
                && alg != algorithm.name()
            {
                continue;
            }
            let field = |name: &str| {
                text(name).ok_or_else(|| {
                    format!("key {index} ({} key) has no {name:?}", algorithm.key_type())
                })
            };
            if algorithm == Algorithm::Rs256 {
                let bits = rsa_modulus_bits(field("n")?).ok_or_else(|| {
                    format!("key {index} (RSA key) has an \"n\" that is not base64url")
                })?;
                if bits < MIN_RSA_BITS {
                    return Err(format!(
                        "key {index} is a {bits}-bit RSA key: RSA keys must have at least {MIN_RSA_BITS} bits"
                    ));
                }
            }
            let decoding = match algorithm {
                Algorithm::Rs256 => DecodingKey::from_rsa_components(field("n")?, field("e")?),
                Algorithm::Es256 => DecodingKey::from_ec_components(field("x")?, field("y")?),
                Algorithm::EdDsa => DecodingKey::from_ed_components(field("x")?),
            }
            .map_err(|e| format!("key {index} is invalid: {e}"))?;
            set.keys.push(Key {
                kid: text("kid").map(str::to_owned),
                algorithm,
                decoding,
            });
        }
        Ok(set)
    }

    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

/// Where a remote provider's JWKS is found.
#[derive(Debug)]
pub(crate) enum Location {
    /// OIDC: `<issuer>/.well-known/openid-configuration`, then its `jwks_uri`.
    Discovery {
        issuer: String,
    },
    Jwks {
        url: String,
    },
}

#[derive(Default)]
struct CacheState {
    keys: Option<Arc<KeySet>>,
    /// Until when the keys are used without asking the issuer again.
    fresh_until: Option<Instant>,
    /// Until when they are used if the issuer cannot be reached.
    stale_until: Option<Instant>,
    /// The last request to the issuer, successful or not.
    last_attempt: Option<Instant>,
    last_error: Option<String>,
}

/// The cached JWKS of one remote provider.
pub(crate) struct RemoteKeys {
    location: Location,
    algorithms: Vec<Algorithm>,
    state: Mutex<CacheState>,
    /// One fetch at a time; the others wait and use its result.
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for RemoteKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKeys")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// What the caller needs from the keys.
pub(crate) enum Want<'a> {
    Any,
    Kid(&'a str),
}

impl RemoteKeys {
    pub fn new(location: Location, algorithms: Vec<Algorithm>) -> Self {
        RemoteKeys {
            location,
            algorithms,
            state: Mutex::new(CacheState::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn issuer_label(&self) -> String {
        match &self.location {
            Location::Discovery { issuer } => issuer.clone(),
            Location::Jwks { url } => shown(url),
        }
    }

    /// The cached keys if they serve: fresh, and holding `want`'s kid or
    /// too recently fetched to ask again.
    fn cached(
        &self,
        want: &Want<'_>,
        now: Instant,
        options: &VerifierOptions,
    ) -> Option<Arc<KeySet>> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let keys = state.keys.as_ref()?;
        let fresh = state.fresh_until.is_some_and(|t| now < t);
        let holds = match want {
            Want::Any => true,
            Want::Kid(kid) => keys.has_kid(kid),
        };
        // Asked too recently to ask again: what is known serves, unless it
        // is past even its stale-if-error time.
        let recently_asked = state
            .last_attempt
            .is_some_and(|t| now.duration_since(t) < options.refetch_interval);
        let usable =
            (fresh && holds) || (recently_asked && state.stale_until.is_some_and(|t| now < t));
        usable.then(|| keys.clone())
    }

    /// The keys if they are still within their stale-if-error time.
    fn stale(&self, now: Instant) -> Option<Arc<KeySet>> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let usable = state.stale_until.is_some_and(|t| now < t);
        state.keys.clone().filter(|_| usable)
    }

    pub async fn get(
        &self,
        http: &reqwest::Client,
        want: Want<'_>,
        options: &VerifierOptions,
        clock: &Clock,
    ) -> Result<Arc<KeySet>, AuthError> {
        if let Some(keys) = self.cached(&want, clock.instant(), options) {
            return Ok(keys);
        }
        // Someone is already asking the issuer: keys within their
        // stale-if-error time serve now rather than wait for the answer.
        let _turn = match self.fetching.try_lock() {
            Ok(turn) => turn,
            Err(_) => {
                if let Some(keys) = self.stale(clock.instant()) {
                    return Ok(keys);
                }
                self.fetching.lock().await
            }
        };
        // Another caller may have fetched while this one waited.
        if let Some(keys) = self.cached(&want, clock.instant(), options) {
            return Ok(keys);
        }
        {
            // Never more than one request per interval, whatever is cached:
            // a flood of unknown kids, or of tokens while the issuer is
            // down, costs the issuer nothing.
            let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let now = clock.instant();
            let recently_asked = state
                .last_attempt
                .is_some_and(|t| now.saturating_duration_since(t) < options.refetch_interval);
            if recently_asked {
                return Err(AuthError::KeysUnavailable {
                    issuer: self.issuer_label(),
                    reason: state
                        .last_error
                        .clone()
                        .unwrap_or_else(|| "its keys expired and it was asked moments ago".into()),
                });
            }
        }
        let fetched = self.fetch(http, options).await;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = clock.instant();
        state.last_attempt = Some(now);
        match fetched {
            Ok((keys, policy)) => {
                let keys = Arc::new(keys);
                state.keys = Some(keys.clone());
                state.fresh_until = now.checked_add(policy.fresh);
                state.stale_until = now.checked_add(policy.fresh + policy.stale_if_error);
                state.last_error = None;
                Ok(keys)
            }
            Err(reason) => {
                tracing::warn!(issuer = %self.issuer_label(), %reason, "cannot refresh an auth provider's keys");
                state.last_error = Some(reason.clone());
                match &state.keys {
                    Some(keys) if state.stale_until.is_some_and(|t| now < t) => Ok(keys.clone()),
                    _ => Err(AuthError::KeysUnavailable {
                        issuer: self.issuer_label(),
                        reason,
                    }),
                }
            }
        }
    }

    async fn fetch(
        &self,
        http: &reqwest::Client,
        options: &VerifierOptions,
    ) -> Result<(KeySet, CachePolicy), String> {
        // An OIDC issuer may narrow the algorithms to those it says it
        // signs ID tokens with.
        let mut algorithms = self.algorithms.clone();
        // A data: JWKS in a discovery document lasts as long as the
        // document does: when the document changes, so may the keys.
        let mut discovery_policy = None;
        let jwks_url = match &self.location {
            Location::Jwks { url } => url.clone(),
            Location::Discovery { issuer } => {
                let target = format!("{issuer}/.well-known/openid-configuration");
                let url = shown(&target);
                let (document, policy) =
                    get_json(http, &target, &["application/json"], options).await?;
                discovery_policy = Some(policy);
                let found = document
                    .get("issuer")
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| format!("{url} has no \"issuer\""))?;
                if found.trim_end_matches('/') != issuer {
                    return Err(format!("{url} names the issuer {found:?}, not {issuer:?}"));
                }
                if let Some(listed) = document
                    .get("id_token_signing_alg_values_supported")
                    .and_then(|v| v.as_array())
                {
                    algorithms.retain(|a| listed.iter().any(|l| l.as_str() == Some(a.name())));
                }
                document
                    .get("jwks_uri")
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| format!("{url} has no \"jwks_uri\""))?
                    .to_owned()
            }
        };
        if let Some(inline) = jwks_url.strip_prefix("data:") {
            let jwks = decode_data_url(inline)?;
            let keys = KeySet::parse(&jwks, &algorithms)?;
            return Ok((keys, discovery_policy.unwrap_or_else(CachePolicy::forever)));
        }
        let (jwks, policy) = get_json(
            http,
            &jwks_url,
            &["application/json", "application/jwk-set+json"],
            options,
        )
        .await?;
        let keys = KeySet::parse(&jwks, &algorithms)
            .map_err(|e| format!("the JWKS at {} is invalid: {e}", shown(&jwks_url)))?;
        Ok((keys, policy))
    }
}

/// How long a response is used, from its `Cache-Control`, within the
/// verifier's floor and ceiling.
#[derive(Debug, PartialEq)]
pub(crate) struct CachePolicy {
    fresh: Duration,
    stale_if_error: Duration,
}

impl CachePolicy {
    fn forever() -> Self {
        CachePolicy {
            fresh: Duration::from_secs(100 * 365 * 86_400),
            stale_if_error: Duration::ZERO,
        }
    }

    pub fn from_header(header: Option<&str>, options: &VerifierOptions) -> Self {
        let mut max_age = None;
        let mut stale_if_error = None;
        let mut no_cache = false;
        for directive in header.unwrap_or("").split(',') {
            let directive = directive.trim().to_ascii_lowercase();
            let (name, value) = directive
                .split_once('=')
                .map_or((directive.as_str(), None), |(n, v)| {
                    (n, Some(v.trim_matches('"')))
                });
            let seconds = value.and_then(|v| v.parse::<u64>().ok());
            match name {
                "max-age" => max_age = seconds,
                "s-maxage" => max_age = max_age.or(seconds),
                "stale-if-error" => stale_if_error = seconds,
                "no-cache" | "no-store" => no_cache = true,
                _ => {}
            }
        }
        let fresh = if no_cache {
            options.min_cache
        } else {
            max_age
                .map(Duration::from_secs)
                .unwrap_or(options.default_cache)
                .clamp(options.min_cache, options.max_cache)
        };
        CachePolicy {
            fresh,
            stale_if_error: stale_if_error
                .map(Duration::from_secs)
                .unwrap_or(options.stale_if_error)
                .clamp(
                    options.stale_if_error,
                    MAX_STALE_IF_ERROR.max(options.stale_if_error),
                ),
        }
    }
}

async fn get_json(
    http: &reqwest::Client,
    target: &str,
    content_types: &[&str],
    options: &VerifierOptions,
) -> Result<(serde_json::Value, CachePolicy), String> {
    let url = shown(target);
    let mut response = http
        .get(target)
        .header(reqwest::header::ACCEPT, "application/json")
        .timeout(options.fetch_timeout)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {}", without_url(&e)))?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(format!("GET {url}: status {}", response.status()));
    }
    if let Some(value) = response.headers().get(reqwest::header::CONTENT_TYPE) {
        let essence = value
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !content_types.contains(&essence.as_str()) {
            return Err(format!(
                "GET {url}: content type {essence:?}, expected {}",
                content_types.join(" or ")
            ));
        }
    }
    let policy = CachePolicy::from_header(
        response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok()),
        options,
    );
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("GET {url}: {}", without_url(&e)))?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT {
            return Err(format!(
                "GET {url}: the response is over {MAX_DOCUMENT} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    let value = serde_json::from_slice(&body)
        .map_err(|e| format!("GET {url}: the response is not JSON: {e}"))?;
    Ok((value, policy))
}

fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(&format!(" ({url})"), "");
    }
    text
}

/// A URL as it may appear in messages: without credentials, query or
/// fragment, which can carry secrets.
pub(crate) fn shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => "(an invalid URL)".into(),
    }
}

/// The JSON in a `data:` URL (`data:application/json;base64,…` or
/// percent-encoded).
pub(crate) fn decode_data_url(rest: &str) -> Result<serde_json::Value, String> {
    let (meta, data) = rest
        .split_once(',')
        .ok_or("a data: URL needs a ',' before its data")?;
    let bytes = if meta.ends_with(";base64") {
        base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| format!("the data: URL is not valid base64: {e}"))?
    } else {
        percent_decode(data)?
    };
    serde_json::from_slice(&bytes).map_err(|e| format!("the data: URL does not hold JSON: {e}"))
}

fn percent_decode(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("the data: URL has a bad %-escape")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_lifetimes_follow_cache_control_within_bounds() {
        let options = VerifierOptions::default();
        let policy = |h: Option<&str>| CachePolicy::from_header(h, &options);
        assert_eq!(
            policy(Some("public, max-age=3600")).fresh,
            Duration::from_secs(3600)
        );
        assert_eq!(policy(Some("max-age=1")).fresh, options.min_cache);
        assert_eq!(policy(Some("max-age=99999999")).fresh, options.max_cache);
        assert_eq!(policy(Some("no-store")).fresh, options.min_cache);
        assert_eq!(policy(None).fresh, options.default_cache);
        assert_eq!(
            policy(Some(
                "max-age=15, stale-while-revalidate=15, stale-if-error=172800"
            ))
            .stale_if_error,
            Duration::from_secs(172_800)
        );
        // Absurd values are capped, so they cannot overflow an Instant.
        assert_eq!(
            policy(Some("stale-if-error=10000000000000000000")).stale_if_error,
            MAX_STALE_IF_ERROR
        );
    }

    /// A 2048-bit modulus (its shape is all these tests need).
    const N_2048: &str = "wMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwA";

    #[test]
    fn keys_of_other_kinds_are_skipped_and_broken_ones_refused() {
        let jwks = serde_json::json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"},
            {"kty": "RSA", "alg": "RS512", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "r", "n": N_2048, "e": "AQAB"},
        ]});
        let set = KeySet::parse(&jwks, &Algorithm::ALL).unwrap();
        assert_eq!(set.keys.len(), 1);
        assert_eq!(set.keys[0].kid.as_deref(), Some("r"));
        assert!(
            KeySet::parse(&jwks, &[Algorithm::Es256])
                .unwrap()
                .keys
                .is_empty()
        );
        let broken = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "AA"}]});
        assert!(
            KeySet::parse(&broken, &Algorithm::ALL)
                .unwrap_err()
                .contains("\"y\"")
        );
        assert!(KeySet::parse(&serde_json::json!([]), &Algorithm::ALL).is_err());
    }

    #[test]
    fn data_urls_decode() {
        assert_eq!(
            decode_data_url("application/json;base64,eyJrZXlzIjpbXX0=").unwrap(),
            serde_json::json!({"keys": []})
        );
        assert_eq!(
            decode_data_url("application/json,%7B%22keys%22%3A%5B%5D%7D").unwrap(),
            serde_json::json!({"keys": []})
        );
    }
}
