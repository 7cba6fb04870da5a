#[capstan::mutation]
fn send(_ctx: &capstan::QueryCtx) -> capstan::Result<()> {
    Ok(())
}

#[capstan::mutation]
fn shared(_ctx: &capstan::MutationCtx) -> capstan::Result<()> {
    Ok(())
}

fn main() {}
