use capstan::{ActionCtx, Function, FunctionKind, MutationCtx, QueryCtx, Visibility};

mod messages {
    use super::*;

    #[derive(serde::Deserialize)]
    pub struct Args {
        pub channel: String,
    }

    #[capstan::query]
    pub fn list(_ctx: &QueryCtx, args: Args) -> capstan::Result<String> {
        Ok(args.channel)
    }

    #[capstan::mutation(internal)]
    pub fn clear(_ctx: &mut MutationCtx) -> capstan::Result<()> {
        Ok(())
    }

    #[capstan::action]
    pub fn digest(_ctx: &mut ActionCtx, _args: serde_json::Value) -> capstan::Result<u32> {
        Ok(0)
    }
}

fn main() {
    let list = <messages::list as Function>::definition();
    assert_eq!(list.path(), "messages:list");
    assert_eq!((list.kind, list.visibility), (FunctionKind::Query, Visibility::Public));
    let clear = <messages::clear as Function>::definition();
    assert_eq!((clear.kind, clear.visibility), (FunctionKind::Mutation, Visibility::Internal));
    let digest = <messages::digest as Function>::definition();
    assert_eq!(digest.kind, FunctionKind::Action);
}
