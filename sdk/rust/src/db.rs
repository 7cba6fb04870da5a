//! The database, as functions see it.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::capstan::runtime::db as host;
use crate::error::{Error, Result};
use crate::filter::Expr;
use crate::id::{Doc, Id};
use crate::index::{Comparison, Index, IndexRange, IntoRange, NamedRange};
use crate::table::{Patch, Table};
use crate::values::to_value;

/// Reads at the snapshot of the function's transaction. Every read is
/// recorded, so a subscribed query re-runs when what it read changes, and a
/// mutation retries if what it read changed before it committed.
#[derive(Debug)]
pub struct DatabaseReader<'a> {
    pub(crate) _context: PhantomData<&'a ()>,
}

/// Reads and writes; writes become visible to others when the mutation
/// commits, all together.
#[derive(Debug)]
pub struct DatabaseWriter<'a> {
    pub(crate) reader: DatabaseReader<'a>,
}

impl<'a> std::ops::Deref for DatabaseWriter<'a> {
    type Target = DatabaseReader<'a>;

    fn deref(&self) -> &DatabaseReader<'a> {
        &self.reader
    }
}

impl DatabaseReader<'_> {
    /// The document with this id, if it exists.
    pub fn get<T: Table>(&self, id: &Id<T>) -> Result<Option<Doc<T>>> {
        match host::get(id.as_str()).map_err(Error::from_host)? {
            None => Ok(None),
            Some(text) => Doc::from_text(&text).map(Some),
        }
    }

    /// Starts a query over `T`'s table.
    pub fn query<T: Table>(&self) -> QueryBuilder<T> {
        QueryBuilder::new(T::NAME)
    }

    /// Starts a query over any table, reading documents as `T` (for example
    /// `serde_json::Value`).
    pub fn query_table<T: DeserializeOwned>(&self, table: &str) -> QueryBuilder<T> {
        QueryBuilder::new(table)
    }
}

impl DatabaseWriter<'_> {
    /// Inserts a document and returns its new id.
    pub fn insert<T: Table>(&mut self, document: &T) -> Result<Id<T>> {
        self.insert_into(T::NAME, document).map(Id::from_string)
    }

    /// Inserts into any table; returns the id string.
    pub fn insert_into<D: Serialize + ?Sized>(
        &mut self,
        table: &str,
        document: &D,
    ) -> Result<String> {
        let value = to_value(document)?;
        host::insert(table, &value.to_json_string()).map_err(Error::from_host)
    }

    /// Shallow merge: writes the fields `patch` sets and removes the ones
    /// it unsets, leaving the others as they are; returns the new document.
    ///
    /// ```ignore
    /// db.patch(&note.id, NotePatch::new().archived(true))?;
    /// db.patch(&note.id, capstan::json!({ "archived": true }))?;
    /// ```
    pub fn patch<T: Table>(&mut self, id: &Id<T>, patch: impl Patch<T>) -> Result<Doc<T>> {
        let (set, unset) = patch.into_parts()?;
        let set = capstan_protocol::Value::Object(set).to_json_string();
        let text = host::patch(id.as_str(), &set, &unset).map_err(Error::from_host)?;
        Doc::from_text(&text)
    }

    /// Replaces every field of the document.
    pub fn replace<T: Table>(&mut self, id: &Id<T>, document: &T) -> Result<Doc<T>> {
        let value = to_value(document)?;
        let text = host::replace(id.as_str(), &value.to_json_string()).map_err(Error::from_host)?;
        Doc::from_text(&text)
    }

    pub fn delete<T: Table>(&mut self, id: &Id<T>) -> Result<()> {
        host::delete(id.as_str()).map_err(Error::from_host)
    }
}

/// Ascending or descending index order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    #[default]
    Asc,
    Desc,
}

/// A query being built. Choose a source with [`QueryBuilder::with_index`] or,
/// explicitly, [`QueryBuilder::full_table_scan`]; then read with
/// [`QueryBuilder::collect`], [`QueryBuilder::take`], [`QueryBuilder::first`],
/// [`QueryBuilder::unique`] or [`QueryBuilder::paginate`].
#[derive(Debug)]
pub struct QueryBuilder<T> {
    table: String,
    source: Option<Source>,
    order: Order,
    filter: Option<Expr>,
    error: Option<Error>,
    documents: PhantomData<fn() -> T>,
}

/// Where a page of a paginated query starts and how long it is: Convex's
/// `paginationOpts`, as `usePaginatedQuery` and the other clients send it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaginationOpts {
    pub num_items: u32,
    /// Where the previous page ended; `None` starts at the beginning.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Where this page ends, when a client reads a page again as it was:
    /// every document up to it, whatever `num_items` says.
    #[serde(default)]
    pub end_cursor: Option<String>,
    /// The client's own name for the paginated query; not read here.
    #[serde(default)]
    pub id: Option<f64>,
    /// Convex's read limits for one page; Capstan's transaction limits
    /// apply instead.
    #[serde(default)]
    pub maximum_rows_read: Option<f64>,
    #[serde(default)]
    pub maximum_bytes_read: Option<f64>,
}

/// One page, in Convex's shape.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaginationResult<D> {
    pub page: Vec<D>,
    pub is_done: bool,
    pub continue_cursor: String,
}

