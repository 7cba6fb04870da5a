//! Mutations: the one OCC retry loop (run, commit, and on a conflict run
//! again at a newer snapshot), and exactly-once runs keyed by a receipt
//! (a socket's `(sessionId, requestId)`, with the caller, the function and
//! its arguments), recorded in the commit that applies them.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use capstan_host::{Access, Call, Environment, Failure, FunctionPath, Module};
use capstan_protocol::Identity;
use capstan_store::Store;
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::app::FunctionResult;
use crate::error::Error;
use crate::executor::{Executor, Placement};
use crate::limits::ServerLimits;
use crate::metrics::Metrics;

/// Runs mutations against the store.
#[derive(Debug)]
pub struct Mutations {
    store: Store,
    /// The retry deadline and backoff, and how many runs are remembered.
    limits: ServerLimits,
    /// Mutations that conflicted repeatedly take turns here (FIFO).
    contended: Mutex<()>,
    /// Receipt keys of exactly-once mutations running now: a resent copy
    /// waits for the original and then finds its receipt.
    running: std::sync::Mutex<HashMap<Vec<u8>, Weak<Mutex<()>>>>,
    metrics: Metrics,
}

/// One mutation to run.
#[derive(Debug)]
pub struct Mutation {
    pub module: Arc<Module>,
    pub path: FunctionPath,
    /// Convex JSON text of the arguments object.
    pub args: String,
    pub environment: Arc<Environment>,
    pub identity: Identity,
    /// Set for a mutation an action runs: its action's deadline.
    pub deadline: Option<std::time::Instant>,
    /// The scheduler, files and fetch.
    pub platform: Option<Arc<dyn capstan_host::Platform>>,
    /// For a scheduled run: its row of `_scheduled_functions`, marked done
    /// in the same commit.
    pub job: Option<capstan_store::DocumentId>,
}

/// What an exactly-once mutation recorded: its result and log lines.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Receipt {
    /// Convex JSON text.
    value: String,
    log_lines: Vec<String>,
}

/// The key a socket's mutation is recorded under: its session and request
/// id, who called, the function and its arguments, so that only the same
/// call by the same caller finds the record (a client that learns another
/// client's session id learns nothing from it).
pub fn receipt_key(
    session: &str,
    request_id: u32,
    caller: &Identity,
    path: &FunctionPath,
    args: &str,
) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for part in [
        session.as_bytes(),
        &request_id.to_le_bytes(),
        caller.caller_key().as_bytes(),
        path.as_str().as_bytes(),
        args.as_bytes(),
    ] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    let mut key = b"mutation/".to_vec();
    key.extend_from_slice(&hasher.finalize());
    key
}

