use capstan::{
    ActionCtx, Doc, Id, Int64, MutationCtx, PaginationOpts, PaginationResult, QueryCtx, Value,
};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, capstan::Table)]
#[table(name = "messages", index(by_channel = [channel]), index(by_note = [note]))]
pub struct Message {
    pub channel: String,
    pub body: String,
    pub note: Option<String>,
}

/// A counter kept as an int64, as an app that asked for one.
#[derive(Serialize, Deserialize, capstan::Table)]
#[table(name = "counters", index(by_name = [name]))]
pub struct Counter {
    pub name: String,
    pub value: Int64,
}

/// Its arguments, whatever they are, as values.
#[capstan::query]
pub fn echo(_ctx: &QueryCtx, args: Value) -> capstan::Result<Value> {
    Ok(args)
}

#[derive(Serialize, Deserialize)]
pub struct Clock {
    now_ms: f64,
    /// From the seed of std's hash maps (WASI's insecure seed).
    random: Int64,
    /// From `getrandom` (WASI's secure random source).
    secure: Int64,
}

/// The wall clock, and random numbers from both WASI random sources.
fn read_clock() -> Clock {
    use std::hash::BuildHasher;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_millis() as f64);
    Clock {
        now_ms,
        random: Int64(std::collections::hash_map::RandomState::new().hash_one(1u8) as i64),
        secure: Int64(getrandom::u64().unwrap_or_default() as i64),
    }
}

/// The clock and random numbers, as a query sees them.
#[capstan::query]
pub fn clock(_ctx: &QueryCtx) -> capstan::Result<Clock> {
    Ok(read_clock())
}

#[capstan::query]
pub fn list(ctx: &QueryCtx, channel: String) -> capstan::Result<Vec<Doc<Message>>> {
    ctx.db()
        .query::<Message>()
        .with_index(Message::by_channel, |q| q.eq(&channel))
        .collect()
}

/// `list`, with an argument it ignores: each `round` is a query of its own
/// that reads what `list` reads.
#[capstan::query]
pub fn list_round(
    ctx: &QueryCtx,
    channel: String,
    round: f64,
) -> capstan::Result<Vec<Doc<Message>>> {
    let _ = round;
    list(ctx, channel)
}

/// The messages with this note; without one, those that have none.
#[capstan::query]
pub fn by_note(ctx: &QueryCtx, note: Option<String>) -> capstan::Result<Vec<Doc<Message>>> {
    ctx.db()
        .query::<Message>()
        .with_index(Message::by_note, |q| q.eq(&note))
        .collect()
}

#[capstan::query]
pub fn get(ctx: &QueryCtx, id: Id<Message>) -> capstan::Result<Option<Doc<Message>>> {
    ctx.db().get(&id)
}

#[capstan::query]
pub fn page(
    ctx: &QueryCtx,
    channel: String,
    opts: PaginationOpts,
) -> capstan::Result<PaginationResult<Doc<Message>>> {
    ctx.db()
        .query::<Message>()
        .with_index(Message::by_channel, |q| q.eq(&channel))
        .order(capstan::Order::Desc)
        .paginate(&opts)
}

#[capstan::query]
pub fn count_all(ctx: &QueryCtx) -> capstan::Result<usize> {
    Ok(ctx
        .db()
        .query::<Message>()
        .full_table_scan()
        .collect()?
        .len())
}

