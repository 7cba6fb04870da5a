use capstan::{MutationCtx, QueryCtx, Table};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct Counter {
    pub name: String,
    pub value: f64,
}

impl Table for Counter {
    const NAME: &'static str = "counters";
}

#[derive(Deserialize)]
pub struct Name {
    #[serde(default = "default_name")]
    pub name: String,
}

fn default_name() -> String {
    "default".to_owned()
}

/// The counter's value; 0 before the first increment.
#[capstan::query]
pub fn get(ctx: &QueryCtx, args: Name) -> capstan::Result<f64> {
    let counter = ctx
        .db()
        .query::<Counter>()
        .with_index("by_name", |q| q.eq("name", &args.name))
        .first()?;
    Ok(counter.map_or(0.0, |c| c.value))
}

#[derive(Deserialize)]
pub struct Increment {
    #[serde(default = "default_name")]
    pub name: String,
    #[serde(default = "one")]
    pub by: f64,
}

fn one() -> f64 {
    1.0
}

/// Adds `by` (default 1) to the counter and returns the new value.
#[capstan::mutation]
pub fn increment(ctx: &mut MutationCtx, args: Increment) -> capstan::Result<f64> {
    let mut db = ctx.db();
    let existing = db
        .query::<Counter>()
        .with_index("by_name", |q| q.eq("name", &args.name))
        .first()?;
    match existing {
        Some(counter) => {
            let value = counter.value + args.by;
            db.patch(&counter.id, &Value { value })?;
            Ok(value)
        }
        None => {
            db.insert(&Counter {
                name: args.name,
                value: args.by,
            })?;
            Ok(args.by)
        }
    }
}

/// The fields `increment` patches.
#[derive(Serialize)]
struct Value {
    value: f64,
}
