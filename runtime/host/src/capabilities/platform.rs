//! `scheduler`, `storage` and `fetch`: what the server provides beyond the
//! store, through [`Platform`]. The host checks who may use what (a query
//! schedules nothing, only actions fetch) and bounds how much one call
//! schedules; the server does the work.

use capstan_store::Transaction;

use super::{Access, HostResult, error};
use crate::bindings::capstan::runtime::types::FunctionError;
use crate::bindings::capstan::runtime::{fetch, http_types, scheduler, storage};
use crate::state::{CallState, Reach};

/// An HTTP request: an HTTP action's, or one an action sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// An HTTP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What the server provides to functions beyond the store. Where a
/// `transaction` is given (a mutation's, or a query's for reading), the work
/// is part of it; `None` (an action) does it in a transaction of its own.
pub trait Platform: Send + Sync + std::fmt::Debug {
    /// Schedules `path` with `args` (Convex JSON) at `at_ms`; the job's id.
    fn schedule(
        &self,
        transaction: Option<&mut Transaction>,
        path: &str,
        args: &str,
        at_ms: f64,
    ) -> Result<String, FunctionError>;
    /// Cancels a job that has not started.
    fn cancel(&self, transaction: Option<&mut Transaction>, id: &str) -> Result<(), FunctionError>;
    /// A short-lived URL to upload a file to.
    fn upload_url(&self) -> Result<String, FunctionError>;
    /// A download URL for the file `id`, if it exists.
    fn file_url(
        &self,
        transaction: Option<&mut Transaction>,
        id: &str,
    ) -> Result<Option<String>, FunctionError>;
    /// Deletes the file `id`.
    fn delete_file(
        &self,
        transaction: Option<&mut Transaction>,
        id: &str,
    ) -> Result<(), FunctionError>;
    /// Stores `body` as a new file; its id.
    fn store_file(
        &self,
        body: Vec<u8>,
        content_type: Option<String>,
    ) -> Result<String, FunctionError>;
    /// The bytes of the file `id`, if it exists.
    fn read_file(&self, id: &str) -> Result<Option<Vec<u8>>, FunctionError>;
    /// Sends an outbound HTTP request.
    fn fetch(&self, request: HttpRequest) -> Result<HttpResponse, FunctionError>;
}

/// What kind of call is asking, for the messages of refusals.
enum Asker<'a> {
    Query(&'a mut Transaction),
    Mutation(&'a mut Transaction),
    Action,
    Nothing,
}

impl CallState {
    fn asker(&mut self) -> Asker<'_> {
        match &mut self.reach {
            Reach::Call(Access::Query(transaction)) => Asker::Query(transaction),
            Reach::Call(Access::Mutation(transaction)) => Asker::Mutation(transaction),
            Reach::Call(Access::Action(_)) => Asker::Action,
            Reach::Nothing => Asker::Nothing,
        }
    }

    /// The platform and the transaction to write in, for an operation that
    /// mutations and actions may do but queries may not.
    fn writing(
        &mut self,
        operation: &str,
    ) -> Result<(std::sync::Arc<dyn Platform>, Option<&mut Transaction>), FunctionError> {
        let platform = self.platform()?;
        match self.asker() {
            Asker::Mutation(transaction) => Ok((platform, Some(transaction))),
            Asker::Action => Ok((platform, None)),
            Asker::Query(_) => Err(error(format!(
                "{operation} writes, and a query cannot write; use a mutation or an action"
            ))),
            Asker::Nothing => Err(error(format!("{operation} needs a function call"))),
        }
    }

    /// The platform, for an operation only actions may do.
    fn acting(&mut self, operation: &str) -> Result<std::sync::Arc<dyn Platform>, FunctionError> {
        let platform = self.platform()?;
        match self.asker() {
            Asker::Action => Ok(platform),
            Asker::Query(_) | Asker::Mutation(_) | Asker::Nothing => Err(error(format!(
                "{operation} is only available in actions: queries and mutations stay deterministic"
            ))),
        }
    }

    fn platform(&self) -> Result<std::sync::Arc<dyn Platform>, FunctionError> {
        self.platform
            .clone()
            .ok_or_else(|| error("this server does not provide schedules, files or fetch"))
    }
}

