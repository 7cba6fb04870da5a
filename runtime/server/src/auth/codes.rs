//! One-time codes and links: made, stored hashed (SHA-256) with their
//! expiry and the address they were sent to, delivered, and exchanged for a
//! session once.
//!
//! A typed code is looked up through the account of the address it came
//! with, never by its hash alone, so a short code sent to one address
//! cannot sign in another. Links and OAuth hand-offs carry 32 random
//! letters and digits and may be looked up by hash. Failed attempts are
//! counted per address, or per client address when none is given; sends
//! are counted per address and per client address.

use capstan_auth::built_in::{MessageProvider, SignInProvider};
use capstan_protocol::Value;
use capstan_store::Document;
use serde_json::Value as Json;

use super::accounts::{self, Attempts, Link, Profile};
use super::flows::{SignedIn, param, start_session};
use super::messages::Message;
use super::records::{self, ALPHANUMERIC, DIGITS, Tx, float, object, string};
use super::tables::CODES;
use super::{AuthError, Flow};

/// Letters and digits in a code carried by a link.
pub const LINK_CODE_LENGTH: usize = 32;

/// A new code: digits to type, or a long one for a link.
fn new_code(settings: &MessageProvider) -> String {
    if settings.link {
        records::random_text(ALPHANUMERIC, LINK_CODE_LENGTH)
    } else {
        records::random_text(DIGITS, settings.code_length)
    }
}

/// The address in `params` (`email` or `phone`), normalised.
fn address(params: &Json, phone: bool) -> Result<Option<String>, AuthError> {
    match (phone, param(params, "email"), param(params, "phone")) {
        (false, Some(email), _) => accounts::normalize_email(email).map(Some),
        (true, _, Some(phone)) => accounts::normalize_phone(phone).map(Some),
        _ => Ok(None),
    }
}

fn client_key(flow: &Flow<'_>, what: &str) -> String {
    match flow.caller.client {
        Some(ip) => format!("{what}-ip:{ip}"),
        None => format!("{what}-ip:none"),
    }
}

/// Spends one send from the address's and the client's budgets, or
/// refuses.
async fn take_send(flow: &Flow<'_>, address: &str) -> Result<(), AuthError> {
    let per_address = format!("send:{address}");
    let per_client = client_key(flow, "send");
    let max = flow.config.sends_per_hour;
    let allowed = flow
        .auth
        .transact(|tx, now| {
            let address = Attempts {
                identifier: &per_address,
                max_per_hour: max,
            };
            let client = Attempts {
                identifier: &per_client,
                max_per_hour: max.saturating_mul(10),
            };
            if !(address.allowed(tx, now)? && client.allowed(tx, now)?) {
                return Ok(false);
            }
            address.spend(tx, now)?;
            client.spend(tx, now)?;
            Ok(true)
        })
        .await?;
    if allowed {
        Ok(())
    } else {
        Err(AuthError::refused(
            "TooManyRequests",
            "Too many codes were sent: try again later",
        ))
    }
}

/// Replaces the account's code by a new one's hash.
pub(super) fn store_code(
    tx: &mut Tx,
    account: &Document,
    provider: &str,
    code: &str,
    expires: f64,
    contact: (Option<&str>, Option<&str>),
    verifier: Option<&str>,
) -> Result<(), AuthError> {
    for old in records::find(
        tx,
        CODES,
        "accountId",
        &[("accountId", Value::from(account.id.to_string()))],
        None,
    )? {
        tx.delete(old.id)?;
    }
    tx.insert(
        CODES,
        object([
            ("accountId", string(account.id.to_string())),
            ("provider", string(provider)),
            ("code", string(records::digest(code))),
            ("expirationTime", float(expires)),
            ("verifier", verifier.and_then(string)),
            ("emailVerified", contact.0.and_then(string)),
            ("phoneVerified", contact.1.and_then(string)),
        ]),
    )?;
    Ok(())
}

