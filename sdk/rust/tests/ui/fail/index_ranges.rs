use capstan::QueryCtx;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, capstan::Table)]
#[table(name = "messages", index(by_channel = [channel, sent]))]
pub struct Message {
    pub channel: String,
    pub sent: f64,
}

#[derive(Serialize, Deserialize, capstan::Table)]
#[table(name = "users")]
pub struct Person {
    pub name: String,
}

pub fn queries(ctx: &QueryCtx) {
    // A number for a string field.
    let _ = ctx.db().query::<Message>().with_index(Message::by_channel, |q| q.eq(5.0));
    // An equality after a bound.
    let _ = ctx.db().query::<Message>().with_index(Message::by_channel, |q| q.gt("a").eq(1.0));
    // Beyond the index's fields and `_creationTime`.
    let _ = ctx
        .db()
        .query::<Message>()
        .with_index(Message::by_channel, |q| q.eq("a").eq(1.0).eq(2.0).eq(3.0));
    // Another table's index.
    let _ = ctx.db().query::<Person>().with_index(Message::by_channel, |q| q);
    // An index that does not exist.
    let _ = ctx.db().query::<Message>().with_index(Message::by_sent, |q| q);
    // A patch of a field that does not exist.
    let _ = MessagePatch::new().body("x");
    // A user id of a table that is not `users`.
    let _ = ctx.auth().user_id::<Message>();
}

fn main() {}
