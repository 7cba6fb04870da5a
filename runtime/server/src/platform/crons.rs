//! Cron jobs: the app declares them (`capstan::Crons`); each tick adds a
//! scheduled run, so a cron's run is as reliable as any scheduled one.
//!
//! Each job's state is a row of `_cron_jobs`: its schedule, when it runs
//! next, and its last run. A tick whose last run is still pending or in
//! progress is skipped (no run overlaps the one before it), and the next
//! run is always the first tick after now, so after downtime a job runs
//! once, not once per missed tick.

use std::time::Duration;

use capstan_protocol::{Clock, FunctionKind, FunctionPath, Object, Value};
use capstan_store::{Document, Query, Store, Transaction};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::cron_schedule::Schedule;
use super::jobs;
use super::tables::{BY_NAME, CRONS};
use crate::app::App;
use crate::deployment::Deployment;

/// A cron job as the app declares it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronSpec {
    pub name: String,
    pub schedule: Schedule,
    /// The function's path.
    pub function: String,
    /// The arguments object, Convex JSON.
    pub args: String,
}

/// The longest sleep between passes.
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// Reads and checks the cron jobs of a deployment's modules: known
/// mutations or actions, valid schedules, unique names.
pub fn build(
    modules: &[std::sync::Arc<capstan_host::Module>],
    function: impl Fn(&FunctionPath) -> Option<FunctionKind>,
) -> Result<Vec<CronSpec>, String> {
    let mut specs: Vec<CronSpec> = Vec::new();
    for module in modules {
        let declared: Vec<CronSpec> = serde_json::from_str(module.crons())
            .map_err(|e| format!("the cron jobs cannot be read: {e}"))?;
        for spec in declared {
            if spec.name.is_empty() || spec.name.len() > 128 {
                return Err(format!(
                    "cron job {:?}: a name has 1 to 128 characters",
                    spec.name
                ));
            }
            if specs.iter().any(|other| other.name == spec.name) {
                return Err(format!("cron job {:?} is declared twice", spec.name));
            }
            spec.schedule
                .validate()
                .map_err(|e| format!("cron job {:?}: {e}", spec.name))?;
            match function(&FunctionPath::parse(&spec.function)) {
                Some(FunctionKind::Mutation | FunctionKind::Action) => {}
                Some(FunctionKind::Query) => {
                    return Err(format!(
                        "cron job {:?} runs {}, a query; crons run mutations and actions",
                        spec.name, spec.function
                    ));
                }
                None => {
                    return Err(format!(
                        "cron job {:?} runs {}, which does not exist",
                        spec.name, spec.function
                    ));
                }
            }
            match Value::from_json_str(&spec.args) {
                Ok(Value::Object(_)) => {}
                _ => {
                    return Err(format!(
                        "cron job {:?}: its arguments are not an object: {}",
                        spec.name, spec.args
                    ));
                }
            }
            specs.push(spec);
        }
    }
    Ok(specs)
}

/// Runs the cron jobs of whatever is deployed until `shutdown`.
pub async fn run(app: App, clock: Clock, shutdown: CancellationToken) {
    let mut generations = app.generations();
    loop {
        if !super::scheduler::until_leader(app.store(), &shutdown).await {
            break;
        }
        let now = clock.since_epoch().as_secs_f64() * 1000.0;
        let next = match app.deployment() {
            Some(deployment) => match tick(app.store(), &deployment, now).await {
                Ok(next) => next,
                Err(error) => {
                    tracing::error!(%error, "running cron jobs failed");
                    None
                }
            },
            None => None,
        };
        if next.is_some() {
            app.services().scheduled.notify_one();
        }
        let sleep = next
            .map(|at| Duration::from_secs_f64(((at - now) / 1000.0).max(0.0)))
            .unwrap_or(MAX_SLEEP)
            .min(MAX_SLEEP);
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(sleep) => {}
            changed = generations.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
    }
}

/// One pass: brings `_cron_jobs` in line with the deployment's jobs and
/// schedules the runs that are due. When the next one is due.
async fn tick(store: &Store, deployment: &Deployment, now: f64) -> Result<Option<f64>, String> {
    super::transact(store, |tx| {
        if tx.catalog().table(CRONS).is_err() {
            return Ok(None);
        }
        pass(tx, &deployment.crons, now)
    })
    .await
}

