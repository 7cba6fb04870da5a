//! The sync protocol over a real WebSocket, message by message.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::common::*;
use crate::socket::Client;

impl Client {
    /// Reads Transitions until one ends at query set version `query_set`,
    /// adding to `answers` every result of query `id` they carry, with the
    /// timestamp of its Transition.
    async fn record_until(
        &mut self,
        query_set: u32,
        id: u32,
        answers: &mut Vec<(capstan_protocol::Timestamp, Vec<String>)>,
    ) -> anyhow::Result<()> {
        loop {
            let transition = self.expect("Transition").await?;
            let end = capstan_protocol::Timestamp::from_wire(
                transition["endVersion"]["ts"].as_str().unwrap_or_default(),
            )?;
            for change in transition["modifications"].as_array().into_iter().flatten() {
                if change["queryId"] == id && change["type"] == "QueryUpdated" {
                    answers.push((end, bodies(&change["value"])));
                }
            }
            if transition["endVersion"]["querySet"] == query_set {
                return Ok(());
            }
        }
    }
}

pub(crate) fn bodies(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|m| m["body"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_follows_another_clients_mutations() -> anyhow::Result<()> {
    let dir = temp_dir();
    let server = TestServer::with_guest(dir.path()).await?;
    let mut reader = Client::connect(&server).await?;
    // The empty query set every client sends first.
    reader
        .send(json!({"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": []}))
        .await?;
    reader.expect("Transition").await?;
    reader
        .subscribe(1, 7, "api:list", json!({"channel": "c"}))
        .await?;
    assert_eq!(reader.value_of(7).await?, json!([]));

    let mut writer = Client::connect(&server).await?;
    writer
        .mutation(0, "api:send", json!({"channel": "c", "body": "hello"}))
        .await?;
    let response = writer.expect("MutationResponse").await?;
    assert_eq!(response["success"], json!(true), "{response}");
    assert_eq!(response["logLines"], json!([]));
    let ts = response["ts"].as_str().expect("a commit ts").to_owned();
    // Read-your-writes: a Transition at or after the commit follows.
    let covering = writer.expect("Transition").await?;
    let end = capstan_protocol::Timestamp::from_wire(
        covering["endVersion"]["ts"].as_str().unwrap_or_default(),
    )?;
    assert!(end >= capstan_protocol::Timestamp::from_wire(&ts)?);

    assert_eq!(bodies(&reader.value_of(7).await?), ["hello"]);

    // A failing mutation answers with the error and its data, and no ts.
    writer.mutation(1, "api:missing", json!({})).await?;
    let failed = writer.expect("MutationResponse").await?;
    assert_eq!(failed["success"], json!(false));
    assert_eq!(failed["ts"], Value::Null);

    // Actions answer directly.
    writer
        .send(json!({"type": "Action", "requestId": 2, "udfPath": "api:send_and_list", "args": [{"channel": "c", "body": "via action"}]}))
        .await?;
    let action = loop {
        let message = writer.next().await?;
        if message["type"] == "ActionResponse" {
            break message;
        }
    };
    assert_eq!(action["success"], json!(true), "{action}");
    assert_eq!(bodies(&reader.value_of(7).await?), ["hello", "via action"]);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_queries_whose_reads_a_commit_touches_run_again() -> anyhow::Result<()> {
    let dir = temp_dir();
    let server = TestServer::with_guest(dir.path()).await?;
    let executions = || {
        server
            .server
            .subscriptions
            .stats()
            .executions
            .load(Ordering::SeqCst)
    };
    let mut reader = Client::connect(&server).await?;
    reader
        .subscribe(0, 1, "api:list", json!({"channel": "watched"}))
        .await?;
    assert_eq!(reader.value_of(1).await?, json!([]));
    let before = executions();

    // A write outside the query's index range: the query does not run.
    let mut writer = Client::connect(&server).await?;
    writer
        .mutation_covered(0, "api:send", json!({"channel": "other", "body": "x"}))
        .await?;
    // The manager has published past the commit once the writer's covering
    // Transition went out.
    assert_eq!(
        executions(),
        before,
        "a write outside the range re-ran the query"
    );

    // A write inside it: the query runs once more and the reader sees it.
    writer
        .mutation(1, "api:send", json!({"channel": "watched", "body": "y"}))
        .await?;
    writer.expect("MutationResponse").await?;
    assert_eq!(bodies(&reader.value_of(1).await?), ["y"]);
    assert_eq!(executions(), before + 1);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_query_is_answered_again_until_a_commit_touches_it() -> anyhow::Result<()> {
    let dir = temp_dir();
    let mut config = config(dir.path());
    config.sync.idle_queries = 2;
    let server = TestServer::guest_with(config).await?;
    let stats = server.server.subscriptions.stats();
    let counts = || {
        (
            stats.executions.load(Ordering::SeqCst),
            stats.reused.load(Ordering::SeqCst),
        )
    };
    let mut reader = Client::connect(&server).await?;
    let mut writer = Client::connect(&server).await?;
    let mut version = 0;
    // Adds query `id` and returns its value, then removes it.
    let mut one_shot = async |reader: &mut Client, id: u32, channel: &str| {
        reader
            .subscribe(version, id, "api:list", json!({"channel": channel}))
            .await?;
        let value = reader.value_of(id).await?;
        reader
            .send(json!({
                "type": "ModifyQuerySet", "baseVersion": version + 1, "newVersion": version + 2,
                "modifications": [{"type": "Remove", "queryId": id}],
            }))
            .await?;
        reader.expect("Transition").await?;
        version += 2;
        anyhow::Ok(value)
    };

    assert_eq!(one_shot(&mut reader, 0, "kept").await?, json!([]));
    let (ran, _) = counts();
    // The same query again: answered without running.
    assert_eq!(one_shot(&mut reader, 1, "kept").await?, json!([]));
    assert_eq!(counts(), (ran, 1));

    // A commit outside what it read leaves it kept.
    writer
        .mutation_covered(0, "api:send", json!({"channel": "elsewhere", "body": "x"}))
        .await?;
    assert_eq!(one_shot(&mut reader, 2, "kept").await?, json!([]));
    assert_eq!(counts(), (ran, 2));

    // A commit inside it drops it (it is not run for nobody), and the next
    // subscription runs it and sees the write.
    writer
        .mutation_covered(1, "api:send", json!({"channel": "kept", "body": "z"}))
        .await?;
    assert_eq!(counts(), (ran, 2), "an idle query ran for a commit");
    assert_eq!(bodies(&one_shot(&mut reader, 3, "kept").await?), ["z"]);
    assert_eq!(counts(), (ran + 1, 2));

    // Two more idle queries push out the least recently dropped.
    one_shot(&mut reader, 4, "a").await?;
    one_shot(&mut reader, 5, "b").await?;
    assert_eq!(bodies(&one_shot(&mut reader, 6, "kept").await?), ["z"]);
    assert_eq!(counts(), (ran + 4, 2));
    // "b" is still kept.
    one_shot(&mut reader, 7, "b").await?;
    assert_eq!(counts(), (ran + 4, 3));
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_sockets_on_one_query_all_see_one_mutation() -> anyhow::Result<()> {
    let dir = temp_dir();
    let server = TestServer::with_guest(dir.path()).await?;
    let executions = || {
        server
            .server
            .subscriptions
            .stats()
            .executions
            .load(Ordering::SeqCst)
    };
    let mut readers = Vec::new();
    for _ in 0..1000 {
        let mut reader = Client::connect(&server).await?;
        reader
            .subscribe(0, 0, "api:list", json!({"channel": "all"}))
            .await?;
        readers.push(reader);
    }
    for reader in &mut readers {
        assert_eq!(reader.value_of(0).await?, json!([]));
    }
    assert_eq!(executions(), 1, "identical queries are computed once");

    let mut writer = Client::connect(&server).await?;
    writer
        .mutation(0, "api:send", json!({"channel": "all", "body": "news"}))
        .await?;
    writer.expect("MutationResponse").await?;
    let updates = readers
        .iter_mut()
        .map(|reader| async move { reader.value_of(0).await });
    for value in futures_util::future::join_all(updates).await {
        assert_eq!(bodies(&value?), ["news"]);
    }
    assert_eq!(
        executions(),
        2,
        "the shared query ran once for the mutation"
    );
    server.stop().await
}

/// Returns once a query run has begun since `stats` counted `before`.
async fn began_after(stats: &capstan_server::sync::subscriptions::Stats, before: u64) {
    while stats.executions.load(Ordering::SeqCst) == before {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_query_holds_up_no_other_socket() -> anyhow::Result<()> {
    let dir = temp_dir();
    let mut config = config(dir.path());
    config.host.query_timeout = Duration::from_secs(5);
    let server = TestServer::guest_with(config).await?;
    let stats = server.server.subscriptions.stats();
    let before = stats.executions.load(Ordering::SeqCst);
    let mut spinner = Client::connect(&server).await?;
    spinner.subscribe(0, 0, "hostile:spin", json!({})).await?;
    // Until its run has begun.
    began_after(stats, before).await;

    // Another socket subscribes and follows a mutation meanwhile.
    let mut reader = Client::connect(&server).await?;
    reader
        .subscribe(0, 0, "api:list", json!({"channel": "busy"}))
        .await?;
    assert_eq!(reader.value_of(0).await?, json!([]));
    let mut writer = Client::connect(&server).await?;
    writer
        .mutation_covered(0, "api:send", json!({"channel": "busy", "body": "done"}))
        .await?;
    assert_eq!(bodies(&reader.value_of(0).await?), ["done"]);
    assert!(
        futures_util::FutureExt::now_or_never(spinner.socket.next()).is_none(),
        "the spinning query answered before the other socket was served"
    );

    // The spinning query ends at its deadline, as a failure of its own.
    let transition = spinner.expect("Transition").await?;
    let change = &transition["modifications"][0];
    assert_eq!(change["type"], "QueryFailed", "{transition}");

    // A query that turns slow when a commit makes it run again holds up
    // no new subscription either.
    let mut turning = Client::connect(&server).await?;
    turning
        .subscribe(0, 0, "hostile:spin_on", json!({"channel": "turn"}))
        .await?;
    assert_eq!(turning.value_of(0).await?, json!(0.0));
    let before = stats.executions.load(Ordering::SeqCst);
    writer
        .mutation(1, "api:send", json!({"channel": "turn", "body": "spin"}))
        .await?;
    let response = writer.expect("MutationResponse").await?;
    let commit =
        capstan_protocol::Timestamp::from_wire(response["ts"].as_str().unwrap_or_default())?;
    // Until its re-run has begun.
    began_after(stats, before).await;
    let mut late = Client::connect(&server).await?;
    late.subscribe(0, 0, "api:list", json!({"channel": "busy"}))
        .await?;
    assert_eq!(bodies(&late.value_of(0).await?), ["done"]);
    assert!(
        server.server.subscriptions.read(|published| published.ts) < commit,
        "the re-run was published before the new subscription was served"
    );
    let transition = turning.expect("Transition").await?;
    assert_eq!(
        transition["modifications"][0]["type"], "QueryFailed",
        "{transition}"
    );
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_queries_racing_commits_each_answer_at_one_snapshot() -> anyhow::Result<()> {
    // Run on the socket that asks, as usual.
    racing_commits(3).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_queries_left_to_the_manager_answer_at_one_snapshot() -> anyhow::Result<()> {
    // Each one run by the manager's next refresh, as when commits keep
    // making a socket's runs stale.
    racing_commits(0).await
}

/// New queries asked while a writer commits: every answer holds exactly
/// the writes committed at or before its Transition's timestamp.
async fn racing_commits(socket_runs: usize) -> anyhow::Result<()> {
    const WRITES: usize = 60;
    let dir = temp_dir();
    let mut config = config(dir.path());
    config.sync.socket_runs = socket_runs;
    let server = TestServer::guest_with(config).await?;
    let mut writer = Client::connect(&server).await?;
    let mut reader = Client::connect(&server).await?;

    // Each write's commit timestamp.
    let writes = async {
        let mut commits = Vec::new();
        for i in 0..WRITES {
            writer
                .mutation(
                    i as u32,
                    "api:send",
                    json!({"channel": "race", "body": i.to_string()}),
                )
                .await?;
            let response = loop {
                let message = writer.next().await?;
                if message["type"] == "MutationResponse" {
                    break message;
                }
            };
            anyhow::ensure!(response["success"] == json!(true), "{response}");
            let ts = response["ts"].as_str().unwrap_or_default();
            commits.push(capstan_protocol::Timestamp::from_wire(ts)?);
        }
        anyhow::Ok(commits)
    };
    // Meanwhile, queries no one ran before (an argument the function
    // ignores makes each new), each answered in a Transition: its
    // timestamp and the result.
    let done = std::sync::atomic::AtomicBool::new(false);
    let reads = async {
        let mut answers = Vec::new();
        let mut base = 0;
        while !done.load(Ordering::SeqCst) {
            reader
                .subscribe(
                    base,
                    base,
                    "api:list_round",
                    json!({"channel": "race", "round": base}),
                )
                .await?;
            let before = answers.len();
            reader.record_until(base + 1, base, &mut answers).await?;
            anyhow::ensure!(answers.len() > before, "query {base} got no result");
            reader
                .send(json!({
                    "type": "ModifyQuerySet", "baseVersion": base + 1, "newVersion": base + 2,
                    "modifications": [{"type": "Remove", "queryId": base}],
                }))
                .await?;
            // A re-run of the query may still come before its removal.
            reader.record_until(base + 2, base, &mut answers).await?;
            base += 2;
        }
        anyhow::Ok(answers)
    };
    let (commits, answers) = tokio::join!(
        async {
            let commits = writes.await;
            done.store(true, Ordering::SeqCst);
            commits
        },
        reads
    );
    let (commits, answers) = (commits?, answers?);
    assert!(
        answers.len() > 1,
        "the reader ran {} queries",
        answers.len()
    );
    // Every answer holds exactly the writes committed at or before its
    // Transition's timestamp.
    for (end, bodies) in &answers {
        let expected: Vec<String> = (0..WRITES)
            .filter(|i| commits[*i] <= *end)
            .map(|i| i.to_string())
            .collect();
        assert_eq!(bodies, &expected, "the answer at {end:?}");
    }
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_mutation_returns_its_first_result_without_running_again() -> anyhow::Result<()> {
    let dir = temp_dir();
    let server = TestServer::with_guest(dir.path()).await?;
    let args = json!({"channel": "once", "body": "exactly once"});
    let session = "0b7c7f52-3c1e-4d8e-9a4f-2f6f0d1e5a11";
    let mut first = Client::resume(&server, session).await?;
    first.mutation(4, "api:send", args.clone()).await?;
    let original = first.expect("MutationResponse").await?;
    assert_eq!(original["success"], json!(true));
    drop(first);

    // The same session on a new socket, as after a dropped connection.
    let mut again = Client::resume(&server, session).await?;
    again.mutation(4, "api:send", args.clone()).await?;
    let resent = again.expect("MutationResponse").await?;
    assert_eq!(resent, original, "the original result and commit timestamp");
    let covering = again.expect("Transition").await?;
    assert_eq!(covering["modifications"], json!([]));

    // Concurrent copies on two sockets also apply once.
    let mut a = Client::resume(&server, session).await?;
    let mut b = Client::resume(&server, session).await?;
    a.mutation(5, "api:send", args.clone()).await?;
    b.mutation(5, "api:send", args.clone()).await?;
    let (a, b) = (
        a.expect("MutationResponse").await?,
        b.expect("MutationResponse").await?,
    );
    assert_eq!(a, b);

    let listed = server
        .value("query", "api:list", json!({"channel": "once"}))
        .await?;
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    server.stop().await
}
