//! Bounds on every guest call, with their defaults.

use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostLimits {
    /// Linear memory one call may grow to.
    pub memory: usize,
    /// Wall time a query or mutation may run.
    pub query_timeout: Duration,
    pub mutation_timeout: Duration,
    /// Wall time an action may run, including what it calls.
    pub action_timeout: Duration,
    /// Largest arguments (Convex JSON text) accepted.
    pub max_args: usize,
    /// Largest result a function may return.
    pub max_result: usize,
    /// Most log lines kept per call; later ones are dropped with a note.
    pub max_log_lines: usize,
    /// Longest log line kept; longer ones are cut.
    pub max_log_line: usize,
    /// Bytes a call may write to stdout or stderr.
    pub max_output: usize,
    /// Guest stack, in bytes.
    pub max_stack: usize,
    /// Functions one call may schedule.
    pub max_scheduled_per_call: u32,
    /// Largest HTTP action request or response body.
    pub max_http_body: usize,
    /// Instances that may exist at once across all calls (the pool size).
    pub max_instances: u32,
}

impl Default for HostLimits {
    fn default() -> Self {
        HostLimits {
            memory: 64 << 20,
            query_timeout: Duration::from_secs(1),
            mutation_timeout: Duration::from_secs(1),
            action_timeout: Duration::from_secs(600),
            max_args: 8 << 20,
            max_result: 8 << 20,
            max_log_lines: 256,
            max_log_line: 32 << 10,
            max_output: 1 << 20,
            max_stack: 512 << 10,
            max_scheduled_per_call: 1000,
            max_http_body: 20 << 20,
            max_instances: 256,
        }
    }
}

/// How often the epoch ticks; deadlines are whole ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);
