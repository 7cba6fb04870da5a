use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counter_example_counts() -> anyhow::Result<()> {
    let dir = temp_dir();
    let server = TestServer::spawn(dir.path()).await?;
    let (status, body) = server.deploy(&[component("counter", "counter")]).await?;
    anyhow::ensure!(status == 200, "{body}");
    assert_eq!(
        server.value("query", "counter:get", json!({})).await?,
        json!(0.0)
    );
    assert_eq!(
        server
            .value("mutation", "counter:increment", json!({"by": 2}))
            .await?,
        json!(2.0)
    );
    assert_eq!(
        server
            .value("mutation", "counter:increment", json!({}))
            .await?,
        json!(3.0)
    );
    assert_eq!(
        server.value("query", "counter:get", json!({})).await?,
        json!(3.0)
    );
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notes_example_pages_archives_and_guards_its_internal_mutation() -> anyhow::Result<()> {
    let dir = temp_dir();
    let server = TestServer::spawn(dir.path()).await?;
    let (status, body) = server.deploy(&[component("notes", "notes")]).await?;
    anyhow::ensure!(status == 200, "{body}");
    for n in 0..5 {
        server
            .value(
                "mutation",
                "notes:add",
                json!({"notebook": "ideas", "text": format!("note {n}")}),
            )
            .await?;
    }
    server
        .value(
            "mutation",
            "notes:add",
            json!({"notebook": "other", "text": "elsewhere"}),
        )
        .await?;
    let (_, body) = server
        .call(
            "mutation",
            "notes:add",
            json!({"notebook": "ideas", "text": " "}),
        )
        .await?;
    assert_eq!(body["errorData"], json!({"code": "EMPTY_NOTE"}));

    let first = server
        .value(
            "query",
            "notes:page",
            json!({"notebook": "ideas", "paginationOpts": {"numItems": 3}}),
        )
        .await?;
    let texts: Vec<_> = first["page"]
        .as_array()
        .expect("page")
        .iter()
        .map(|n| n["text"].clone())
        .collect();
    assert_eq!(texts, [json!("note 4"), json!("note 3"), json!("note 2")]);
    assert_eq!(first["isDone"], json!(false));
    let second = server
        .value(
            "query",
            "notes:page",
            json!({"notebook": "ideas", "paginationOpts": {"numItems": 3, "cursor": first["continueCursor"]}}),
        )
        .await?;
    assert_eq!(second["page"].as_array().map(Vec::len), Some(2));
    assert_eq!(second["isDone"], json!(true));

    let (status, _) = server
        .call("mutation", "notes:archive", json!({"notebook": "ideas"}))
        .await?;
    assert_eq!(status, 404, "internal mutations are not for clients");
    let (_, body) = server
        .call(
            "action",
            "notes:archive_notebook",
            json!({"notebook": "ideas"}),
        )
        .await?;
    assert_eq!(body["value"], json!("archived 5"), "{body}");
    assert_eq!(body["logLines"], json!(["[LOG] archived 5 notes in ideas"]));
    let page = server
        .value(
            "query",
            "notes:page",
            json!({"notebook": "ideas", "paginationOpts": {"numItems": 10}}),
        )
        .await?;
    assert!(
        page["page"]
            .as_array()
            .expect("page")
            .iter()
            .all(|n| n["archived"] == json!(true))
    );
    server.stop().await
}
