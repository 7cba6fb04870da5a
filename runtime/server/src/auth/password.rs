//! The password provider's flows (`params.flow`): `signUp`, `signIn`,
//! `reset`, `reset-verification` and `email-verification`, as Convex Auth's
//! `Password` provider names them.
//!
//! Unlike Convex Auth, an unknown email and a wrong password take the same
//! time and get the same answer, failures are counted per address whether
//! or not it has an account, and a reset request says nothing about whether
//! the address has one.

use capstan_auth::built_in::PasswordProvider;
use capstan_auth::password::{self as hashing, Check};
use capstan_protocol::Value;
use serde_json::Value as Json;

use super::accounts::{self, Attempts, Link, Profile};
use super::flows::{SignedIn, param, start_session};
use super::{AuthError, Flow, codes, records, sessions};

const FLOWS: &str = "`signUp`, `signIn`, `reset`, `reset-verification` or `email-verification`";

/// Runs one step; `None` is `{tokens: null}` (a code was sent, or the
/// email must be verified first).
pub async fn sign_in(
    flow: &Flow<'_>,
    id: &str,
    settings: &PasswordProvider,
    params: &Json,
) -> Result<Option<SignedIn>, AuthError> {
    let step = param(params, "flow").ok_or_else(|| {
        AuthError::refused(
            "InvalidArguments",
            format!("Missing `flow` param: use {FLOWS}"),
        )
    })?;
    let email = accounts::normalize_email(
        param(params, "email")
            .ok_or_else(|| AuthError::refused("InvalidArguments", "Missing `email` param"))?,
    )?;
    match step {
        "signUp" => {
            sign_up(
                flow,
                id,
                settings,
                (&email, required(params, "password")?),
                params,
            )
            .await
        }
        "signIn" => {
            sign_in_with_password(flow, id, settings, &email, required(params, "password")?).await
        }
        "reset" => {
            let reset = settings.reset.as_ref().ok_or_else(|| {
                AuthError::refused(
                    "NotConfigured",
                    format!("Password reset is not enabled for `{id}`"),
                )
            })?;
            // Sent only if the account exists; the answer is the same.
            codes::send_account_code(flow, id, "reset", reset, &email).await?;
            Ok(None)
        }
        "reset-verification" => {
            let reset = settings.reset.as_ref().ok_or_else(|| {
                AuthError::refused(
                    "NotConfigured",
                    format!("Password reset is not enabled for `{id}`"),
                )
            })?;
            let new_password = required(params, "newPassword")?;
            check_rules(settings, new_password)?;
            let code = required(params, "code")?;
            let hash = {
                let new_password = new_password.to_owned();
                flow.auth
                    .hash_work(move || hashing::hash(&new_password))
                    .await?
            }
            .map_err(AuthError::internal)?;
            let signed_in = codes::verify_account_code(
                flow,
                id,
                "reset",
                reset,
                &email,
                code,
                |tx, account, now| {
                    tx.patch(
                        account.id,
                        records::patch([("secret", Some(Value::String(hash.clone())))]),
                    )?;
                    let user = records::text(account, "userId")
                        .ok_or_else(|| AuthError::internal("an account has no user"))?
                        .to_owned();
                    sessions::end_all(tx, &user, None)?;
                    start_session(flow, tx, &user, now).map(Some)
                },
            )
            .await?;
            signed_in
                .ok_or_else(|| AuthError::refused("InvalidCode", "Could not verify code"))
                .map(Some)
        }
        "email-verification" => {
            let verify = settings.verify.as_ref().ok_or_else(|| {
                AuthError::refused(
                    "NotConfigured",
                    format!("Email verification is not enabled for `{id}`"),
                )
            })?;
            match param(params, "code") {
                None => {
                    codes::send_account_code(flow, id, "verify", verify, &email).await?;
                    Ok(None)
                }
                Some(code) => {
                    let signed_in = codes::verify_account_code(
                        flow,
                        id,
                        "verify",
                        verify,
                        &email,
                        code,
                        |tx, account, now| {
                            let user = records::text(account, "userId")
                                .ok_or_else(|| AuthError::internal("an account has no user"))?
                                .to_owned();
                            start_session(flow, tx, &user, now).map(Some)
                        },
                    )
                    .await?;
                    signed_in
                        .ok_or_else(|| AuthError::refused("InvalidCode", "Could not verify code"))
                        .map(Some)
                }
            }
        }
        other => Err(AuthError::refused(
            "InvalidArguments",
            format!("Unknown `flow` {other:?}: use {FLOWS}"),
        )),
    }
}

fn required<'p>(params: &'p Json, name: &'static str) -> Result<&'p str, AuthError> {
    param(params, name)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| AuthError::refused("InvalidArguments", format!("Missing `{name}` param")))
}

