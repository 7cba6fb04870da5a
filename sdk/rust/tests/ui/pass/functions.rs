//! Functions of every kind and argument form, tables with typed indexes and
//! patches, validators derived from serde's attributes, and typed calls.

use capstan::index::Range;
use capstan::{
    ActionCtx, Doc, Function, FunctionKind, Id, Int64, MutationCtx, QueryCtx, Table, Validated,
    Visibility,
};
use serde::{Deserialize, Serialize};

mod messages {
    use super::*;

    #[derive(Serialize, Deserialize, capstan::Table)]
    #[serde(rename_all = "camelCase")]
    #[table(name = "messages", index(by_channel = [channel]), index(by_author = [author_name, "meta.tag"]))]
    pub struct Message {
        pub channel: String,
        pub author_name: String,
        pub body: Option<String>,
        pub meta: Meta,
        #[serde(skip)]
        pub cached: u32,
    }

    #[derive(Serialize, Deserialize, Validated)]
    pub struct Meta {
        pub tag: String,
        pub count: Int64,
    }

    /// Named parameters: a generated `ListArgs`.
    #[capstan::query]
    pub fn list(ctx: &QueryCtx, channel: String, since: Option<f64>) -> capstan::Result<Vec<Doc<Message>>> {
        ctx.db()
            .query::<Message>()
            .with_index(Message::by_channel, |q| {
                let q = q.eq(&channel);
                match since {
                    Some(since) => Range::from(q.gt(since).lt(since + 1.0)),
                    None => Range::from(q),
                }
            })
            .collect()
    }

    /// A `&str` for a `String` field, a bound on the next one.
    #[capstan::query]
    pub fn by_author(ctx: &QueryCtx, author: String) -> capstan::Result<usize> {
        Ok(ctx
            .db()
            .query::<Message>()
            .with_index(Message::by_author, |q| q.eq(author.as_str()).gte("a"))
            .collect()?
            .len())
    }

    #[derive(Serialize, Deserialize)]
    pub struct Clear {
        pub channel: String,
    }

    /// The whole arguments object as a struct.
    #[capstan::mutation(internal)]
    pub fn clear(ctx: &mut MutationCtx, args: Clear) -> capstan::Result<u32> {
        // A query's function, called inside this transaction; a variable
        // may take a function's name.
        let list = list(ctx.as_query(), args.channel.clone(), None)?;
        if list.is_empty() {
            return Ok(0);
        }
        let mut db = ctx.db();
        let mut cleared = 0;
        for message in db
            .query::<Message>()
            .with_index(Message::by_channel, |q| q.eq(&args.channel))
            .collect()?
        {
            db.patch(&message.id, MessagePatch::new().unset_body().channel("archive"))?;
            cleared += 1;
        }
        Ok(cleared)
    }

    #[capstan::mutation]
    pub fn post(ctx: &mut MutationCtx, message: Message) -> capstan::Result<Id<Message>> {
        ctx.db().insert(&message)
    }

    /// Typed calls.
    #[capstan::action]
    pub fn digest(ctx: &mut ActionCtx, channel: String) -> capstan::Result<u32> {
        let list = ctx.run_query::<list>(&ListArgs { channel: channel.clone(), since: None })?;
        let cleared = ctx.run_mutation::<clear>(&Clear { channel })?;
        Ok(list.len() as u32 + cleared)
    }

    #[capstan::query]
    pub fn nothing(_ctx: &QueryCtx) -> capstan::Result<()> {
        Ok(())
    }
}

/// An enum with an internal tag, as Convex apps write unions.
#[derive(Serialize, Deserialize, Validated)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Shape {
    Circle { radius: f64 },
    Square { side: f64 },
}

/// A struct written with its name as a tag, as serde's `tag` does.
#[derive(Serialize, Deserialize, Validated)]
#[serde(tag = "type", rename = "point")]
struct Point {
    x: f64,
}

/// Struct variants whose fields are renamed by `rename_all_fields`.
#[derive(Serialize, Deserialize, Validated)]
#[serde(rename_all_fields = "camelCase")]
enum Event {
    Moved { new_place: String },
}

/// A wrapper of an optional value is an optional field.
#[derive(Serialize, Deserialize, Validated)]
struct Nickname(Option<String>);

#[derive(Serialize, Deserialize, Validated)]
struct Person {
    nickname: Nickname,
}

capstan::app! {
    tables: [messages::Message],
    functions: [messages::{list, by_author, clear, post, digest, nothing}],
}

fn main() {
    let list = <messages::list as Function>::definition();
    assert_eq!(list.path(), "messages:list");
    assert_eq!((list.kind, list.visibility), (FunctionKind::Query, Visibility::Public));
    let clear = <messages::clear as Function>::definition();
    assert_eq!((clear.kind, clear.visibility), (FunctionKind::Mutation, Visibility::Internal));
    assert_eq!(<messages::digest as Function>::KIND, FunctionKind::Action);

    // A function is still a function.
    let _: fn(&QueryCtx) -> capstan::Result<()> = messages::nothing;

    assert_eq!(messages::Message::NAME, "messages");
    assert_eq!(messages::Message::by_author.fields(), ["authorName", "meta.tag"]);
    let validator = messages::Message::definition();
    let json = serde_json::to_value(&validator).unwrap();
    let fields = &json["document"]["value"];
    assert_eq!(fields["authorName"]["fieldType"]["type"], "string");
    assert_eq!(fields["body"]["optional"], true);
    assert_eq!(fields["meta"]["fieldType"]["value"]["count"]["fieldType"]["type"], "int64");
    assert!(fields.get("cached").is_none());

    let point = Point::validator().to_json();
    assert_eq!(point["value"]["type"]["fieldType"]["value"], "point");
    assert_eq!(point["value"]["x"]["fieldType"]["type"], "float64");
    let event = Event::validator().to_json();
    assert!(event["value"]["Moved"]["fieldType"]["value"]["newPlace"].is_object(), "{event}");
    let person = Person::validator().to_json();
    assert_eq!(person["value"]["nickname"]["optional"], true, "{person}");

    let shape = Shape::validator().to_json();
    assert_eq!(shape["type"], "union");
    assert_eq!(shape["value"][0]["value"]["kind"]["fieldType"]["value"], "circle");
    assert_eq!(shape["value"][1]["value"]["side"]["fieldType"]["type"], "float64");
}
