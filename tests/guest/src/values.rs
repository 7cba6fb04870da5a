//! Values of every Convex type through the SDK: kept whole as
//! `capstan::Value`, and mapped by the number rules for Rust types.

use capstan::{Bytes, Doc, Id, Int64, MutationCtx, QueryCtx, Value};
use serde::{Deserialize, Serialize};

/// A document holding any value.
#[derive(Serialize, Deserialize, capstan::Table)]
#[table(name = "stored")]
pub struct Stored {
    pub value: Value,
}

/// Its arguments read as `serde_json::Value`, whose numbers are float64s.
#[capstan::query]
pub fn echo_json(_ctx: &QueryCtx, args: serde_json::Value) -> capstan::Result<serde_json::Value> {
    Ok(args)
}

#[derive(Serialize)]
pub struct Numbers {
    small: u32,
    negative: i64,
    ratio: f64,
    big: Int64,
    bytes: Bytes,
    list: Vec<u8>,
    nothing: Option<u32>,
    holes: Vec<Option<u8>>,
}

/// One value of each Rust number type, as clients receive them.
#[capstan::query]
pub fn numbers(_ctx: &QueryCtx) -> capstan::Result<Numbers> {
    Ok(Numbers {
        small: 7,
        negative: -(1 << 53),
        ratio: 0.5,
        big: Int64(1 << 60),
        bytes: Bytes(vec![0, 1, 255]),
        list: vec![0, 1, 255],
        nothing: None,
        holes: vec![Some(1), None],
    })
}

/// Stores `value` whole.
#[capstan::mutation]
pub fn store(ctx: &mut MutationCtx, value: Value) -> capstan::Result<Id<Stored>> {
    ctx.db().insert(&Stored { value })
}

/// A stored value, read back.
#[capstan::query]
pub fn load(ctx: &QueryCtx, id: Id<Stored>) -> capstan::Result<Option<Doc<Stored>>> {
    ctx.db().get(&id)
}
