//! ModifyQuerySet: the socket's queries added (subscribed through the
//! manager) and removed, then a Transition.

use std::sync::Arc;

use capstan_host::FunctionPath;
use capstan_protocol::ErrorCode;
use capstan_protocol::sync::{QueryOutcome, QuerySetModification};

use super::Worker;
use super::close::Close;
use crate::arguments::call_arguments;
use crate::sync::subscriptions::{QueryHandle, QueryKey};

pub(super) struct LiveQuery {
    pub(super) handle: QueryHandle,
    pub(super) path: FunctionPath,
    pub(super) args: String,
    /// The result last sent on this socket.
    pub(super) sent: Option<Arc<QueryOutcome>>,
}

impl LiveQuery {
    /// Bytes of the result last sent, which the socket holds.
    pub(super) fn sent_size(&self) -> usize {
        self.sent.as_ref().map_or(0, |sent| sent.size())
    }
}

impl Worker {
    pub(super) async fn modify_query_set(
        &mut self,
        base_version: u32,
        new_version: u32,
        modifications: Vec<QuerySetModification>,
    ) -> Result<(), Close> {
        if base_version != self.query_set_version {
            return Err(Close::out_of_sync(format!(
                "BaseVersionMismatch: query set version {base_version} does not follow {}",
                self.query_set_version
            )));
        }
        if new_version <= base_version {
            return Err(Close::out_of_sync(format!(
                "query set version {new_version} does not advance {base_version}"
            )));
        }
        for modification in modifications {
            match modification {
                QuerySetModification::Add {
                    query_id,
                    udf_path,
                    args,
                    ..
                } => {
                    if self.queries.contains_key(&query_id) {
                        return Err(Close::out_of_sync(format!(
                            "query {query_id} is already subscribed"
                        )));
                    }
                    if self.queries.len() >= self.context.limits.max_queries_per_socket {
                        return Err(Close::refuse(
                            ErrorCode::TooManyQueries,
                            format!(
                                "a socket holds at most {} queries",
                                self.context.limits.max_queries_per_socket
                            ),
                        ));
                    }
                    let path = udf_path;
                    let args = call_arguments(Some(args)).map_err(|e| {
                        Close::refuse(
                            ErrorCode::InvalidMessage,
                            format!("query {query_id}: {}", e.public_message()),
                        )
                    })?;
                    let handle = self.subscribe(&path, &args).await?;
                    self.queries.insert(
                        query_id,
                        LiveQuery {
                            handle,
                            path,
                            args,
                            sent: None,
                        },
                    );
                    self.removed.retain(|id| *id != query_id);
                }
                QuerySetModification::Remove { query_id } => {
                    let Some(query) = self.queries.remove(&query_id) else {
                        return Err(Close::out_of_sync(format!(
                            "query {query_id} is not subscribed"
                        )));
                    };
                    self.context
                        .subscriptions
                        .unsubscribe(query.handle, &self.subscriber)
                        .await;
                    self.removed.push(query_id);
                }
            }
        }
        self.query_set_version = new_version;
        self.transition(true).await
    }

    pub(super) async fn subscribe(
        &self,
        path: &FunctionPath,
        args: &str,
    ) -> Result<QueryHandle, Close> {
        self.context
            .subscriptions
            .subscribe(
                QueryKey {
                    path: path.clone(),
                    args: args.to_owned(),
                    identity: self.identity.clone(),
                },
                &self.subscriber,
            )
            .await
            .ok_or_else(Close::shutdown)
    }
}
