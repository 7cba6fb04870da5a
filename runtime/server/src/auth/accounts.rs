//! Users and accounts: finding an account, creating a user and account,
//! linking a new account to an existing user by a verified email or phone,
//! and marking an email or phone verified. Also the failed-attempt budget
//! (`authRateLimits`).

use capstan_protocol::{Object, Value};
use capstan_store::Document;

use super::AuthError;
use super::records::{self, Tx, float, object, string};
use super::tables::{ACCOUNTS, RATE_LIMITS, USERS};

/// An email as accounts are keyed by: trimmed and lower-cased, so that
/// `Ana@Example.com` and `ana@example.com ` are one account.
pub fn normalize_email(email: &str) -> Result<String, AuthError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email.contains(char::is_whitespace);
    if !valid {
        return Err(AuthError::refused(
            "InvalidEmail",
            "That is not an email address",
        ));
    }
    Ok(email)
}

/// A phone number as accounts are keyed by: `+` and digits only.
pub fn normalize_phone(phone: &str) -> Result<String, AuthError> {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    if !(6..=15).contains(&digits.len()) {
        return Err(AuthError::refused(
            "InvalidPhone",
            "That is not a phone number",
        ));
    }
    Ok(format!("+{digits}"))
}

/// The account of `provider` for `account_id`.
pub fn find(tx: &mut Tx, provider: &str, account_id: &str) -> Result<Option<Document>, AuthError> {
    records::find_one(
        tx,
        ACCOUNTS,
        "providerAndAccountId",
        &[
            ("provider", Value::from(provider)),
            ("providerAccountId", Value::from(account_id)),
        ],
    )
}

/// How a new account may join an existing user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// Never: a new user.
    No,
    /// To the one user whose email (or phone) is verified and equal to
    /// the profile's, if the provider verified it.
    ByVerifiedContact,
    /// Likewise, for a contact the sign-in will prove (a code sent to it
    /// must come back before any session starts).
    ByProvenContact,
    /// To this user: the caller is signed in and adds a way to sign in.
    ToUser(String),
}

/// What a provider knows of the person signing in.
#[derive(Clone, Debug, Default)]
pub struct Profile {
    pub email: Option<String>,
    pub phone: Option<String>,
    /// The provider checked the email (or phone) belongs to them.
    pub email_verified: bool,
    pub phone_verified: bool,
    /// Other fields for the user document (name, image, isAnonymous, …).
    pub fields: Object,
}

/// Creates the account of `provider` for `account_id` (with `secret`, a
/// password hash), on an existing user found by `link` or a new one:
/// `(account, user id)`.
pub fn create(
    tx: &mut Tx,
    provider: &str,
    account_id: &str,
    secret: Option<String>,
    profile: &Profile,
    link: Link,
    now: f64,
) -> Result<(Document, String), AuthError> {
    let existing = match link {
        Link::No => None,
        Link::ByVerifiedContact => linked_user(tx, profile, false)?,
        Link::ByProvenContact => linked_user(tx, profile, true)?,
        Link::ToUser(user) => Some(user),
    };
    let user = upsert_user(tx, existing, profile, now)?;
    let account = tx.insert(
        ACCOUNTS,
        object([
            ("userId", string(&user)),
            ("provider", string(provider)),
            ("providerAccountId", string(account_id)),
            ("secret", secret.map(Value::String)),
            (
                "emailVerified",
                profile
                    .email
                    .clone()
                    .filter(|_| profile.email_verified)
                    .map(Value::String),
            ),
            (
                "phoneVerified",
                profile
                    .phone
                    .clone()
                    .filter(|_| profile.phone_verified)
                    .map(Value::String),
            ),
        ]),
    )?;
    let account = tx
        .get(account)?
        .ok_or_else(|| AuthError::internal("an account vanished in its own transaction"))?;
    Ok((account, user))
}

/// The single user with this verified email (or phone); none if there is
/// none, several, or the email and the phone point at different users.
fn linked_user(tx: &mut Tx, profile: &Profile, proven: bool) -> Result<Option<String>, AuthError> {
    let mut found = None;
    for (field, value, time_field, verified) in [
        (
            "email",
            &profile.email,
            "emailVerificationTime",
            proven || profile.email_verified,
        ),
        (
            "phone",
            &profile.phone,
            "phoneVerificationTime",
            proven || profile.phone_verified,
        ),
    ] {
        let Some(value) = value.as_ref().filter(|_| verified) else {
            continue;
        };
        let users: Vec<Document> = records::find(
            tx,
            USERS,
            field,
            &[(field, Value::from(value.as_str()))],
            Some(8),
        )?
        .into_iter()
        .filter(|user| records::number(user, time_field).is_some())
        .collect();
        if let [user] = users.as_slice() {
            let id = user.id.to_string();
            match &found {
                Some(other) if *other != id => return Ok(None),
                _ => found = Some(id),
            }
        }
    }
    Ok(found)
}

