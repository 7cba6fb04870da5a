//! The shared commit log on PostgreSQL.
//!
//! The serialisation point is the single row of `capstan_clock`: a node
//! commits inside a database transaction that first locks that row
//! (`SELECT … FOR UPDATE`), then reads the log rows after the newest commit
//! it knows, validates against them, and writes its documents, index
//! entries, log rows and the new `last_ts` before `COMMIT` releases the
//! lock. `pg_notify` in the same transaction tells the other nodes, whose
//! listener wakes their catch-up; a poll every second covers notifications
//! lost to a reconnect.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use capstan_protocol::Timestamp;
use deadpool_postgres::{Object, Pool};

use super::bridge::Bridge;
use super::{Changes, Connector, unavailable};
use crate::error::{Error, Result};
use crate::persistence::{Batch, LockedLog, LogRead, SharedLog};

/// The advisory lock whose holder is the leader (an arbitrary number).
const LEADER_LOCK: i64 = 0x6361_7073_7461_6e02;
/// How often the lease is checked, and a connection retried.
const LEASE_CHECK: Duration = Duration::from_secs(2);
const RECONNECT: Duration = Duration::from_secs(1);

/// A flag one waiter sleeps on: set by a notification, cleared by the wait
/// that sees it, so a notification between two waits is not lost.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    pending: Mutex<u64>,
    changed: Condvar,
}

impl Signal {
    fn raise(&self) {
        *self.pending.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.changed.notify_all();
    }

    /// Waits until the count passes `seen` or `timeout` passes; returns the
    /// count.
    pub fn wait(&self, seen: u64, timeout: Duration) -> u64 {
        let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let (pending, _) = self
            .changed
            .wait_timeout_while(pending, timeout, |count| *count == seen)
            .unwrap_or_else(PoisonError::into_inner);
        *pending
    }
}

pub(crate) struct Log {
    bridge: Arc<Bridge>,
    pool: Pool,
    commits: Arc<Signal>,
    commits_seen: Mutex<u64>,
    pub state_changes: Arc<Signal>,
    leader: Arc<AtomicBool>,
}

impl Log {
    pub fn start(bridge: Arc<Bridge>, pool: Pool, connector: Connector) -> Log {
        let log = Log {
            bridge,
            pool,
            commits: Arc::default(),
            commits_seen: Mutex::new(0),
            state_changes: Arc::default(),
            leader: Arc::default(),
        };
        log.bridge.spawn(listen(
            connector.clone(),
            log.commits.clone(),
            log.state_changes.clone(),
        ));
        log.bridge.spawn(lead(connector, log.leader.clone()));
        log
    }
}

