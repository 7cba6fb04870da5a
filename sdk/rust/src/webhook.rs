//! Verifies that an incoming webhook was sent by the service that holds its secret: Stripe,
//! GitHub, and Svix / Standard Webhooks (Clerk, Resend, …).
//!
//! Each scheme is an HMAC-SHA256 over the raw request body (plus, for Stripe and Svix, a signed
//! timestamp that bounds replays). Verify the body exactly as received, before parsing it: a
//! re-serialised JSON body no longer matches its signature. Every comparison of a signature is
//! constant-time, and an empty secret is refused, so a missing secret in the configuration
//! cannot turn into "anyone can sign".
//!
//! The `sign_*` functions produce the header a sender would, for tests and for apps that send
//! webhooks themselves.
//!
//! The current time is a parameter rather than read here, so tests can pin it.

use std::fmt;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// How far a signed timestamp may be from now, either way, by default (Stripe's and Svix's
/// default).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_mins(5);

/// Why a webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookError {
    /// A header the scheme needs is absent; names the header, e.g. `"Stripe-Signature"`.
    MissingHeader(&'static str),
    /// A header is present but not in the scheme's format; names what is malformed.
    Malformed(&'static str),
    /// The secret cannot be used (empty, or not base64 where the scheme needs it); says why.
    InvalidSecret(&'static str),
    /// The headers are well formed but no signature in them matches the body and secret.
    BadSignature,
    /// The signature matches, but its timestamp is outside the tolerance: `age_seconds` is how
    /// long ago it was signed, negative for a timestamp in the future.
    Stale {
        /// Now minus the signed timestamp, in seconds (saturated to the `i64` range).
        age_seconds: i64,
    },
}

impl fmt::Display for WebhookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingHeader(header) => write!(f, "missing {header} header"),
            Self::Malformed(what) => write!(f, "malformed webhook signature: {what}"),
            Self::InvalidSecret(why) => write!(f, "invalid webhook secret: {why}"),
            Self::BadSignature => f.write_str("no webhook signature matches the body and secret"),
            Self::Stale { age_seconds } if *age_seconds >= 0 => write!(
                f,
                "webhook timestamp is {age_seconds}s old, outside the allowed tolerance"
            ),
            Self::Stale { age_seconds } => write!(
                f,
                "webhook timestamp is {}s in the future, outside the allowed tolerance",
                age_seconds.unsigned_abs()
            ),
        }
    }
}

impl std::error::Error for WebhookError {}

const STRIPE_HEADER: &str = "Stripe-Signature";
const GITHUB_HEADER: &str = "X-Hub-Signature-256";
const GITHUB_PREFIX: &str = "sha256=";
const SVIX_SECRET_PREFIX: &str = "whsec_";
/// Length of an HMAC-SHA256 tag in bytes.
const TAG_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// Verifies a Stripe webhook.
///
/// The `Stripe-Signature` header reads `t=<unix seconds>,v1=<hex>[,v1=<hex>…]`; each `v1` is
/// an HMAC-SHA256, keyed with the endpoint secret exactly as Stripe shows it (the whole
/// `whsec_…` string), of `"<t>.<body>"`. Stripe sends several `v1` while a secret is being
/// rolled, so any one matching is enough. Other entries (`v0`, future schemes) are ignored.
/// A matching signature whose `t` is more than `tolerance` away from `now`, either way, is
/// refused as [`WebhookError::Stale`]; pass [`DEFAULT_TOLERANCE`] unless you have a reason not
/// to.
///
/// # Errors
///
/// [`WebhookError::MissingHeader`] without a header, [`WebhookError::Malformed`] for a header
/// that is not in Stripe's format, [`WebhookError::InvalidSecret`] for an empty secret,
/// [`WebhookError::BadSignature`] when no `v1` matches, and [`WebhookError::Stale`] for a
/// timestamp outside the tolerance.
///
/// # Example
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use capstan::webhook::{DEFAULT_TOLERANCE, WebhookError, sign_stripe, verify_stripe};
///
/// let secret = "whsec_test_secret";
/// let body = br#"{"id":"evt_1","object":"event"}"#;
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let header = sign_stripe(secret, 1_700_000_000, body);
///
/// assert_eq!(verify_stripe(secret, Some(&header), body, now, DEFAULT_TOLERANCE), Ok(()));
/// assert_eq!(
///     verify_stripe(secret, Some(&header), b"tampered", now, DEFAULT_TOLERANCE),
///     Err(WebhookError::BadSignature)
/// );
/// ```
pub fn verify_stripe(
    secret: &str,
    header: Option<&str>,
    body: &[u8],
    now: SystemTime,
    tolerance: Duration,
) -> Result<(), WebhookError> {
    check_not_empty(secret.as_bytes())?;
    let header = header.ok_or(WebhookError::MissingHeader(STRIPE_HEADER))?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for entry in header.split(',') {
        let (key, value) = entry.trim().split_once('=').ok_or(WebhookError::Malformed(
            "a Stripe-Signature entry is not key=value",
        ))?;
        match key {
            "t" if timestamp.is_some() => {
                return Err(WebhookError::Malformed(
                    "Stripe-Signature has more than one timestamp",
                ));
            }
            "t" => {
                let seconds = parse_timestamp(value).ok_or(WebhookError::Malformed(
                    "Stripe-Signature timestamp is not a whole number of seconds",
                ))?;
                timestamp = Some((value, seconds));
            }
            "v1" => signatures.push(decode_hex_tag(value).ok_or(WebhookError::Malformed(
                "a Stripe-Signature v1 signature is not 64 hex digits",
            ))?),
            _ => {}
        }
    }
    let (timestamp_text, timestamp) =
        timestamp.ok_or(WebhookError::Malformed("Stripe-Signature has no timestamp"))?;
    if signatures.is_empty() {
        return Err(WebhookError::Malformed(
            "Stripe-Signature has no v1 signature",
        ));
    }
    // The text of `t` is what was signed, so sign that rather than a re-formatted number.
    let mac = hmac_of(secret.as_bytes(), &[timestamp_text.as_bytes(), b".", body]);
    check_any_matches(&mac, &signatures)?;
    check_fresh(timestamp, now, tolerance)
}

