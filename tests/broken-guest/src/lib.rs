//! An app whose schema declares an index under a reserved name: every deploy
//! of it must be refused. (`#[derive(Table)]` refuses the name at compile
//! time, so the schema is written by hand, as an app could.)

mod api;

capstan::app! {
    schema: capstan::Schema::new()
        .table_named("messages", capstan::TableDef::new().index("by_id", &["channel"])),
    functions: [api::ping],
}
