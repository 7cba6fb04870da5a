//! The token lifecycle, without I/O: when to fetch a token, when to
//! refresh it, and when to give up on the ones the server refuses
//! (modelled on the `convex` npm client's authentication manager).

use std::time::Duration;

use base64::Engine as _;

/// How long before a token's `exp` a fresh one is fetched.
pub const REFRESH_LEEWAY: Duration = Duration::from_secs(10);

/// How many refused tokens in a row before the client signs out.
pub const MAX_REFUSALS: u32 = 3;

/// What the driver should do next about the token.
#[derive(Clone, PartialEq, Eq)]
pub enum AuthStep {
    /// Call the fetcher (`force_refresh`: bypass any cached token).
    Fetch { force_refresh: bool },
    /// Send this token to the server.
    Use(String),
    /// Fetch a fresh token after this long.
    RefreshIn(Duration),
    /// Go on without a token (nothing to fetch, or the server kept refusing).
    SignOut,
    /// Nothing to do.
    Wait,
}

// Tokens are credentials: Debug never shows them.
impl std::fmt::Debug for AuthStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthStep::Fetch { force_refresh } => f
                .debug_struct("Fetch")
                .field("force_refresh", force_refresh)
                .finish(),
            AuthStep::Use(_) => f.write_str("Use(<token>)"),
            AuthStep::RefreshIn(delay) => f.debug_tuple("RefreshIn").field(delay).finish(),
            AuthStep::SignOut => f.write_str("SignOut"),
            AuthStep::Wait => f.write_str("Wait"),
        }
    }
}

/// The token state of one client.
#[derive(Default)]
pub struct AuthManager {
    /// Bumped by every `set_auth`/`clear_auth`, so a late fetch is dropped.
    generation: u64,
    active: bool,
    /// The token in use and whether it came from a forced (fresh) fetch.
    token: Option<(String, bool)>,
    refusals: u32,
    authenticated: bool,
}

impl std::fmt::Debug for AuthManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthManager")
            .field("generation", &self.generation)
            .field("active", &self.active)
            .field("has_token", &self.token.is_some())
            .field("refusals", &self.refusals)
            .field("authenticated", &self.authenticated)
            .finish()
    }
}

impl AuthManager {
    /// The application set a fetcher: fetch a (possibly cached) token.
    pub fn start(&mut self) -> (u64, AuthStep) {
        self.generation += 1;
        self.active = true;
        self.token = None;
        self.refusals = 0;
        (
            self.generation,
            AuthStep::Fetch {
                force_refresh: false,
            },
        )
    }

