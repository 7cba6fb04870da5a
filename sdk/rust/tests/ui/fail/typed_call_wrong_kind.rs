mod api {
    use capstan::{ActionCtx, QueryCtx};

    #[capstan::query]
    pub fn list(_ctx: &QueryCtx) -> capstan::Result<u32> {
        Ok(0)
    }

    #[capstan::action]
    pub fn run(ctx: &mut ActionCtx) -> capstan::Result<u32> {
        ctx.run_mutation::<list>(&())
    }
}

capstan::app! {
    functions: [api::{list, run}],
}

fn main() {}
