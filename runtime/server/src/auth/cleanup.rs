//! Removing what has expired from the auth tables: sessions (with their
//! refresh tokens), refresh tokens, codes, abandoned OAuth verifiers and
//! failed-attempt rows that have refilled. The server sweeps every few
//! minutes, a bounded batch per table each time, oldest first.

use capstan_store::Query;

use super::records;
use super::sessions;
use super::tables::{CODES, RATE_LIMITS, REFRESH_TOKENS, SESSIONS, VERIFIERS};
use super::{AuthError, SignIn};

/// Rows looked at per table per sweep.
const BATCH: usize = 256;
/// An OAuth round trip that has not come back in this long never will.
const VERIFIER_LIFETIME_MS: f64 = 60.0 * 60.0 * 1000.0;
/// A failed-attempt row untouched this long has refilled.
const RATE_LIMIT_LIFETIME_MS: f64 = 60.0 * 60.0 * 1000.0;

/// What one sweep removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub sessions: usize,
    pub refresh_tokens: usize,
    pub codes: usize,
    pub verifiers: usize,
    pub rate_limits: usize,
}

impl SignIn {
    /// Removes a batch of expired rows from each auth table.
    pub async fn sweep(&self) -> Result<Swept, AuthError> {
        if self.store.catalog().table(SESSIONS).is_err() {
            // Built-in auth was never on: there is nothing to sweep.
            return Ok(Swept::default());
        }
        self.transact(|tx, now| {
            let mut swept = Swept::default();
            let expired = |field: &str, document: &capstan_store::Document| {
                records::number(document, field).is_some_and(|at| at < now)
            };
            for session in oldest(tx, SESSIONS)? {
                if expired("expirationTime", &session) {
                    sessions::end(tx, &session.id.to_string())?;
                    swept.sessions += 1;
                }
            }
            for (table, count, field) in [
                (REFRESH_TOKENS, &mut swept.refresh_tokens, "expirationTime"),
                (CODES, &mut swept.codes, "expirationTime"),
            ] {
                for document in oldest(tx, table)? {
                    if expired(field, &document) {
                        // A session swept above took its tokens with it.
                        if tx.get(document.id)?.is_some() {
                            tx.delete(document.id)?;
                            *count += 1;
                        }
                    }
                }
            }
            for verifier in oldest(tx, VERIFIERS)? {
                if verifier.creation_time + VERIFIER_LIFETIME_MS < now {
                    tx.delete(verifier.id)?;
                    swept.verifiers += 1;
                }
            }
            for row in oldest(tx, RATE_LIMITS)? {
                if records::number(&row, "lastAttemptTime")
                    .is_some_and(|at| at + RATE_LIMIT_LIFETIME_MS < now)
                {
                    tx.delete(row.id)?;
                    swept.rate_limits += 1;
                }
            }
            Ok(swept)
        })
        .await
    }
}

fn oldest(tx: &mut records::Tx, table: &str) -> Result<Vec<capstan_store::Document>, AuthError> {
    Ok(tx.query(&Query::full_table_scan(table), Some(BATCH))?)
}