impl scheduler::Host for CallState {
    fn schedule(&mut self, path: String, args: String, at_ms: f64) -> HostResult<String> {
        let limit = self.limits.max_scheduled_per_call;
        if self.scheduled >= limit {
            return Ok(Err(error(format!(
                "ctx.scheduler(): one call may schedule at most {limit} functions"
            ))));
        }
        if args.len() > self.limits.max_args {
            return Ok(Err(error(format!(
                "ctx.scheduler(): the arguments of {path} are {} bytes, over the limit of {}",
                args.len(),
                self.limits.max_args
            ))));
        }
        if !at_ms.is_finite() {
            return Ok(Err(error(
                "ctx.scheduler(): the time must be a finite number",
            )));
        }
        let result = self
            .writing("ctx.scheduler()")
            .and_then(|(platform, transaction)| {
                platform.schedule(transaction, &path, &args, at_ms)
            });
        if result.is_ok() {
            self.scheduled += 1;
        }
        Ok(result)
    }

    fn cancel(&mut self, id: String) -> HostResult<()> {
        Ok(self
            .writing("ctx.scheduler().cancel")
            .and_then(|(platform, transaction)| platform.cancel(transaction, &id)))
    }
}

impl storage::Host for CallState {
    fn generate_upload_url(&mut self) -> HostResult<String> {
        Ok(self
            .writing("ctx.storage().generate_upload_url")
            .and_then(|(platform, _)| platform.upload_url()))
    }

    fn get_url(&mut self, id: String) -> HostResult<Option<String>> {
        let platform = match self.platform() {
            Ok(platform) => platform,
            Err(e) => return Ok(Err(e)),
        };
        Ok(match self.asker() {
            Asker::Query(transaction) | Asker::Mutation(transaction) => {
                platform.file_url(Some(transaction), &id)
            }
            Asker::Action => platform.file_url(None, &id),
            Asker::Nothing => Err(error("ctx.storage() needs a function call")),
        })
    }

    fn delete(&mut self, id: String) -> HostResult<()> {
        Ok(self
            .writing("ctx.storage().delete")
            .and_then(|(platform, transaction)| platform.delete_file(transaction, &id)))
    }

    fn store(&mut self, body: Vec<u8>, content_type: Option<String>) -> HostResult<String> {
        Ok(self
            .acting("ctx.storage().store")
            .and_then(|platform| platform.store_file(body, content_type)))
    }

    fn get(&mut self, id: String) -> HostResult<Option<Vec<u8>>> {
        Ok(self
            .acting("ctx.storage().get")
            .and_then(|platform| platform.read_file(&id)))
    }
}

impl fetch::Host for CallState {
    fn fetch(&mut self, request: http_types::Request) -> HostResult<http_types::Response> {
        let platform = match self.acting("ctx.fetch()") {
            Ok(platform) => platform,
            Err(e) => return Ok(Err(e)),
        };
        // What the action printed so far comes before what happens next.
        self.logs.drain_output();
        Ok(platform.fetch(request.into()).map(Into::into))
    }
}

impl http_types::Host for CallState {}

impl From<http_types::Request> for HttpRequest {
    fn from(request: http_types::Request) -> Self {
        HttpRequest {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body,
        }
    }
}

impl From<HttpRequest> for http_types::Request {
    fn from(request: HttpRequest) -> Self {
        http_types::Request {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body,
        }
    }
}

impl From<http_types::Response> for HttpResponse {
    fn from(response: http_types::Response) -> Self {
        HttpResponse {
            status: response.status,
            headers: response.headers,
            body: response.body,
        }
    }
}

impl From<HttpResponse> for http_types::Response {
    fn from(response: HttpResponse) -> Self {
        http_types::Response {
            status: response.status,
            headers: response.headers,
            body: response.body,
        }
    }
}
