//! Store benchmark: durable commit throughput next to the disk's raw
//! `fdatasync` rate, point reads, and index range reads.
//!
//! Run with `cargo bench -p capstan-store`. Figures depend on the disk; the
//! ratios against the raw sync rate measured in the same run are what carry
//! from one machine to another.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use capstan_protocol::{Object, Value};
use capstan_store::persistence::{Batch, KvIter, Persistence};
use capstan_store::sled_engine::SledPersistence;
use capstan_store::{DocumentId, Query, Schema, Store, StoreConfig, TableDefinition};
use rand::{Rng, SeedableRng};

const PHASE: Duration = Duration::from_secs(3);
const DOCUMENTS: usize = 10_000;

/// Counts syncs, to report how many commits share one.
struct Counting {
    inner: SledPersistence,
    syncs: AtomicUsize,
}

impl Persistence for Counting {
    fn get(&self, key: &[u8]) -> capstan_store::Result<Option<Vec<u8>>> {
        self.inner.get(key)
    }
    fn scan(
        &self,
        start: std::ops::Bound<Vec<u8>>,
        end: std::ops::Bound<Vec<u8>>,
        reverse: bool,
    ) -> KvIter<'_> {
        self.inner.scan(start, end, reverse)
    }
    fn write(&self, batch: Batch) -> capstan_store::Result<()> {
        self.inner.write(batch)
    }
    fn sync(&self) -> capstan_store::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.inner.sync()
    }
}

fn fields(group: usize, n: usize) -> Object {
    Object::from([
        ("group".to_owned(), Value::Float64(group as f64)),
        ("n".to_owned(), Value::Float64(n as f64)),
        (
            "body".to_owned(),
            Value::from("a message body of moderate length, about 64 bytes long...."),
        ),
    ])
}

fn raw_fdatasync_rate(dir: &std::path::Path) -> anyhow::Result<f64> {
    let mut file = std::fs::File::create(dir.join("fsync-probe"))?;
    let block = [7u8; 256];
    let start = Instant::now();
    let mut syncs = 0usize;
    while start.elapsed() < PHASE {
        file.write_all(&block)?;
        file.sync_data()?;
        syncs += 1;
    }
    Ok(syncs as f64 / start.elapsed().as_secs_f64())
}

async fn writers(store: &Store, count: usize) -> anyhow::Result<usize> {
    let deadline = Instant::now() + PHASE;
    let mut tasks = Vec::new();
    for writer in 0..count {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut commits = 0usize;
            while Instant::now() < deadline {
                let mut tx = store.begin();
                tx.insert("bench", fields(writer, commits))?;
                store.commit(tx).await??;
                commits += 1;
            }
            anyhow::Ok(commits)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    Ok(total)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    println!("capstan-store benchmark ({} per phase)", humantime(PHASE));

    let fsync_rate = raw_fdatasync_rate(dir.path())?;
    println!("raw fdatasync (256 B write + fdatasync): {fsync_rate:>10.0} /s");

    let persistence = Arc::new(Counting {
        inner: SledPersistence::open(&dir.path().join("store"), 128 << 20)?,
        syncs: AtomicUsize::new(0),
    });
    let store = Store::with_persistence(
        persistence.clone(),
        StoreConfig {
            gc_interval: None,
            ..StoreConfig::default()
        },
    )?;
    store
        .apply_schema(Schema::new().table(
            "bench",
            TableDefinition::default().index("by_group", &["group"]),
        ))
        .await?;

    for count in [1, 64] {
        let syncs_before = persistence.syncs.load(Ordering::Relaxed);
        let start = Instant::now();
        let commits = writers(&store, count).await?;
        let rate = commits as f64 / start.elapsed().as_secs_f64();
        let syncs = persistence.syncs.load(Ordering::Relaxed) - syncs_before;
        println!(
            "durable single-insert commits, {count:>2} writer(s): {rate:>10.0} /s  ({:.2}x the raw fdatasync rate, {:.1} commits per sync)",
            rate / fsync_rate,
            commits as f64 / syncs.max(1) as f64
        );
    }

    // A table of DOCUMENTS documents in groups of ten.
    let mut ids: Vec<DocumentId> = Vec::with_capacity(DOCUMENTS);
    for chunk in 0..DOCUMENTS / 500 {
        let mut tx = store.begin();
        for i in 0..500 {
            let n = chunk * 500 + i;
            ids.push(tx.insert("bench", fields(1_000_000 + n / 10, n))?);
        }
        store.commit(tx).await??;
    }

    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let start = Instant::now();
    let mut reads = 0usize;
    while start.elapsed() < PHASE {
        let mut tx = store.begin();
        for _ in 0..1000 {
            let id = ids[rng.gen_range(0..ids.len())];
            assert!(tx.get(id)?.is_some());
            reads += 1;
        }
    }
    println!(
        "point reads (one thread):                  {:>10.0} /s",
        reads as f64 / start.elapsed().as_secs_f64()
    );

    let mut latencies = Vec::new();
    let start = Instant::now();
    while start.elapsed() < PHASE {
        let group = 1_000_000 + rng.gen_range(0..DOCUMENTS / 10);
        let began = Instant::now();
        let mut tx = store.begin();
        let page = tx.query(
            &Query::index("bench", "by_group").eq("group", group as f64),
            None,
        )?;
        latencies.push(began.elapsed());
        assert_eq!(page.len(), 10);
    }
    latencies.sort_unstable();
    println!(
        "10-document index range read:  p50 {:>8.1} µs   p99 {:>8.1} µs   ({} reads)",
        percentile(&latencies, 0.5).as_secs_f64() * 1e6,
        percentile(&latencies, 0.99).as_secs_f64() * 1e6,
        latencies.len()
    );
    store.close().await?;
    Ok(())
}

fn humantime(d: Duration) -> String {
    format!("{} s", d.as_secs())
}
