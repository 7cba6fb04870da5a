//! Every query the manager holds, live or idle, with what it read, and the
//! bookkeeping that decides whether a result computed on a socket is taken.
//! Changed only under `Shared::state`; see the README for the lock order.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use capstan_protocol::Timestamp;
use capstan_protocol::sync::QueryOutcome;
use capstan_store::ReadSet;
use tokio::sync::Notify;

use super::history::History;
use super::idle::IdleQueries;
use super::read_set_index::ReadSetIndex;
use super::{Pending, QueryHandle, QueryKey, Shared, Subscriber};

/// Every query the manager holds, indexed by what it read.
pub(super) struct State {
    pub(super) queries: HashMap<QueryHandle, LiveQuery>,
    pub(super) index: ReadSetIndex,
    pub(super) next_handle: QueryHandle,
    pub(super) idle: IdleQueries,
    /// Published with the results; see [`super::Published::epoch`].
    pub(super) epoch: u64,
    pub(super) history: History,
    /// The refresh under way computes every result afresh: no result
    /// computed on a socket is taken until it is published.
    pub(super) restarting: bool,
    /// Subscriptions whose runs on sockets kept going stale: the next
    /// refresh runs them at its timestamp.
    pub(super) pending: Vec<Pending>,
}

pub(super) struct LiveQuery {
    pub(super) key: QueryKey,
    /// Per socket: how to wake it, and how many of its query ids hold this.
    pub(super) subscribers: HashMap<u64, (Arc<Notify>, usize)>,
    pub(super) read_set: ReadSet,
    /// Set while no socket holds the query: its place in `IdleQueries`.
    pub(super) idle: Option<u64>,
}

impl State {
    /// Whether a result computed at `ts` in `epoch`, having read
    /// `read_set`, is valid at the published timestamp and after the
    /// refresh under way, if any.
    pub(super) fn takes(&self, ts: Timestamp, epoch: u64, read_set: &ReadSet) -> bool {
        epoch == self.epoch && !self.restarting && self.history.still_valid(ts, read_set)
    }

    /// Adds `subscriber` to the query of `key`, if it is held.
    pub(super) fn join(
        &mut self,
        shared: &Shared,
        key: &QueryKey,
        subscriber: &Subscriber,
    ) -> Option<QueryHandle> {
        let handle = *shared
            .published
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys
            .get(key)?;
        let query = self.queries.get_mut(&handle)?;
        query
            .subscribers
            .entry(subscriber.socket)
            .or_insert_with(|| (subscriber.notify.clone(), 0))
            .1 += 1;
        if let Some(place) = query.idle.take() {
            self.idle.remove(place);
            shared.stats.reused.fetch_add(1, Ordering::Relaxed);
        }
        Some(handle)
    }

    /// Holds a new query for `subscriber`, with a result valid at the
    /// published timestamp, and publishes it.
    pub(super) fn insert(
        &mut self,
        shared: &Shared,
        key: QueryKey,
        subscriber: &Subscriber,
        outcome: QueryOutcome,
        read_set: ReadSet,
    ) -> QueryHandle {
        let handle = self.next_handle;
        self.next_handle += 1;
        self.index.insert(handle, &read_set);
        {
            let mut published = shared
                .published
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            published.keys.insert(key.clone(), handle);
            published.results.insert(handle, Arc::new(outcome));
        }
        self.queries.insert(
            handle,
            LiveQuery {
                key,
                subscribers: HashMap::from([(subscriber.socket, (subscriber.notify.clone(), 1))]),
                read_set,
                idle: None,
            },
        );
        handle
    }

    /// Keeps the query of `handle`, which no socket holds any more, while
    /// its result is valid and within the idle bounds; drops it otherwise.
    pub(super) fn make_idle(&mut self, shared: &Shared, handle: QueryHandle) {
        if self.queries.get(&handle).is_none_or(|q| q.idle.is_some()) {
            return;
        }
        // Failures are not kept: one may come from the server, not the
        // function.
        let size = shared
            .published
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .results
            .get(&handle)
            .and_then(|outcome| outcome.result().as_ref().ok().map(|v| v.as_str().len()));
        let Some(size) = size else {
            self.drop_query(shared, handle);
            return;
        };
        let (place, evicted) = self.idle.push(handle, size);
        match place {
            Some(place) => {
                if let Some(query) = self.queries.get_mut(&handle) {
                    query.idle = Some(place);
                }
            }
            None => self.drop_query(shared, handle),
        }
        for handle in evicted {
            self.drop_query(shared, handle);
        }
    }

    /// Forgets the query of `handle`, which no socket holds.
    pub(super) fn drop_query(&mut self, shared: &Shared, handle: QueryHandle) {
        let Some(query) = self.queries.remove(&handle) else {
            return;
        };
        if let Some(place) = query.idle {
            self.idle.remove(place);
        }
        self.index.remove(handle, &query.read_set);
        let mut published = shared
            .published
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        published.keys.remove(&query.key);
        published.results.remove(&handle);
    }
}