/// A query that tries to write: the host refuses.
#[capstan::query]
pub fn write_in_query(ctx: &QueryCtx) -> capstan::Result<String> {
    use capstan::__private::bindings::capstan::runtime::db;
    let _ = ctx;
    db::insert("messages", r#"{"channel":"x","body":"y"}"#)
        .map_err(|e| capstan::Error::new(e.message))
}

#[capstan::query]
pub fn logs(_ctx: &QueryCtx) -> capstan::Result<()> {
    println!("printed");
    capstan::log!("logged {}", 1);
    eprintln!("to stderr");
    capstan::warn!("careful");
    Ok(())
}

#[capstan::query]
pub fn fail(_ctx: &QueryCtx) -> capstan::Result<()> {
    Err(capstan::Error::data(
        capstan::json!({ "code": "TOO_MANY", "limit": 3 }),
    ))
}

#[capstan::query]
pub fn fail_plain(_ctx: &QueryCtx) -> capstan::Result<()> {
    Err(capstan::error!("plain failure {}", 7))
}

#[capstan::query(internal)]
pub fn secret(_ctx: &QueryCtx) -> capstan::Result<String> {
    Ok("internal value".into())
}

#[capstan::query]
pub fn env(ctx: &QueryCtx, name: String) -> capstan::Result<Option<String>> {
    Ok(ctx.env(&name))
}

#[capstan::mutation]
pub fn send(ctx: &mut MutationCtx, args: Message) -> capstan::Result<Id<Message>> {
    ctx.db().insert(&args)
}

#[capstan::mutation]
pub fn edit(ctx: &mut MutationCtx, id: Id<Message>, body: String) -> capstan::Result<Doc<Message>> {
    ctx.db().patch(&id, MessagePatch::new().body(body))
}

#[capstan::mutation]
pub fn edit_unset(ctx: &mut MutationCtx, id: Id<Message>) -> capstan::Result<Doc<Message>> {
    ctx.db().patch(&id, MessagePatch::new().unset_note())
}

#[capstan::mutation]
pub fn swap(
    ctx: &mut MutationCtx,
    id: Id<Message>,
    message: Message,
) -> capstan::Result<Doc<Message>> {
    ctx.db().replace(&id, &message)
}

#[capstan::mutation]
pub fn remove(ctx: &mut MutationCtx, id: Id<Message>) -> capstan::Result<bool> {
    let existed = ctx.db().get(&id)?.is_some();
    if existed {
        ctx.db().delete(&id)?;
    }
    Ok(existed)
}

#[capstan::mutation]
pub fn increment(ctx: &mut MutationCtx, name: String) -> capstan::Result<Int64> {
    let mut db = ctx.db();
    let existing = db
        .query::<Counter>()
        .with_index(Counter::by_name, |q| q.eq(&name))
        .unique()?;
    match existing {
        Some(counter) => {
            let value = Int64(counter.value.0 + 1);
            db.patch(&counter.id, CounterPatch::new().value(value))?;
            Ok(value)
        }
        None => {
            db.insert(&Counter {
                name,
                value: Int64(1),
            })?;
            Ok(Int64(1))
        }
    }
}

/// The clock and random numbers, as a mutation sees them.
#[capstan::mutation]
pub fn mutation_clock(_ctx: &mut MutationCtx) -> capstan::Result<Clock> {
    Ok(read_clock())
}

#[derive(Serialize)]
pub struct Stamp {
    creation_time: f64,
    clock: Clock,
}

/// Inserts a message and returns its creation time next to the clock the
/// mutation sees: the two are the transaction's time.
#[capstan::mutation]
pub fn stamp(ctx: &mut MutationCtx) -> capstan::Result<Stamp> {
    let id = ctx.db().insert(&Message {
        channel: "stamps".into(),
        body: String::new(),
        note: None,
    })?;
    let doc = ctx
        .db()
        .get(&id)?
        .ok_or_else(|| capstan::error!("vanished"))?;
    Ok(Stamp {
        creation_time: doc.creation_time,
        clock: read_clock(),
    })
}

#[derive(Serialize, Deserialize)]
pub struct Sent {
    id: Id<Message>,
    count: usize,
}

/// An action: runs a mutation, then a query, each in its own transaction.
#[capstan::action]
pub fn send_and_list(ctx: &mut ActionCtx, channel: String, body: String) -> capstan::Result<Sent> {
    capstan::log!("sending to {channel}");
    let message = Message {
        channel: channel.clone(),
        body,
        note: None,
    };
    let id = ctx.run_mutation::<send>(&message)?;
    let listed = ctx.run_query::<list>(&ListArgs { channel })?;
    Ok(Sent {
        id,
        count: listed.len(),
    })
}

#[capstan::action]
pub fn action_clock(_ctx: &mut ActionCtx) -> capstan::Result<Clock> {
    Ok(read_clock())
}

#[capstan::action]
pub fn call_secret(ctx: &mut ActionCtx) -> capstan::Result<String> {
    ctx.run_query::<secret>(&())
}