impl Mutations {
    pub fn new(store: Store, limits: &ServerLimits, metrics: Metrics) -> Mutations {
        Mutations {
            metrics,
            store,
            limits: limits.clone(),
            contended: Mutex::new(()),
            running: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Waits until no other run under `receipt` is under way, and holds
    /// that turn until the guard drops.
    pub async fn turn(&self, receipt: &[u8]) -> OwnedMutexGuard<()> {
        let running = {
            let mut running = self
                .running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if running.len() > self.limits.running_receipts {
                running.retain(|_, run| run.strong_count() > 0);
            }
            match running.get(receipt).and_then(Weak::upgrade) {
                Some(run) => run,
                None => {
                    let run = Arc::new(Mutex::new(()));
                    running.insert(receipt.to_vec(), Arc::downgrade(&run));
                    run
                }
            }
        };
        running.lock_owned().await
    }

    /// The result and commit timestamp recorded under `receipt`, if a run
    /// under it committed.
    pub fn recorded(&self, receipt: &[u8]) -> Result<Option<FunctionResult>, Error> {
        let recorded = self
            .store
            .receipt(receipt)
            .map_err(|e| Error::internal(format!("cannot read a mutation receipt: {e}")))?;
        let Some((ts, payload)) = recorded else {
            return Ok(None);
        };
        let receipt: Receipt = serde_json::from_slice(&payload)
            .map_err(|e| Error::internal(format!("a corrupt mutation receipt: {e}")))?;
        Ok(Some(FunctionResult {
            result: Ok(receipt.value),
            log_lines: receipt.log_lines,
            ts: Some(ts),
        }))
    }

    /// The OCC retry loop: run, commit, and on a conflict run again at a
    /// newer snapshot, after a randomised backoff or, once contended, in
    /// turn. With a `receipt`, the result is recorded in the commit that
    /// applies it; failed runs record nothing, so running them again is
    /// harmless.
    pub async fn run(
        &self,
        executor: &Executor,
        mutation: Mutation,
        receipt: Option<&[u8]>,
    ) -> Result<FunctionResult, Error> {
        let Mutation {
            module,
            path,
            args,
            environment,
            identity,
            deadline,
            platform,
            job,
        } = mutation;
        let started = tokio::time::Instant::now();
        let mut queued = None;
        let mut attempt: u32 = 0;
        // With other nodes writing too, start from what they acknowledged
        // (a conflict's retry starts after the commits it lost to anyway).
        self.store.refresh().await.map_err(Error::from_store)?;
        loop {
            if attempt == self.limits.conflicts_before_queueing && queued.is_none() {
                queued = Some(self.contended.lock().await);
            }
            let call = Call {
                path: path.clone(),
                args: args.clone(),
                access: Access::Mutation(self.store.begin()),
                environment: environment.clone(),
                identity: identity.clone(),
                deadline,
                platform: platform.clone(),
            };
            let mut outcome = executor
                .run(module.clone(), call, Placement::Pool, None)
                .await?;
            let transaction = outcome.transaction.take();
            if outcome.result.is_err() {
                return Ok(FunctionResult {
                    result: outcome.result,
                    log_lines: outcome.log_lines,
                    ts: None,
                });
            }
            let Some(mut transaction) = transaction else {
                return Err(Error::internal("a mutation lost its transaction"));
            };
            if let Some(job) = job {
                // The run and its record commit together: exactly once. A
                // job canceled meanwhile is not run.
                let now = transaction.now_ms();
                let pending = transaction.get(job).ok().flatten().filter(|row| {
                    crate::platform::jobs::kind(row) == crate::platform::jobs::PENDING
                });
                let Some(row) = pending else {
                    return Ok(FunctionResult {
                        result: Err(Failure::Function {
                            message: "the scheduled run was canceled".into(),
                            data: None,
                        }),
                        log_lines: Vec::new(),
                        ts: None,
                    });
                };
                crate::platform::jobs::end(
                    &mut transaction,
                    row,
                    &crate::platform::jobs::Ending::Success,
                    now,
                )
                .map_err(Error::internal)?;
            }
            if let (Some(key), Ok(value)) = (receipt, &outcome.result) {
                let payload = serde_json::to_vec(&Receipt {
                    value: value.clone(),
                    log_lines: outcome.log_lines.clone(),
                })
                .map_err(|e| Error::internal(e.to_string()))?;
                transaction.record_receipt(key, payload);
            }
            match self.store.commit(transaction).await {
                Ok(Ok(ts)) => {
                    self.metrics.committed();
                    return Ok(FunctionResult {
                        result: outcome.result,
                        log_lines: outcome.log_lines,
                        ts: Some(ts),
                    });
                }
                Ok(Err(conflict)) => {
                    self.metrics.conflicted();
                    tracing::debug!(%path, attempt, %conflict, "mutation conflicted; retrying");
                    attempt += 1;
                    let out_of_time =
                        deadline.is_some_and(|deadline| std::time::Instant::now() >= deadline);
                    if started.elapsed() > self.limits.mutation_retry_deadline || out_of_time {
                        return Ok(FunctionResult {
                            result: Err(Failure::Function {
                                message: format!(
                                    "{path} kept conflicting with concurrent writes and gave up after {attempt} attempts: {conflict}"
                                ),
                                data: None,
                            }),
                            log_lines: Vec::new(),
                            ts: None,
                        });
                    }
                    if queued.is_none() {
                        // Exponential backoff with full jitter spreads
                        // contending writers out.
                        let ceiling = Duration::from_micros(100 << attempt.min(16))
                            .min(self.limits.max_mutation_backoff);
                        tokio::time::sleep(ceiling.mul_f64(rand::random::<f64>())).await;
                    }
                }
                Err(e) => return Err(Error::from_store(e)),
            }
        }
    }
}
