#[capstan::query]
fn no_context() -> capstan::Result<()> {
    Ok(())
}

#[capstan::query]
fn too_many(_ctx: &capstan::QueryCtx, _a: u32, _b: u32) -> capstan::Result<()> {
    Ok(())
}

#[capstan::query]
fn no_result(_ctx: &capstan::QueryCtx) {}

#[capstan::query]
fn generic<T>(_ctx: &capstan::QueryCtx) -> capstan::Result<()> {
    Ok(())
}

fn main() {}
