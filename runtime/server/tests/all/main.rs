//! Server tests: a real server on an ephemeral port with a temporary data
//! directory, driven over HTTP and WebSocket.

mod auth;
mod bad_input;
mod built_in_auth;
mod calls;
mod common;
mod concurrency;
mod conformance;
mod deploys;
mod examples;
mod hardening;
mod hostile_clients;
mod manifests;
mod platform;
mod socket;
mod socket_limits;
mod sync;
