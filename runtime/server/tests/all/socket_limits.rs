//! Sockets that break the protocol or its limits, each closed with its
//! reason while the others go on, and calls the server cannot run.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::common::*;
use crate::socket::{Client, WAIT};
use crate::sync::bodies;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_closes_only_that_socket_with_a_reason() -> anyhow::Result<()> {
    let dir = temp_dir();
    let server = TestServer::with_guest(dir.path()).await?;
    let mut bystander = Client::connect(&server).await?;
    bystander
        .subscribe(0, 0, "api:list", json!({"channel": "b"}))
        .await?;
    bystander.value_of(0).await?;

    let add = |base: u32, id: u32| {
        json!({"type": "ModifyQuerySet", "baseVersion": base, "newVersion": base + 1,
               "modifications": [{"type": "Add", "queryId": id, "udfPath": "api:count_all", "args": [{}]}]})
    };
    let cases: Vec<(Vec<Message>, CloseCode, &str)> = vec![
        (
            vec![Message::text("this is not json")],
            CloseCode::Policy,
            "InvalidMessage",
        ),
        (
            vec![Message::text(r#"{"type":"Teleport"}"#)],
            CloseCode::Policy,
            "InvalidMessage",
        ),
        (
            vec![Message::binary(vec![1, 2, 3])],
            CloseCode::Unsupported,
            "binary",
        ),
        (
            vec![Message::text(add(5, 0).to_string())],
            CloseCode::Error,
            "BaseVersionMismatch",
        ),
        (
            vec![
                Message::text(add(0, 0).to_string()),
                Message::text(add(1, 0).to_string()),
            ],
            CloseCode::Error,
            "already subscribed",
        ),
        (
            vec![Message::text(
                json!({"type": "Authenticate", "baseVersion": 3, "tokenType": "None"}).to_string(),
            )],
            CloseCode::Error,
            "identity version",
        ),
        (
            vec![Message::text("x".repeat(2 << 20))],
            CloseCode::Size,
            "MessageTooLarge",
        ),
    ];
    for (frames, code, reason) in cases {
        let mut client = Client::connect(&server).await?;
        for frame in frames {
            // The server may close before an oversized frame is fully sent.
            let _ = client.socket.send(frame).await;
        }
        let Some((got_code, got_reason)) = client.closed().await? else {
            // Closing with the rest of an oversized frame unread resets
            // the connection, which can overtake the close frame.
            assert_eq!(code, CloseCode::Size, "no close frame for {reason}");
            continue;
        };
        assert_eq!(got_code, code, "{got_reason}");
        assert!(
            got_reason.contains(reason),
            "{got_reason:?} should mention {reason:?}"
        );
    }

    // A flood of query set changes is served in order or refused; the
    // bystander still gets its updates.
    let mut flood = Client::connect(&server).await?;
    for version in 0..300 {
        flood.send(add(version, version)).await?;
    }
    let mut writer = Client::connect(&server).await?;
    writer
        .mutation(0, "api:send", json!({"channel": "b", "body": "still here"}))
        .await?;
    writer.expect("MutationResponse").await?;
    assert_eq!(bodies(&bystander.value_of(0).await?), ["still here"]);

    // A User token no provider of the app issued: AuthError, then a close without a code.
    let mut user = Client::connect(&server).await?;
    user.send(json!({"type": "Authenticate", "baseVersion": 0, "tokenType": "User", "value": "e30.e30.e30"}))
        .await?;
    let error = user.expect("AuthError").await?;
    assert_eq!(error["authUpdateAttempted"], json!(true));
    assert_eq!(user.closed().await?, None);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_limits_close_with_a_reason_and_idle_sockets_get_pings() -> anyhow::Result<()> {
    let dir = temp_dir();
    let mut config = config(dir.path());
    config.sync.max_sockets = 3;
    config.sync.max_queries_per_socket = 2;
    config.sync.max_actions_in_flight = 1;
    config.sync.ping_interval = Duration::from_millis(200);
    let server = TestServer::guest_with(config).await?;

    // Idle: an app-level Ping arrives (the client's 60 s timer needs one).
    let mut idle = Client::connect(&server).await?;
    // (With a WebSocket ping, which the client library answers.)
    let text = loop {
        let frame = tokio::time::timeout(WAIT, idle.socket.next()).await?;
        match frame {
            Some(Ok(Message::Ping(_))) => continue,
            Some(Ok(Message::Text(text))) => break text,
            frame => anyhow::bail!("expected a Ping, got {frame:?}"),
        }
    };
    assert_eq!(text.as_str(), r#"{"type":"Ping"}"#);

    let mut greedy = Client::connect(&server).await?;
    greedy
        .send(
            json!({"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": [
                {"type": "Add", "queryId": 0, "udfPath": "api:count_all", "args": [{}]},
                {"type": "Add", "queryId": 1, "udfPath": "api:count_all", "args": [{}]},
                {"type": "Add", "queryId": 2, "udfPath": "api:count_all", "args": [{}]},
            ]}),
        )
        .await?;
    let (code, reason) = greedy.closed().await?.expect("a close frame");
    assert_eq!(code, CloseCode::Policy);
    assert!(reason.starts_with("TooManyQueries"), "{reason}");

    let mut busy = Client::connect(&server).await?;
    // Sent back to back: the second arrives long before the first ends.
    for request_id in 0..10 {
        busy.send(
            json!({"type": "Action", "requestId": request_id, "udfPath": "api:send_and_list",
            "args": [{"channel": "busy", "body": "x"}]}),
        )
        .await?;
    }
    // One runs at a time; the others wait unread, and all are answered.
    let mut answered = 0;
    while answered < 10 {
        let message = busy.next_of("ActionResponse").await?;
        assert_eq!(message["success"], true, "{message}");
        answered += 1;
    }
    drop(busy);

    // Three sockets at most: the fourth is refused before the upgrade.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _second = Client::connect(&server).await?;
    let _third = Client::connect(&server).await?;
    let refused = Client::connect(&server).await;
    assert!(refused.is_err(), "a fourth socket was accepted");
    drop(idle);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutation_the_server_cannot_run_is_left_for_the_next_socket() -> anyhow::Result<()> {
    let dir = temp_dir();
    let server = TestServer::with_guest(dir.path()).await?;
    let mut client = Client::connect(&server).await?;
    client.subscribe(0, 0, "api:count_all", json!({})).await?;
    client.value_of(0).await?;
    // The app stops taking calls, as it does while the server shuts down.
    server.server.app.close().await?;
    client
        .mutation(0, "api:send", json!({"channel": "c", "body": "x"}))
        .await?;
    // No failure the client would hand to the app: the socket closes, and
    // the client sends the mutation again on its next socket.
    let close = loop {
        match tokio::time::timeout(WAIT, client.socket.next()).await? {
            Some(Ok(Message::Text(text))) if text.contains(r#""type":"Ping""#) => continue,
            Some(Ok(Message::Close(Some(close)))) => break close,
            other => anyhow::bail!("expected the socket to close, got {other:?}"),
        }
    };
    assert_eq!(close.code, CloseCode::Away);
    assert_eq!(close.reason.as_str(), "ServerShutdown");
    server.stop().await
}
