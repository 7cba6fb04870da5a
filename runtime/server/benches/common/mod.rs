//! What the server's benches share.

use std::future::Future;
use std::time::{Duration, Instant};

/// Calls per second of `call(connection)` on `connections` concurrent
/// connections, each calling again as soon as its last call ended, for
/// `phase`.
pub async fn rate<F, Fut>(connections: usize, phase: Duration, call: F) -> f64
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let deadline = Instant::now() + phase;
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|connection| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    call(connection).await;
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("task");
    }
    total as f64 / started.elapsed().as_secs_f64()
}
