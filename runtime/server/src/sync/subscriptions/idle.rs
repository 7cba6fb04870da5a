//! The results kept for queries no socket holds any more, least recently
//! dropped first, within a count and a byte budget.

use std::collections::BTreeMap;

use super::QueryHandle;

/// The idle queries, least recently dropped first, within their bounds.
#[derive(Default)]
pub(super) struct IdleQueries {
    pub(super) max_queries: usize,
    pub(super) max_bytes: usize,
    /// By the order they went idle: the query and its result's size.
    pub(super) order: BTreeMap<u64, (QueryHandle, usize)>,
    pub(super) bytes: usize,
    pub(super) next: u64,
}

impl IdleQueries {
    /// Records `handle` as idle, if its result of `size` bytes fits;
    /// returns its place, and the queries to drop to stay within bounds.
    pub(super) fn push(
        &mut self,
        handle: QueryHandle,
        size: usize,
    ) -> (Option<u64>, Vec<QueryHandle>) {
        if self.max_queries == 0 || size > self.max_bytes {
            return (None, Vec::new());
        }
        let place = self.next;
        self.next += 1;
        self.order.insert(place, (handle, size));
        self.bytes += size;
        let mut evicted = Vec::new();
        while self.order.len() > self.max_queries || self.bytes > self.max_bytes {
            let Some((_, (oldest, size))) = self.order.pop_first() else {
                break;
            };
            self.bytes -= size;
            evicted.push(oldest);
        }
        (Some(place), evicted)
    }

    pub(super) fn remove(&mut self, place: u64) {
        if let Some((_, size)) = self.order.remove(&place) {
            self.bytes -= size;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle(max_queries: usize, max_bytes: usize) -> IdleQueries {
        IdleQueries {
            max_queries,
            max_bytes,
            ..IdleQueries::default()
        }
    }

    #[test]
    fn idle_queries_stay_within_their_count_and_bytes() {
        let mut queries = idle(2, 100);
        assert_eq!(queries.push(1, 40), (Some(0), vec![]));
        assert_eq!(queries.push(2, 40), (Some(1), vec![]));
        // A third pushes out the least recently dropped.
        assert_eq!(queries.push(3, 10), (Some(2), vec![1]));
        // 40 + 10 + 60 bytes is over 100: the oldest goes.
        let (place, evicted) = queries.push(4, 60);
        assert_eq!((place.is_some(), evicted), (true, vec![2]));
        assert_eq!(queries.bytes, 70);
        // A result larger than the whole budget is not kept, and pushes
        // nothing out.
        assert_eq!(queries.push(5, 101), (None, vec![]));
        assert_eq!(queries.bytes, 70);
        // Taken back by a subscription: its bytes are freed.
        queries.remove(2);
        assert_eq!((queries.bytes, queries.order.len()), (60, 1));
    }

    #[test]
    fn no_idle_queries_are_kept_when_turned_off() {
        let mut queries = idle(0, 100);
        assert_eq!(queries.push(1, 1), (None, vec![]));
        assert!(queries.order.is_empty());
    }
}
