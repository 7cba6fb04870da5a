//! Receipts, emailed through a mail API (`MAIL_API_URL`, `MAIL_API_KEY`)
//! by a scheduled action; an hourly cron retries the ones that failed.

use std::time::Duration;

use capstan::{ActionCtx, HttpRequest, Id, MutationCtx};

use crate::payments::{GetPaymentArgs, Payment, get_payment};

/// Sends a payment's receipt. Scheduled, so it runs once the payment
/// commits, and at most once.
#[capstan::action(internal)]
pub fn send(ctx: &mut ActionCtx, payment: Id<Payment>) -> capstan::Result<()> {
    let Some(paid) = ctx.run_query::<get_payment>(&GetPaymentArgs {
        payment: payment.clone(),
    })?
    else {
        return Ok(());
    };
    let url = ctx
        .env("MAIL_API_URL")
        .ok_or_else(|| capstan::error!("MAIL_API_URL is not set"))?;
    let key = ctx.env("MAIL_API_KEY").unwrap_or_default();
    let mail = capstan::json!({
        "to": paid.email,
        "subject": "Your receipt",
        "text": format!("We received {:.2} {}. Thank you!", paid.amount / 100.0, paid.currency.to_uppercase()),
    });
    let sent = ctx.fetch(
        HttpRequest::post(url)
            .with_header("authorization", format!("Bearer {key}"))
            .with_json(&mail)?,
    );
    let state = match &sent {
        Ok(response) if response.is_success() => "sent",
        _ => "failed",
    };
    ctx.run_mutation::<mark>(&MarkArgs {
        payment,
        state: state.into(),
    })?;
    match sent {
        Ok(response) if !response.is_success() => Err(capstan::error!(
            "the mail API answered {}",
            response.status()
        )),
        Ok(_) => Ok(()),
        Err(error) => Err(error),
    }
}

#[capstan::mutation(internal)]
pub fn mark(ctx: &mut MutationCtx, payment: Id<Payment>, state: String) -> capstan::Result<()> {
    ctx.db().patch(
        &payment,
        crate::payments::PaymentPatch::new().receipt(state),
    )?;
    Ok(())
}

/// The hourly cron: tries the failed receipts again, a minute apart.
#[capstan::mutation(internal)]
pub fn retry_failed(ctx: &mut MutationCtx) -> capstan::Result<u32> {
    let failed = ctx
        .db()
        .query::<Payment>()
        .with_index(Payment::by_receipt, |q| q.eq("failed"))
        .take(100)?;
    for (n, payment) in failed.iter().enumerate() {
        ctx.db().patch(
            &payment.id,
            crate::payments::PaymentPatch::new().receipt("pending"),
        )?;
        ctx.scheduler().run_after::<send>(
            Duration::from_secs(60 * n as u64),
            &SendArgs {
                payment: payment.id.clone(),
            },
        )?;
    }
    Ok(failed.len() as u32)
}
