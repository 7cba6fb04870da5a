use capstan::{MutationCtx, QueryCtx};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, capstan::Table)]
#[table(name = "counters", index(by_name = [name]))]
pub struct Counter {
    pub name: String,
    pub value: f64,
}

/// The counter's value; 0 before the first increment.
#[capstan::query]
pub fn get(ctx: &QueryCtx, name: Option<String>) -> capstan::Result<f64> {
    let name = name.as_deref().unwrap_or("default");
    let counter = ctx
        .db()
        .query::<Counter>()
        .with_index(Counter::by_name, |q| q.eq(name))
        .first()?;
    Ok(counter.map_or(0.0, |c| c.value))
}

/// Adds `by` (default 1) to the counter and returns the new value.
#[capstan::mutation]
pub fn increment(
    ctx: &mut MutationCtx,
    name: Option<String>,
    by: Option<f64>,
) -> capstan::Result<f64> {
    let (name, by) = (name.unwrap_or_else(|| "default".into()), by.unwrap_or(1.0));
    let mut db = ctx.db();
    let existing = db
        .query::<Counter>()
        .with_index(Counter::by_name, |q| q.eq(&name))
        .first()?;
    match existing {
        Some(counter) => {
            let value = counter.value + by;
            db.patch(&counter.id, CounterPatch::new().value(value))?;
            Ok(value)
        }
        None => {
            db.insert(&Counter { name, value: by })?;
            Ok(by)
        }
    }
}
