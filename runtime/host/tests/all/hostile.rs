use std::time::{Duration, Instant};

use capstan_host::Failure;
use serde_json::json;

use crate::common::*;

#[test]
fn misbehaving_functions_are_stopped_and_classified() {
    let fixture = guest();
    let started = Instant::now();
    let outcome = fixture.run("hostile:spin", json!({}));
    assert!(
        matches!(outcome.result, Err(Failure::TimedOut { limit_ms: 1000 })),
        "{:?}",
        outcome.result
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped near its deadline"
    );

    let outcome = fixture.run("hostile:bomb", json!({}));
    assert!(
        matches!(outcome.result, Err(Failure::OutOfMemory { .. })),
        "{:?}",
        outcome.result
    );

    let outcome = fixture.run("hostile:recurse", json!({}));
    assert!(
        matches!(outcome.result, Err(Failure::StackOverflow)),
        "{:?}",
        outcome.result
    );

    match fixture.run("hostile:panics", json!({})).result {
        Err(Failure::Panicked { message }) => {
            assert!(message.contains("index 3 is out of range"), "{message}")
        }
        other => panic!("expected a panic, got {other:?}"),
    }

    let outcome = fixture.run("hostile:huge", json!({"bytes": 2 << 20}));
    assert!(
        matches!(outcome.result, Err(Failure::ResultTooLarge { .. })),
        "{:?}",
        outcome.result
    );

    let big = "x".repeat(2 << 20);
    let outcome = fixture.run("api:echo", json!({ "big": big }));
    assert!(
        matches!(outcome.result, Err(Failure::ArgumentsTooLarge { .. })),
        "{:?}",
        outcome.result
    );

    // And the next ordinary call works.
    assert_eq!(
        fixture.value("api:echo", json!({"ok": true})),
        json!({"ok": true})
    );
}
