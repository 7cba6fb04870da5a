//! `db`: the document store, through the call's transaction. Queries read;
//! mutations read and write; actions have no transaction.

use capstan_protocol::Value;
use capstan_store::{DocumentId, ErrorCode, Patch, Query, Transaction};

use super::{Access, HostResult, error};
use crate::bindings::capstan::runtime::db;
use crate::bindings::capstan::runtime::types::FunctionError;
use crate::state::{CallState, Reach};

/// An error raised by a host call that aborts the whole call, because the
/// server itself is at fault.
#[derive(Debug)]
pub struct InternalFault(pub String);

impl std::fmt::Display for InternalFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InternalFault {}

impl CallState {
    /// The transaction, for reading.
    fn reader(&mut self, operation: &str) -> Result<&mut Transaction, FunctionError> {
        match &mut self.reach {
            Reach::Call(Access::Query(transaction) | Access::Mutation(transaction)) => {
                Ok(transaction)
            }
            Reach::Call(Access::Action(_)) => Err(error(format!(
                "ctx.db().{operation} is not available in an action; use run_query or run_mutation"
            ))),
            Reach::Nothing => Err(error(format!(
                "ctx.db().{operation} is not available outside a function"
            ))),
        }
    }

    /// The transaction, for writing: a mutation's only.
    fn writer(&mut self, operation: &str) -> Result<&mut Transaction, FunctionError> {
        if let Reach::Call(Access::Query(_)) = self.reach {
            return Err(error(format!(
                "ctx.db().{operation} writes, and a query cannot write; use a mutation"
            )));
        }
        self.reader(operation)
    }

    /// Store errors the app caused become function errors it can handle;
    /// faults of the server abort the call.
    fn store_result<T>(&mut self, result: capstan_store::Result<T>) -> HostResult<T> {
        match result {
            Ok(value) => Ok(Ok(value)),
            Err(e) => match e.code() {
                ErrorCode::Internal | ErrorCode::Unavailable => {
                    self.internal = Some(e.to_string());
                    Err(wasmtime::Error::new(InternalFault(e.to_string())))
                }
                ErrorCode::BadRequest
                | ErrorCode::NotFound
                | ErrorCode::SchemaViolation
                | ErrorCode::LimitExceeded => Ok(Err(error(e.to_string()))),
            },
        }
    }

    /// Refuses a write to a system table (`_storage`,
    /// `_scheduled_functions`): only the server writes them.
    fn check_writable(
        &mut self,
        table: Option<&str>,
        id: Option<DocumentId>,
    ) -> Result<(), FunctionError> {
        let transaction = self.reader("write")?;
        let name = match (table, id) {
            (Some(table), _) => table.to_owned(),
            (None, Some(id)) => match transaction.catalog().table_of(&id) {
                Ok(name) => name.to_owned(),
                Err(_) => return Ok(()),
            },
            (None, None) => return Ok(()),
        };
        if name.starts_with('_') {
            return Err(error(format!(
                "{name} is a system table: functions read it, and change it only through ctx.scheduler() and ctx.storage()"
            )));
        }
        Ok(())
    }

    fn parse_id(&mut self, text: &str) -> Result<DocumentId, FunctionError> {
        let transaction = self.reader("get")?;
        transaction.parse_id(text).map_err(|e| error(e.to_string()))
    }
}

fn parse_object(text: &str, what: &str) -> Result<capstan_protocol::Object, FunctionError> {
    match Value::from_json_str(text) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(other) => Err(error(format!(
            "{what} must be an object, not {}",
            other.value_type().name()
        ))),
        Err(e) => Err(error(format!("invalid {what}: {e}"))),
    }
}

fn document_json(document: &capstan_store::Document) -> String {
    document.to_json_string()
}

impl db::Host for CallState {
    fn get(&mut self, id: String) -> HostResult<Option<String>> {
        let id = match self.parse_id(&id) {
            Ok(id) => id,
            Err(e) => return Ok(Err(e)),
        };
        let result = match self.reader("get") {
            Ok(transaction) => transaction.get(id),
            Err(e) => return Ok(Err(e)),
        };
        Ok(self
            .store_result(result)?
            .map(|doc| doc.as_ref().map(document_json)))
    }

