//! An app whose schema declares an index under a reserved name: every deploy
//! of it must be refused.

mod api;

capstan::app! {
    schema: capstan::Schema::new()
        .table("messages", capstan::TableDef::new().index("by_id", &["channel"])),
    functions: [api::ping],
}
