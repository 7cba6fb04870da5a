//! Mutations and actions a socket asked for: mutations queued and run one
//! at a time in the order they came (exactly once, with a session), actions
//! side by side up to a bound; each answered when it finishes.

use capstan_host::{Failure, FunctionKind, FunctionPath};
use capstan_protocol::sync::{
    ActionResponse, FunctionCall, MutationResponse, RequestId, ServerMessage,
};
use capstan_protocol::{ErrorCode, FunctionFailure, Identity, JsonText, Timestamp};
use tokio::sync::mpsc;

use super::Worker;
use super::close::Close;
use crate::app::{Caller, FunctionResult, public_result};
use crate::arguments::call_arguments;
use crate::error::Error;

pub(super) enum Completed {
    Mutation {
        request_id: RequestId,
        finished: Finished,
    },
    Action {
        request_id: RequestId,
        finished: Finished,
    },
}

/// A finished call as the client sees it.
pub(super) struct Finished {
    result: Result<JsonText, FunctionFailure>,
    log_lines: Vec<String>,
    /// A committed mutation's timestamp.
    ts: Option<Timestamp>,
    /// Set when the server, not the function, failed: the same call may
    /// succeed later.
    fault: Option<ErrorCode>,
}

impl From<Result<FunctionResult, Error>> for Finished {
    fn from(call: Result<FunctionResult, Error>) -> Finished {
        match call {
            Ok(result) => Finished {
                fault: result
                    .result
                    .as_ref()
                    .err()
                    .map(Failure::code)
                    .filter(|code| code.is_server_fault()),
                result: public_result(result.result),
                log_lines: result.log_lines,
                ts: result.ts,
            },
            Err(error) => Finished {
                fault: Some(error.code()).filter(|code| code.is_server_fault()),
                result: Err(error.into_failure()),
                log_lines: Vec::new(),
                ts: None,
            },
        }
    }
}

pub(super) struct MutationJob {
    /// The socket's session id: present when the client said Connect.
    session: Option<String>,
    client: std::net::IpAddr,
    /// Its arguments' room in the socket's queue, given back when it ends.
    _room: tokio::sync::OwnedSemaphorePermit,
    request_id: RequestId,
    path: FunctionPath,
    args: String,
    identity: Identity,
}

/// The KiB of arguments a socket's queued mutations may hold.
pub(super) fn budget_kib(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX)
}

impl Worker {
    /// Queues a mutation behind the socket's others: they run one at a
    /// time, in the order they came.
    pub(super) async fn mutation(&mut self, call: FunctionCall) -> Result<(), Close> {
        let request_id = call.request_id;
        let args = match call_arguments(Some(call.args)) {
            Ok(args) => args,
            Err(error) => {
                let response =
                    MutationResponse::new(request_id, Err(error.into_failure()), Vec::new());
                return self.send(ServerMessage::MutationResponse(response)).await;
            }
        };
        let identity = self.identity.clone();
        // Room for its arguments among the socket's queued mutations: a
        // socket that sends faster than its mutations run waits here.
        let budget = self.queued_mutation_bytes.clone();
        let kib = u32::try_from(args.len().div_ceil(1024).max(1))
            .unwrap_or(u32::MAX)
            .min(budget_kib(self.context.limits.queued_mutation_bytes));
        let room = budget
            .acquire_many_owned(kib)
            .await
            .map_err(|_| Close::from(Error::internal("the mutation queue closed")))?;
        let job = MutationJob {
            _room: room,
            client: self.client,
            session: self.session_id.clone(),
            request_id,
            path: call.udf_path,
            args,
            identity,
        };
        // A full queue holds up this socket's worker (and so its reading)
        // until the mutation ahead finishes: back-pressure, not loss.
        let queue = self.mutation_queue().clone();
        queue
            .send(job)
            .await
            .map_err(|_| Close::from(Error::internal("the mutation runner stopped")))
    }

    fn mutation_queue(&mut self) -> &mpsc::Sender<MutationJob> {
        let capacity = self.context.limits.mutation_queue.max(1);
        self.mutations.get_or_insert_with(|| {
            let (jobs, mut receiver) = mpsc::channel::<MutationJob>(capacity);
            let app = self.context.app.clone();
            let completed = self.completed_sender.clone();
            // Ends when the worker drops `jobs`.
            self.context.tasks.spawn(async move {
                while let Some(job) = receiver.recv().await {
                    let result = match &job.session {
                        Some(session) => {
                            app.call_mutation_once(
                                &job.path,
                                job.args,
                                Caller::new(job.identity.clone()).from(job.client),
                                (session, job.request_id.0),
                            )
                            .await
                        }
                        None => {
                            app.call(
                                Some(FunctionKind::Mutation),
                                &job.path,
                                job.args,
                                Caller::new(job.identity.clone()).from(job.client),
                            )
                            .await
                        }
                    };
                    let done = Completed::Mutation {
                        request_id: job.request_id,
                        finished: result.into(),
                    };
                    if completed.send(Box::new(done)).is_err() {
                        return;
                    }
                }
            });
            jobs
        })
    }

    pub(super) async fn action(&mut self, call: FunctionCall) -> Result<(), Close> {
        // The socket's frames are not read while it has the most actions
        // running (`run_socket`), so there is room for this one.
        let (request_id, path) = (call.request_id, call.udf_path);
        let args = match call_arguments(Some(call.args)) {
            Ok(args) => args,
            Err(error) => {
                let response =
                    ActionResponse::new(request_id, Err(error.into_failure()), Vec::new());
                return self.send(ServerMessage::ActionResponse(response)).await;
            }
        };
        self.actions_in_flight += 1;
        let app = self.context.app.clone();
        let completed = self.completed_sender.clone();
        let caller = Caller::new(self.identity.clone()).from(self.client);
        // Ends when the action does.
        self.context.tasks.spawn(async move {
            let done = Completed::Action {
                request_id,
                finished: app
                    .call(Some(FunctionKind::Action), &path, args, caller)
                    .await
                    .into(),
            };
            let _ = completed.send(Box::new(done));
        });
        Ok(())
    }

    pub(super) async fn complete(&mut self, done: Completed) -> Result<(), Close> {
        match done {
            Completed::Mutation {
                request_id,
                finished:
                    Finished {
                        result,
                        log_lines,
                        ts,
                        fault,
                    },
            } => {
                // A mutation the server failed to run is not answered: the
                // socket closes, and the client sends it again on its next
                // one, where its receipt keeps it from running twice.
                if let Some(fault) = fault {
                    return Err(Close::refuse(fault, ""));
                }
                let result = match (result, ts) {
                    (Ok(value), Some(ts)) => Ok((value, ts)),
                    (Ok(_), None) => {
                        Err(Error::internal("a mutation succeeded without a commit").into_failure())
                    }
                    (Err(failure), _) => Err(failure),
                };
                let response = MutationResponse::new(request_id, result, log_lines);
                self.send(ServerMessage::MutationResponse(response)).await?;
                if let Some(ts) = ts {
                    self.uncovered = Some(self.uncovered.map_or(ts, |t| t.max(ts)));
                }
                self.transition(false).await
            }
            Completed::Action {
                request_id,
                finished: Finished {
                    result, log_lines, ..
                },
            } => {
                self.actions_in_flight -= 1;
                let response = ActionResponse::new(request_id, result, log_lines);
                self.send(ServerMessage::ActionResponse(response)).await
            }
        }
    }
}
