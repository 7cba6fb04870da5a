use capstan::QueryCtx;

#[capstan::query]
pub fn ping(_ctx: &QueryCtx) -> capstan::Result<&'static str> {
    Ok("pong")
}