    /// The application signed out.
    pub fn clear(&mut self) {
        self.generation += 1;
        self.active = false;
        self.token = None;
        self.authenticated = false;
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// The fetcher of `generation` answered.
    pub fn fetched(
        &mut self,
        generation: u64,
        force_refresh: bool,
        token: Option<String>,
    ) -> AuthStep {
        if generation != self.generation || !self.active {
            return AuthStep::Wait;
        }
        match token {
            // The same token again: nothing to send (a confirmed one needs
            // only its refresh scheduled).
            Some(token) if self.token.as_ref().is_some_and(|(t, _)| *t == token) => {
                if let Some(entry) = self.token.as_mut() {
                    entry.1 |= force_refresh;
                }
                if self.authenticated {
                    schedule(&token)
                } else {
                    AuthStep::Wait
                }
            }
            Some(token) => {
                self.token = Some((token.clone(), force_refresh));
                AuthStep::Use(token)
            }
            None if !force_refresh => AuthStep::Fetch {
                force_refresh: true,
            },
            None => self.sign_out(),
        }
    }

    /// The server confirmed the token in use.
    pub fn accepted(&mut self) -> AuthStep {
        let Some((token, fresh)) = self.token.clone() else {
            return AuthStep::Wait;
        };
        self.authenticated = true;
        self.refusals = 0;
        if fresh {
            schedule(&token)
        } else {
            // A cached token worked: replace it with a fresh one at once.
            AuthStep::Fetch {
                force_refresh: true,
            }
        }
    }

    /// The server refused the token in use.
    pub fn refused(&mut self) -> AuthStep {
        if !self.active {
            return AuthStep::Wait;
        }
        self.refusals += 1;
        self.authenticated = false;
        if self.refusals >= MAX_REFUSALS {
            self.sign_out()
        } else {
            AuthStep::Fetch {
                force_refresh: true,
            }
        }
    }

    fn sign_out(&mut self) -> AuthStep {
        self.active = false;
        self.token = None;
        self.authenticated = false;
        AuthStep::SignOut
    }
}

fn schedule(token: &str) -> AuthStep {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    match refresh_delay(token, now) {
        Some(delay) => AuthStep::RefreshIn(delay),
        None => {
            tracing::warn!(
                "the auth token is not a JWT with a numeric exp; it will not be refreshed"
            );
            AuthStep::Wait
        }
    }
}

/// How long after receiving `token` (a JWT) to fetch its replacement:
/// [`REFRESH_LEEWAY`] before the end of its life, or halfway through it when
/// that is shorter; at least one second. Its life is `exp - iat`, as the
/// issuer meant it, so a skewed local clock does not matter; without `iat`,
/// `exp` minus `now` (Unix seconds). `None` when the token carries no
/// numeric `exp`.
pub fn refresh_delay(token: &str, now: u64) -> Option<Duration> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_f64()? as u64;
    let start = claims
        .get("iat")
        .and_then(serde_json::Value::as_f64)
        .map_or(now, |iat| iat as u64);
    let remaining = Duration::from_secs(exp.saturating_sub(start));
    let delay = if remaining > REFRESH_LEEWAY * 2 {
        remaining - REFRESH_LEEWAY
    } else {
        remaining / 2
    };
    Some(delay.max(Duration::from_secs(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: serde_json::Value) -> String {
        let encode = |v: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        format!(
            "{}.{}.signature",
            encode(&serde_json::json!({"alg": "RS256"})),
            encode(&claims)
        )
    }

    #[test]
    fn refresh_is_due_ten_seconds_before_expiry() {
        let token = jwt(serde_json::json!({"iat": 1_000, "exp": 4_600}));
        // The token's own life counts, whatever the local clock says.
        for now in [1_000, 4_590, 9_000] {
            assert_eq!(refresh_delay(&token, now), Some(Duration::from_secs(3_590)));
        }
        // Without iat, from now. Short-lived: halfway; expired: in a second.
        let token = jwt(serde_json::json!({"exp": 4_600}));
        assert_eq!(
            refresh_delay(&token, 1_000),
            Some(Duration::from_secs(3_590))
        );
        assert_eq!(refresh_delay(&token, 4_590), Some(Duration::from_secs(5)));
        assert_eq!(refresh_delay(&token, 9_000), Some(Duration::from_secs(1)));
        assert_eq!(refresh_delay("opaque", 0), None);
        assert_eq!(
            refresh_delay(&jwt(serde_json::json!({"sub": "x"})), 0),
            None
        );
    }

    #[test]
    fn a_cached_token_is_replaced_by_a_fresh_one_then_refreshed() {
        let mut auth = AuthManager::default();
        let (generation, step) = auth.start();
        assert_eq!(
            step,
            AuthStep::Fetch {
                force_refresh: false
            }
        );
        let far = jwt(serde_json::json!({"exp": 99_999_999_999u64}));
        assert_eq!(
            auth.fetched(generation, false, Some("cached".into())),
            AuthStep::Use("cached".into())
        );
        assert_eq!(
            auth.accepted(),
            AuthStep::Fetch {
                force_refresh: true
            }
        );
        assert!(auth.is_authenticated());
        assert_eq!(
            auth.fetched(generation, true, Some(far.clone())),
            AuthStep::Use(far.clone())
        );
        assert!(matches!(auth.accepted(), AuthStep::RefreshIn(_)));
        // A stale fetch (from before a new set_auth) is dropped.
        let (newer, _) = auth.start();
        assert_eq!(
            auth.fetched(generation, true, Some("old".into())),
            AuthStep::Wait
        );
        assert_eq!(
            auth.fetched(newer, false, None),
            AuthStep::Fetch {
                force_refresh: true
            }
        );
        assert_eq!(auth.fetched(newer, true, None), AuthStep::SignOut);
        assert!(!auth.is_authenticated());
    }

    #[test]
    fn three_refusals_sign_out() {
        let mut auth = AuthManager::default();
        let (generation, _) = auth.start();
        auth.fetched(generation, false, Some("bad".into()));
        for attempt in 1..MAX_REFUSALS {
            assert_eq!(
                auth.refused(),
                AuthStep::Fetch {
                    force_refresh: true
                },
                "attempt {attempt}"
            );
            auth.fetched(generation, true, Some(format!("bad {attempt}")));
        }
        assert_eq!(auth.refused(), AuthStep::SignOut);
        assert_eq!(auth.refused(), AuthStep::Wait);
    }

    #[test]
    fn debug_output_never_shows_a_token() {
        let mut auth = AuthManager::default();
        let (generation, _) = auth.start();
        let step = auth.fetched(generation, false, Some("secret-token".into()));
        assert!(!format!("{step:?} {auth:?}").contains("secret-token"));
    }
}