/// The `Stripe-Signature` header value Stripe would send for `body` at `timestamp` (Unix
/// seconds): `t=<timestamp>,v1=<hex>`.
///
/// # Example
///
/// ```
/// use capstan::webhook::sign_stripe;
///
/// let header = sign_stripe("whsec_test_secret", 1_700_000_000, b"{}");
/// assert!(header.starts_with("t=1700000000,v1="));
/// ```
#[must_use]
pub fn sign_stripe(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    let tag = hmac_of(secret.as_bytes(), &[timestamp.as_bytes(), b".", body]).finalize();
    format!("t={timestamp},v1={}", encode_hex(&tag.into_bytes()))
}

/// Verifies a GitHub webhook.
///
/// The `X-Hub-Signature-256` header reads `sha256=<hex>`: an HMAC-SHA256 of the raw body keyed
/// with the webhook's secret. GitHub signs no timestamp, so nothing here bounds replays; use
/// the `X-GitHub-Delivery` id to drop duplicates if that matters.
///
/// # Errors
///
/// [`WebhookError::MissingHeader`] without a header, [`WebhookError::Malformed`] for a header
/// that is not `sha256=` and 64 hex digits, [`WebhookError::InvalidSecret`] for an empty
/// secret, and [`WebhookError::BadSignature`] when the signature does not match.
///
/// # Example
///
/// ```
/// use capstan::webhook::{sign_github, verify_github};
///
/// let secret = "It's a Secret to Everybody";
/// let header = sign_github(secret, b"Hello, World!");
/// assert_eq!(
///     header,
///     "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
/// );
/// assert_eq!(verify_github(secret, Some(&header), b"Hello, World!"), Ok(()));
/// ```
pub fn verify_github(secret: &str, header: Option<&str>, body: &[u8]) -> Result<(), WebhookError> {
    check_not_empty(secret.as_bytes())?;
    let header = header.ok_or(WebhookError::MissingHeader(GITHUB_HEADER))?;
    let hex = header
        .trim()
        .strip_prefix(GITHUB_PREFIX)
        .ok_or(WebhookError::Malformed(
            "X-Hub-Signature-256 does not start with sha256=",
        ))?;
    let signature = decode_hex_tag(hex).ok_or(WebhookError::Malformed(
        "X-Hub-Signature-256 signature is not 64 hex digits",
    ))?;
    check_any_matches(&hmac_of(secret.as_bytes(), &[body]), &[signature])
}

/// The `X-Hub-Signature-256` header value GitHub would send for `body`: `sha256=<hex>`.
///
/// # Example
///
/// ```
/// use capstan::webhook::sign_github;
///
/// assert!(sign_github("secret", b"{}").starts_with("sha256="));
/// ```
#[must_use]
pub fn sign_github(secret: &str, body: &[u8]) -> String {
    let tag = hmac_of(secret.as_bytes(), &[body]).finalize();
    format!("{GITHUB_PREFIX}{}", encode_hex(&tag.into_bytes()))
}

/// The three headers of a Svix / Standard Webhooks delivery, each `None` when absent.
///
/// Svix names them `svix-id`, `svix-timestamp` and `svix-signature`; the Standard Webhooks
/// spec names them `webhook-id`, `webhook-timestamp` and `webhook-signature`. Either set works;
/// [`SvixHeaders::from_lookup`] picks whichever the request has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SvixHeaders<'a> {
    /// The message id (`svix-id` / `webhook-id`), signed so a signature cannot move to another
    /// message.
    pub id: Option<&'a str>,
    /// Unix seconds when the message was signed (`svix-timestamp` / `webhook-timestamp`).
    pub timestamp: Option<&'a str>,
    /// Space-separated `v1,<base64>` signatures (`svix-signature` / `webhook-signature`).
    pub signature: Option<&'a str>,
}

