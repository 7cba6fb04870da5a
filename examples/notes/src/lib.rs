//! Notes in notebooks: listed newest first a page at a time, archived by an
//! internal mutation that only the `archive_notebook` action may call.

mod notes;

capstan::app! {
    tables: [notes::Note],
    functions: [notes::{add, page, archive, archive_notebook}],
}
