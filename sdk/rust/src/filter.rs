//! Filter expressions for [`crate::QueryBuilder::filter`].
//!
//! ```
//! use capstan::filter::{field, lit};
//! let unread_recent = field("read").eq(lit(false)).and(field("n").gt(lit(10)));
//! let even = (field("n") % lit(2)).eq(lit(0));
//! let not_even = !even;
//! # let _ = unread_recent;
//! ```

use capstan_protocol::Value;
use serde::Serialize;

use crate::error::Result;
use crate::values::to_value;

/// An expression over one document, evaluated by the server.
#[derive(Clone, Debug)]
pub struct Expr(Node);

#[derive(Clone, Debug)]
enum Node {
    Field(String),
    /// A constant, or why it is not a Convex value (reported when the
    /// query runs).
    Literal(Result<Value>),
    Binary(&'static str, Box<Node>, Box<Node>),
    Many(&'static str, Vec<Node>),
    Unary(&'static str, Box<Node>),
}

/// A field of the document, by dotted path (`"author.name"`).
pub fn field(path: &str) -> Expr {
    Expr(Node::Field(path.to_owned()))
}

/// A constant.
pub fn lit(value: impl Serialize) -> Expr {
    Expr(Node::Literal(to_value(&value)))
}

macro_rules! binary {
    ($($name:ident => $tag:literal),* $(,)?) => {
        impl Expr {
            $(
                pub fn $name(self, other: Expr) -> Expr {
                    Expr(Node::Binary($tag, Box::new(self.0), Box::new(other.0)))
                }
            )*
        }
    };
}

binary! {
    eq => "eq", neq => "neq", lt => "lt", lte => "lte", gt => "gt", gte => "gte",
}

macro_rules! arithmetic {
    ($($trait:ident :: $method:ident => $tag:literal),* $(,)?) => {
        $(
            impl std::ops::$trait for Expr {
                type Output = Expr;

                fn $method(self, other: Expr) -> Expr {
                    Expr(Node::Binary($tag, Box::new(self.0), Box::new(other.0)))
                }
            }
        )*
    };
}

arithmetic! {
    Add::add => "add", Sub::sub => "sub", Mul::mul => "mul", Div::div => "div", Rem::rem => "mod",
}

impl std::ops::Not for Expr {
    type Output = Expr;

    fn not(self) -> Expr {
        Expr(Node::Unary("not", Box::new(self.0)))
    }
}

impl std::ops::Neg for Expr {
    type Output = Expr;

    fn neg(self) -> Expr {
        Expr(Node::Unary("neg", Box::new(self.0)))
    }
}

impl Expr {
    pub fn and(self, other: Expr) -> Expr {
        Expr(Node::Many("and", vec![self.0, other.0]))
    }

    pub fn or(self, other: Expr) -> Expr {
        Expr(Node::Many("or", vec![self.0, other.0]))
    }

    #[expect(
        clippy::should_implement_trait,
        reason = "reads like the Convex filter API"
    )]
    pub fn not(self) -> Expr {
        Expr(Node::Unary("not", Box::new(self.0)))
    }

    #[expect(
        clippy::should_implement_trait,
        reason = "reads like the Convex filter API"
    )]
    pub fn neg(self) -> Expr {
        Expr(Node::Unary("neg", Box::new(self.0)))
    }

    pub(crate) fn to_json(&self) -> Result<serde_json::Value> {
        node_json(&self.0)
    }
}

fn node_json(node: &Node) -> Result<serde_json::Value> {
    Ok(match node {
        Node::Field(path) => serde_json::json!({ "field": path }),
        Node::Literal(value) => serde_json::json!({ "literal": value.clone()?.to_json() }),
        Node::Binary(tag, a, b) => serde_json::json!({ *tag: [node_json(a)?, node_json(b)?] }),
        Node::Many(tag, items) => {
            serde_json::json!({ *tag: items.iter().map(node_json).collect::<Result<Vec<_>>>()? })
        }
        Node::Unary(tag, inner) => serde_json::json!({ *tag: node_json(inner)? }),
    })
}
