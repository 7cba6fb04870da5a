//! Typed indexes and the ranges read through them.
//!
//! `#[derive(Table)]` gives each index of a table a constant, named like
//! the index (`Message::by_channel`), whose type lists the indexed fields'
//! types, then `_creationTime`. A range over it takes values in index
//! order: equalities on a prefix of the fields, then at most a lower and an
//! upper bound on the next one. The compiler checks the index exists, the
//! order of the fields and each value's type:
//!
//! ```ignore
//! db.query::<Message>()
//!     .with_index(Message::by_channel, |q| q.eq(&args.channel).gt(since))
//!     .collect()?
//! ```

use std::fmt;
use std::marker::PhantomData;

use capstan_protocol::Value;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::values::to_field;

/// An index of table `T` over fields whose types are `F`, a list
/// `(First, (Second, (…, ())))` ending with `_creationTime`'s `f64`.
pub struct Index<T, F> {
    name: &'static str,
    fields: &'static [&'static str],
    types: PhantomData<fn() -> (T, F)>,
}

impl<T, F> Index<T, F> {
    #[doc(hidden)]
    pub const fn __new(name: &'static str, fields: &'static [&'static str]) -> Self {
        Index {
            name,
            fields,
            types: PhantomData,
        }
    }

    /// The index's name, as in the schema.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The indexed fields, as stored, then `_creationTime`.
    pub fn fields(&self) -> &'static [&'static str] {
        self.fields
    }
}

impl<T, F> Clone for Index<T, F> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T, F> Copy for Index<T, F> {}

impl<T, F> fmt::Debug for Index<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Index({})", self.name)
    }
}

/// The type of an indexed field the derive cannot name (a nested path
/// given as a string): any value is accepted for it.
#[derive(Debug)]
pub enum AnyValue {}

/// What a range may compare an indexed field of type `F` with: `F`
/// itself or a reference to it, `&str` for `String`, and `T` or `&T` for
/// an `Option<T>` field, whose `None` compares with documents that do not
/// have the field (Convex's `undefined`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be compared with an indexed field of type `{F}`",
    label = "expected `{F}` or a reference to it"
)]
pub trait IndexValue<F>: Serialize {}

impl<F: Serialize> IndexValue<F> for F {}
impl<F: Serialize> IndexValue<F> for &F {}
impl IndexValue<String> for &str {}
impl<F: Serialize> IndexValue<Option<F>> for F {}
impl<F: Serialize> IndexValue<Option<F>> for &F {}
impl IndexValue<Option<String>> for &str {}
impl<V: Serialize> IndexValue<AnyValue> for V {}

/// One comparison of a range.
#[derive(Debug)]
pub(crate) struct Comparison {
    pub(crate) field: String,
    pub(crate) op: &'static str,
    /// `None` compares with a missing field (a `None` of an optional one).
    pub(crate) value: Option<Value>,
}

/// The comparisons built so far, and the first value that could not be
/// encoded.
#[derive(Debug, Default)]
pub(crate) struct Comparisons {
    pub(crate) list: Vec<Comparison>,
    pub(crate) error: Option<Error>,
}

impl Comparisons {
    fn push(&mut self, field: &str, op: &'static str, value: &impl Serialize) {
        match to_field(value) {
            Ok(value) => self.list.push(Comparison {
                field: field.to_owned(),
                op,
                value,
            }),
            Err(error) => {
                self.error.get_or_insert(error);
            }
        }
    }
}

/// A range over the fields `F` of an index, the ones before them fixed by
/// equalities. Start with `eq` on the first field; end anywhere.
pub struct IndexRange<F> {
    fields: &'static [&'static str],
    comparisons: Comparisons,
    rest: PhantomData<fn() -> F>,
}

impl<F> fmt::Debug for IndexRange<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.comparisons.list).finish()
    }
}

impl<F> IndexRange<F> {
    pub(crate) fn start(fields: &'static [&'static str]) -> Self {
        IndexRange {
            fields,
            comparisons: Comparisons::default(),
            rest: PhantomData,
        }
    }

    fn field(&self) -> &'static str {
        self.fields
            .get(self.comparisons.list.len())
            .copied()
            .unwrap_or("_creationTime")
    }

    fn then<G>(mut self, op: &'static str, value: &impl Serialize) -> IndexRange<G> {
        let field = self.field();
        self.comparisons.push(field, op, value);
        IndexRange {
            fields: self.fields,
            comparisons: self.comparisons,
            rest: PhantomData,
        }
    }
}

impl<H, Rest> IndexRange<(H, Rest)> {
    fn bound<Side>(mut self, op: &'static str, value: &impl Serialize) -> Bound<H, Side> {
        let field = self.field();
        self.comparisons.push(field, op, value);
        Bound {
            field,
            comparisons: self.comparisons,
            types: PhantomData,
        }
    }

    /// The next field equals `value`.
    pub fn eq(self, value: impl IndexValue<H>) -> IndexRange<Rest> {
        self.then("eq", &value)
    }

    /// The next field is greater than `value`.
    pub fn gt(self, value: impl IndexValue<H>) -> Bound<H, Lower> {
        self.bound("gt", &value)
    }

