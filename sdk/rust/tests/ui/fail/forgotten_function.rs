mod api {
    use capstan::QueryCtx;

    #[capstan::query]
    pub fn listed(_ctx: &QueryCtx) -> capstan::Result<u32> {
        Ok(1)
    }

    #[capstan::query]
    pub fn forgotten(_ctx: &QueryCtx) -> capstan::Result<u32> {
        Ok(2)
    }
}

capstan::app! {
    functions: [api::listed],
}

fn main() {}