/// The configured password rules, each failure saying which.
fn check_rules(settings: &PasswordProvider, password: &str) -> Result<(), AuthError> {
    let length = password.chars().count();
    let refuse = |message: String| Err(AuthError::refused("InvalidPassword", message));
    if length < settings.min_length {
        return refuse(format!(
            "Invalid password: use at least {} characters",
            settings.min_length
        ));
    }
    if password.len() > settings.max_length {
        return refuse(format!(
            "Invalid password: use at most {} characters",
            settings.max_length
        ));
    }
    if settings.require_letters_and_digits
        && !(password.chars().any(char::is_alphabetic)
            && password.chars().any(|c| c.is_ascii_digit()))
    {
        return refuse("Invalid password: use letters and digits".into());
    }
    Ok(())
}

async fn sign_up(
    flow: &Flow<'_>,
    id: &str,
    settings: &PasswordProvider,
    (email, password): (&str, &str),
    params: &Json,
) -> Result<Option<SignedIn>, AuthError> {
    check_rules(settings, password)?;
    let mut profile = Profile {
        email: Some(email.to_owned()),
        ..Default::default()
    };
    let extra = super::hooks::user_fields(flow, id, "password", &profile, params).await?;
    profile.fields.extend(extra);
    let hash = {
        let password = password.to_owned();
        flow.auth
            .hash_work(move || hashing::hash(&password))
            .await?
    }
    .map_err(AuthError::internal)?;
    let link = match flow.auth.session_of(&flow.caller.identity) {
        Some((user, _)) => Link::ToUser(user),
        None if settings.verify.is_some() => Link::ByVerifiedContact,
        None => Link::No,
    };
    enum Outcome {
        Created(SignedIn),
        CreatedUnverified(String),
        Exists,
    }
    let outcome = flow
        .auth
        .transact(|tx, now| {
            if accounts::find(tx, id, email)?.is_some() {
                return Ok(Outcome::Exists);
            }
            let (_, user) = accounts::create(
                tx,
                id,
                email,
                Some(hash.clone()),
                &profile,
                link.clone(),
                now,
            )?;
            if settings.verify.is_some() {
                return Ok(Outcome::CreatedUnverified(user));
            }
            start_session(flow, tx, &user, now).map(Outcome::Created)
        })
        .await?;
    match outcome {
        Outcome::Created(signed_in) => {
            super::hooks::after_user(flow, &signed_in.user, id, "password", true).await?;
            Ok(Some(signed_in))
        }
        Outcome::CreatedUnverified(user) => {
            super::hooks::after_user(flow, &user, id, "password", true).await?;
            if let Some(verify) = &settings.verify {
                codes::send_account_code(flow, id, "verify", verify, email).await?;
            }
            Ok(None)
        }
        // Signing up again with the right password signs in.
        Outcome::Exists => sign_in_with_password(flow, id, settings, email, password)
            .await
            .map_err(|error| match error {
                AuthError::Refused {
                    code: "InvalidCredentials",
                    ..
                } => AuthError::refused("AccountExists", format!("Account {email} already exists")),
                other => other,
            }),
    }
}

async fn sign_in_with_password(
    flow: &Flow<'_>,
    id: &str,
    settings: &PasswordProvider,
    email: &str,
    password: &str,
) -> Result<Option<SignedIn>, AuthError> {
    let identifier = format!("{id}:{email}");
    let attempts = Attempts {
        identifier: &identifier,
        max_per_hour: flow.config.failed_attempts_per_hour,
    };
    let (account, allowed) = flow
        .auth
        .transact(|tx, now| Ok((accounts::find(tx, id, email)?, attempts.allowed(tx, now)?)))
        .await?;
    if !allowed {
        return Err(AuthError::refused(
            "TooManyFailedAttempts",
            "Too many failed attempts: try again later",
        ));
    }
    let stored = account
        .as_ref()
        .and_then(|account| records::text(account, "secret"))
        .map(str::to_owned);
    let check = {
        let password = password.to_owned();
        flow.auth
            .hash_work(move || match stored {
                Some(stored) => hashing::verify(&password, &stored),
                None => {
                    hashing::verify_nothing(&password);
                    Check::Mismatch
                }
            })
            .await?
    };
    let account = match (check, account) {
        (Check::Match | Check::MatchRehash, Some(account)) => account,
        _ => {
            flow.auth
                .transact(|tx, now| attempts.spend(tx, now))
                .await?;
            return Err(AuthError::refused(
                "InvalidCredentials",
                "Invalid email or password",
            ));
        }
    };
    let rehash = match check {
        Check::MatchRehash => {
            let password = password.to_owned();
            Some(
                flow.auth
                    .hash_work(move || hashing::hash(&password))
                    .await?
                    .map_err(AuthError::internal)?,
            )
        }
        _ => None,
    };
    if settings.verify.is_some() && records::text(&account, "emailVerified").is_none() {
        if let Some(verify) = &settings.verify {
            codes::send_account_code(flow, id, "verify", verify, email).await?;
        }
        return Ok(None);
    }
    let user = records::text(&account, "userId")
        .ok_or_else(|| AuthError::internal("an account has no user"))?
        .to_owned();
    flow.auth
        .transact(|tx, now| {
            attempts.reset(tx)?;
            if let Some(hash) = &rehash {
                tx.patch(
                    account.id,
                    records::patch([("secret", Some(Value::String(hash.clone())))]),
                )?;
            }
            start_session(flow, tx, &user, now).map(Some)
        })
        .await
}
