//! Cron jobs: [`Crons`], given to [`app!`](crate::app)'s `crons:`.

use std::time::Duration;

use serde::Serialize;

use crate::function::Schedulable;

/// The app's cron jobs, each running a mutation or action (usually an
/// internal one) on a schedule. A job never overlaps itself: a tick that
/// comes while its last run is still going is skipped; after the server was
/// down, a job runs once, not once per missed tick.
///
/// ```ignore
/// fn crons() -> capstan::Crons {
///     capstan::Crons::new()
///         .interval::<sessions::purge>("purge sessions", Duration::from_secs(3600), &())
///         .cron::<reports::daily>("daily report", "0 9 * * 1-5", "Europe/Paris", &())
/// }
/// capstan::app! { tables: [...], functions: [...], crons: crons() }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Crons {
    jobs: Vec<serde_json::Value>,
}

impl Crons {
    pub fn new() -> Crons {
        Crons::default()
    }

    /// Runs `F` every `every` (at least a second).
    pub fn interval<F: Schedulable>(self, name: &str, every: Duration, args: &F::Args) -> Crons
    where
        F::Args: Serialize,
    {
        let schedule = serde_json::json!({ "interval": { "ms": every.as_millis() as u64 } });
        self.add::<F>(name, schedule, args)
    }

    /// Runs `F` when the cron `expression` (minute hour day-of-month month
    /// day-of-week) matches in `time_zone` (an IANA name, `"UTC"`).
    pub fn cron<F: Schedulable>(
        self,
        name: &str,
        expression: &str,
        time_zone: &str,
        args: &F::Args,
    ) -> Crons
    where
        F::Args: Serialize,
    {
        let schedule =
            serde_json::json!({ "cron": { "expression": expression, "timeZone": time_zone } });
        self.add::<F>(name, schedule, args)
    }

    fn add<F: Schedulable>(
        mut self,
        name: &str,
        schedule: serde_json::Value,
        args: &F::Args,
    ) -> Crons
    where
        F::Args: Serialize,
    {
        let args = match crate::to_value(args) {
            Ok(crate::Value::Null) => "{}".to_owned(),
            Ok(value) => value.to_json_string(),
            // Reported by the server when it reads the jobs, at deploy.
            Err(error) => format!("cannot encode the arguments: {}", error.message()),
        };
        self.jobs.push(serde_json::json!({
            "name": name,
            "schedule": schedule,
            "function": F::definition().path(),
            "args": args,
        }));
        self
    }

    #[doc(hidden)]
    pub fn to_json(&self) -> String {
        serde_json::Value::Array(self.jobs.clone()).to_string()
    }
}
