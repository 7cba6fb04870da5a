//! The system tables: read them like any table (`ctx.db().get(&id)`,
//! `ctx.db().query::<ScheduledFunction>()`); only the server writes them.

use serde::{Deserialize, Serialize};

/// A scheduled run (Convex's `_scheduled_functions`), written by
/// [`Scheduler`](crate::scheduler::Scheduler) and crons.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, crate::Table)]
#[serde(rename_all = "camelCase")]
#[table(name = "_scheduled_functions")]
pub struct ScheduledFunction {
    /// The function's path, `module:function`.
    pub name: String,
    /// `[arguments]`, as Convex keeps them.
    pub args: crate::Value,
    /// When it is due, in milliseconds since the epoch.
    pub scheduled_time: f64,
    /// When it finished, failed or was canceled.
    pub completed_time: Option<f64>,
    pub state: JobState,
}

/// Where a scheduled run stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, crate::Validated)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum JobState {
    Pending,
    /// An action that started; a mutation is never seen running, as it
    /// runs and records its success in one transaction.
    InProgress,
    Success,
    Failed {
        error: String,
    },
    Canceled,
}

/// A stored file's metadata (Convex's `_storage`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, crate::Table)]
#[serde(rename_all = "camelCase")]
#[table(name = "_storage")]
pub struct StoredFile {
    /// SHA-256 of the bytes, base64.
    pub sha256: String,
    /// Bytes.
    pub size: f64,
    pub content_type: Option<String>,
}
