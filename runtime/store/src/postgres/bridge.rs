//! The store's callers are synchronous (the committer thread, transactions
//! on blocking threads); the PostgreSQL driver is async. The bridge runs the
//! driver on a runtime of its own and hands results back over a channel, so
//! it may be called from any thread, a tokio worker's included.

use std::future::Future;

use crate::error::{Error, Result};

#[derive(Debug)]
pub(crate) struct Bridge {
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // Dropped on whichever thread lets go last, an async one included,
        // where a blocking shutdown would panic.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Bridge {
    pub fn new() -> Result<Bridge> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("capstan-postgres")
            .enable_all()
            .build()?;
        Ok(Bridge {
            runtime: Some(runtime),
        })
    }

    /// Runs `future` on the driver's runtime and waits for it.
    pub fn run<T: Send + 'static>(
        &self,
        future: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let (reply, result) = std::sync::mpsc::sync_channel(1);
        let Some(runtime) = &self.runtime else {
            return Err(Error::ShutDown);
        };
        runtime.spawn(async move {
            let _ = reply.send(future.await);
        });
        result
            .recv()
            .map_err(|_| Error::Unavailable("the database driver stopped".into()))?
    }

    /// Starts `future` in the background; it ends with the runtime.
    pub fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        if let Some(runtime) = &self.runtime {
            runtime.spawn(future);
        }
    }
}
