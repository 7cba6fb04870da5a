//! Notes in notebooks: listed newest first a page at a time, archived by an
//! internal mutation that only the `archive_old` action may call.

mod notes;

capstan::app! {
    schema: capstan::Schema::new().table(
        "notes",
        capstan::TableDef::new()
            .index("by_notebook", &["notebook"])
            .validator(capstan::v::object([
                ("notebook", capstan::v::string()),
                ("text", capstan::v::string()),
                ("archived", capstan::v::boolean()),
            ])),
    ),
    functions: [notes::add, notes::page, notes::archive, notes::archive_notebook],
}
