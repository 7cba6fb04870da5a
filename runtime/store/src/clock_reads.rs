//! Reads of a shared log's newest timestamp for [`crate::Store::refresh`],
//! coalesced: callers that arrive while a read is under way share the next
//! one, so a node asks the database once per round trip, not once per call.
//! A read answers a caller only if it was sent after the caller asked, which
//! keeps `refresh` linearizable.

use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::time::Duration;

use capstan_protocol::Timestamp;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::store::Shared;

#[derive(Debug)]
pub(crate) struct ClockReads {
    /// How many reads callers asked for so far.
    requested: Mutex<u64>,
    wake: Condvar,
    answers: watch::Sender<Answer>,
}

#[derive(Clone, Debug)]
struct Answer {
    /// Answers every request up to this number.
    served: u64,
    result: Result<Timestamp, String>,
}

/// How often the reader looks whether its store is gone.
const IDLE_CHECK: Duration = Duration::from_secs(1);

impl ClockReads {
    pub fn start(shared: Weak<Shared>) -> Result<Arc<ClockReads>> {
        let reads = Arc::new(ClockReads {
            requested: Mutex::new(0),
            wake: Condvar::new(),
            answers: watch::channel(Answer {
                served: 0,
                result: Ok(Timestamp::MIN),
            })
            .0,
        });
        let reader = reads.clone();
        std::thread::Builder::new()
            .name("capstan-clock-reads".into())
            .spawn(move || reader.serve(&shared))?;
        Ok(reads)
    }

    fn serve(&self, shared: &Weak<Shared>) {
        let mut served = 0;
        loop {
            let wanted = {
                let mut requested = self
                    .requested
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                while *requested == served {
                    if shared.strong_count() == 0 {
                        return;
                    }
                    requested = self
                        .wake
                        .wait_timeout(requested, IDLE_CHECK)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                *requested
            };
            let Some(store) = shared.upgrade() else {
                return;
            };
            let result = match store.persistence.shared_log() {
                Some(log) => log.last_ts().map_err(|e| e.to_string()),
                None => Ok(store.latest_ts()),
            };
            drop(store);
            served = wanted;
            self.answers.send_replace(Answer { served, result });
        }
    }

    /// The newest timestamp in the log, read after this call began.
    pub async fn read(&self) -> Result<Timestamp> {
        let mine = {
            let mut requested = self
                .requested
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            *requested += 1;
            *requested
        };
        let mut answers = self.answers.subscribe();
        self.wake.notify_one();
        let answer = answers
            .wait_for(|answer| answer.served >= mine)
            .await
            .map_err(|_| Error::ShutDown)?
            .clone();
        answer.result.map_err(Error::Unavailable)
    }
}
