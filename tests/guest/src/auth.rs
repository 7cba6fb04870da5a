//! Who is calling, as functions of every kind see it.

use capstan::{ActionCtx, Auth, Caller, MutationCtx, QueryCtx};
use serde::Deserialize;
use serde_json::{Value, json};

fn describe(auth: Auth<'_>) -> capstan::Result<Value> {
    let caller = match auth.caller()? {
        Caller::Anonymous => json!({"kind": "anonymous"}),
        Caller::User(identity) => json!({
            "kind": "user",
            "identity": identity,
            "userId": auth.get_auth_user_id()?,
            "sessionId": auth.get_auth_session_id()?,
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
    let nested: Value = ctx.run_query("auth:whoami", &json!({}))?;
    Ok(json!({"own": own, "nested": nested}))
}

#[derive(Deserialize)]
pub struct SecretArgs {
    pub name: String,
    pub presented: String,
}

#[capstan::query]
pub fn check_secret(ctx: &QueryCtx, args: SecretArgs) -> capstan::Result<bool> {
    ctx.auth().check_secret(&args.name, &args.presented)
}
