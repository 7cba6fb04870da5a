mod api {
    #[allow(non_camel_case_types)]
    #[derive(Clone, Copy)]
    pub struct ping;
}

capstan::app! {
    functions: [api::ping],
}

fn main() {}
