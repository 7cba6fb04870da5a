//! Crash safety: a writer process streams acknowledged multi-document
//! transactions and is killed with SIGKILL at random moments; after each kill
//! the store must hold every acknowledged transaction, whole, and time must
//! keep moving forward.
//!
//! The writer is this same test binary, re-run with `CAPSTAN_CRASH_DIR` set so
//! that only [`crash_writer_child`] does anything.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use capstan_protocol::{Timestamp, Value};
use capstan_store::{Patch, Query, Schema, Store, TableDefinition};
use rand::{Rng, SeedableRng};

use crate::common::*;

const PARTS: usize = 4;
const ROUNDS: usize = 24;
const DIR_VAR: &str = "CAPSTAN_CRASH_DIR";

fn crash_schema() -> Schema {
    Schema::new()
        .table(
            "parts",
            TableDefinition::default().index("by_txn", &["txn"]),
        )
        .table("meta", TableDefinition::default())
}

fn number(value: &Value) -> i64 {
    match value {
        Value::Int64(n) => *n,
        other => panic!("expected an int64, got {other:?}"),
    }
}

/// The writer. Does nothing unless run by [`acknowledged_transactions_survive_sigkill`].
#[test]
fn crash_writer_child() -> anyhow::Result<()> {
    let Some(dir) = std::env::var_os(DIR_VAR) else {
        return Ok(());
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let store = Store::open(std::path::Path::new(&dir), config())?;
        store.apply_schema(crash_schema()).await?;
        let mut rng = rand::rngs::StdRng::from_entropy();
        let mut stdout = std::io::stdout().lock();
        loop {
            let mut tx = store.begin();
            let meta = tx.query(&Query::full_table_scan("meta"), Some(1))?.pop();
            let n = meta.as_ref().map_or(0, |m| number(field(m, "n"))) + 1;
            for part in 0..PARTS {
                // Now and then a part large enough to go to a sled blob file.
                let size = if rng.gen_ratio(1, 16) {
                    140_000
                } else {
                    rng.gen_range(10..2_000)
                };
                let mut fields = obj(serde_json::json!({"part": part as f64}));
                fields.insert("txn".into(), Value::Int64(n));
                fields.insert("pad".into(), Value::from("p".repeat(size)));
                tx.insert("parts", fields)?;
            }
            match meta {
                Some(meta) => {
                    tx.patch(meta.id, Patch::from([("n".into(), Some(Value::Int64(n)))]))?;
                }
                None => {
                    tx.insert("meta", [("n".to_owned(), Value::Int64(n))].into())?;
                }
            }
            let ts = store.commit(tx).await??;
            writeln!(stdout, "ACK {n} {}", ts.nanos())?;
            stdout.flush()?;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_transactions_survive_sigkill() -> anyhow::Result<()> {
    let dir = temp_dir();
    let seed: u64 = rand::random();
    eprintln!("crash test seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut acked: BTreeMap<i64, Timestamp> = BTreeMap::new();
    let mut latest_seen = Timestamp::MIN;

    for round in 0..ROUNDS {
        let mut child = Command::new(std::env::current_exe()?)
            .args([
                "--exact",
                "crash::crash_writer_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR_VAR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().expect("piped");
        let (lines_tx, lines) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });

        // Most rounds kill mid-stream; every fourth kills during start-up and
        // recovery.
        let started = Instant::now();
        if round % 4 == 3 {
            std::thread::sleep(Duration::from_millis(rng.gen_range(0..60)));
        } else {
            let first = lines.recv_timeout(Duration::from_secs(30));
            anyhow::ensure!(
                first.is_ok(),
                "round {round}: the writer acknowledged nothing in 30 s"
            );
            if let Ok(line) = first {
                record(&line, &mut acked)?;
            }
            std::thread::sleep(Duration::from_millis(rng.gen_range(0..250)));
        }
        child.kill()?; // SIGKILL
        child.wait()?;
        reader
            .join()
            .map_err(|_| anyhow::anyhow!("reader panicked"))?;
        for line in lines.try_iter() {
            record(&line, &mut acked)?;
        }
        let round_max = acked.values().max().copied().unwrap_or(Timestamp::MIN);
        eprintln!(
            "round {round}: killed after {:?}, {} acknowledged so far",
            started.elapsed(),
            acked.len()
        );

        let store = Store::open(dir.path(), config())?;
        store.apply_schema(crash_schema()).await?;
        verify(&store, &acked)?;
        assert!(
            store.latest_ts() >= round_max,
            "the store lost acknowledged commits"
        );
        assert!(store.latest_ts() >= latest_seen, "time went backwards");
        let mut tx = store.begin();
        tx.insert("meta", [("probe".to_owned(), Value::Null)].into())?;
        let ts = commit(&store, tx).await?;
        assert!(
            ts > round_max && ts > latest_seen,
            "next timestamp {ts} is not after {round_max}"
        );
        // Remove the probe so the writer's meta row stays the only one.
        let mut tx = store.begin();
        let probes = tx.query(
            &Query::full_table_scan("meta").filter(capstan_store::Expression::eq(
                capstan_store::Expression::field("probe"),
                capstan_store::Expression::literal(Value::Null),
            )),
            None,
        )?;
        for probe in probes {
            tx.delete(probe.id)?;
        }
        latest_seen = commit(&store, tx).await?;
        store.close().await?;
        drop(store);
    }
    anyhow::ensure!(
        acked.len() >= 50,
        "only {} transactions acknowledged in {ROUNDS} rounds",
        acked.len()
    );
    Ok(())
}

fn record(line: &str, acked: &mut BTreeMap<i64, Timestamp>) -> anyhow::Result<()> {
    let mut words = line.split_whitespace();
    if words.next() != Some("ACK") {
        return Ok(()); // the test harness's own output
    }
    let n: i64 = words.next().unwrap_or_default().parse()?;
    let ts: u64 = words.next().unwrap_or_default().parse()?;
    acked.insert(n, Timestamp::new(ts));
    Ok(())
}

/// Every acknowledged transaction is present, and no transaction is partial.
fn verify(store: &Store, acked: &BTreeMap<i64, Timestamp>) -> anyhow::Result<()> {
    let mut tx = store.begin();
    let mut parts: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    let query = Query::index("parts", "by_txn");
    let mut cursor = None;
    loop {
        let page = tx.paginate(
            &query,
            &capstan_store::PaginationOptions {
                end_cursor: None,
                cursor,
                num_items: 500,
            },
        )?;
        for document in &page.page {
            let part = match field(document, "part") {
                Value::Float64(p) => *p as i64,
                other => anyhow::bail!("part is {other:?}"),
            };
            parts
                .entry(number(field(document, "txn")))
                .or_default()
                .push(part);
        }
        if page.is_done {
            break;
        }
        cursor = Some(page.continue_cursor);
        tx = store.begin_at(tx.snapshot_ts())?;
    }
    for (n, found) in &parts {
        let mut found = found.clone();
        found.sort_unstable();
        assert_eq!(
            found,
            (0..PARTS as i64).collect::<Vec<_>>(),
            "transaction {n} is partial"
        );
    }
    for n in acked.keys() {
        assert!(
            parts.contains_key(n),
            "acknowledged transaction {n} is missing"
        );
    }
    let meta = tx.query(&Query::full_table_scan("meta"), None)?;
    let last = parts.keys().max().copied().unwrap_or(0);
    let recorded = meta.first().map_or(0, |m| number(field(m, "n")));
    assert_eq!(
        recorded, last,
        "the counter and the parts were committed together"
    );
    Ok(())
}
