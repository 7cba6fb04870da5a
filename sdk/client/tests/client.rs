//! The client against a real server serving the test guest.

use std::time::Duration;

use capstan_client::{Client, Error, Value};
use capstan_server::{Server, ServerConfig};
use futures_util::{FutureExt, StreamExt};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

fn value(json: serde_json::Value) -> Value {
    Value::from_json(&json).expect("a valid value")
}

fn bodies(list: &Value) -> Vec<String> {
    match list.to_json() {
        serde_json::Value::Array(items) => items
            .iter()
            .map(|m| m["body"].as_str().unwrap_or_default().to_owned())
            .collect(),
        other => panic!("not a list: {other}"),
    }
}

async fn server(dir: &std::path::Path, listen: &str) -> anyhow::Result<Server> {
    let server = Server::start(ServerConfig::new(dir, listen.parse()?)).await?;
    let guest = capstan_test_support::component("capstan-test-guest", "test_guest");
    server.app.deploy(vec![guest], Default::default()).await?;
    Ok(server)
}

async fn next(subscription: &mut capstan_client::Subscription) -> anyhow::Result<Value> {
    Ok(tokio::time::timeout(WAIT, subscription.next())
        .await?
        .ok_or_else(|| anyhow::anyhow!("the subscription ended"))??)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_mutations_and_actions() -> anyhow::Result<()> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let server = server(dir.path(), "127.0.0.1:0").await?;
    let client = Client::new(&server.url())?;
    let other = Client::new(&server.url())?;

    let mut list = client
        .subscribe("api:list", value(json!({"channel": "c"})))
        .await?;
    assert_eq!(bodies(&next(&mut list).await?), Vec::<String>::new());

    // Another client's mutation reaches the subscription.
    other
        .mutation("api:send", value(json!({"channel": "c", "body": "one"})))
        .await?;
    assert_eq!(bodies(&next(&mut list).await?), ["one"]);

    // Read-your-writes: when the mutation resolves, the new result is
    // already waiting in the stream.
    client
        .mutation("api:send", value(json!({"channel": "c", "body": "two"})))
        .await?;
    let ready = list
        .next()
        .now_or_never()
        .flatten()
        .expect("an update is ready")?;
    assert_eq!(bodies(&ready), ["one", "two"]);

    // Errors carry ConvexError data.
    let error = client
        .query("api:fail", value(json!({})))
        .await
        .unwrap_err();
    let Error::Function {
        data: Some(data), ..
    } = error
    else {
        panic!("expected a function error with data, got {error:?}");
    };
    assert_eq!(data.to_json()["code"], json!("TOO_MANY"));
    let failed = client
        .mutation("api:missing", value(json!({})))
        .await
        .unwrap_err();
    assert!(matches!(failed, Error::Function { .. }), "{failed:?}");

    // Actions.
    let sent = client
        .action(
            "api:send_and_list",
            value(json!({"channel": "c", "body": "three"})),
        )
        .await?;
    assert_eq!(sent.to_json()["count"], json!({"$integer": "AwAAAAAAAAA="}));
    assert_eq!(bodies(&next(&mut list).await?), ["one", "two", "three"]);
    drop(list);
    server.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reconnects_resubscribes_and_resends_mutations() -> anyhow::Result<()> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let first = server(dir.path(), "127.0.0.1:0").await?;
    let addr = first.addr;
    let client = Client::new(&first.url())?;
    let mut list = client
        .subscribe("api:list", value(json!({"channel": "r"})))
        .await?;
    assert_eq!(bodies(&next(&mut list).await?), Vec::<String>::new());

    // The server goes away; a mutation issued meanwhile waits for it.
    first.stop().await?;
    let pending = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .mutation("api:send", value(json!({"channel": "r", "body": "queued"})))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = server(dir.path(), &addr.to_string()).await?;
    tokio::time::timeout(WAIT, pending).await???;
    // The subscription came back on the new socket and saw the write once.
    let mut seen = next(&mut list).await?;
    while bodies(&seen).is_empty() {
        seen = next(&mut list).await?;
    }
    assert_eq!(bodies(&seen), ["queued"]);
    drop(list);
    second.stop().await?;
    Ok(())
}