impl<'a> SvixHeaders<'a> {
    /// Reads the three headers through `header`, a lookup by lower-case header name, trying
    /// the `svix-` name first and then the `webhook-` one.
    ///
    /// # Example
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use capstan::webhook::SvixHeaders;
    ///
    /// let request: HashMap<&str, &str> = HashMap::from([
    ///     ("webhook-id", "msg_1"),
    ///     ("webhook-timestamp", "1700000000"),
    ///     ("webhook-signature", "v1,c2lnbmF0dXJl"),
    /// ]);
    /// let headers = SvixHeaders::from_lookup(|name| request.get(name).copied());
    /// assert_eq!(headers.id, Some("msg_1"));
    /// ```
    pub fn from_lookup(header: impl Fn(&str) -> Option<&'a str>) -> Self {
        let either = |svix: &str, standard: &str| header(svix).or_else(|| header(standard));
        Self {
            id: either("svix-id", "webhook-id"),
            timestamp: either("svix-timestamp", "webhook-timestamp"),
            signature: either("svix-signature", "webhook-signature"),
        }
    }
}

/// Verifies a Svix / Standard Webhooks delivery (Clerk, Resend, …).
///
/// The signed content is `"<id>.<timestamp>.<body>"`; the key is the base64 decoding of the
/// secret after its `whsec_` prefix (a secret without the prefix is decoded whole). The
/// signature header holds space-separated `v1,<base64>` entries, several while a secret is
/// being rolled, and any one matching is enough; entries of other versions (such as the
/// asymmetric `v1a`) are ignored. A matching signature whose timestamp is more than
/// `tolerance` away from `now`, either way, is refused as [`WebhookError::Stale`].
///
/// # Errors
///
/// [`WebhookError::MissingHeader`] for an absent header, [`WebhookError::Malformed`] for a
/// header not in the scheme's format, [`WebhookError::InvalidSecret`] for a secret that is not
/// base64 or is empty, [`WebhookError::BadSignature`] when no `v1` entry matches, and
/// [`WebhookError::Stale`] for a timestamp outside the tolerance.
///
/// # Example
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use capstan::webhook::{DEFAULT_TOLERANCE, SvixHeaders, verify_svix};
///
/// // The example from the Standard Webhooks spec.
/// let headers = SvixHeaders {
///     id: Some("msg_p5jXN8AQM9LWM0D4loKWxJek"),
///     timestamp: Some("1614265330"),
///     signature: Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
/// };
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_614_265_330);
/// let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// let body = br#"{"test": 2432232314}"#;
/// assert_eq!(verify_svix(secret, headers, body, now, DEFAULT_TOLERANCE), Ok(()));
/// ```
pub fn verify_svix(
    secret: &str,
    headers: SvixHeaders<'_>,
    body: &[u8],
    now: SystemTime,
    tolerance: Duration,
) -> Result<(), WebhookError> {
    let key = decode_svix_secret(secret)?;
    let id = headers
        .id
        .ok_or(WebhookError::MissingHeader("svix-id (or webhook-id)"))?;
    let timestamp_text = headers.timestamp.ok_or(WebhookError::MissingHeader(
        "svix-timestamp (or webhook-timestamp)",
    ))?;
    let header = headers.signature.ok_or(WebhookError::MissingHeader(
        "svix-signature (or webhook-signature)",
    ))?;
    let timestamp = parse_timestamp(timestamp_text).ok_or(WebhookError::Malformed(
        "svix-timestamp is not a whole number of seconds",
    ))?;
    let mut signatures = Vec::new();
    for entry in header.split_ascii_whitespace() {
        if let Some(encoded) = entry.strip_prefix("v1,") {
            signatures.push(decode_base64_tag(encoded).ok_or(WebhookError::Malformed(
                "a svix-signature v1 entry is not the base64 of 32 bytes",
            ))?);
        }
    }
    if signatures.is_empty() {
        return Err(WebhookError::Malformed(
            "svix-signature has no v1 signature",
        ));
    }
    let mac = hmac_of(
        &key,
        &[id.as_bytes(), b".", timestamp_text.as_bytes(), b".", body],
    );
    check_any_matches(&mac, &signatures)?;
    check_fresh(timestamp, now, tolerance)
}

