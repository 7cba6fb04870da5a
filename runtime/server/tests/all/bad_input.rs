use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_clear_errors_and_change_nothing() -> anyhow::Result<()> {
    let dir = temp_dir();
    let server = TestServer::with_guest(dir.path()).await?;

    let raw = |body: &'static str| {
        server
            .client
            .post(server.url("/api/mutation"))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };
    for body in ["{not json", "[]", "{\"args\": {}}", "{\"path\": 5}"] {
        let response = raw(body).await?;
        assert_eq!(response.status().as_u16(), 400, "{body}");
        let error: serde_json::Value = response.json().await?;
        assert_eq!(error["code"], json!("BadRequest"), "{body}");
    }

    let (status, body) = server
        .call("mutation", "api:send", json!({"channel": 5}))
        .await?;
    assert_eq!(status, 200);
    assert!(
        body["errorMessage"]
            .as_str()
            .is_some_and(|m| m.starts_with("Invalid arguments for `api:send`")),
        "{body}"
    );

    let (status, body) = server
        .call("mutation", "api:send", json!({"$bad": 1}))
        .await?;
    assert_eq!(status, 400, "{body}");

    let (status, _) = server.call("query", "api:nope", json!({})).await?;
    assert_eq!(status, 404);
    let (status, body) = server.call("query", "api:send", json!({})).await?;
    assert_eq!(status, 400, "a mutation called as a query: {body}");

    let big = "x".repeat(2 << 20);
    let (status, body) = server
        .call("mutation", "api:send", json!({"channel": "c", "body": big}))
        .await?;
    assert_eq!(status, 413, "{body}");

    let (status, _) = server
        .call_as(
            "query",
            "api:list",
            json!({"channel": "c"}),
            Some("Bearer not-a-key".into()),
        )
        .await?;
    assert_eq!(status, 401);

    assert_eq!(
        server.value("query", "api:count_all", json!({})).await?,
        json!(0.0)
    );
    server.stop().await
}
