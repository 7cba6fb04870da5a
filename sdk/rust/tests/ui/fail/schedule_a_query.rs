mod api {
    use std::time::Duration;

    use capstan::{MutationCtx, QueryCtx};

    #[capstan::query]
    pub fn count(_ctx: &QueryCtx) -> capstan::Result<u32> {
        Ok(1)
    }

    #[capstan::mutation]
    pub fn later(ctx: &mut MutationCtx) -> capstan::Result<()> {
        ctx.scheduler().run_after::<count>(Duration::from_secs(1), &())?;
        Ok(())
    }
}

capstan::app! {
    functions: [api::{count, later}],
    crons: capstan::Crons::new().interval::<api::count>("count", std::time::Duration::from_secs(60), &()),
}

fn main() {}
