//! A test app: every database operation, determinism, logs, errors, internal
//! functions, actions calling other functions, and hostile functions that
//! loop, allocate, recurse, panic or return too much.

mod api;
mod auth;
mod hostile;

capstan::app! {
    schema: capstan::Schema::new()
        .table("messages", capstan::TableDef::new().index("by_channel", &["channel"]))
        .table("counters", capstan::TableDef::new().index("by_name", &["name"])),
    functions: [
        api::echo, api::clock, api::list, api::get, api::page, api::count_all, api::write_in_query,
        api::logs, api::fail, api::fail_plain, api::secret, api::env,
        api::send, api::edit, api::edit_unset, api::swap, api::remove, api::increment, api::stamp,
        api::send_and_list, api::action_clock, api::call_secret,
        auth::whoami, auth::whoami_internal, auth::whoami_mutation, auth::whoami_action,
        auth::check_secret,
        hostile::spin, hostile::spin_on, hostile::bomb, hostile::recurse, hostile::panics, hostile::huge,
    ],
}