impl<T: DeserializeOwned> QueryBuilder<T> {
    fn new(table: &str) -> Self {
        QueryBuilder {
            table: table.to_owned(),
            source: None,
            order: Order::Asc,
            filter: None,
            error: None,
            documents: PhantomData,
        }
    }

    /// Reads through `index`, over the range `range` builds:
    /// `.with_index(Message::by_channel, |q| q.eq(&channel))`.
    pub fn with_index<F, R: IntoRange>(
        self,
        index: Index<T, F>,
        range: impl FnOnce(IndexRange<F>) -> R,
    ) -> Self {
        self.through(index.name(), range(IndexRange::start(index.fields())))
    }

    /// Reads through an index known by name only (a table without a
    /// document type of its own), each comparison naming its field:
    /// `.with_named_index("by_channel", |q| q.eq("channel", &channel))`.
    pub fn with_named_index(
        self,
        name: &str,
        range: impl FnOnce(NamedRange) -> NamedRange,
    ) -> Self {
        self.through(name, range(NamedRange::default()))
    }

    fn through(mut self, name: &str, range: impl IntoRange) -> Self {
        match range.into_range().into_comparisons() {
            Ok(comparisons) => {
                self.source = Some(Source::Index {
                    name: name.to_owned(),
                    range: comparisons,
                })
            }
            Err(error) => self.error = Some(error),
        }
        self
    }

    /// Reads the whole table in creation order. Costs grow with the table;
    /// prefer an index.
    pub fn full_table_scan(mut self) -> Self {
        self.source = Some(Source::FullTableScan);
        self
    }

    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    /// Keeps only the documents for which `filter` is true; evaluated by the
    /// server as it reads.
    pub fn filter(mut self, filter: Expr) -> Self {
        self.filter = Some(filter);
        self
    }

    fn encode(&self) -> Result<String> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        let source = self.source.as_ref().ok_or_else(|| {
            Error::new(format!(
                "the query on {:?} needs a source: call with_index(..) or full_table_scan()",
                self.table
            ))
        })?;
        /// The query as the host reads it, written without building a tree.
        #[derive(Serialize)]
        struct Encoded<'a> {
            table: &'a str,
            source: serde_json::Value,
            order: &'static str,
            #[serde(skip_serializing_if = "Option::is_none")]
            filter: Option<serde_json::Value>,
        }
        let query = Encoded {
            table: &self.table,
            source: source.to_json(),
            order: match self.order {
                Order::Asc => "asc",
                Order::Desc => "desc",
            },
            filter: self.filter.as_ref().map(Expr::to_json).transpose()?,
        };
        serde_json::to_string(&query)
            .map_err(|e| Error::new(format!("cannot encode the query: {e}")))
    }

    fn run(&self, limit: Option<u32>) -> Result<Vec<Doc<T>>> {
        let text = host::query(&self.encode()?, limit).map_err(Error::from_host)?;
        crate::values::from_text(&text)
    }

    /// Every matching document.
    pub fn collect(self) -> Result<Vec<Doc<T>>> {
        self.run(None)
    }

    /// The first `n` matching documents.
    pub fn take(self, n: u32) -> Result<Vec<Doc<T>>> {
        self.run(Some(n))
    }

    pub fn first(self) -> Result<Option<Doc<T>>> {
        Ok(self.run(Some(1))?.pop())
    }

    /// The only matching document; an error if there is more than one.
    pub fn unique(self) -> Result<Option<Doc<T>>> {
        let mut found = self.run(Some(2))?;
        if found.len() > 1 {
            return Err(Error::new("unique() found more than one document"));
        }
        Ok(found.pop())
    }

    /// One page. Pass the returned `continue_cursor` to get the next; pages
    /// stay correct when documents are inserted between them.
    pub fn paginate(self, options: &PaginationOpts) -> Result<PaginationResult<Doc<T>>> {
        let text = host::paginate(
            &self.encode()?,
            &host::PageOptions {
                cursor: options.cursor.clone(),
                num_items: options.num_items,
                end_cursor: options.end_cursor.clone(),
            },
        )
        .map_err(Error::from_host)?;
        /// A page as the server sends it.
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase", bound = "D: serde::Deserialize<'de>")]
        struct Page<D> {
            page: Vec<D>,
            #[serde(default = "done")]
            is_done: bool,
            #[serde(default)]
            continue_cursor: Option<String>,
        }
        fn done() -> bool {
            true
        }
        let page: Page<Doc<T>> = crate::values::from_text(&text)?;
        Ok(PaginationResult {
            page: page.page,
            is_done: page.is_done,
            continue_cursor: page.continue_cursor.unwrap_or_default(),
        })
    }
}

/// Where a query reads from.
#[derive(Debug)]
enum Source {
    Index {
        name: String,
        range: Vec<Comparison>,
    },
    FullTableScan,
}

impl Source {
    /// As the host reads it.
    fn to_json(&self) -> serde_json::Value {
        match self {
            Source::Index { name, range } => serde_json::json!({
                "index": {
                    "name": name,
                    "range": range
                        .iter()
                        .map(|c| match &c.value {
                            Some(value) => serde_json::json!({"field": c.field, "op": c.op, "value": value.to_json()}),
                            None => serde_json::json!({"field": c.field, "op": c.op}),
                        })
                        .collect::<Vec<_>>(),
                }
            }),
            Source::FullTableScan => serde_json::Value::String("fullTableScan".into()),
        }
    }
}
