use capstan::QueryCtx;

#[derive(serde::Deserialize)]
pub struct Args {
    pub channel: String,
}

#[capstan::query]
fn args_and_more(_ctx: &QueryCtx, args: Args, limit: u32) -> capstan::Result<u32> {
    Ok(limit)
}

#[capstan::query]
fn pattern_among_named(_ctx: &QueryCtx, (a, b): (u32, u32), c: u32) -> capstan::Result<u32> {
    Ok(a + b + c)
}

#[capstan::query]
fn opaque(_ctx: &QueryCtx) -> capstan::Result<impl serde::Serialize> {
    Ok(1)
}

#[capstan::query]
fn borrowed(_ctx: &QueryCtx, name: &str) -> capstan::Result<u32> {
    Ok(name.len() as u32)
}

fn main() {}
