//! Scheduled functions and crons, counted by the marks they leave.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use capstan::{ActionCtx, Doc, Id, MutationCtx, QueryCtx, ScheduledFunction};
use serde::{Deserialize, Serialize};

/// A mark a run leaves: counted by the tests.
#[derive(Clone, Debug, Serialize, Deserialize, capstan::Table)]
#[table(name = "marks", index(by_key = [key]))]
pub struct Mark {
    pub key: String,
    /// When, in milliseconds since the epoch.
    pub at: f64,
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

#[capstan::mutation(internal)]
pub fn mark(ctx: &mut MutationCtx, key: String) -> capstan::Result<()> {
    ctx.db().insert(&Mark { key, at: now_ms() })?;
    Ok(())
}

#[capstan::query]
pub fn marks(ctx: &QueryCtx) -> capstan::Result<Vec<Doc<Mark>>> {
    ctx.db().query::<Mark>().full_table_scan().collect()
}

/// How many marks start with `prefix`.
#[capstan::query]
pub fn count_marks(ctx: &QueryCtx, prefix: String) -> capstan::Result<u32> {
    let marks = ctx.db().query::<Mark>().full_table_scan().collect()?;
    Ok(marks
        .iter()
        .filter(|mark| mark.key.starts_with(&prefix))
        .count() as u32)
}

#[capstan::mutation]
pub fn schedule_then_fail(ctx: &mut MutationCtx, key: String) -> capstan::Result<()> {
    ctx.scheduler()
        .run_after::<mark>(Duration::ZERO, &MarkArgs { key })?;
    Err(capstan::error!("failing after scheduling"))
}

#[capstan::mutation]
pub fn schedule_many(
    ctx: &mut MutationCtx,
    prefix: String,
    count: u32,
    delay_ms: u32,
) -> capstan::Result<Vec<Id<ScheduledFunction>>> {
    (0..count)
        .map(|n| {
            ctx.scheduler().run_after::<mark>(
                Duration::from_millis(u64::from(delay_ms)),
                &MarkArgs {
                    key: format!("{prefix}{n}"),
                },
            )
        })
        .collect()
}

#[capstan::mutation]
pub fn too_many(ctx: &mut MutationCtx) -> capstan::Result<()> {
    for n in 0..1001 {
        ctx.scheduler().run_after::<mark>(
            Duration::from_secs(3600),
            &MarkArgs {
                key: format!("never{n}"),
            },
        )?;
    }
    Ok(())
}

#[capstan::mutation]
pub fn schedule_action(
    ctx: &mut MutationCtx,
    key: String,
    delay_ms: u32,
    sleep_ms: u32,
) -> capstan::Result<Id<ScheduledFunction>> {
    ctx.scheduler().run_after::<slow_action>(
        Duration::from_millis(u64::from(delay_ms)),
        &SlowActionArgs { key, sleep_ms },
    )
}

/// Marks its start, sleeps, marks its end: a run cut short by a crash
/// leaves a start without an end.
#[capstan::action(internal)]
pub fn slow_action(ctx: &mut ActionCtx, key: String, sleep_ms: u32) -> capstan::Result<()> {
    ctx.run_mutation::<mark>(&MarkArgs {
        key: format!("{key}-start"),
    })?;
    std::thread::sleep(Duration::from_millis(u64::from(sleep_ms)));
    ctx.run_mutation::<mark>(&MarkArgs {
        key: format!("{key}-end"),
    })?;
    if key.starts_with("fail") {
        return Err(capstan::error!("{key} failed on purpose"));
    }
    Ok(())
}

#[capstan::mutation]
pub fn cancel(ctx: &mut MutationCtx, id: Id<ScheduledFunction>) -> capstan::Result<()> {
    ctx.scheduler().cancel(&id)
}

#[capstan::query]
pub fn scheduled(ctx: &QueryCtx) -> capstan::Result<Vec<Doc<ScheduledFunction>>> {
    ctx.db()
        .query::<ScheduledFunction>()
        .full_table_scan()
        .collect()
}

/// Writing a system table is refused.
#[capstan::mutation]
pub fn write_system_table(ctx: &mut MutationCtx) -> capstan::Result<String> {
    let id = ctx.db().insert_into(
        "_storage",
        &capstan::json!({"sha256": "x", "size": 1, "key": "k"}),
    )?;
    Ok(id)
}

/// The one-second cron.
#[capstan::mutation(internal)]
pub fn tick(ctx: &mut MutationCtx) -> capstan::Result<()> {
    mark(ctx, "tick".into())
}

/// A one-second cron that takes 2.5 seconds: its runs must not overlap.
#[capstan::action(internal)]
pub fn slow_tick(ctx: &mut ActionCtx) -> capstan::Result<()> {
    ctx.run_mutation::<mark>(&MarkArgs {
        key: "slow-start".into(),
    })?;
    std::thread::sleep(Duration::from_millis(2500));
    ctx.run_mutation::<mark>(&MarkArgs {
        key: "slow-end".into(),
    })?;
    Ok(())
}