fn pass(tx: &mut Transaction, specs: &[CronSpec], now: f64) -> Result<Option<f64>, String> {
    let rows = tx
        .query(&Query::index(CRONS, BY_NAME), None)
        .map_err(|e| e.to_string())?;
    // Jobs the app no longer declares go.
    for row in &rows {
        let declared = text(row, "name").is_some_and(|name| specs.iter().any(|s| s.name == name));
        if !declared {
            tx.delete(row.id).map_err(|e| e.to_string())?;
        }
    }
    let mut earliest: Option<f64> = None;
    for spec in specs {
        let row = rows
            .iter()
            .find(|row| text(row, "name") == Some(spec.name.as_str()));
        let schedule = serde_json::to_string(&spec.schedule).map_err(|e| e.to_string())?;
        let next = match row {
            Some(row)
                if text(row, "schedule") == Some(schedule.as_str())
                    && text(row, "function") == Some(spec.function.as_str())
                    && text(row, "args") == Some(spec.args.as_str()) =>
            {
                let next_run = number(row, "nextRun").unwrap_or(now);
                if next_run > now {
                    next_run
                } else {
                    run_due(tx, spec, row, next_run, now)?
                }
            }
            // New, or changed by a deploy: the first run is the next tick.
            _ => {
                let next = spec
                    .schedule
                    .next_after(now as i64, now as i64)
                    .map_err(|e| e.to_string())? as f64;
                let mut fields = Object::new();
                fields.insert("name".into(), Value::String(spec.name.clone()));
                fields.insert("function".into(), Value::String(spec.function.clone()));
                fields.insert("args".into(), Value::String(spec.args.clone()));
                fields.insert("schedule".into(), Value::String(schedule));
                fields.insert("nextRun".into(), Value::Float64(next));
                match row {
                    Some(row) => {
                        let mut kept = row.fields.clone();
                        kept.extend(fields);
                        tx.replace(row.id, kept).map_err(|e| e.to_string())?;
                    }
                    None => {
                        tx.insert(CRONS, fields).map_err(|e| e.to_string())?;
                    }
                }
                next
            }
        };
        earliest = Some(earliest.map_or(next, |e: f64| e.min(next)));
    }
    Ok(earliest)
}

/// The job is due (at `due`): schedules a run unless the last one is still
/// going, and moves `nextRun` to the first tick after now.
fn run_due(
    tx: &mut Transaction,
    spec: &CronSpec,
    row: &Document,
    due: f64,
    now: f64,
) -> Result<f64, String> {
    // After downtime that missed whole ticks, the job runs once now and its
    // schedule starts again from now, rather than a missed tick's grid
    // running it again at once.
    let missed = spec
        .schedule
        .next_after(due as i64, due as i64)
        .map_err(|e| e.to_string())? as f64
        <= now;
    let anchor = if missed { now } else { due };
    let next = spec
        .schedule
        .next_after(now as i64, anchor as i64)
        .map_err(|e| e.to_string())? as f64;
    let busy = match text(row, "lastJob") {
        Some(last) => jobs::get(tx, last)?
            .is_some_and(|job| matches!(jobs::kind(&job), jobs::PENDING | jobs::IN_PROGRESS)),
        None => false,
    };
    let mut patch: capstan_store::Patch = [("nextRun".to_owned(), Some(Value::Float64(next)))]
        .into_iter()
        .collect();
    if busy {
        tracing::info!(cron = %spec.name, "skipped a tick: the last run is still going");
    } else {
        let job = jobs::add(tx, &spec.function, &spec.args, now)?;
        patch.insert("lastJob".to_owned(), Some(Value::String(job.to_string())));
        patch.insert("lastRun".to_owned(), Some(Value::Float64(now)));
    }
    tx.patch(row.id, patch).map_err(|e| e.to_string())?;
    Ok(next)
}

fn text<'d>(row: &'d Document, field: &str) -> Option<&'d str> {
    row.fields.get(field).and_then(Value::as_str)
}

fn number(row: &Document, field: &str) -> Option<f64> {
    match row.fields.get(field) {
        Some(Value::Float64(n)) => Some(*n),
        _ => None,
    }
}
