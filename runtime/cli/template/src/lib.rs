//! The smallest Capstan app: named counters that clients read and increment.

mod counter;

capstan::app! {
    schema: capstan::Schema::new()
        .table("counters", capstan::TableDef::new().index("by_name", &["name"])),
    functions: [counter::get, counter::increment],
}
