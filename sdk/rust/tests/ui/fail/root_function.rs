use capstan::QueryCtx;

#[capstan::query]
pub fn ping(_ctx: &QueryCtx) -> capstan::Result<u32> {
    Ok(1)
}

capstan::app! {
    functions: [ping],
}

fn main() {}
