//! Queries: an index, a range over its fields, an order, an optional filter;
//! and the cursors of paginated queries.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use capstan_protocol::Value;
use capstan_protocol::key::{encode_key_value, prefix_successor};
use serde::{Deserialize, Serialize};

use crate::catalog::{IndexInfo, IndexKind};
use crate::document::Document;
use crate::error::{Error, Result};
use crate::filter::Expression;
use crate::id::{DocumentId, IndexId};
use crate::schema::BY_CREATION_TIME;

/// What to read. Reading a whole table is explicit: [`Source::FullTableScan`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Query {
    pub table: String,
    pub source: Source,
    #[serde(default)]
    pub order: Order,
    #[serde(default)]
    pub filter: Option<Expression>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Source {
    /// Every document of the table, in `_creationTime` order.
    FullTableScan,
    /// A range of one index: equalities on a prefix of its fields, then at
    /// most one lower and one upper bound on the next field.
    Index {
        name: String,
        #[serde(default)]
        range: Vec<RangeOp>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RangeOp {
    pub field: String,
    pub op: Comparison,
    /// `None` (no `value` on the wire) is a missing field, Convex's
    /// `undefined`, which sorts before every value.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub value: Option<Value>,
}

/// A `value` that is there, `null` included, is that value.
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Comparison {
    Eq,
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Order {
    #[default]
    Asc,
    Desc,
}

impl Query {
    pub fn full_table_scan(table: &str) -> Self {
        Query {
            table: table.to_owned(),
            source: Source::FullTableScan,
            order: Order::Asc,
            filter: None,
        }
    }

    pub fn index(table: &str, index: &str) -> Self {
        Query {
            table: table.to_owned(),
            source: Source::Index {
                name: index.to_owned(),
                range: Vec::new(),
            },
            order: Order::Asc,
            filter: None,
        }
    }

    fn push_range(mut self, field: &str, op: Comparison, value: impl Into<Value>) -> Self {
        if let Source::Index { range, .. } = &mut self.source {
            range.push(RangeOp {
                field: field.to_owned(),
                op,
                value: Some(value.into()),
            });
        }
        self
    }

    pub fn eq(self, field: &str, value: impl Into<Value>) -> Self {
        self.push_range(field, Comparison::Eq, value)
    }

    pub fn gt(self, field: &str, value: impl Into<Value>) -> Self {
        self.push_range(field, Comparison::Gt, value)
    }

    pub fn gte(self, field: &str, value: impl Into<Value>) -> Self {
        self.push_range(field, Comparison::Gte, value)
    }

    pub fn lt(self, field: &str, value: impl Into<Value>) -> Self {
        self.push_range(field, Comparison::Lt, value)
    }

    pub fn lte(self, field: &str, value: impl Into<Value>) -> Self {
        self.push_range(field, Comparison::Lte, value)
    }

    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    pub fn filter(mut self, filter: Expression) -> Self {
        self.filter = Some(filter);
        self
    }

    pub fn index_name(&self) -> &str {
        match &self.source {
            Source::FullTableScan => BY_CREATION_TIME,
            Source::Index { name, .. } => name,
        }
    }

    pub fn range(&self) -> &[RangeOp] {
        match &self.source {
            Source::FullTableScan => &[],
            Source::Index { range, .. } => range,
        }
    }
}

/// A range of sort keys, `[lo, hi)`; `hi: None` is unbounded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRange {
    pub lo: Vec<u8>,
    pub hi: Option<Vec<u8>>,
}

impl KeyRange {
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.lo.as_slice() && self.hi.as_deref().is_none_or(|hi| key < hi)
    }

    pub fn is_empty(&self) -> bool {
        self.hi
            .as_deref()
            .is_some_and(|hi| hi <= self.lo.as_slice())
    }
}

/// Compiles range expressions over `index` into a range of sort keys.
pub fn plan_range(index: &IndexInfo, ops: &[RangeOp]) -> Result<KeyRange> {
    let invalid = |reason: String| Error::InvalidIndexRange {
        index: format!("{}.{}", index.table_name, index.name),
        reason,
    };
    let fields = index.range_fields();
    let encode = |value: &Option<Value>, out: &mut Vec<u8>| -> Result<()> {
        match (&index.kind, value) {
            (IndexKind::ById, Some(value)) => {
                let text = value
                    .as_str()
                    .ok_or_else(|| invalid(format!("_id is compared with {value}, not an id")))?;
                let id: DocumentId = text.parse()?;
                out.extend_from_slice(&id.to_bytes());
            }
            (IndexKind::ById, None) => {
                return Err(invalid("_id is compared with a missing value".to_owned()));
            }
            (IndexKind::Fields(_), value) => encode_key_value(value.as_ref(), out),
        }
        Ok(())
    };
    let mut prefix = match index.kind {
        IndexKind::ById => index.table.0.to_be_bytes().to_vec(),
        IndexKind::Fields(_) => Vec::new(),
    };
    let mut position = 0;
    let mut ops = ops.iter().peekable();
    while let Some(op) = ops.next_if(|op| op.op == Comparison::Eq) {
        let expected = fields.get(position).ok_or_else(|| {
            invalid(format!(
                "eq on {:?} but the index has only {} fields",
                op.field,
                fields.len()
            ))
        })?;
        if op.field != *expected {
            return Err(invalid(format!(
                "eq on {:?} where the index's next field is {expected:?}; fields must be compared in index order",
                op.field
            )));
        }
        if index.kind == IndexKind::ById {
            prefix.clear();
        }
        encode(&op.value, &mut prefix)?;
        position += 1;
    }
    let mut lo = prefix.clone();
    let mut hi = prefix_successor(&prefix);
    let (mut have_lower, mut have_upper) = (false, false);
    for op in ops {
        let expected = fields.get(position).ok_or_else(|| {
            invalid(format!(
                "{:?} is compared but the index has no more fields",
                op.field
            ))
        })?;
        if op.field != *expected {
            return Err(invalid(format!(
                "range on {:?} where the index's next field is {expected:?}",
                op.field
            )));
        }
        let mut bound = if index.kind == IndexKind::ById {
            Vec::new()
        } else {
            prefix.clone()
        };
        encode(&op.value, &mut bound)?;
        match op.op {
            Comparison::Eq => {
                return Err(invalid(
                    "eq must come before every other comparison".to_owned(),
                ));
            }
            Comparison::Gt | Comparison::Gte if have_lower => {
                return Err(invalid("at most one lower bound".to_owned()));
            }
            Comparison::Lt | Comparison::Lte if have_upper => {
                return Err(invalid("at most one upper bound".to_owned()));
            }
            Comparison::Gte => {
                have_lower = true;
                lo = bound;
            }
            Comparison::Gt => {
                have_lower = true;
                lo = prefix_successor(&bound).ok_or_else(|| invalid("unbounded key".to_owned()))?;
            }
            Comparison::Lt => {
                have_upper = true;
                hi = Some(bound);
            }
            Comparison::Lte => {
                have_upper = true;
                hi = prefix_successor(&bound);
            }
        }
    }
    if index.kind == IndexKind::ById {
        // by_id ranges never leave the table.
        let table = index.table.0.to_be_bytes();
        if lo.as_slice() < table.as_slice() {
            lo = table.to_vec();
        }
        let table_end = prefix_successor(&table);
        if hi.is_none() || hi.as_deref() > table_end.as_deref() && table_end.is_some() {
            hi = table_end;
        }
    }
    Ok(KeyRange { lo, hi })
}

/// Options of a paginated query.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PaginationOptions {
    /// Where the previous page ended; `None` starts at the beginning.
    pub cursor: Option<String>,
    pub num_items: usize,
    /// Where this page ends, as a page read before ended (Convex's
    /// `endCursor`, which a client sends to read a page again exactly as
    /// it was): every document up to it, whatever `num_items` says.
    pub end_cursor: Option<String>,
}

