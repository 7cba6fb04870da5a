//! Who is calling, as functions of every kind see it.

use capstan::{ActionCtx, Auth, Caller, MutationCtx, QueryCtx, User, json};
use serde_json::Value;

fn describe(auth: Auth<'_>) -> capstan::Result<Value> {
    let caller = match auth.caller()? {
        Caller::Anonymous => json!({"kind": "anonymous"}),
        Caller::User(identity) => json!({
            "kind": "user",
            "identity": identity,
            "userId": auth.user_id::<User>()?,
            "sessionId": auth.session_id()?,
        }),
        Caller::Admin => json!({"kind": "admin"}),
        Caller::Service { name } => json!({"kind": "service", "name": name}),
    };
    Ok(caller)
}

#[capstan::query]
pub fn whoami(ctx: &QueryCtx) -> capstan::Result<Value> {
    describe(ctx.auth())
}

#[capstan::query(internal)]
pub fn whoami_internal(ctx: &QueryCtx) -> capstan::Result<Value> {
    describe(ctx.auth())
}

#[capstan::mutation]
pub fn whoami_mutation(ctx: &mut MutationCtx) -> capstan::Result<Value> {
    describe(ctx.auth())
}

/// The action's own caller, and what the query it runs sees.
#[capstan::action]
pub fn whoami_action(ctx: &mut ActionCtx) -> capstan::Result<Value> {
    let own = describe(ctx.auth())?;
    let nested = ctx.run_query::<whoami>(&())?;
    Ok(json!({"own": own, "nested": nested}))
}

/// The signed-in user's document (built-in auth), typed.
#[capstan::query]
pub fn me(ctx: &QueryCtx) -> capstan::Result<Option<capstan::Doc<User>>> {
    ctx.current_user::<User>()
}

/// Ends every session of the caller.
#[capstan::mutation]
pub fn sign_out_everywhere(ctx: &mut MutationCtx) -> capstan::Result<f64> {
    let user = ctx
        .auth()
        .user_id::<User>()?
        .ok_or_else(|| capstan::error!("sign in first"))?;
    Ok(ctx.invalidate_sessions(&user, &[])? as f64)
}

#[capstan::query]
pub fn check_secret(ctx: &QueryCtx, name: String, presented: String) -> capstan::Result<bool> {
    ctx.auth().check_secret(&name, &presented)
}
