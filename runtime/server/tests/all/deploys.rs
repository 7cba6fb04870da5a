use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_deploys_change_nothing_and_say_why() -> anyhow::Result<()> {
    let dir = temp_dir();
    let server = TestServer::with_guest(dir.path()).await?;
    server
        .value(
            "mutation",
            "api:send",
            json!({"channel": "c", "body": "kept"}),
        )
        .await?;
    let before = server.health().await?;

    let broken = component("capstan-broken-guest", "broken_guest");
    let cases: Vec<(Vec<Vec<u8>>, &str)> = vec![
        (
            vec![b"plain text, not wasm".to_vec()],
            "not a WebAssembly component",
        ),
        (vec![broken], "reserved"),
        (
            vec![test_guest(), test_guest()],
            "defined by two components",
        ),
        (vec![], "at least one component"),
    ];
    for (components, expected) in cases {
        let (status, body) = server.deploy(&components).await?;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["code"], json!("BadDeploy"));
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(expected),
            "{message:?} should mention {expected:?}"
        );
    }
    let after = server.health().await?;
    assert_eq!(before["deployment"], after["deployment"]);
    let listed = server
        .value("query", "api:list", json!({"channel": "c"}))
        .await?;
    assert_eq!(
        listed[0]["body"],
        json!("kept"),
        "the previous deployment still serves"
    );

    // A deploy of another app switches over; its functions replace the old.
    let (status, body) = server.deploy(&[component("counter", "counter")]).await?;
    assert_eq!(
        status, 400,
        "the test guest's tables still hold documents: {body}"
    );
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_need_the_admin_key() -> anyhow::Result<()> {
    let dir = temp_dir();
    let server = TestServer::with_guest(dir.path()).await?;
    for auth in [
        None,
        Some("Convex wrong".to_owned()),
        Some("Bearer wrong".to_owned()),
        Some("Basic x".to_owned()),
    ] {
        let mut request = server.client.get(server.url("/api/functions"));
        if let Some(auth) = &auth {
            request = request.header("Authorization", auth);
        }
        let response = request.send().await?;
        assert_eq!(response.status().as_u16(), 401, "{auth:?}");
    }
    let response = server
        .client
        .post(server.url("/api/deploy"))
        .json(&json!({"components": []}))
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 401);

    let functions: serde_json::Value = server
        .client
        .get(server.url("/api/functions"))
        .header("Authorization", server.admin())
        .send()
        .await?
        .json()
        .await?;
    assert!(
        functions
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["path"] == "api:send"))
    );
    server.stop().await
}
