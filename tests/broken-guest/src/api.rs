use capstan::QueryCtx;

#[capstan::query]
pub fn ping(_ctx: &QueryCtx) -> capstan::Result<String> {
    Ok("pong".into())
}
