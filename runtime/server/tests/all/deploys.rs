use serde_json::json;

use crate::common::*;

/// The binary form of a component that only imports `name`, an instance
/// exporting one function `f: func()`, which the host does not provide:
///
/// ```wat
/// (component
///   (type (instance (type (func)) (export "f" (func (type 0)))))
///   (import "<name>" (instance (type 0))))
/// ```
fn component_importing(name: &str) -> Vec<u8> {
    let instance_type = [
        &[0x01, 0x42, 0x02][..],         // one type: an instance of two declarations:
        &[0x01, 0x40, 0x00, 0x01, 0x00], //   type 0 = func()
        &[0x04, 0x00, 0x01, b'f', 0x01, 0x00], //   export "f" (func (type 0))
    ]
    .concat();
    let length = u8::try_from(name.len()).expect("a short name");
    let import = [
        &[0x01, 0x00, length][..], // one import, plain name
        name.as_bytes(),
        &[0x05, 0x00], // an instance of type 0
    ]
    .concat();
    let section = |id: u8, body: Vec<u8>| {
        let mut bytes = vec![id, u8::try_from(body.len()).expect("a short section")];
        bytes.extend(body);
        bytes
    };
    [
        vec![0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00], // component preamble
        section(0x07, instance_type),
        section(0x0a, import),
    ]
    .concat()
}

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
            vec![component_importing("capstan:missing/thing@1.0.0")],
            "capstan:missing/thing@1.0.0",
        ),
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
