#[capstan::action(private)]
fn run(_ctx: &mut capstan::ActionCtx) -> capstan::Result<()> {
    Ok(())
}

fn main() {}