/// One page of results, in Convex's shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    pub page: Vec<Document>,
    pub is_done: bool,
    /// Pass this as the next page's cursor.
    pub continue_cursor: String,
}

/// A position in an index: the sort key of the last entry examined.
/// Encoded as `base64url(version, index, order, flag, key, checksum)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub index: IndexId,
    pub order: Order,
    /// `None` means the end of the range: nothing follows.
    pub after: Option<Vec<u8>>,
}

const CURSOR_VERSION: u8 = 1;
/// Sort keys are bounded by the document size; this bounds what a client
/// can make the server decode.
const MAX_CURSOR_LEN: usize = 8192;

impl Cursor {
    pub fn encode(&self) -> String {
        let mut bytes = vec![CURSOR_VERSION];
        bytes.extend_from_slice(&self.index.0.to_be_bytes());
        bytes.push(match self.order {
            Order::Asc => 0,
            Order::Desc => 1,
        });
        match &self.after {
            None => bytes.push(0),
            Some(key) => {
                bytes.push(1);
                bytes.extend_from_slice(key);
            }
        }
        let check = checksum(&bytes);
        bytes.extend_from_slice(&check.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn decode(text: &str) -> Result<Cursor> {
        let invalid = |reason: &str| Error::InvalidCursor(reason.to_owned());
        if text.len() > MAX_CURSOR_LEN {
            return Err(invalid("too long"));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| invalid("not a cursor returned by this server"))?;
        if bytes.len() < 11 || bytes[0] != CURSOR_VERSION {
            return Err(invalid("not a cursor returned by this server"));
        }
        let (body, check) = bytes.split_at(bytes.len() - 4);
        if checksum(body).to_be_bytes() != check {
            return Err(invalid("checksum mismatch; the cursor was altered"));
        }
        let index = IndexId(u32::from_be_bytes([body[1], body[2], body[3], body[4]]));
        let order = match body[5] {
            0 => Order::Asc,
            1 => Order::Desc,
            _ => return Err(invalid("bad order")),
        };
        let after = match body[6] {
            0 if body.len() == 7 => None,
            1 => Some(body[7..].to_vec()),
            _ => return Err(invalid("bad position")),
        };
        Ok(Cursor {
            index,
            order,
            after,
        })
    }
}

/// FNV-1a, to tell a damaged or hand-made cursor from one this server issued.
fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |hash, &b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}