    /// The next field is at least `value`.
    pub fn gte(self, value: impl IndexValue<H>) -> Bound<H, Lower> {
        self.bound("gte", &value)
    }

    /// The next field is less than `value`.
    pub fn lt(self, value: impl IndexValue<H>) -> Bound<H, Upper> {
        self.bound("lt", &value)
    }

    /// The next field is at most `value`.
    pub fn lte(self, value: impl IndexValue<H>) -> Bound<H, Upper> {
        self.bound("lte", &value)
    }
}

/// [`Bound`] after `gt` or `gte`.
#[derive(Debug)]
pub enum Lower {}
/// [`Bound`] after `lt` or `lte`.
#[derive(Debug)]
pub enum Upper {}
/// [`Bound`] with both ends.
#[derive(Debug)]
pub enum Both {}

/// A range with a bound on field `H`: one bound of the other side may
/// follow, nothing else.
pub struct Bound<H, Side> {
    field: &'static str,
    comparisons: Comparisons,
    types: PhantomData<fn() -> (H, Side)>,
}

impl<H, Side> fmt::Debug for Bound<H, Side> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.comparisons.list).finish()
    }
}

impl<H, Side> Bound<H, Side> {
    fn and<S>(mut self, op: &'static str, value: &impl Serialize) -> Bound<H, S> {
        self.comparisons.push(self.field, op, value);
        Bound {
            field: self.field,
            comparisons: self.comparisons,
            types: PhantomData,
        }
    }
}

impl<H> Bound<H, Lower> {
    /// The field is also less than `value`.
    pub fn lt(self, value: impl IndexValue<H>) -> Bound<H, Both> {
        self.and("lt", &value)
    }

    /// The field is also at most `value`.
    pub fn lte(self, value: impl IndexValue<H>) -> Bound<H, Both> {
        self.and("lte", &value)
    }
}

impl<H> Bound<H, Upper> {
    /// The field is also greater than `value`.
    pub fn gt(self, value: impl IndexValue<H>) -> Bound<H, Both> {
        self.and("gt", &value)
    }

    /// The field is also at least `value`.
    pub fn gte(self, value: impl IndexValue<H>) -> Bound<H, Both> {
        self.and("gte", &value)
    }
}

/// A finished range: what `with_index`'s closure returns. Each stage of a
/// range is one; where branches end at different stages, make each a
/// [`Range`]: `Range::from(q.gt(since))`.
pub trait IntoRange: sealed::Sealed {
    #[doc(hidden)]
    fn into_range(self) -> Range;
}

mod sealed {
    pub trait Sealed {}
    impl<F> Sealed for super::IndexRange<F> {}
    impl<H, S> Sealed for super::Bound<H, S> {}
    impl Sealed for super::NamedRange {}
    impl Sealed for super::Range {}
}

impl<F> IntoRange for IndexRange<F> {
    fn into_range(self) -> Range {
        Range::from(self)
    }
}

impl<H, S> IntoRange for Bound<H, S> {
    fn into_range(self) -> Range {
        Range::from(self)
    }
}

/// A range over an index known by name only (see
/// [`crate::QueryBuilder::with_named_index`]): each comparison names its
/// field, and the server checks them.
#[derive(Debug, Default)]
pub struct NamedRange {
    comparisons: Comparisons,
}

impl NamedRange {
    pub fn eq(mut self, field: &str, value: impl Serialize) -> Self {
        self.comparisons.push(field, "eq", &value);
        self
    }

    pub fn gt(mut self, field: &str, value: impl Serialize) -> Self {
        self.comparisons.push(field, "gt", &value);
        self
    }

    pub fn gte(mut self, field: &str, value: impl Serialize) -> Self {
        self.comparisons.push(field, "gte", &value);
        self
    }

    pub fn lt(mut self, field: &str, value: impl Serialize) -> Self {
        self.comparisons.push(field, "lt", &value);
        self
    }

    pub fn lte(mut self, field: &str, value: impl Serialize) -> Self {
        self.comparisons.push(field, "lte", &value);
        self
    }
}

impl IntoRange for NamedRange {
    fn into_range(self) -> Range {
        Range {
            comparisons: self.comparisons,
        }
    }
}

/// A range at any stage, for branches that end at different ones.
#[derive(Debug)]
pub struct Range {
    comparisons: Comparisons,
}

impl<F> From<IndexRange<F>> for Range {
    fn from(range: IndexRange<F>) -> Self {
        Range {
            comparisons: range.comparisons,
        }
    }
}

impl<H, S> From<Bound<H, S>> for Range {
    fn from(range: Bound<H, S>) -> Self {
        Range {
            comparisons: range.comparisons,
        }
    }
}

impl IntoRange for Range {
    fn into_range(self) -> Range {
        self
    }
}

impl Range {
    /// The comparisons, or the first value that could not be encoded.
    pub(crate) fn into_comparisons(self) -> Result<Vec<Comparison>> {
        match self.comparisons.error {
            Some(error) => Err(error),
            None => Ok(self.comparisons.list),
        }
    }
}
