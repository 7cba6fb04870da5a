//! A test app for the platform: scheduling (and failing to), slow and
//! crashing jobs, crons (one quick, one slower than its interval), files,
//! HTTP actions of every routing kind, and outbound HTTP.

mod jobs;
mod web;

use std::time::Duration;

capstan::app! {
    tables: [jobs::Mark],
    functions: [
        jobs::{
            mark, marks, count_marks, schedule_then_fail, schedule_many, schedule_action, slow_action, cancel,
            scheduled, write_system_table, tick, slow_tick, too_many,
        },
        web::{fetch, echo_body, store_text, read_text, files, file_url, delete_file, upload_url},
    ],
    http: capstan::HttpRouter::new()
        .post::<web::echo>("/echo")
        .get::<web::echo>("/echo")
        .any::<web::echo>("/any")
        .get::<web::prefixed>("/files/*")
        .get::<web::prefixed>("/files/deeper/*")
        .post::<web::secret>("/secret")
        .post::<web::github>("/github")
        .post::<web::svix>("/svix")
        .post::<web::echo>("/browser")
        .cors(capstan::Cors::origins(["https://app.example.com"]).allow_headers(["content-type"]))
        .get::<web::whoami>("/whoami"),
    crons: capstan::Crons::new()
        .interval::<jobs::tick>("tick", Duration::from_secs(1), &())
        .interval::<jobs::slow_tick>("slow tick", Duration::from_secs(1), &()),
}
