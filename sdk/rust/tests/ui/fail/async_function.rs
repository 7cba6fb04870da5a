#[capstan::query]
async fn list(_ctx: &capstan::QueryCtx) -> capstan::Result<()> {
    Ok(())
}

fn main() {}
