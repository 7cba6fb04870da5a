//! Hooks into built-in auth, as an app writes them: a display name from
//! the sign-up form, a count of users made, banned users refused, and a
//! claim in every token.

use capstan::{Id, MutationCtx, QueryCtx, User, json};
use serde_json::Value;

use crate::api::{Counter, CounterPatch};
use capstan::Int64;

/// The user's name: the sign-up form's `name`, else the provider's.
#[capstan::query(internal)]
pub fn user_fields(
    _ctx: &QueryCtx,
    provider: String,
    r#type: String,
    profile: Value,
    params: Value,
) -> capstan::Result<Value> {
    let name = params["name"]
        .as_str()
        .or(profile["name"].as_str())
        .unwrap_or("someone");
    Ok(json!({"name": name, "signedUpWith": format!("{provider}/{}", r#type)}))
}

/// Counts the users made.
#[capstan::mutation(internal)]
pub fn after_user(
    ctx: &mut MutationCtx,
    user_id: Id<User>,
    provider: String,
    r#type: String,
    created: bool,
) -> capstan::Result<()> {
    let _ = (user_id, provider, r#type);
    if !created {
        return Ok(());
    }
    let mut db = ctx.db();
    let name = "users_created".to_owned();
    match db
        .query::<Counter>()
        .with_index(Counter::by_name, |q| q.eq(&name))
        .unique()?
    {
        Some(counter) => db
            .patch(
                &counter.id,
                CounterPatch::new().value(Int64(counter.value.0 + 1)),
            )
            .map(|_| ()),
        None => db
            .insert(&Counter {
                name,
                value: Int64(1),
            })
            .map(|_| ()),
    }
}

/// Banned users (`@banned.example`) get no session.
#[capstan::query(internal)]
pub fn before_session(ctx: &QueryCtx, user_id: Id<User>) -> capstan::Result<()> {
    let user = ctx.db().get(&user_id)?;
    if user
        .and_then(|u| u.data.email.clone())
        .is_some_and(|email| email.ends_with("@banned.example"))
    {
        return Err(capstan::error!("this account is banned"));
    }
    Ok(())
}

/// Every token says the user's plan.
#[capstan::query(internal)]
pub fn claims(
    _ctx: &QueryCtx,
    user_id: Id<User>,
    session_id: Id<capstan::auth::Session>,
) -> capstan::Result<Value> {
    let _ = (user_id, session_id);
    Ok(json!({"plan": "pro"}))
}
