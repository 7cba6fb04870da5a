//! Host tests: real components built from `tests/guest` and `examples/`, run
//! against an in-memory store.

mod calls;
mod common;
mod hostile;
mod loading;