/// Writes the profile onto `existing` or a new user; the user's id.
pub fn upsert_user(
    tx: &mut Tx,
    existing: Option<String>,
    profile: &Profile,
    now: f64,
) -> Result<String, AuthError> {
    let mut fields = profile.fields.clone();
    if let Some(email) = &profile.email {
        fields.insert("email".into(), Value::from(email.as_str()));
    }
    if let Some(phone) = &profile.phone {
        fields.insert("phone".into(), Value::from(phone.as_str()));
    }
    if profile.email_verified && profile.email.is_some() {
        fields.insert("emailVerificationTime".into(), Value::Float64(now));
    }
    if profile.phone_verified && profile.phone.is_some() {
        fields.insert("phoneVerificationTime".into(), Value::Float64(now));
    }
    match existing.and_then(|id| tx.parse_id(&id).ok()) {
        Some(id) => {
            let mut patch: capstan_store::Patch =
                fields.into_iter().map(|(k, v)| (k, Some(v))).collect();
            // An anonymous user who adds a real way to sign in is one no more.
            patch.entry("isAnonymous".into()).or_insert(None);
            tx.patch(id, patch)?;
            Ok(id.to_string())
        }
        None => Ok(tx.insert(USERS, fields)?.to_string()),
    }
}

/// Marks `account`'s email (or phone) verified, on it and its user.
pub fn mark_verified(
    tx: &mut Tx,
    account: &Document,
    email: Option<&str>,
    phone: Option<&str>,
    now: f64,
) -> Result<(), AuthError> {
    let user = records::text(account, "userId").map(str::to_owned);
    tx.patch(
        account.id,
        records::patch([
            ("emailVerified", email.and_then(string)),
            ("phoneVerified", phone.and_then(string)),
        ])
        .into_iter()
        .filter(|(_, v)| v.is_some())
        .collect(),
    )?;
    if let Some(user) = user.and_then(|u| tx.parse_id(&u).ok()) {
        let mut patch = capstan_store::Patch::new();
        if let Some(email) = email {
            patch.insert("email".into(), string(email));
            patch.insert("emailVerificationTime".into(), float(now));
        }
        if let Some(phone) = phone {
            patch.insert("phone".into(), string(phone));
            patch.insert("phoneVerificationTime".into(), float(now));
        }
        tx.patch(user, patch)?;
    }
    Ok(())
}

/// The failed-attempt budget of `identifier`: `max` an hour, refilled
/// continuously.
#[derive(Debug)]
pub struct Attempts<'a> {
    pub identifier: &'a str,
    pub max_per_hour: u32,
}

impl Attempts<'_> {
    fn left(&self, row: Option<&Document>, now: f64) -> f64 {
        let max = f64::from(self.max_per_hour);
        match row {
            None => max,
            Some(row) => {
                let left = records::number(row, "attemptsLeft").unwrap_or(max);
                let last = records::number(row, "lastAttemptTime").unwrap_or(now);
                (left + (now - last).max(0.0) * max / 3_600_000.0).min(max)
            }
        }
    }

    fn row(&self, tx: &mut Tx) -> Result<Option<Document>, AuthError> {
        records::find_one(
            tx,
            RATE_LIMITS,
            "identifier",
            &[("identifier", Value::from(self.identifier))],
        )
    }

    /// Whether another attempt may be made now.
    pub fn allowed(&self, tx: &mut Tx, now: f64) -> Result<bool, AuthError> {
        let row = self.row(tx)?;
        Ok(self.left(row.as_ref(), now) >= 1.0)
    }

    /// Takes one attempt from the budget.
    pub fn spend(&self, tx: &mut Tx, now: f64) -> Result<(), AuthError> {
        let row = self.row(tx)?;
        let left = self.left(row.as_ref(), now) - 1.0;
        match row {
            Some(row) => {
                tx.patch(
                    row.id,
                    records::patch([
                        ("attemptsLeft", float(left)),
                        ("lastAttemptTime", float(now)),
                    ]),
                )?;
            }
            None => {
                tx.insert(
                    RATE_LIMITS,
                    object([
                        ("identifier", string(self.identifier)),
                        ("attemptsLeft", float(left)),
                        ("lastAttemptTime", float(now)),
                    ]),
                )?;
            }
        }
        Ok(())
    }

    /// Forgets the failures (after a success).
    pub fn reset(&self, tx: &mut Tx) -> Result<(), AuthError> {
        if let Some(row) = self.row(tx)? {
            tx.delete(row.id)?;
        }
        Ok(())
    }
}
