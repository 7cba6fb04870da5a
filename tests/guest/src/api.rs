use capstan::{ActionCtx, Doc, Id, MutationCtx, PaginationOpts, PaginationResult, QueryCtx, Table};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Message {
    pub channel: String,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Table for Message {
    const NAME: &'static str = "messages";
}

#[derive(Serialize, Deserialize)]
pub struct Counter {
    pub name: String,
    pub value: i64,
}

impl Table for Counter {
    const NAME: &'static str = "counters";
}

#[capstan::query]
pub fn echo(_ctx: &QueryCtx, args: serde_json::Value) -> capstan::Result<serde_json::Value> {
    Ok(args)
}

#[derive(Serialize)]
pub struct Clock {
    now_ms: u128,
    random: i64,
}

/// The wall clock, and a random number from the WASI random source (which
/// seeds std's hash maps).
fn read_clock() -> Clock {
    use std::hash::BuildHasher;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    Clock {
        now_ms,
        random: std::collections::hash_map::RandomState::new().hash_one(1u8) as i64,
    }
}

/// The clock and a random number, as a query sees them.
#[capstan::query]
pub fn clock(_ctx: &QueryCtx) -> capstan::Result<Clock> {
    Ok(read_clock())
}

#[derive(Deserialize)]
pub struct Channel {
    pub channel: String,
}

#[capstan::query]
pub fn list(ctx: &QueryCtx, args: Channel) -> capstan::Result<Vec<Doc<Message>>> {
    ctx.db()
        .query::<Message>()
        .with_index("by_channel", |q| q.eq("channel", &args.channel))
        .collect()
}

#[derive(Deserialize)]
pub struct ById {
    pub id: Id<Message>,
}

#[capstan::query]
pub fn get(ctx: &QueryCtx, args: ById) -> capstan::Result<Option<Doc<Message>>> {
    ctx.db().get(&args.id)
}

#[derive(Deserialize)]
pub struct PageArgs {
    pub channel: String,
    pub opts: PaginationOpts,
}

#[capstan::query]
pub fn page(ctx: &QueryCtx, args: PageArgs) -> capstan::Result<PaginationResult<Doc<Message>>> {
    ctx.db()
        .query::<Message>()
        .with_index("by_channel", |q| q.eq("channel", &args.channel))
        .order(capstan::Order::Desc)
        .paginate(&args.opts)
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

#[derive(Serialize)]
pub struct Problem {
    code: &'static str,
    limit: i64,
}

#[capstan::query]
pub fn fail(_ctx: &QueryCtx) -> capstan::Result<()> {
    Err(capstan::Error::data(Problem {
        code: "TOO_MANY",
        limit: 3,
    }))
}

#[capstan::query]
pub fn fail_plain(_ctx: &QueryCtx) -> capstan::Result<()> {
    Err(capstan::error!("plain failure {}", 7))
}

#[capstan::query(internal)]
pub fn secret(_ctx: &QueryCtx) -> capstan::Result<&'static str> {
    Ok("internal value")
}

#[derive(Deserialize)]
pub struct EnvArgs {
    pub name: String,
}

#[capstan::query]
pub fn env(ctx: &QueryCtx, args: EnvArgs) -> capstan::Result<Option<String>> {
    Ok(ctx.env(&args.name))
}

#[capstan::mutation]
pub fn send(ctx: &mut MutationCtx, args: Message) -> capstan::Result<Id<Message>> {
    ctx.db().insert(&args)
}

#[derive(Deserialize)]
pub struct Edit {
    pub id: Id<Message>,
    pub body: String,
}

#[derive(Serialize)]
struct Body<'a> {
    body: &'a str,
}

#[capstan::mutation]
pub fn edit(ctx: &mut MutationCtx, args: Edit) -> capstan::Result<Doc<Message>> {
    ctx.db().patch(&args.id, &Body { body: &args.body })
}

#[capstan::mutation]
pub fn edit_unset(ctx: &mut MutationCtx, args: ById) -> capstan::Result<Doc<Message>> {
    ctx.db()
        .patch_unset(&args.id, &serde_json::json!({}), &["note"])
}

#[derive(Deserialize)]
pub struct Swap {
    pub id: Id<Message>,
    pub message: Message,
}

#[capstan::mutation]
pub fn swap(ctx: &mut MutationCtx, args: Swap) -> capstan::Result<Doc<Message>> {
    ctx.db().replace(&args.id, &args.message)
}

#[capstan::mutation]
pub fn remove(ctx: &mut MutationCtx, args: ById) -> capstan::Result<bool> {
    let existed = ctx.db().get(&args.id)?.is_some();
    if existed {
        ctx.db().delete(&args.id)?;
    }
    Ok(existed)
}

#[derive(Deserialize)]
pub struct Name {
    pub name: String,
}

#[capstan::mutation]
pub fn increment(ctx: &mut MutationCtx, args: Name) -> capstan::Result<i64> {
    let mut db = ctx.db();
    let existing = db
        .query::<Counter>()
        .with_index("by_name", |q| q.eq("name", &args.name))
        .unique()?;
    match existing {
        Some(counter) => {
            let value = counter.value + 1;
            db.patch(&counter.id, &serde_json::json!({ "value": value }))?;
            Ok(value)
        }
        None => {
            db.insert(&Counter {
                name: args.name,
                value: 1,
            })?;
            Ok(1)
        }
    }
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

#[derive(Deserialize)]
pub struct SendArgs {
    pub channel: String,
    pub body: String,
}

#[derive(Serialize)]
pub struct Sent {
    id: Id<Message>,
    count: usize,
}

/// An action: runs a mutation, then a query, each in its own transaction.
#[capstan::action]
pub fn send_and_list(ctx: &mut ActionCtx, args: SendArgs) -> capstan::Result<Sent> {
    capstan::log!("sending to {}", args.channel);
    let id: Id<Message> = ctx.run_mutation(
        "api:send",
        &Message {
            channel: args.channel.clone(),
            body: args.body,
            note: None,
        },
    )?;
    let listed: Vec<serde_json::Value> =
        ctx.run_query("api:list", &serde_json::json!({ "channel": args.channel }))?;
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
    ctx.run_query("api:secret", &serde_json::json!({}))
}
