use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_function_kind_runs_over_http() -> anyhow::Result<()> {
    let dir = temp_dir();
    let server = TestServer::with_guest(dir.path()).await?;

    let id = server
        .value(
            "mutation",
            "api:send",
            json!({"channel": "c", "body": "hello"}),
        )
        .await?;
    assert!(id.as_str().is_some_and(|id| id.len() == 36), "{id}");
    let listed = server
        .value("query", "api:list", json!({"channel": "c"}))
        .await?;
    assert_eq!(listed[0]["body"], json!("hello"));

    let sent = server
        .value(
            "action",
            "api:send_and_list",
            json!({"channel": "c", "body": "from action"}),
        )
        .await?;
    assert_eq!(
        sent["count"],
        json!(2.0),
        "the action's mutation then query"
    );

    // Paths are canonicalised; args may be a bare object.
    let response = server
        .client
        .post(server.url("/api/query"))
        .json(&json!({"path": "api.js:list", "args": {"channel": "c"}}))
        .send()
        .await?;
    let body: serde_json::Value = response.json().await?;
    assert_eq!(body["value"].as_array().map(Vec::len), Some(2));

    // Values keep their Convex encoding both ways.
    let echoed = server
        .value(
            "query",
            "api:echo",
            json!({"n": {"$integer": "AQAAAAAAAAA="}, "b": {"$bytes": "AQID"}, "f": 1.5}),
        )
        .await?;
    assert_eq!(echoed["n"], json!({"$integer": "AQAAAAAAAAA="}));
    assert_eq!(echoed["f"], json!(1.5));
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_convex_type_survives_a_trip_through_a_rust_function() -> anyhow::Result<()> {
    let dir = temp_dir();
    let server = TestServer::with_guest(dir.path()).await?;
    let int = |n: i64| {
        use base64::Engine as _;
        json!({"$integer": base64::engine::general_purpose::STANDARD.encode(n.to_le_bytes())})
    };
    let float = |x: f64| {
        use base64::Engine as _;
        json!({"$float": base64::engine::general_purpose::STANDARD.encode(x.to_le_bytes())})
    };
    let every = json!({
        "intMin": int(i64::MIN), "intMax": int(i64::MAX), "zero": int(0), "minusOne": int(-1),
        "nan": float(f64::NAN), "negZero": float(-0.0), "inf": float(f64::INFINITY),
        "negInf": float(f64::NEG_INFINITY), "half": 0.5, "whole": 3.0, "huge": 1e300,
        "bytes": {"$bytes": "AAEC/v8="}, "noBytes": {"$bytes": ""},
        "text": "é \" \n \u{1F600}", "flag": false, "null": null,
        "nested": [int(1), [{"$bytes": "CQ=="}, {}], {"deep": int(-5)}],
    });
    // Echoed, and stored then read back: the same Convex JSON, key for key.
    let echoed = server.value("query", "api:echo", every.clone()).await?;
    assert_eq!(echoed, every);
    let id = server
        .value("mutation", "values:store", json!({"value": every}))
        .await?;
    let loaded = server
        .value("query", "values:load", json!({"id": id}))
        .await?;
    assert_eq!(loaded["value"], every);

    // Rust's number types, as clients receive them.
    let numbers = server.value("query", "values:numbers", json!({})).await?;
    assert_eq!(
        numbers,
        json!({
            "small": 7.0, "negative": -9_007_199_254_740_992.0, "ratio": 0.5,
            "big": int(1 << 60), "bytes": {"$bytes": "AAH/"}, "list": [0.0, 1.0, 255.0],
            "holes": [1.0, null],
        })
    );
    // serde_json numbers are float64s, whatever their JSON spelling.
    assert_eq!(
        server
            .value("query", "values:echo_json", json!({"n": 3, "i": int(4)}))
            .await?,
        json!({"n": 3.0, "i": 4.0})
    );
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_functions_are_refused_to_clients() -> anyhow::Result<()> {
    let dir = temp_dir();
    let server = TestServer::with_guest(dir.path()).await?;
    let (status, body) = server.call("query", "api:secret", json!({})).await?;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("Could not find public function"))
    );

    let (status, body) = server
        .call_as("query", "api:secret", json!({}), Some(server.admin()))
        .await?;
    assert_eq!(
        (status, body["value"].clone()),
        (200, json!("internal value"))
    );

    // Functions may call internal functions.
    assert_eq!(
        server.value("action", "api:call_secret", json!({})).await?,
        json!("internal value")
    );
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_log_lines_reach_the_caller() -> anyhow::Result<()> {
    let dir = temp_dir();
    let server = TestServer::with_guest(dir.path()).await?;
    let (status, body) = server.call("query", "api:fail", json!({})).await?;
    assert_eq!(status, 200);
    assert_eq!(body["status"], json!("error"));
    assert_eq!(body["errorData"]["code"], json!("TOO_MANY"));

    let (_, body) = server.call("query", "api:fail_plain", json!({})).await?;
    assert_eq!(body["errorMessage"], json!("plain failure 7"));
    assert!(body.get("errorData").is_none());

    let (_, body) = server.call("query", "api:logs", json!({})).await?;
    assert_eq!(
        body["logLines"],
        json!([
            "[LOG] printed",
            "[LOG] logged 1",
            "[ERROR] to stderr",
            "[WARN] careful"
        ])
    );
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_functions_fail_cleanly_and_the_server_keeps_serving() -> anyhow::Result<()> {
    let dir = temp_dir();
    let server = TestServer::with_guest(dir.path()).await?;
    let cases = [
        ("hostile:spin", json!({}), "timed out"),
        ("hostile:bomb", json!({}), "out of memory"),
        ("hostile:recurse", json!({}), "stack"),
        ("hostile:panics", json!({}), "index 3 is out of range"),
        ("hostile:huge", json!({"bytes": 2 << 20}), "the result is"),
    ];
    for (path, args, expected) in cases {
        let (status, body) = server.call("query", path, args).await?;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["status"], json!("error"), "{path}: {body}");
        let message = body["errorMessage"].as_str().unwrap_or_default();
        assert!(
            message.contains(expected),
            "{path}: {message:?} should mention {expected:?}"
        );
        assert_eq!(
            server
                .value("query", "api:echo", json!({"after": path}))
                .await?,
            json!({"after": path})
        );
    }
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_serves_the_same_app_without_redeploying_or_recompiling() -> anyhow::Result<()> {
    let dir = temp_dir();
    let server = TestServer::with_guest(dir.path()).await?;
    server
        .value(
            "mutation",
            "api:send",
            json!({"channel": "kept", "body": "before"}),
        )
        .await?;
    server
        .client
        .put(server.url("/api/env/GREETING"))
        .header("Authorization", server.admin())
        .json(&json!({"value": "hi again"}))
        .send()
        .await?
        .error_for_status()?;
    server.stop().await?;

    let server = TestServer::spawn(dir.path()).await?;
    let health = server.health().await?;
    assert_eq!(
        health["components"],
        json!({"compiled": 0, "loadedFromCache": 1}),
        "{health}"
    );
    let listed = server
        .value("query", "api:list", json!({"channel": "kept"}))
        .await?;
    assert_eq!(listed[0]["body"], json!("before"));
    assert_eq!(
        server
            .value("query", "api:env", json!({"name": "GREETING"}))
            .await?,
        json!("hi again")
    );
    server.stop().await
}
