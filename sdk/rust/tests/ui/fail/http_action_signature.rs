mod web {
    use capstan::{ActionCtx, HttpRequest, HttpResponse, HttpResult, QueryCtx};

    #[capstan::http_action]
    pub fn no_request(_ctx: &mut ActionCtx) -> HttpResult {
        Ok(HttpResponse::new(204))
    }

    #[capstan::query]
    pub fn plain(_ctx: &QueryCtx) -> capstan::Result<u32> {
        Ok(1)
    }

    #[capstan::http_action]
    pub fn hook(_ctx: &mut ActionCtx, _request: HttpRequest) -> HttpResult {
        Ok(HttpResponse::new(204))
    }
}

capstan::app! {
    functions: [web::plain],
    // A query is not an HTTP action.
    http: capstan::HttpRouter::new().post::<web::plain>("/plain").post::<web::hook>("/hook"),
}

fn main() {}