/// The `svix-signature` header value Svix would send for message `id` and `body` at
/// `timestamp` (Unix seconds): `v1,<base64>`.
///
/// # Errors
///
/// [`WebhookError::InvalidSecret`] when the secret is not base64 (after an optional `whsec_`
/// prefix) or decodes to nothing.
///
/// # Example
///
/// ```
/// use capstan::webhook::sign_svix;
///
/// let signature = sign_svix(
///     "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
///     "msg_p5jXN8AQM9LWM0D4loKWxJek",
///     1_614_265_330,
///     br#"{"test": 2432232314}"#,
/// );
/// assert_eq!(
///     signature.as_deref(),
///     Ok("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
/// );
/// ```
pub fn sign_svix(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, WebhookError> {
    let key = decode_svix_secret(secret)?;
    let timestamp = timestamp.to_string();
    let tag = hmac_of(
        &key,
        &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
    )
    .finalize();
    Ok(format!("v1,{}", BASE64.encode(tag.into_bytes())))
}

/// An HMAC-SHA256 keyed with `key`, fed `parts` in order (so the signed content is never
/// copied into one buffer).
fn hmac_of(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    // HMAC is defined for keys of every length (long ones are hashed first), and the hmac
    // crate never returns this error for it.
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        unreachable!("HMAC accepts keys of any length")
    };
    for part in parts {
        mac.update(part);
    }
    mac
}

/// Ok when one of `signatures` is the tag of `mac`, each compared in constant time.
fn check_any_matches(mac: &HmacSha256, signatures: &[[u8; TAG_LEN]]) -> Result<(), WebhookError> {
    // `verify_slice` compares in constant time; which entry matched is no secret, so stopping
    // at the first match leaks nothing.
    if signatures
        .iter()
        .any(|signature| mac.clone().verify_slice(signature).is_ok())
    {
        Ok(())
    } else {
        Err(WebhookError::BadSignature)
    }
}

/// Ok when `timestamp` (Unix seconds) is within `tolerance` of `now`, either way.
fn check_fresh(timestamp: i64, now: SystemTime, tolerance: Duration) -> Result<(), WebhookError> {
    let now_seconds = match now.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(since) => i128::from(since.as_secs()),
        Err(before) => -i128::from(before.duration().as_secs()),
    };
    // i128 holds any difference of these, so a hostile timestamp cannot overflow it.
    let age = now_seconds - i128::from(timestamp);
    if age.unsigned_abs() <= u128::from(tolerance.as_secs()) {
        Ok(())
    } else {
        let age_seconds = i64::try_from(age).unwrap_or(if age < 0 { i64::MIN } else { i64::MAX });
        Err(WebhookError::Stale { age_seconds })
    }
}

fn check_not_empty(key: &[u8]) -> Result<(), WebhookError> {
    if key.is_empty() {
        Err(WebhookError::InvalidSecret("the secret is empty"))
    } else {
        Ok(())
    }
}

/// Unix seconds written as plain decimal digits. Signs and spaces are refused because the text
/// is signed as written, and a second spelling of the same number is only room for confusion.
fn parse_timestamp(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn decode_svix_secret(secret: &str) -> Result<Vec<u8>, WebhookError> {
    let encoded = secret.strip_prefix(SVIX_SECRET_PREFIX).unwrap_or(secret);
    let key = BASE64.decode(encoded).map_err(|_| {
        WebhookError::InvalidSecret("the secret is not base64 (after its whsec_ prefix)")
    })?;
    check_not_empty(&key)?;
    Ok(key)
}

fn decode_base64_tag(encoded: &str) -> Option<[u8; TAG_LEN]> {
    BASE64.decode(encoded).ok()?.try_into().ok()
}

/// Lower-case hex, as GitHub and Stripe send it.
fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    hex
}

