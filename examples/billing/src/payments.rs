//! Payments, recorded from the provider's signed webhook, once per event.

use std::time::Duration;

use capstan::{
    ActionCtx, Doc, HttpError, HttpRequest, HttpResponse, HttpResult, Id, MutationCtx, QueryCtx,
};
use serde::{Deserialize, Serialize};

use crate::receipts;

#[derive(Clone, Debug, Serialize, Deserialize, capstan::Table)]
#[serde(rename_all = "camelCase")]
#[table(name = "payments", index(by_event = [event_id]), index(by_receipt = [receipt]))]
pub struct Payment {
    /// The provider's event id: a webhook delivered twice records once.
    pub event_id: String,
    pub email: String,
    /// In the currency's smallest unit.
    pub amount: f64,
    pub currency: String,
    /// `pending`, `sent` or `failed`.
    pub receipt: String,
}

/// What the provider posts (Stripe's shape, trimmed).
#[derive(Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    email: String,
    amount: f64,
    currency: String,
}

/// `POST /webhooks/payment`, signed as Stripe signs (`Stripe-Signature`)
/// with `PAYMENT_WEBHOOK_SECRET`.
#[capstan::http_action]
pub fn webhook(ctx: &mut ActionCtx, request: HttpRequest) -> HttpResult {
    let secret = ctx
        .env("PAYMENT_WEBHOOK_SECRET")
        .ok_or_else(|| HttpError::new(500, "PAYMENT_WEBHOOK_SECRET is not set"))?;
    request.verify_stripe(&secret)?;
    let event: Event = request
        .json()
        .map_err(|e| HttpError::bad_request(e.message()))?;
    if event.kind != "payment.succeeded" {
        return Ok(HttpResponse::from_json(
            &capstan::json!({ "ignored": event.kind }),
        )?);
    }
    let payment = ctx.run_mutation::<record>(&RecordArgs {
        event_id: event.id,
        email: event.data.email,
        amount: event.data.amount,
        currency: event.data.currency,
    })?;
    Ok(HttpResponse::from_json(
        &capstan::json!({ "payment": payment }),
    )?)
}

/// Records a payment once per event and schedules its receipt, in the same
/// transaction: no receipt without a payment, no payment without a receipt
/// on its way.
#[capstan::mutation(internal)]
pub fn record(
    ctx: &mut MutationCtx,
    event_id: String,
    email: String,
    amount: f64,
    currency: String,
) -> capstan::Result<Id<Payment>> {
    let mut db = ctx.db();
    if let Some(seen) = db
        .query::<Payment>()
        .with_index(Payment::by_event, |q| q.eq(&event_id))
        .first()?
    {
        return Ok(seen.id);
    }
    let payment = db.insert(&Payment {
        event_id,
        email,
        amount,
        currency,
        receipt: "pending".into(),
    })?;
    ctx.scheduler().run_after::<receipts::send>(
        Duration::ZERO,
        &receipts::SendArgs {
            payment: payment.clone(),
        },
    )?;
    Ok(payment)
}

#[capstan::query]
pub fn list(ctx: &QueryCtx) -> capstan::Result<Vec<Doc<Payment>>> {
    ctx.db().query::<Payment>().full_table_scan().collect()
}

#[capstan::query(internal)]
pub fn get_payment(ctx: &QueryCtx, payment: Id<Payment>) -> capstan::Result<Option<Doc<Payment>>> {
    ctx.db().get(&payment)
}