    fn insert(&mut self, table: String, value: String) -> HostResult<String> {
        let fields = match parse_object(&value, "a document") {
            Ok(fields) => fields,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = self
            .writer("insert")
            .map(|_| ())
            .and_then(|()| self.check_writable(Some(&table), None))
        {
            return Ok(Err(e));
        }
        let result = match self.writer("insert") {
            Ok(transaction) => transaction.insert(&table, fields),
            Err(e) => return Ok(Err(e)),
        };
        Ok(self.store_result(result)?.map(|id| id.to_string()))
    }

    fn patch(&mut self, id: String, set: String, unset: Vec<String>) -> HostResult<String> {
        let prepared = self.writer("patch").map(|_| ()).and_then(|()| {
            let fields = parse_object(&set, "a patch")?;
            let id = self.parse_id(&id)?;
            self.check_writable(None, Some(id))?;
            let mut patch: Patch = fields.into_iter().map(|(k, v)| (k, Some(v))).collect();
            patch.extend(unset.into_iter().map(|k| (k, None)));
            Ok((id, patch))
        });
        let (id, patch) = match prepared {
            Ok(prepared) => prepared,
            Err(e) => return Ok(Err(e)),
        };
        let result = match self.writer("patch") {
            Ok(transaction) => transaction.patch(id, patch),
            Err(e) => return Ok(Err(e)),
        };
        Ok(self.store_result(result)?.map(|doc| document_json(&doc)))
    }

    fn replace(&mut self, id: String, value: String) -> HostResult<String> {
        let prepared = self.writer("replace").map(|_| ()).and_then(|()| {
            let id = self.parse_id(&id)?;
            self.check_writable(None, Some(id))?;
            Ok((id, parse_object(&value, "a document")?))
        });
        let (id, fields) = match prepared {
            Ok(prepared) => prepared,
            Err(e) => return Ok(Err(e)),
        };
        let result = match self.writer("replace") {
            Ok(transaction) => transaction.replace(id, fields),
            Err(e) => return Ok(Err(e)),
        };
        Ok(self.store_result(result)?.map(|doc| document_json(&doc)))
    }

    fn delete(&mut self, id: String) -> HostResult<()> {
        let id = match self.writer("delete").map(|_| ()).and_then(|()| {
            let id = self.parse_id(&id)?;
            self.check_writable(None, Some(id))?;
            Ok(id)
        }) {
            Ok(id) => id,
            Err(e) => return Ok(Err(e)),
        };
        let result = match self.writer("delete") {
            Ok(transaction) => transaction.delete(id),
            Err(e) => return Ok(Err(e)),
        };
        Ok(self.store_result(result)?.map(|_| ()))
    }

    fn query(&mut self, query: String, limit: Option<u32>) -> HostResult<String> {
        let query: Query = match serde_json::from_str(&query) {
            Ok(query) => query,
            Err(e) => return Ok(Err(error(format!("invalid query: {e}")))),
        };
        let result = match self.reader("query") {
            Ok(transaction) => transaction.query(&query, limit.map(|l| l as usize)),
            Err(e) => return Ok(Err(e)),
        };
        Ok(self.store_result(result)?.map(|documents| {
            serde_json::to_string(&documents).expect("documents always serialise")
        }))
    }

    fn paginate(&mut self, query: String, options: db::PageOptions) -> HostResult<String> {
        let query: Query = match serde_json::from_str(&query) {
            Ok(query) => query,
            Err(e) => return Ok(Err(error(format!("invalid query: {e}")))),
        };
        let options = capstan_store::PaginationOptions {
            cursor: options.cursor,
            num_items: options.num_items as usize,
            end_cursor: options.end_cursor,
        };
        let result = match self.reader("paginate") {
            Ok(transaction) => transaction.paginate(&query, &options),
            Err(e) => return Ok(Err(e)),
        };
        Ok(self.store_result(result)?.map(|page| {
            // Keys in sorted order, as `Value` writes objects.
            #[derive(serde::Serialize)]
            #[serde(rename_all = "camelCase")]
            struct Page<'a> {
                continue_cursor: &'a str,
                is_done: bool,
                page: &'a [capstan_store::Document],
            }
            serde_json::to_string(&Page {
                continue_cursor: &page.continue_cursor,
                is_done: page.is_done,
                page: &page.page,
            })
            .expect("documents always serialise")
        }))
    }
}