/// Exactly 64 hex digits (either case) as 32 bytes, or `None`.
fn decode_hex_tag(hex: &str) -> Option<[u8; TAG_LEN]> {
    fn nibble(digit: u8) -> Option<u8> {
        match digit {
            b'0'..=b'9' => Some(digit - b'0'),
            b'a'..=b'f' => Some(digit - b'a' + 10),
            b'A'..=b'F' => Some(digit - b'A' + 10),
            _ => None,
        }
    }
    let digits = hex.as_bytes();
    if digits.len() != TAG_LEN * 2 {
        return None;
    }
    let mut tag = [0; TAG_LEN];
    for (byte, pair) in tag.iter_mut().zip(digits.chunks_exact(2)) {
        let [high, low] = pair else { return None };
        *byte = (nibble(*high)? << 4) | nibble(*low)?;
    }
    Some(tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use WebhookError::{BadSignature, InvalidSecret, Malformed, MissingHeader, Stale};

    const STRIPE_SECRET: &str = "whsec_test_secret";
    const STRIPE_BODY: &[u8] = br#"{"id":"evt_test_webhook","object":"event"}"#;
    const STRIPE_T: i64 = 1_492_774_577;
    /// Stripe's scheme computed independently:
    /// `printf '%s' '1492774577.{"id":"evt_test_webhook","object":"event"}'
    /// | openssl dgst -sha256 -hmac whsec_test_secret`
    const STRIPE_V1: &str = "88a022085c6bdb887b02cb26ff76dd681234d9675c0f22844059f55552a8883a";

    const GITHUB_SECRET: &str = "It's a Secret to Everybody";
    const GITHUB_BODY: &[u8] = b"Hello, World!";
    /// GitHub's documented example.
    const GITHUB_SIGNATURE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    const SVIX_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SVIX_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SVIX_T: i64 = 1_614_265_330;
    const SVIX_BODY: &[u8] = br#"{"test": 2432232314}"#;
    /// The Standard Webhooks spec's example, also checked with `openssl dgst -sha256 -mac HMAC
    /// -macopt hexkey:<hex of the base64 key> -binary | base64`.
    const SVIX_V1: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    const OTHER_SVIX_SECRET: &str = "whsec_b3RoZXIgc2VjcmV0";

    fn at(seconds: i64) -> SystemTime {
        let offset = Duration::from_secs(seconds.unsigned_abs());
        if seconds >= 0 {
            SystemTime::UNIX_EPOCH + offset
        } else {
            SystemTime::UNIX_EPOCH - offset
        }
    }

    fn stripe(header: &str, body: &[u8], now: i64) -> Result<(), WebhookError> {
        verify_stripe(
            STRIPE_SECRET,
            Some(header),
            body,
            at(now),
            DEFAULT_TOLERANCE,
        )
    }

    fn github(header: &str, body: &[u8], secret: &str) -> Result<(), WebhookError> {
        verify_github(secret, Some(header), body)
    }

    /// Verifies `SVIX_BODY` with `SVIX_SECRET` at `SVIX_T`.
    fn svix(id: &str, timestamp: &str, signature: &str) -> Result<(), WebhookError> {
        let headers = SvixHeaders {
            id: Some(id),
            timestamp: Some(timestamp),
            signature: Some(signature),
        };
        verify_svix(
            SVIX_SECRET,
            headers,
            SVIX_BODY,
            at(SVIX_T),
            DEFAULT_TOLERANCE,
        )
    }

    #[test]
    fn stripe_signature_matches_openssl() {
        let expected = format!("t={STRIPE_T},v1={STRIPE_V1}");
        assert_eq!(sign_stripe(STRIPE_SECRET, STRIPE_T, STRIPE_BODY), expected);
    }

    #[test]
    fn stripe_accepts_its_signature_within_tolerance_either_way() {
        let header = format!("t={STRIPE_T},v1={STRIPE_V1}");
        for now in [STRIPE_T, STRIPE_T + 300, STRIPE_T - 300] {
            assert_eq!(stripe(&header, STRIPE_BODY, now), Ok(()), "now {now}");
        }
    }

    #[test]
    fn stripe_refuses_malformed_headers_each_with_its_own_error() {
        const NOT_KEY_VALUE: WebhookError = Malformed("a Stripe-Signature entry is not key=value");
        const NO_T: WebhookError = Malformed("Stripe-Signature has no timestamp");
        const TWO_T: WebhookError = Malformed("Stripe-Signature has more than one timestamp");
        const BAD_T: WebhookError =
            Malformed("Stripe-Signature timestamp is not a whole number of seconds");
        const NO_V1: WebhookError = Malformed("Stripe-Signature has no v1 signature");
        const BAD_V1: WebhookError =
            Malformed("a Stripe-Signature v1 signature is not 64 hex digits");
        let (t, v1) = (STRIPE_T, STRIPE_V1);
        let cases = [
            (String::new(), NOT_KEY_VALUE),
            (format!("t={t},v1"), NOT_KEY_VALUE),
            (format!("v1={v1}"), NO_T),
            (GITHUB_SIGNATURE.to_owned(), NO_T),
            (format!("t={t},t={t},v1={v1}"), TWO_T),
            (format!("t=abc,v1={v1}"), BAD_T),
            (format!("t=,v1={v1}"), BAD_T),
            (format!("t=-5,v1={v1}"), BAD_T),
            (format!("t=+{t},v1={v1}"), BAD_T),
            (format!("t=99999999999999999999,v1={v1}"), BAD_T),
            (format!("t={t}"), NO_V1),
            (format!("t={t},v0={v1}"), NO_V1),
            (format!("t={t},v1={}", &v1[1..]), BAD_V1),
            (format!("t={t},v1={v1}00"), BAD_V1),
            (format!("t={t},v1={}", "zz".repeat(32)), BAD_V1),
        ];
        for (header, expected) in cases {
            assert_eq!(stripe(&header, STRIPE_BODY, t), Err(expected), "{header:?}");
        }
        let missing = verify_stripe(STRIPE_SECRET, None, STRIPE_BODY, at(t), DEFAULT_TOLERANCE);
        assert_eq!(missing, Err(MissingHeader("Stripe-Signature")));
    }

    #[test]
    fn stripe_refuses_tampering_and_wrong_secrets() {
        let good = format!("t={STRIPE_T},v1={STRIPE_V1}");
        let tampered: &[u8] = br#"{"id":"evt_test_webhook","object":"event"} "#;
        assert_eq!(stripe(&good, tampered, STRIPE_T), Err(BadSignature));
        let wrong_secret = sign_stripe("whsec_other", STRIPE_T, STRIPE_BODY);
        assert_eq!(
            stripe(&wrong_secret, STRIPE_BODY, STRIPE_T),
            Err(BadSignature)
        );
        // A signature does not carry over to another timestamp.
        let moved = format!("t={},v1={STRIPE_V1}", STRIPE_T + 1);
        assert_eq!(stripe(&moved, STRIPE_BODY, STRIPE_T), Err(BadSignature));
    }

    #[test]
    fn stripe_refuses_stale_and_future_timestamps() {
        let good = format!("t={STRIPE_T},v1={STRIPE_V1}");
        let cases = [(301, 301), (-301, -301), (-STRIPE_T, -STRIPE_T)];
        for (shift, age_seconds) in cases {
            let result = stripe(&good, STRIPE_BODY, STRIPE_T + shift);
            assert_eq!(result, Err(Stale { age_seconds }), "shift {shift}");
        }
    }

    #[test]
    fn stripe_accepts_any_one_matching_v1_and_ignores_other_schemes() {
        let rolled = sign_stripe("whsec_old", STRIPE_T, STRIPE_BODY);
        let old_v1 = rolled.trim_start_matches(&format!("t={STRIPE_T},v1="));
        let v0 = "6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39";
        let header = format!("t={STRIPE_T}, v1={old_v1}, v1={STRIPE_V1}, v0={v0}");
        assert_eq!(stripe(&header, STRIPE_BODY, STRIPE_T), Ok(()));
        let upper = format!("t={STRIPE_T},v1={}", STRIPE_V1.to_uppercase());
        assert_eq!(stripe(&upper, STRIPE_BODY, STRIPE_T), Ok(()));
    }

    #[test]
    fn stripe_timestamps_at_the_edges_of_i64_are_stale_not_overflows() {
        let far_future = sign_stripe(STRIPE_SECRET, i64::MAX, STRIPE_BODY);
        let age_seconds = i64::MIN;
        assert_eq!(
            stripe(&far_future, STRIPE_BODY, -1),
            Err(Stale { age_seconds })
        );
        let epoch = sign_stripe(STRIPE_SECRET, 0, STRIPE_BODY);
        assert_eq!(stripe(&epoch, STRIPE_BODY, 0), Ok(()));
        // A `now` before 1970 works too.
        let age_seconds = -400;
        assert_eq!(
            stripe(&epoch, STRIPE_BODY, -400),
            Err(Stale { age_seconds })
        );
    }

    #[test]
    fn stripe_with_an_unbounded_tolerance_accepts_any_age() {
        let header = sign_stripe(STRIPE_SECRET, 0, STRIPE_BODY);
        let now = at(STRIPE_T);
        let result = verify_stripe(
            STRIPE_SECRET,
            Some(&header),
            STRIPE_BODY,
            now,
            Duration::MAX,
        );
        assert_eq!(result, Ok(()));
    }

    #[test]
    fn empty_secrets_are_refused_rather_than_signing_with_no_key() {
        let empty = Err(InvalidSecret("the secret is empty"));
        let header = sign_stripe("", STRIPE_T, STRIPE_BODY);
        let now = at(STRIPE_T);
        let stripe_result = verify_stripe("", Some(&header), STRIPE_BODY, now, DEFAULT_TOLERANCE);
        assert_eq!(stripe_result, empty);
        let header = sign_github("", GITHUB_BODY);
        assert_eq!(verify_github("", Some(&header), GITHUB_BODY), empty);
        for secret in ["", "whsec_"] {
            let signed = sign_svix(secret, SVIX_ID, SVIX_T, SVIX_BODY);
            assert_eq!(signed.map(drop), empty, "{secret:?}");
        }
    }

    #[test]
    fn github_documented_example_verifies() {
        assert_eq!(sign_github(GITHUB_SECRET, GITHUB_BODY), GITHUB_SIGNATURE);
        assert_eq!(github(GITHUB_SIGNATURE, GITHUB_BODY, GITHUB_SECRET), Ok(()));
    }

    #[test]
    fn github_key_longer_than_a_block_matches_openssl() {
        // printf '%s' 'Hello, World!' | openssl dgst -sha256 -hmac "$(printf 'k%.0s' $(seq 100))"
        let expected = "sha256=98770ab6dcb734ea4c447bc78208fa9ee4391a72de3939d0abccf83c92083795";
        assert_eq!(sign_github(&"k".repeat(100), GITHUB_BODY), expected);
    }

    #[test]
    fn github_refuses_malformed_headers_each_with_its_own_error() {
        const NO_PREFIX: WebhookError =
            Malformed("X-Hub-Signature-256 does not start with sha256=");
        const NOT_HEX: WebhookError =
            Malformed("X-Hub-Signature-256 signature is not 64 hex digits");
        let hex = GITHUB_SIGNATURE.trim_start_matches("sha256=");
        let cases = [
            (String::new(), NO_PREFIX),
            (hex.to_owned(), NO_PREFIX),
            (format!("sha1={hex}"), NO_PREFIX),
            (format!("SHA256={hex}"), NO_PREFIX),
            ("sha256=".to_owned(), NOT_HEX),
            (format!("sha256={}", &hex[1..]), NOT_HEX),
            (format!("sha256={}g", &hex[1..]), NOT_HEX),
            (format!("sha256={hex}{hex}"), NOT_HEX),
        ];
        for (header, expected) in cases {
            let result = github(&header, GITHUB_BODY, GITHUB_SECRET);
            assert_eq!(result, Err(expected), "{header:?}");
        }
        let missing = verify_github(GITHUB_SECRET, None, GITHUB_BODY);
        assert_eq!(missing, Err(MissingHeader("X-Hub-Signature-256")));
    }

    #[test]
    fn github_refuses_tampering_and_wrong_secrets() {
        let cases: [(&[u8], &str); 3] = [
            (b"Hello, World?", GITHUB_SECRET),
            (b"", GITHUB_SECRET),
            (GITHUB_BODY, "It's a secret to everybody"),
        ];
        for (body, secret) in cases {
            assert_eq!(
                github(GITHUB_SIGNATURE, body, secret),
                Err(BadSignature),
                "{secret}"
            );
        }
    }

    #[test]
    fn svix_documented_example_verifies() {
        let signed = sign_svix(SVIX_SECRET, SVIX_ID, SVIX_T, SVIX_BODY);
        assert_eq!(signed.as_deref(), Ok(SVIX_V1));
        assert_eq!(svix(SVIX_ID, "1614265330", SVIX_V1), Ok(()));
    }

    #[test]
    fn svix_secret_without_prefix_is_base64_as_is() {
        let bare = SVIX_SECRET.trim_start_matches("whsec_");
        let signed = sign_svix(bare, SVIX_ID, SVIX_T, SVIX_BODY);
        assert_eq!(signed.as_deref(), Ok(SVIX_V1));
    }

    #[test]
    fn svix_accepts_any_one_matching_v1_and_ignores_other_versions() {
        let rolled = sign_svix(OTHER_SVIX_SECRET, SVIX_ID, SVIX_T, SVIX_BODY).unwrap();
        let header = format!("v1a,c2lnbmF0dXJl {rolled}  {SVIX_V1} v2,abc");
        assert_eq!(svix(SVIX_ID, "1614265330", &header), Ok(()));
    }

    #[test]
    fn svix_refuses_missing_headers_naming_them() {
        let cases = [
            (None, Some("1"), Some("v1,"), "svix-id (or webhook-id)"),
            (
                Some("a"),
                None,
                Some("v1,"),
                "svix-timestamp (or webhook-timestamp)",
            ),
            (
                Some("a"),
                Some("1"),
                None,
                "svix-signature (or webhook-signature)",
            ),
        ];
        for (id, timestamp, signature, header) in cases {
            let headers = SvixHeaders {
                id,
                timestamp,
                signature,
            };
            let result = verify_svix(
                SVIX_SECRET,
                headers,
                SVIX_BODY,
                at(SVIX_T),
                DEFAULT_TOLERANCE,
            );
            assert_eq!(result, Err(MissingHeader(header)));
        }
    }

    #[test]
    fn svix_refuses_malformed_headers_each_with_its_own_error() {
        const BAD_T: WebhookError = Malformed("svix-timestamp is not a whole number of seconds");
        const NO_V1: WebhookError = Malformed("svix-signature has no v1 signature");
        const BAD_V1: WebhookError =
            Malformed("a svix-signature v1 entry is not the base64 of 32 bytes");
        let t = "1614265330";
        let bare = SVIX_V1.trim_start_matches("v1,");
        let unpadded = bare.trim_end_matches('=');
        let cases = [
            ("", SVIX_V1, BAD_T),
            ("16142653e0", SVIX_V1, BAD_T),
            (" 1614265330", SVIX_V1, BAD_T),
            ("-1614265330", SVIX_V1, BAD_T),
            ("99999999999999999999", SVIX_V1, BAD_T),
            (t, "", NO_V1),
            (t, "v1a,c2lnbmF0dXJl", NO_V1),
            (t, bare, NO_V1),
            (t, &format!("v1={bare}"), NO_V1),
            (t, "v1,not base64!", BAD_V1),
            (t, &format!("v1,{unpadded}"), BAD_V1),
            (t, "v1,c2lnbmF0dXJl", BAD_V1),
            (t, "v1,", BAD_V1),
        ];
        for (timestamp, signature, expected) in cases {
            let result = svix(SVIX_ID, timestamp, signature);
            assert_eq!(result, Err(expected), "{timestamp:?} {signature:?}");
        }
    }

    #[test]
    fn svix_refuses_signatures_over_other_content() {
        let cases = [
            ("msg_other", "1614265330"),
            (SVIX_ID, "1614265331"),
            // Leading zeros spell the same number but not the signed text.
            (SVIX_ID, "01614265330"),
        ];
        for (id, timestamp) in cases {
            assert_eq!(
                svix(id, timestamp, SVIX_V1),
                Err(BadSignature),
                "{id} {timestamp}"
            );
        }
        let headers = SvixHeaders {
            id: Some(SVIX_ID),
            timestamp: Some("1614265330"),
            signature: Some(SVIX_V1),
        };
        let now = at(SVIX_T);
        let tampered = br#"{"test": 2432232315}"#;
        let result = verify_svix(SVIX_SECRET, headers, tampered, now, DEFAULT_TOLERANCE);
        assert_eq!(result, Err(BadSignature));
        let result = verify_svix(
            OTHER_SVIX_SECRET,
            headers,
            SVIX_BODY,
            now,
            DEFAULT_TOLERANCE,
        );
        assert_eq!(result, Err(BadSignature));
    }

    #[test]
    fn svix_refuses_stale_and_future_timestamps() {
        for shift in [-301, 301] {
            let signed_at = SVIX_T - shift;
            let signature = sign_svix(SVIX_SECRET, SVIX_ID, signed_at, SVIX_BODY).unwrap();
            let result = svix(SVIX_ID, &signed_at.to_string(), &signature);
            assert_eq!(result, Err(Stale { age_seconds: shift }));
        }
    }

    #[test]
    fn svix_secret_that_is_not_base64_is_refused() {
        let expected = Err(InvalidSecret(
            "the secret is not base64 (after its whsec_ prefix)",
        ));
        let headers = SvixHeaders {
            id: Some(SVIX_ID),
            timestamp: Some("1614265330"),
            signature: Some(SVIX_V1),
        };
        let now = at(SVIX_T);
        for secret in [
            "whsec_not base64!",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",
            "sk_%%%",
        ] {
            let result = verify_svix(secret, headers, SVIX_BODY, now, DEFAULT_TOLERANCE);
            assert_eq!(result, expected, "{secret}");
            let signed = sign_svix(secret, SVIX_ID, SVIX_T, SVIX_BODY);
            assert_eq!(signed.map(drop), expected, "{secret}");
        }
    }

    #[test]
    fn svix_headers_come_from_either_naming() {
        let svix_named = |name: &str| match name {
            "svix-id" => Some("a"),
            "svix-timestamp" => Some("1"),
            "svix-signature" => Some("v1,x"),
            "webhook-id" => Some("ignored"),
            _ => None,
        };
        let expected = SvixHeaders {
            id: Some("a"),
            timestamp: Some("1"),
            signature: Some("v1,x"),
        };
        assert_eq!(SvixHeaders::from_lookup(svix_named), expected);
        let standard_named = |name: &str| match name {
            "webhook-id" => Some("a"),
            "webhook-timestamp" => Some("1"),
            "webhook-signature" => Some("v1,x"),
            _ => None,
        };
        assert_eq!(SvixHeaders::from_lookup(standard_named), expected);
        assert_eq!(SvixHeaders::from_lookup(|_| None), SvixHeaders::default());
    }

    #[test]
    fn errors_read_as_english() {
        let cases = [
            (
                MissingHeader("Stripe-Signature"),
                "missing Stripe-Signature header",
            ),
            (
                Malformed("Stripe-Signature has no timestamp"),
                "malformed webhook signature: Stripe-Signature has no timestamp",
            ),
            (
                InvalidSecret("the secret is empty"),
                "invalid webhook secret: the secret is empty",
            ),
            (
                BadSignature,
                "no webhook signature matches the body and secret",
            ),
            (
                Stale { age_seconds: 301 },
                "webhook timestamp is 301s old, outside the allowed tolerance",
            ),
            (
                Stale {
                    age_seconds: i64::MIN,
                },
                "webhook timestamp is 9223372036854775808s in the future, outside the allowed \
                 tolerance",
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(error.to_string(), expected);
        }
    }

    #[test]
    fn hex_round_trips_and_refuses_non_hex() {
        let tag: [u8; TAG_LEN] = std::array::from_fn(|i| u8::try_from(i * 8).unwrap());
        assert_eq!(decode_hex_tag(&encode_hex(&tag)), Some(tag));
        assert_eq!(decode_hex_tag(&"é".repeat(32)), None);
        assert_eq!(decode_hex_tag(&"+1".repeat(32)), None);
    }
}
