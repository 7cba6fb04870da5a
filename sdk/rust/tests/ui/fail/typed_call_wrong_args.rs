mod api {
    use capstan::{ActionCtx, QueryCtx};

    #[capstan::query]
    pub fn list(_ctx: &QueryCtx, channel: String) -> capstan::Result<Vec<String>> {
        Ok(vec![channel])
    }

    #[capstan::action]
    pub fn run(ctx: &mut ActionCtx) -> capstan::Result<usize> {
        let wrong_type = ctx.run_query::<list>(&ListArgs { channel: 5 })?;
        let unknown_field = ctx.run_query::<list>(&ListArgs { chanel: "general".into() })?;
        let wrong_struct = ctx.run_query::<list>(&())?;
        let wrong_result: u32 = ctx.run_query::<list>(&ListArgs { channel: "general".into() })?;
        Ok(wrong_type.len() + unknown_field.len() + wrong_struct.len() + wrong_result as usize)
    }
}

capstan::app! {
    functions: [api::{list, run}],
}

fn main() {}
