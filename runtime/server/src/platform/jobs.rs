//! Scheduled runs as rows of `_scheduled_functions`: adding one (inside
//! the scheduling mutation's transaction, or one of its own), canceling,
//! finding what is due, and recording how each run ended.
//!
//! A row's `state.kind` moves `pending` → `success` | `failed` |
//! `canceled` for a mutation (the run and its success commit together, so
//! it runs exactly once), and `pending` → `inProgress` → `success` |
//! `failed` for an action (marked in progress before it starts, so a crash
//! leaves it marked, and it is failed at the next start, never run twice).

use capstan_protocol::{Object, Value};
use capstan_store::{Document, DocumentId, Order, Query, Transaction};

use super::tables::{BY_STATE, SCHEDULED};

pub const PENDING: &str = "pending";
pub const IN_PROGRESS: &str = "inProgress";
pub const SUCCESS: &str = "success";
pub const FAILED: &str = "failed";
pub const CANCELED: &str = "canceled";

/// A job's outcome, as recorded.
#[derive(Clone, Debug, PartialEq)]
pub enum Ending {
    Success,
    Failed(String),
    Canceled,
}

fn state(kind: &str, error: Option<String>) -> Value {
    let mut state = Object::new();
    state.insert("kind".into(), Value::String(kind.into()));
    if let Some(error) = error {
        state.insert("error".into(), Value::String(error));
    }
    Value::Object(state)
}

/// Adds a pending run of `path` with `args` (a Convex JSON object) at
/// `at_ms`; its id.
pub fn add(tx: &mut Transaction, path: &str, args: &str, at_ms: f64) -> Result<DocumentId, String> {
    let args = match Value::from_json_str(args) {
        Ok(object @ Value::Object(_)) => object,
        Ok(other) => {
            return Err(format!(
                "the arguments of {path} must be an object, not {}",
                other.value_type().name()
            ));
        }
        Err(e) => return Err(format!("invalid arguments for {path}: {e}")),
    };
    let mut fields = Object::new();
    fields.insert("name".into(), Value::String(path.into()));
    fields.insert("args".into(), Value::Array(vec![args]));
    fields.insert("scheduledTime".into(), Value::Float64(at_ms));
    fields.insert("state".into(), state(PENDING, None));
    tx.insert(SCHEDULED, fields).map_err(|e| e.to_string())
}

/// The job `id` (text), if it is a row of `_scheduled_functions`.
pub fn get(tx: &mut Transaction, id: &str) -> Result<Option<Document>, String> {
    let Ok(id) = tx.parse_id(id) else {
        return Ok(None);
    };
    let Ok(entry) = tx.catalog().table(SCHEDULED) else {
        return Ok(None);
    };
    if id.table() != entry.number {
        return Ok(None);
    }
    tx.get(id).map_err(|e| e.to_string())
}

/// The job's state kind.
pub fn kind(job: &Document) -> &str {
    job.fields
        .get("state")
        .and_then(|state| state.get_path("kind"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The job's function path and arguments object (Convex JSON).
pub fn call(job: &Document) -> (String, String) {
    let path = job
        .fields
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let args = match job.fields.get("args") {
        Some(Value::Array(args)) => args.first().cloned(),
        _ => None,
    }
    .unwrap_or_else(|| Value::Object(Object::new()));
    (path, args.to_json_string())
}

pub fn scheduled_time(job: &Document) -> f64 {
    match job.fields.get("scheduledTime") {
        Some(Value::Float64(at)) => *at,
        _ => 0.0,
    }
}

/// Cancels `id` if it has not started. An unknown id is an error; a run
/// already finished, or an action already running, is left as it is.
pub fn cancel(tx: &mut Transaction, id: &str) -> Result<(), String> {
    let job = get(tx, id)?.ok_or_else(|| format!("no scheduled function {id:?}"))?;
    if kind(&job) == PENDING {
        let now = tx.now_ms();
        end(tx, job, &Ending::Canceled, now)?;
    }
    Ok(())
}

/// Records how `job` ended, at `now_ms`.
pub fn end(
    tx: &mut Transaction,
    job: Document,
    ending: &Ending,
    now_ms: f64,
) -> Result<(), String> {
    let state = match ending {
        Ending::Success => state(SUCCESS, None),
        Ending::Failed(error) => state(FAILED, Some(error.clone())),
        Ending::Canceled => state(CANCELED, None),
    };
    let patch = [
        ("state".to_owned(), Some(state)),
        ("completedTime".to_owned(), Some(Value::Float64(now_ms))),
    ]
    .into_iter()
    .collect();
    tx.patch(job.id, patch)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Marks an action's `job` as started.
pub fn start(tx: &mut Transaction, job: DocumentId) -> Result<(), String> {
    let patch = [("state".to_owned(), Some(state(IN_PROGRESS, None)))]
        .into_iter()
        .collect();
    tx.patch(job, patch).map(|_| ()).map_err(|e| e.to_string())
}

/// Up to `limit` jobs in `kind`, earliest first, due by `until_ms` (all of
/// them with `None`).
pub fn in_state(
    tx: &mut Transaction,
    kind: &str,
    until_ms: Option<f64>,
    limit: usize,
) -> Result<Vec<Document>, String> {
    if tx.catalog().table(SCHEDULED).is_err() {
        return Ok(Vec::new());
    }
    let mut query = Query::index(SCHEDULED, BY_STATE).eq("state.kind", kind);
    if let Some(until) = until_ms {
        query = query.lte("scheduledTime", until);
    }
    tx.query(&query.order(Order::Asc), Some(limit))
        .map_err(|e| e.to_string())
}
