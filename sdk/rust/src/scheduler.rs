//! Running functions later: [`Scheduler`], from
//! [`MutationCtx::scheduler`](crate::MutationCtx::scheduler) and
//! [`ActionCtx::scheduler`](crate::ActionCtx::scheduler).

use std::marker::PhantomData;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::bindings::capstan::runtime::scheduler as host;
use crate::error::{Error, Result};
use crate::function::Schedulable;
use crate::id::Id;
use crate::system::ScheduledFunction;
use crate::values::to_value;

/// Schedules mutations and actions. From a mutation, scheduling is part of
/// its transaction: if the mutation fails, nothing runs. A scheduled
/// mutation runs exactly once; a scheduled action at most once (one cut
/// short by a crash is marked failed, not run again). Each run is a row of
/// `_scheduled_functions` ([`ScheduledFunction`]); one call may schedule at
/// most 1000.
///
/// ```ignore
/// ctx.scheduler().run_after::<emails::send_receipt>(Duration::ZERO, &SendReceiptArgs { payment })?;
/// ```
#[derive(Debug)]
pub struct Scheduler<'a> {
    pub(crate) _context: PhantomData<&'a mut ()>,
}

impl Scheduler<'_> {
    /// Runs `F` with `args` after `delay` (from the mutation's time, or now
    /// in an action).
    pub fn run_after<F: Schedulable>(
        &mut self,
        delay: Duration,
        args: &F::Args,
    ) -> Result<Id<ScheduledFunction>>
    where
        F::Args: Serialize,
    {
        self.run_at::<F>(SystemTime::now() + delay, args)
    }

    /// Runs `F` with `args` at `time` (at once if it is past).
    pub fn run_at<F: Schedulable>(
        &mut self,
        time: SystemTime,
        args: &F::Args,
    ) -> Result<Id<ScheduledFunction>>
    where
        F::Args: Serialize,
    {
        let at_ms = time
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        let args = match to_value(args)? {
            crate::Value::Null => "{}".to_owned(),
            object @ crate::Value::Object(_) => object.to_json_string(),
            other => {
                return Err(Error::new(format!(
                    "the arguments must be an object, not a {}",
                    other.value_type().name()
                )));
            }
        };
        let id = host::schedule(&F::definition().path(), &args, at_ms).map_err(Error::from_host)?;
        Ok(Id::from_string(id))
    }

    /// Cancels a run that has not started; an action already running goes
    /// on. Canceling a finished run does nothing.
    pub fn cancel(&mut self, id: &Id<ScheduledFunction>) -> Result<()> {
        host::cancel(id.as_str()).map_err(Error::from_host)
    }
}