/// The link a code is sent in: `redirectTo` (checked) or `SITE_URL`, with
/// `?code=`.
fn link(flow: &Flow<'_>, params: &Json, code: &str) -> Result<String, AuthError> {
    let base = super::redirects::destination(flow, param(params, "redirectTo"))?;
    Ok(super::redirects::with_code(&base, code))
}

/// Sends a sign-in code or link for an email or phone provider (`signIn`
/// without `code`). The account is made now, unverified, so the code has
/// one to belong to; no session starts until the code comes back.
pub async fn send_sign_in_code(
    flow: &Flow<'_>,
    provider: &str,
    settings: &MessageProvider,
    phone: bool,
    params: &Json,
) -> Result<(), AuthError> {
    let address = address(params, phone)?.ok_or_else(|| {
        AuthError::refused(
            "InvalidArguments",
            if phone {
                "Missing `phone` param"
            } else {
                "Missing `email` param"
            },
        )
    })?;
    take_send(flow, &address).await?;
    let code = new_code(settings);
    let url = settings
        .link
        .then(|| link(flow, params, &code))
        .transpose()?;
    let expires_in = settings.max_age() as f64 * 1000.0;
    let link_to = match flow.auth.session_of(&flow.caller.identity) {
        Some((user, _)) => Link::ToUser(user),
        None => Link::ByProvenContact,
    };
    let mut profile = Profile {
        email: (!phone).then(|| address.clone()),
        phone: phone.then(|| address.clone()),
        ..Default::default()
    };
    let kind = if phone { "phone" } else { "email" };
    let extra = super::hooks::user_fields(flow, provider, kind, &profile, params).await?;
    profile.fields.extend(extra);
    let created = flow
        .auth
        .transact(|tx, now| {
            let (account, created) = match accounts::find(tx, provider, &address)? {
                Some(account) => (account, None),
                None => {
                    let (account, user) = accounts::create(
                        tx,
                        provider,
                        &address,
                        None,
                        &profile,
                        link_to.clone(),
                        now,
                    )?;
                    (account, Some(user))
                }
            };
            let contact = if phone {
                (None, Some(address.as_str()))
            } else {
                (Some(address.as_str()), None)
            };
            store_code(
                tx,
                &account,
                provider,
                &code,
                now + expires_in,
                contact,
                None,
            )?;
            Ok(created)
        })
        .await?;
    if let Some(user) = created {
        super::hooks::after_user(flow, &user, provider, kind, true).await?;
    }
    deliver(flow, provider, settings, phone, &address, &code, url).await
}

/// Sends a code for an existing password account (`reset` or `verify`);
/// nothing, and the same answer, when there is no such account.
pub async fn send_account_code(
    flow: &Flow<'_>,
    provider: &str,
    purpose: &str,
    settings: &MessageProvider,
    email: &str,
) -> Result<(), AuthError> {
    take_send(flow, email).await?;
    let code = new_code(settings);
    let expires_in = settings.max_age() as f64 * 1000.0;
    let issuer = format!("{provider}:{purpose}");
    let sent = flow
        .auth
        .transact(|tx, now| {
            let Some(account) = accounts::find(tx, provider, email)? else {
                return Ok(false);
            };
            store_code(
                tx,
                &account,
                &issuer,
                &code,
                now + expires_in,
                (Some(email), None),
                None,
            )?;
            Ok(true)
        })
        .await?;
    if sent {
        let url = settings
            .link
            .then(|| link(flow, &Json::Null, &code))
            .transpose()?;
        deliver(flow, provider, settings, false, email, &code, url).await?;
    }
    Ok(())
}

