#[capstan::query]
fn no_context() -> capstan::Result<()> {
    Ok(())
}

#[capstan::query]
fn no_result(_ctx: &capstan::QueryCtx) {}

#[capstan::query]
fn generic<T>(_ctx: &capstan::QueryCtx) -> capstan::Result<()> {
    Ok(())
}

fn main() {}