/// Keeps a connection listening for notifications, reconnecting after a
/// failure; each (re)connection raises both signals, since notifications
/// sent while it was down are lost.
async fn listen(connector: Connector, commits: Arc<Signal>, state: Arc<Signal>) {
    loop {
        if let Ok((client, mut connection)) = connector.connect().await {
            let (commits_, state_) = (commits.clone(), state.clone());
            let driver = tokio::spawn(async move {
                while let Some(message) = connection.next_message().await {
                    match message {
                        Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                            if n.channel() == "capstan_state" {
                                state_.raise();
                            } else {
                                commits_.raise();
                            }
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            });
            if client
                .batch_execute("LISTEN capstan_commits; LISTEN capstan_state")
                .await
                .is_ok()
            {
                commits.raise();
                state.raise();
                let _ = driver.await;
            } else {
                driver.abort();
            }
            tracing::warn!("lost the database connection that listens for other nodes' commits");
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

/// Holds the leader lease (a session advisory lock) while its connection
/// lives; another node takes it when this one dies.
async fn lead(connector: Connector, leader: Arc<AtomicBool>) {
    loop {
        if let Ok((client, mut connection)) = connector.connect().await {
            let driver = tokio::spawn(async move {
                while let Some(message) = connection.next_message().await {
                    if message.is_err() {
                        break;
                    }
                }
            });
            loop {
                let check = if leader.load(Ordering::Relaxed) {
                    client.query_one("SELECT true", &[])
                } else {
                    client.query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK])
                };
                match tokio::time::timeout(LEASE_CHECK * 2, check).await {
                    Ok(Ok(row)) => {
                        let held: bool = row.get(0);
                        if held && !leader.swap(true, Ordering::Relaxed) {
                            tracing::info!("this node now leads (collection, scheduler, crons)");
                        }
                    }
                    _ => break,
                }
                tokio::time::sleep(LEASE_CHECK).await;
            }
            if leader.swap(false, Ordering::Relaxed) {
                tracing::warn!("lost the leader lease with the database connection");
            }
            driver.abort();
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

fn ts_param(ts: Timestamp) -> i64 {
    i64::try_from(ts.nanos()).unwrap_or(i64::MAX)
}

fn ts_of(value: i64) -> Timestamp {
    Timestamp::new(u64::try_from(value).unwrap_or(0))
}

/// Closes a connection whose transaction state is unknown instead of
/// returning it to the pool.
fn discard(client: Object) {
    drop(Object::take(client));
}

const READ_AFTER: &str = "SELECT c.pruned_through, e.entry
     FROM capstan_clock c
     LEFT JOIN LATERAL (
         SELECT entry FROM capstan_commits WHERE ts > $1 ORDER BY ts LIMIT $2
     ) e ON true
     WHERE c.id = 1";

/// The clock and the log rows answered by [`SharedLog::lock`]'s query:
/// the statement after the third completed holds the clock, the next the
/// log (as text: bytea in hex).
fn locked_read(messages: &[tokio_postgres::SimpleQueryMessage]) -> Result<(Timestamp, LogRead)> {
    use tokio_postgres::SimpleQueryMessage;
    let damaged = || Error::Unavailable("an unexpected answer to the commit lock".into());
    let mut completed = 0;
    let mut clock = None;
    let mut read = LogRead::default();
    for message in messages {
        match message {
            SimpleQueryMessage::CommandComplete(_) => completed += 1,
            SimpleQueryMessage::Row(row) if completed == 3 => {
                let number = |i: usize| -> Result<Timestamp> {
                    let text = row.get(i).ok_or_else(damaged)?;
                    Ok(ts_of(text.parse().map_err(|_| damaged())?))
                };
                read.pruned_through = number(1)?;
                clock = Some(number(0)?);
            }
            SimpleQueryMessage::Row(row) if completed == 4 => {
                let text = row.get(0).ok_or_else(damaged)?;
                read.commits.push(from_hex(text).ok_or_else(damaged)?);
            }
            _ => {}
        }
    }
    Ok((clock.ok_or_else(damaged)?, read))
}

/// PostgreSQL's hex output of a bytea: `\x` and two digits per byte.
fn from_hex(text: &str) -> Option<Vec<u8>> {
    let digits = text.strip_prefix("\\x")?.as_bytes();
    if digits.len() % 2 != 0 {
        return None;
    }
    let value = |d: u8| (d as char).to_digit(16);
    digits
        .chunks(2)
        .map(|pair| Some((value(pair[0])? * 16 + value(pair[1])?) as u8))
        .collect()
}

fn log_read(rows: &[tokio_postgres::Row]) -> LogRead {
    LogRead {
        pruned_through: rows.first().map_or(Timestamp::MIN, |row| ts_of(row.get(0))),
        commits: rows
            .iter()
            .filter_map(|row| row.get::<_, Option<Vec<u8>>>(1))
            .collect(),
    }
}

impl SharedLog for Log {
    fn lock(&self, after: Timestamp, hold: Duration) -> Result<Box<dyn LockedLog + '_>> {
        let pool = self.pool.clone();
        // One round trip: in a multi-statement query each statement takes a
        // fresh snapshot, so the log is read after the lock is granted.
        let sql = format!(
            "BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL lock_timeout = '10s'; \
             SET LOCAL idle_in_transaction_session_timeout = '{}ms'; \
             SELECT last_ts, pruned_through FROM capstan_clock WHERE id = 1 FOR UPDATE; \
             SELECT entry FROM capstan_commits WHERE ts > {} ORDER BY ts",
            hold.as_millis().max(1),
            ts_param(after)
        );
        let (client, last_ts, read) = self.bridge.run(async move {
            let client = pool.get().await.map_err(unavailable)?;
            match client.simple_query(&sql).await {
                Ok(messages) => match locked_read(&messages) {
                    Ok((last_ts, read)) => Ok((client, last_ts, read)),
                    Err(e) => {
                        discard(client);
                        Err(e)
                    }
                },
                Err(e) => {
                    discard(client);
                    Err(unavailable(e))
                }
            }
        })?;
        Ok(Box::new(Locked {
            bridge: &self.bridge,
            client: Some(client),
            read: Some(read),
            last_ts,
        }))
    }

    fn read_after(&self, after: Timestamp, limit: usize) -> Result<LogRead> {
        let pool = self.pool.clone();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.bridge.run(async move {
            let client = pool.get().await.map_err(unavailable)?;
            let statement = client
                .prepare_cached(READ_AFTER)
                .await
                .map_err(unavailable)?;
            let rows = client
                .query(&statement, &[&ts_param(after), &limit])
                .await
                .map_err(unavailable)?;
            Ok(log_read(&rows))
        })
    }

    fn wait(&self, timeout: Duration) {
        let mut seen = self
            .commits_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *seen = self.commits.wait(*seen, timeout);
    }

    fn last_ts(&self) -> Result<Timestamp> {
        let pool = self.pool.clone();
        self.bridge.run(async move {
            let client = pool.get().await.map_err(unavailable)?;
            let row = client
                .query_one("SELECT last_ts FROM capstan_clock WHERE id = 1", &[])
                .await
                .map_err(unavailable)?;
            Ok(ts_of(row.get(0)))
        })
    }

    fn state(&self) -> Result<(Timestamp, Option<Vec<u8>>)> {
        let pool = self.pool.clone();
        self.bridge.run(async move {
            let client = pool.get().await.map_err(unavailable)?;
            // One statement, one snapshot: the catalog is the one in force
            // at `last_ts`.
            let row = client
                .query_one(
                    "SELECT c.last_ts, (SELECT value FROM capstan_kv WHERE key = $1)
                     FROM capstan_clock c WHERE c.id = 1",
                    &[&crate::keys::CATALOG],
                )
                .await
                .map_err(unavailable)?;
            Ok((ts_of(row.get(0)), row.get(1)))
        })
    }

    fn prune(&self, before: Timestamp) -> Result<usize> {
        let pool = self.pool.clone();
        let before = ts_param(before);
        self.bridge.run(async move {
            let mut client = pool.get().await.map_err(unavailable)?;
            let tx = client.transaction().await.map_err(unavailable)?;
            let removed = tx
                .execute("DELETE FROM capstan_commits WHERE ts < $1", &[&before])
                .await
                .map_err(unavailable)?;
            if removed > 0 {
                tx.execute(
                    "UPDATE capstan_clock SET pruned_through = greatest(pruned_through, $1::bigint - 1)
                     WHERE id = 1",
                    &[&before],
                )
                .await
                .map_err(unavailable)?;
            }
            tx.commit().await.map_err(unavailable)?;
            Ok(usize::try_from(removed).unwrap_or(usize::MAX))
        })
    }

    fn leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }
}

struct Locked<'a> {
    bridge: &'a Bridge,
    /// `None` once committed or discarded.
    client: Option<Object>,
    /// The log rows read with the lock, until [`LockedLog::read`] takes them.
    read: Option<LogRead>,
    last_ts: Timestamp,
}

impl Locked<'_> {
    /// Runs `f` on the locked connection; on an error the connection is
    /// closed, which rolls the transaction back.
    fn with_client<T, Fut>(&mut self, f: impl FnOnce(Object) -> Fut) -> Result<T>
    where
        T: Send + 'static,
        Fut: Future<Output = (Object, Result<T, tokio_postgres::Error>)> + Send + 'static,
    {
        let client = self
            .client
            .take()
            .ok_or_else(|| Error::Unavailable("the commit lock was already released".into()))?;
        let running = f(client);
        let (client, result) = self.bridge.run(async move { Ok(running.await) })?;
        match result {
            Ok(value) => {
                self.client = Some(client);
                Ok(value)
            }
            Err(e) => {
                discard(client);
                Err(unavailable(e))
            }
        }
    }
}

impl LockedLog for Locked<'_> {
    fn last_ts(&self) -> Timestamp {
        self.last_ts
    }

    fn read(&mut self) -> Result<LogRead> {
        self.read
            .take()
            .ok_or_else(|| Error::Unavailable("the log was already read".into()))
    }

    fn commit(mut self: Box<Self>, batch: Batch, log: Vec<(Timestamp, Vec<u8>)>) -> Result<()> {
        let changes = Changes::from(batch);
        let last = log.last().map_or(self.last_ts, |(ts, _)| *ts);
        let (stamps, entries): (Vec<i64>, Vec<Vec<u8>>) = log
            .into_iter()
            .map(|(ts, entry)| (ts_param(ts), entry))
            .unzip();
        self.with_client(move |client| async move {
            let done = async {
                let statement = client
                    .prepare_cached(
                        "WITH put AS (
                         INSERT INTO capstan_kv (key, value)
                         SELECT * FROM unnest($1::bytea[], $2::bytea[])
                         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value
                     ), removed AS (
                         DELETE FROM capstan_kv WHERE key = ANY($3::bytea[])
                     ), logged AS (
                         INSERT INTO capstan_commits (ts, entry)
                         SELECT * FROM unnest($4::int8[], $5::bytea[])
                     ), clock AS (
                         UPDATE capstan_clock SET last_ts = $6 WHERE id = 1
                     )
                     SELECT pg_notify('capstan_commits', $6::text)",
                    )
                    .await?;
                client
                    .execute(
                        &statement,
                        &[
                            &changes.put_keys,
                            &changes.put_values,
                            &changes.removed,
                            &stamps,
                            &entries,
                            &ts_param(last),
                        ],
                    )
                    .await?;
                client.batch_execute("COMMIT").await
            }
            .await;
            (client, done)
        })?;
        // Committed: the connection is clean again and goes back to the pool.
        self.client = None;
        Ok(())
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Not committed: roll back, or close the connection if even
            // that fails.
            let _ = self.bridge.run(async move {
                if client.batch_execute("ROLLBACK").await.is_err() {
                    discard(client);
                }
                Ok(())
            });
        }
    }
}
