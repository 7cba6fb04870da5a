//! Billing for a club: a payment provider calls a signed webhook, each
//! payment gets an emailed receipt sent by a scheduled action through a
//! mail API, an hourly cron retries the receipts that failed, and members
//! upload avatars.

mod members;
mod payments;
mod receipts;

use std::time::Duration;

capstan::app! {
    tables: [members::Member, payments::Payment],
    functions: [
        members::{join, generate_upload_url, set_avatar, avatar_url, get},
        payments::{record, list, get_payment},
        receipts::{send, mark, retry_failed},
    ],
    http: capstan::HttpRouter::new()
        .post::<payments::webhook>("/webhooks/payment")
        .get::<members::avatar>("/avatars/*")
        .post::<members::upload_avatar>("/members/avatar")
        .cors(capstan::Cors::any_origin().allow_headers(["content-type", "x-member-email"])),
    crons: capstan::Crons::new()
        .interval::<receipts::retry_failed>("retry failed receipts", Duration::from_secs(3600), &()),
}
