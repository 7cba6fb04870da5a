//! The database schema Capstan keeps in PostgreSQL, created and migrated by
//! Capstan itself. Each migration runs once, in order, in one transaction
//! under an advisory lock, so nodes starting together do not race.

use deadpool_postgres::Object;

use super::unavailable;
use crate::error::{Error, Result};

/// Serialises migrations across nodes (an arbitrary, fixed number).
const MIGRATION_LOCK: i64 = 0x6361_7073_7461_6e01;

/// Migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: versions and index entries as ordered keys, the commit log, the
    // commit clock (its row lock is the commit serialisation point), and
    // per-deployment state shared by nodes.
    "CREATE TABLE capstan_kv (
         key bytea PRIMARY KEY,
         value bytea NOT NULL
     );
     CREATE TABLE capstan_commits (
         ts bigint PRIMARY KEY,
         entry bytea NOT NULL
     );
     CREATE TABLE capstan_clock (
         id int PRIMARY KEY CHECK (id = 1),
         last_ts bigint NOT NULL,
         pruned_through bigint NOT NULL
     );
     INSERT INTO capstan_clock VALUES (1, 0, 0);
     CREATE TABLE capstan_state (
         name text PRIMARY KEY,
         value bytea NOT NULL,
         version bigint NOT NULL
     );",
];

/// The schema version this build writes.
pub const VERSION: i32 = MIGRATIONS.len() as i32;

/// Brings the database to [`VERSION`]; refuses one a newer build migrated.
pub(crate) async fn migrate(client: &mut Object) -> Result<()> {
    let tx = client.transaction().await.map_err(unavailable)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(unavailable)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS capstan_migrations (
             version int PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(unavailable)?;
    let current: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM capstan_migrations",
            &[],
        )
        .await
        .map_err(unavailable)?
        .get(0);
    if current > VERSION {
        return Err(Error::Storage(format!(
            "the database's schema is at version {current}, newer than this build's {VERSION}: \
             upgrade Capstan"
        )));
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.batch_execute(migration).await.map_err(unavailable)?;
        let version = index as i32 + 1;
        tx.execute(
            "INSERT INTO capstan_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(unavailable)?;
        tracing::info!(version, "migrated the database schema");
    }
    tx.commit().await.map_err(unavailable)
}
