mod billing {
    use std::time::Duration;

    use capstan::{
        ActionCtx, HttpRequest, HttpResponse, HttpResult, Id, MutationCtx, QueryCtx,
        ScheduledFunction, StoredFile,
    };

    #[capstan::mutation(internal)]
    pub fn record(ctx: &mut MutationCtx, amount: f64) -> capstan::Result<Id<ScheduledFunction>> {
        let _ = amount;
        ctx.scheduler().run_after::<receipt>(Duration::ZERO, &ReceiptArgs { amount })
    }

    #[capstan::action(internal)]
    pub fn receipt(ctx: &mut ActionCtx, amount: f64) -> capstan::Result<()> {
        let response = ctx.fetch(HttpRequest::post("https://mail.example.com").with_json(&amount)?)?;
        let _ = response.status();
        Ok(())
    }

    #[capstan::query]
    pub fn picture(ctx: &QueryCtx, id: Id<StoredFile>) -> capstan::Result<Option<String>> {
        ctx.storage().get_url(&id)
    }

    #[capstan::http_action]
    pub fn webhook(ctx: &mut ActionCtx, request: HttpRequest) -> HttpResult {
        request.verify_stripe(&ctx.env("SECRET").unwrap_or_default())?;
        ctx.run_mutation::<record>(&RecordArgs { amount: 1.0 })?;
        Ok(HttpResponse::new(204))
    }
}

capstan::app! {
    functions: [billing::{record, receipt, picture}],
    http: capstan::HttpRouter::new().post::<billing::webhook>("/webhook"),
    crons: capstan::Crons::new().interval::<billing::record>(
        "hourly",
        std::time::Duration::from_secs(3600),
        &billing::RecordArgs { amount: 0.0 },
    ),
}

fn main() {}
