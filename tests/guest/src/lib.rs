//! A test app: every database operation, determinism, logs, errors, internal
//! functions, actions calling other functions, values of every Convex type,
//! and hostile functions that loop, allocate, recurse, panic or return too
//! much.

mod api;
mod auth;
mod auth_hooks;
mod hostile;
mod values;

capstan::app! {
    tables: [api::Message, api::Counter, values::Stored],
    functions: [
        api::{
            echo, clock, list, list_round, by_note, get, page, count_all, write_in_query, logs, fail, fail_plain,
            secret, env, send, edit, edit_unset, swap, remove, increment, stamp, mutation_clock, send_and_list,
            action_clock, call_secret,
        },
        auth::{whoami, whoami_internal, whoami_mutation, whoami_action, check_secret, me, sign_out_everywhere},
        auth_hooks::{user_fields, after_user, before_session, claims},
        hostile::{spin, spin_on, bomb, recurse, panics, huge, nest},
        values::{echo_json, numbers, store, load},
    ],
}
