//! Sessions and refresh tokens.
//!
//! A refresh token is `<authRefreshTokens id>|<secret>`; the row keeps only
//! the secret's SHA-256, so a copy of the database signs nobody in. Each
//! exchange marks the token used and makes a child; a token used again
//! within the reuse window (two tabs refreshing at once) makes another
//! child; used again after it, the token was stolen or replayed, and the
//! whole session ends. Rows imported from Convex Auth (no hash; the token
//! is `<id>|<sessionId>`) are accepted once and replaced by hashed ones.

use capstan_protocol::Value;

use super::AuthError;
use super::records::{self, Tx, float, object, string};
use super::tables::{REFRESH_TOKENS, SESSIONS};

/// Two exchanges of one refresh token this close together are a race
/// between a user's tabs, not a replay.
pub const REUSE_WINDOW_MS: f64 = 10_000.0;

/// How long sessions and their refresh tokens last.
#[derive(Clone, Copy, Debug)]
pub struct Lifetimes {
    pub total_ms: f64,
    pub inactive_ms: f64,
}

/// A new session for `user`: `(session id, refresh token)`.
pub fn create(
    tx: &mut Tx,
    user: &str,
    now: f64,
    lifetimes: Lifetimes,
) -> Result<(String, String), AuthError> {
    let session = tx
        .insert(
            SESSIONS,
            object([
                ("userId", string(user)),
                ("expirationTime", float(now + lifetimes.total_ms)),
            ]),
        )?
        .to_string();
    let refresh = issue_refresh_token(tx, &session, None, now, lifetimes)?;
    Ok((session, refresh))
}

/// A new refresh token of `session`, the child of `parent`.
fn issue_refresh_token(
    tx: &mut Tx,
    session: &str,
    parent: Option<&str>,
    now: f64,
    lifetimes: Lifetimes,
) -> Result<String, AuthError> {
    let secret = records::secret();
    let id = tx.insert(
        REFRESH_TOKENS,
        object([
            ("sessionId", string(session)),
            ("expirationTime", float(now + lifetimes.inactive_ms)),
            ("parentRefreshTokenId", parent.and_then(string)),
            ("tokenHash", string(records::digest(&secret))),
        ]),
    )?;
    Ok(format!("{id}|{secret}"))
}

/// Deletes `session` and its refresh tokens; the user it belonged to, if it
/// existed.
pub fn end(tx: &mut Tx, session: &str) -> Result<Option<String>, AuthError> {
    let Some(document) = records::get(tx, SESSIONS, session)? else {
        return Ok(None);
    };
    for token in records::find(
        tx,
        REFRESH_TOKENS,
        "sessionId",
        &[("sessionId", Value::from(session))],
        None,
    )? {
        tx.delete(token.id)?;
    }
    tx.delete(document.id)?;
    Ok(records::text(&document, "userId").map(str::to_owned))
}

/// Deletes every session of `user` except `keep`.
pub fn end_all(tx: &mut Tx, user: &str, keep: Option<&str>) -> Result<usize, AuthError> {
    let sessions = records::find(
        tx,
        SESSIONS,
        "userId",
        &[("userId", Value::from(user))],
        None,
    )?;
    let mut ended = 0;
    for session in sessions {
        let id = session.id.to_string();
        if Some(id.as_str()) != keep {
            end(tx, &id)?;
            ended += 1;
        }
    }
    Ok(ended)
}

/// What an exchange of a refresh token gives.
#[derive(Debug)]
pub enum Refreshed {
    /// A new refresh token for the session of `user`.
    Tokens {
        user: String,
        session: String,
        refresh: String,
    },
    /// Not valid (unknown, expired, or the session ended): sign out.
    Invalid,
}

/// Exchanges `presented` (already split at its `|`) for a new refresh token.
pub fn refresh(
    tx: &mut Tx,
    (id, secret): (&str, &str),
    now: f64,
    lifetimes: Lifetimes,
) -> Result<Refreshed, AuthError> {
    let Some(row) = records::get(tx, REFRESH_TOKENS, id)? else {
        return Ok(Refreshed::Invalid);
    };
    let Some(session) = records::text(&row, "sessionId").map(str::to_owned) else {
        return Ok(Refreshed::Invalid);
    };
    // Only the holder of the secret may do anything with the token, ending
    // its session included.
    let genuine = match records::text(&row, "tokenHash") {
        Some(hash) => {
            capstan_protocol::constant_time_eq(hash.as_bytes(), records::digest(secret).as_bytes())
        }
        // Imported from Convex Auth: the token was `<id>|<sessionId>`.
        None => capstan_protocol::constant_time_eq(session.as_bytes(), secret.as_bytes()),
    };
    if !genuine {
        return Ok(Refreshed::Invalid);
    }
    let session_row = records::get(tx, SESSIONS, &session)?;
    let live = records::number(&row, "expirationTime").is_some_and(|exp| exp >= now)
        && session_row
            .as_ref()
            .and_then(|s| records::number(s, "expirationTime"))
            .is_some_and(|exp| exp >= now);
    let Some(user) = session_row
        .as_ref()
        .and_then(|s| records::text(s, "userId"))
        .map(str::to_owned)
        .filter(|_| live)
    else {
        end(tx, &session)?;
        return Ok(Refreshed::Invalid);
    };
    match records::number(&row, "firstUsedTime") {
        None => {
            tx.patch(row.id, records::patch([("firstUsedTime", float(now))]))?;
        }
        Some(first_used) if now - first_used <= REUSE_WINDOW_MS => {}
        Some(_) => {
            // Used again after the window: someone else holds a copy.
            tracing::warn!(target: "capstan::auth", "a refresh token was used twice; its session is ended");
            end(tx, &session)?;
            return Ok(Refreshed::Invalid);
        }
    }
    let refresh = issue_refresh_token(tx, &session, Some(id), now, lifetimes)?;
    Ok(Refreshed::Tokens {
        user,
        session,
        refresh,
    })
}
