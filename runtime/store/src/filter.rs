//! Filter expressions, evaluated in the store against each candidate
//! document (Convex's `q.filter(q => q.eq(q.field("done"), false))`).

use std::cmp::Ordering;

use capstan_protocol::Value;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// An expression over one document. A missing field evaluates to undefined,
/// which compares below every value and equal only to undefined.
///
/// Serialized externally tagged: `{"eq":[{"field":"done"},{"literal":false}]}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Expression {
    Field(String),
    Literal(Value),
    Eq(Box<Expression>, Box<Expression>),
    Neq(Box<Expression>, Box<Expression>),
    Lt(Box<Expression>, Box<Expression>),
    Lte(Box<Expression>, Box<Expression>),
    Gt(Box<Expression>, Box<Expression>),
    Gte(Box<Expression>, Box<Expression>),
    Add(Box<Expression>, Box<Expression>),
    Sub(Box<Expression>, Box<Expression>),
    Mul(Box<Expression>, Box<Expression>),
    Div(Box<Expression>, Box<Expression>),
    Mod(Box<Expression>, Box<Expression>),
    Neg(Box<Expression>),
    And(Vec<Expression>),
    Or(Vec<Expression>),
    Not(Box<Expression>),
}

/// Deepest expression accepted, so evaluation cannot exhaust the stack.
const MAX_DEPTH: usize = 64;

impl Expression {
    pub fn field(name: &str) -> Self {
        Expression::Field(name.to_owned())
    }

    pub fn literal(value: impl Into<Value>) -> Self {
        Expression::Literal(value.into())
    }

    pub fn eq(a: Expression, b: Expression) -> Self {
        Expression::Eq(Box::new(a), Box::new(b))
    }

    /// Checks the expression's shape once, before any document is read.
    pub fn validate(&self) -> Result<()> {
        self.validate_at(0)
    }

    fn validate_at(&self, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Error::InvalidFilter(format!(
                "nested more than {MAX_DEPTH} levels"
            )));
        }
        match self {
            Expression::Field(path) => {
                if path.split('.').any(str::is_empty) {
                    return Err(Error::InvalidFilter(format!(
                        "{path:?} is not a field path"
                    )));
                }
                Ok(())
            }
            Expression::Literal(_) => Ok(()),
            Expression::Neg(a) | Expression::Not(a) => a.validate_at(depth + 1),
            Expression::And(items) | Expression::Or(items) => {
                items.iter().try_for_each(|e| e.validate_at(depth + 1))
            }
            Expression::Eq(a, b)
            | Expression::Neq(a, b)
            | Expression::Lt(a, b)
            | Expression::Lte(a, b)
            | Expression::Gt(a, b)
            | Expression::Gte(a, b)
            | Expression::Add(a, b)
            | Expression::Sub(a, b)
            | Expression::Mul(a, b)
            | Expression::Div(a, b)
            | Expression::Mod(a, b) => {
                a.validate_at(depth + 1)?;
                b.validate_at(depth + 1)
            }
        }
    }

    /// Whether `document` passes: the expression must evaluate to `true`.
    pub fn matches(&self, document: &Value) -> Result<bool> {
        Ok(matches!(
            self.evaluate(document)?,
            Some(Value::Boolean(true))
        ))
    }

    pub fn evaluate(&self, document: &Value) -> Result<Option<Value>> {
        let compare = |a: &Expression, b: &Expression, accept: fn(Ordering) -> bool| {
            let (a, b) = (a.evaluate(document)?, b.evaluate(document)?);
            Ok(Some(Value::Boolean(accept(a.cmp(&b)))))
        };
        match self {
            Expression::Field(path) => Ok(document.get_path(path).cloned()),
            Expression::Literal(value) => Ok(Some(value.clone())),
            Expression::Eq(a, b) => compare(a, b, Ordering::is_eq),
            Expression::Neq(a, b) => compare(a, b, Ordering::is_ne),
            Expression::Lt(a, b) => compare(a, b, Ordering::is_lt),
            Expression::Lte(a, b) => compare(a, b, Ordering::is_le),
            Expression::Gt(a, b) => compare(a, b, Ordering::is_gt),
            Expression::Gte(a, b) => compare(a, b, Ordering::is_ge),
            Expression::Add(a, b) => {
                arithmetic(document, a, b, "add", i64::checked_add, |x, y| x + y)
            }
            Expression::Sub(a, b) => {
                arithmetic(document, a, b, "subtract", i64::checked_sub, |x, y| x - y)
            }
            Expression::Mul(a, b) => {
                arithmetic(document, a, b, "multiply", i64::checked_mul, |x, y| x * y)
            }
            Expression::Div(a, b) => {
                arithmetic(document, a, b, "divide", i64::checked_div, |x, y| x / y)
            }
            Expression::Mod(a, b) => arithmetic(
                document,
                a,
                b,
                "take the remainder of",
                i64::checked_rem,
                |x, y| x % y,
            ),
            Expression::Neg(a) => match a.evaluate(document)? {
                Some(Value::Int64(i)) => Ok(Some(Value::Int64(i.wrapping_neg()))),
                Some(Value::Float64(x)) => Ok(Some(Value::Float64(-x))),
                other => Err(type_error("negate", &other, &None)),
            },
            Expression::And(items) => {
                for item in items {
                    if !truthy(&item.evaluate(document)?) {
                        return Ok(Some(Value::Boolean(false)));
                    }
                }
                Ok(Some(Value::Boolean(true)))
            }
            Expression::Or(items) => {
                for item in items {
                    if truthy(&item.evaluate(document)?) {
                        return Ok(Some(Value::Boolean(true)));
                    }
                }
                Ok(Some(Value::Boolean(false)))
            }
            Expression::Not(a) => Ok(Some(Value::Boolean(!truthy(&a.evaluate(document)?)))),
        }
    }
}

fn truthy(value: &Option<Value>) -> bool {
    matches!(value, Some(Value::Boolean(true)))
}

fn type_error(op: &str, a: &Option<Value>, b: &Option<Value>) -> Error {
    let name = |v: &Option<Value>| v.as_ref().map_or("undefined", |v| v.value_type().name());
    Error::InvalidFilter(format!("cannot {op} {} and {}", name(a), name(b)))
}

fn arithmetic(
    document: &Value,
    a: &Expression,
    b: &Expression,
    op: &str,
    int: fn(i64, i64) -> Option<i64>,
    float: fn(f64, f64) -> f64,
) -> Result<Option<Value>> {
    let (a, b) = (a.evaluate(document)?, b.evaluate(document)?);
    match (&a, &b) {
        (Some(Value::Int64(x)), Some(Value::Int64(y))) => {
            int(*x, *y).map(|v| Some(Value::Int64(v))).ok_or_else(|| {
                Error::InvalidFilter(format!(
                    "cannot {op} {x} and {y}: overflow or division by zero"
                ))
            })
        }
        (Some(Value::Float64(x)), Some(Value::Float64(y))) => {
            Ok(Some(Value::Float64(float(*x, *y))))
        }
        _ => Err(type_error(op, &a, &b)),
    }
}
