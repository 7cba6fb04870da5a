//! Rate limits: a token bucket per client address and per identity, for
//! calls and for new sockets. A bucket holds `burst` tokens and refills at
//! `per_second`; a request takes one or waits (sockets) or is refused
//! (HTTP, 429 with `Retry-After`). Buckets of quiet clients are forgotten,
//! so the table stays within `max_clients`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use capstan_protocol::Clock;
use serde::Deserialize;

/// The rates of one kind of request.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests allowed at once after a quiet while.
    pub burst: f64,
}

/// `[rate_limits]`: for calls (HTTP and socket messages that run a
/// function) and for opening sockets, each applied per client address and
/// per signed-in identity. Admin and service keys are not limited.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    pub calls: Rate,
    pub sockets: Rate,
    /// Clients remembered at once; the quietest are forgotten first.
    pub max_clients: usize,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            calls: Rate {
                per_second: 200.0,
                burst: 1000.0,
            },
            sockets: Rate {
                per_second: 5.0,
                burst: 100.0,
            },
            max_clients: 100_000,
        }
    }
}

/// The server's limiters, shared by the HTTP API and the sockets.
#[derive(Debug)]
pub struct Limiters {
    pub calls: RateLimiter,
    pub sockets: RateLimiter,
}

impl Limiters {
    pub fn new(limits: &RateLimits, clock: &Clock) -> Limiters {
        Limiters {
            calls: RateLimiter::new(limits.calls, limits.max_clients, clock.clone()),
            sockets: RateLimiter::new(limits.sockets, limits.max_clients, clock.clone()),
        }
    }
}

/// The buckets a request from `client` by `identity` counts against:
/// none for admin and service keys.
pub fn keys(client: std::net::IpAddr, identity: &capstan_protocol::Identity) -> Vec<String> {
    use capstan_protocol::Identity;
    match identity {
        Identity::Admin { .. } | Identity::Service { .. } => Vec::new(),
        Identity::Anonymous => vec![format!("ip:{client}")],
        Identity::User(_) => vec![format!("ip:{client}"), identity.caller_key()],
    }
}

/// The answer to a request over its rate: 429 (a socket's upgrade
/// included), saying what came too often, with `Retry-After`.
pub fn refusal(what: &str, wait: Duration) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let error = crate::error::Error::new(
        capstan_protocol::ErrorCode::RateLimited,
        format!(
            "too many {what}; try again in {} ms",
            wait.as_millis().max(1)
        ),
    );
    let mut response = error.into_response();
    if let Ok(value) = axum::http::HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, value);
    }
    response
}

/// One kind of request's buckets.
#[derive(Debug)]
pub struct RateLimiter {
    rate: Rate,
    max_clients: usize,
    clock: Clock,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    pub fn new(rate: Rate, max_clients: usize, clock: Clock) -> RateLimiter {
        RateLimiter {
            rate,
            max_clients: max_clients.max(1),
            clock,
            buckets: Mutex::default(),
        }
    }

    /// Takes a token from each of `keys`' buckets, or none when one is
    /// empty: then how long until it holds one.
    pub fn take(&self, keys: &[&str]) -> Result<(), Duration> {
        if self.rate.per_second.is_nan() || self.rate.per_second <= 0.0 {
            return Ok(());
        }
        let now = self.clock.instant();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= self.max_clients {
            self.forget_quiet(&mut buckets, now);
        }
        let mut wait = Duration::ZERO;
        let mut refilled = Vec::with_capacity(keys.len());
        for key in keys {
            let mut bucket = buckets.get(*key).copied().unwrap_or(Bucket {
                tokens: self.rate.burst,
                at: now,
            });
            let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * self.rate.per_second).min(self.rate.burst);
            bucket.at = now;
            if bucket.tokens < 1.0 {
                wait = wait.max(Duration::from_secs_f64(
                    (1.0 - bucket.tokens) / self.rate.per_second,
                ));
            }
            refilled.push((*key, bucket));
        }
        let allowed = wait.is_zero();
        for (key, mut bucket) in refilled {
            if allowed {
                bucket.tokens -= 1.0;
            }
            buckets.insert(key.to_owned(), bucket);
        }
        if allowed { Ok(()) } else { Err(wait) }
    }

    /// Drops the buckets that are full again (their clients have been
    /// quiet), and if that is not enough, the least recently used half.
    fn forget_quiet(&self, buckets: &mut HashMap<String, Bucket>, now: Instant) {
        let rate = self.rate;
        buckets.retain(|_, bucket| {
            let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
            bucket.tokens + elapsed * rate.per_second < rate.burst
        });
        if buckets.len() >= self.max_clients {
            let mut ages: Vec<Instant> = buckets.values().map(|b| b.at).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            buckets.retain(|_, bucket| bucket.at > cut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_protocol::ManualClock;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let hand = ManualClock::new();
        let limiter = RateLimiter::new(
            Rate {
                per_second: 10.0,
                burst: 5.0,
            },
            100,
            hand.clock(),
        );
        for _ in 0..5 {
            limiter.take(&["ip:a"]).expect("within the burst");
        }
        let wait = limiter.take(&["ip:a"]).expect_err("empty");
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        // Another client is not held up.
        limiter.take(&["ip:b"]).expect("its own bucket");
        hand.advance(Duration::from_millis(100));
        limiter.take(&["ip:a"]).expect("refilled");
        limiter.take(&["ip:a"]).expect_err("empty again");
        // A request counts against every key it carries.
        limiter.take(&["ip:c", "id:x"]).expect("fresh");
        for _ in 0..4 {
            limiter.take(&["ip:d", "id:x"]).expect("x has room");
        }
        limiter.take(&["ip:e", "id:x"]).expect_err("x is empty");
    }

    #[test]
    fn the_table_of_clients_stays_bounded() {
        let hand = ManualClock::new();
        let limiter = RateLimiter::new(
            Rate {
                per_second: 1.0,
                burst: 2.0,
            },
            10,
            hand.clock(),
        );
        for i in 0..1000 {
            let key = format!("ip:{i}");
            limiter.take(&[&key]).expect("fresh");
            hand.advance(Duration::from_millis(1));
        }
        let held = limiter.buckets.lock().expect("unpoisoned").len();
        assert!(held <= 10, "{held}");
    }
}
