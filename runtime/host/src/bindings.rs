//! Host bindings generated from `sdk/wit`. Every import may trap (returns
//! `wasmtime::Result`), so the host can abort a guest on an internal error.
#![allow(
    missing_docs,
    missing_debug_implementations,
    unused_qualifications,
    clippy::all
)]

wasmtime::component::bindgen!({
    world: "app",
    path: "../../sdk/wit",
    imports: { default: trappable },
});