async fn deliver(
    flow: &Flow<'_>,
    provider: &str,
    settings: &MessageProvider,
    phone: bool,
    address: &str,
    code: &str,
    url: Option<String>,
) -> Result<(), AuthError> {
    let minutes = settings.max_age().div_ceil(60);
    // The site by its name, as people know it.
    let site_url = flow
        .environment
        .get("SITE_URL")
        .map(|s| s.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| flow.auth.issuer.url.clone());
    let site = site_url
        .split_once("://")
        .map_or(site_url.as_str(), |(_, host)| host)
        .to_owned();
    let default_template = match (&url, phone) {
        (Some(_), _) => {
            "Sign in to {site} by opening this link:\n\n{url}\n\nIt works once, for {minutes} minutes. If you did not ask for it, ignore this message."
        }
        (None, false) => {
            "Your code for {site} is {code}\n\nIt works once, for {minutes} minutes. If you did not ask for it, ignore this message."
        }
        (None, true) => "Your code for {site} is {code}. It works for {minutes} minutes.",
    };
    let text = settings
        .template
        .as_deref()
        .unwrap_or(default_template)
        .replace("{code}", code)
        .replace("{url}", url.as_deref().unwrap_or(""))
        .replace("{minutes}", &minutes.to_string())
        .replace("{identifier}", address)
        .replace("{site}", &site);
    let message = Message {
        channel: if phone { "sms" } else { "email" },
        to: address.to_owned(),
        subject: settings
            .subject
            .clone()
            .unwrap_or_else(|| format!("Sign in to {site}")),
        text,
        code: code.to_owned(),
        url,
    };
    if phone {
        let webhook = settings
            .webhook
            .as_deref()
            .ok_or_else(|| AuthError::internal("a phone provider has no webhook"))?;
        let key_name = format!("AUTH_{}_KEY", provider.to_uppercase().replace('-', "_"));
        flow.auth
            .messenger
            .sms(
                webhook,
                flow.environment.get(&key_name).map(String::as_str),
                message,
            )
            .await
    } else {
        flow.auth
            .messenger
            .email(flow.environment, settings.from.as_deref(), message)
            .await
    }
}

/// What a code check concluded.
enum Found {
    /// The code is right: the code row and its account.
    Valid { code: Document, account: Document },
    /// Wrong, expired or used.
    Invalid,
}

/// Checks `presented` against `row` for `verifier`, deleting it if
/// expired.
fn check_row(
    tx: &mut Tx,
    row: Document,
    presented: &str,
    verifier: Option<&str>,
    now: f64,
) -> Result<Found, AuthError> {
    let stored = records::text(&row, "code").unwrap_or("");
    if !capstan_protocol::constant_time_eq(stored.as_bytes(), records::digest(presented).as_bytes())
    {
        return Ok(Found::Invalid);
    }
    if records::text(&row, "verifier") != verifier {
        return Ok(Found::Invalid);
    }
    if records::number(&row, "expirationTime").is_none_or(|exp| exp < now) {
        tx.delete(row.id)?;
        return Ok(Found::Invalid);
    }
    let Some(account) = records::get(
        tx,
        super::tables::ACCOUNTS,
        records::text(&row, "accountId").unwrap_or(""),
    )?
    else {
        return Ok(Found::Invalid);
    };
    Ok(Found::Valid { code: row, account })
}

/// Exchanges a code from a sign-in message or an OAuth hand-off for a
/// session (`signIn` with `params.code`). With `provider`, only its codes
/// count; an address in `params` must be the one the code was sent to.
pub async fn verify_and_sign_in(
    flow: &Flow<'_>,
    presented: &str,
    params: &Json,
    provider: Option<&str>,
    verifier: Option<&str>,
) -> Result<Option<SignedIn>, AuthError> {
    let phone = provider
        .and_then(|id| flow.config.provider(id))
        .is_some_and(|p| matches!(p, SignInProvider::Phone(_)));
    let address = address(params, phone)?;
    let identifier = match &address {
        Some(address) => format!("code:{address}"),
        None => client_key(flow, "code"),
    };
    let attempts = Attempts {
        identifier: &identifier,
        max_per_hour: flow.config.failed_attempts_per_hour,
    };
    flow.auth
        .transact(|tx, now| {
            if !attempts.allowed(tx, now)? {
                return Ok(Err(AuthError::refused(
                    "TooManyFailedAttempts",
                    "Too many failed attempts: try again later",
                )));
            }
            let found = find_code(
                flow,
                tx,
                presented,
                address.as_deref(),
                provider,
                verifier,
                now,
            )?;
            let Found::Valid { code, account } = found else {
                attempts.spend(tx, now)?;
                return Ok(Ok(None));
            };
            tx.delete(code.id)?;
            let issuing = records::text(&code, "provider").unwrap_or("");
            let oauth = flow
                .config
                .provider(issuing)
                .is_some_and(SignInProvider::is_oauth);
            if !oauth {
                accounts::mark_verified(
                    tx,
                    &account,
                    records::text(&code, "emailVerified"),
                    records::text(&code, "phoneVerified"),
                    now,
                )?;
            }
            attempts.reset(tx)?;
            let user = records::text(&account, "userId")
                .ok_or_else(|| AuthError::internal("an account has no user"))?
                .to_owned();
            start_session(flow, tx, &user, now).map(|s| Ok(Some(s)))
        })
        .await?
}

