//! Bindings generated from `sdk/wit`, kept behind the hand-written API.
#![allow(
    missing_docs,
    clippy::all,
    unsafe_code,
    unused_qualifications,
    missing_debug_implementations
)]

wit_bindgen::generate!({
    path: "../wit",
    world: "app",
    pub_export_macro: true,
    export_macro_name: "export",
    default_bindings_module: "capstan::__private::bindings",
});