/// The code row `presented` names, if it is valid for this exchange.
fn find_code(
    flow: &Flow<'_>,
    tx: &mut Tx,
    presented: &str,
    address: Option<&str>,
    provider: Option<&str>,
    verifier: Option<&str>,
    now: f64,
) -> Result<Found, AuthError> {
    let row = match (address, provider) {
        // A typed code: through the account of the address it came with.
        (Some(address), Some(provider)) => {
            let Some(account) = accounts::find(tx, provider, address)? else {
                return Ok(Found::Invalid);
            };
            records::find_one(
                tx,
                CODES,
                "accountId",
                &[("accountId", Value::from(account.id.to_string()))],
            )?
        }
        // A link or an OAuth hand-off: long codes, found by hash.
        _ if presented.len() >= LINK_CODE_LENGTH => records::find_one(
            tx,
            CODES,
            "code",
            &[("code", Value::from(records::digest(presented)))],
        )?,
        _ => return Ok(Found::Invalid),
    };
    let Some(row) = row else {
        return Ok(Found::Invalid);
    };
    let issuing = records::text(&row, "provider").unwrap_or("").to_owned();
    // Codes of a provider no longer configured, or of password reset and
    // verification (`<id>:reset`), are not sign-in codes.
    if flow.config.provider(&issuing).is_none() || provider.is_some_and(|p| p != issuing) {
        return Ok(Found::Invalid);
    }
    let found = check_row(tx, row, presented, verifier, now)?;
    if let (Found::Valid { account, .. }, Some(address)) = (&found, address)
        && records::text(account, "providerAccountId") != Some(address)
    {
        return Ok(Found::Invalid);
    }
    Ok(found)
}

/// Checks a code sent for a password account (`reset` or `verify`) and, if
/// right, runs `then` in the same transaction.
pub async fn verify_account_code(
    flow: &Flow<'_>,
    provider: &str,
    purpose: &str,
    _settings: &MessageProvider,
    email: &str,
    presented: &str,
    then: impl Fn(&mut Tx, &Document, f64) -> Result<Option<SignedIn>, AuthError>,
) -> Result<Option<SignedIn>, AuthError> {
    let identifier = format!("code:{provider}:{email}");
    let attempts = Attempts {
        identifier: &identifier,
        max_per_hour: flow.config.failed_attempts_per_hour,
    };
    let issuer = format!("{provider}:{purpose}");
    flow.auth
        .transact(|tx, now| {
            if !attempts.allowed(tx, now)? {
                return Err(AuthError::refused(
                    "TooManyFailedAttempts",
                    "Too many failed attempts: try again later",
                ));
            }
            let row = match accounts::find(tx, provider, email)? {
                Some(account) => records::find_one(
                    tx,
                    CODES,
                    "accountId",
                    &[("accountId", Value::from(account.id.to_string()))],
                )?,
                None => None,
            };
            let found = match row {
                Some(row) if records::text(&row, "provider") == Some(issuer.as_str()) => {
                    check_row(tx, row, presented, None, now)?
                }
                _ => Found::Invalid,
            };
            let Found::Valid { code, account } = found else {
                attempts.spend(tx, now)?;
                return Ok(None);
            };
            tx.delete(code.id)?;
            accounts::mark_verified(tx, &account, Some(email), None, now)?;
            attempts.reset(tx)?;
            then(tx, &account, now)
        })
        .await
}
