//! What the client should learn, sent as one Transition from the state it
//! last saw to the published one, cut into chunks when it is too long.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use capstan_protocol::FunctionFailure;
use capstan_protocol::sync::{
    QueryOutcome, ServerMessage, StateModification, StateVersion, Transition, TransitionChunk,
};

use super::Worker;
use super::close::Close;
use super::query_set::LiveQuery;

impl Worker {
    /// Sends a Transition to the published timestamp if anything the client
    /// should learn changed: a query's result, the query set or identity
    /// version (`forced`), or a mutation now covered.
    pub(super) async fn transition(&mut self, forced: bool) -> Result<(), Close> {
        let limits = &self.context.limits;
        let mut held: usize = self.queries.values().map(LiveQuery::sent_size).sum();
        let before = held;
        let live = &self.context.live_result_bytes;
        let (ts, mut changes) = self.context.subscriptions.read(|published| {
            let mut changes = Vec::new();
            for (query_id, query) in &self.queries {
                let Some(outcome) = published.results.get(&query.handle) else {
                    continue;
                };
                // Within the socket's budget and the server's, or a
                // failure that says so in its place.
                let grows = outcome.size().saturating_sub(query.sent_size());
                let outcome = if grows > 0
                    && (held + grows > limits.max_socket_result_bytes
                        || live.load(Ordering::Relaxed) + (held - before) + grows
                            > limits.max_live_result_bytes)
                {
                    self.context.metrics.refused("live_result_budget");
                    over_budget(limits.max_socket_result_bytes)
                } else {
                    outcome.clone()
                };
                let same = query
                    .sent
                    .as_ref()
                    .is_some_and(|sent| Arc::ptr_eq(sent, &outcome) || **sent == *outcome);
                if !same {
                    held = held - query.sent_size() + outcome.size();
                    changes.push(StateModification::Query {
                        query_id: *query_id,
                        outcome,
                    });
                }
            }
            (published.ts, changes)
        });
        let ts = ts.max(self.sent.ts);
        let covers = self.uncovered.is_some_and(|t| t <= ts);
        if changes.is_empty() && self.removed.is_empty() && !forced && !covers {
            return Ok(());
        }
        changes.extend(
            self.removed
                .drain(..)
                .map(|query_id| StateModification::QueryRemoved { query_id }),
        );
        for change in &changes {
            if let StateModification::Query { query_id, outcome } = change
                && let Some(query) = self.queries.get_mut(query_id)
            {
                query.sent = Some(outcome.clone());
            }
        }
        self.account_results();
        let end = StateVersion {
            query_set: self.query_set_version,
            identity: self.identity_version,
            ts,
        };
        let server_ts = u64::try_from(self.context.credentials.clock.since_epoch().as_nanos())
            .unwrap_or(u64::MAX);
        let text = ServerMessage::Transition(Transition {
            start_version: self.sent,
            end_version: end,
            modifications: changes,
            client_clock_skew: Some(self.client_clock_skew),
            server_ts: Some(server_ts),
        })
        .to_json();
        self.sent = end;
        if covers {
            self.uncovered = None;
        }
        self.transitions_sent += 1;
        // A piece holds at least one character (up to 4 bytes).
        let chunk = self.context.limits.transition_chunk.max(4);
        if text.len() <= chunk {
            return self.send_text(text).await;
        }
        // Contiguous chunks: nothing else is sent until the last one.
        let parts = chunks(&text, chunk);
        let total_parts = u32::try_from(parts.len()).unwrap_or(u32::MAX);
        for (part_number, part) in (0..).zip(parts) {
            self.send(ServerMessage::TransitionChunk(TransitionChunk {
                chunk: part.to_owned(),
                part_number,
                total_parts,
                transition_id: self.transitions_sent.to_string(),
            }))
            .await?;
        }
        Ok(())
    }
}

/// The failure a query gets in place of a result that would pass the
/// socket's or the server's budget for live results.
fn over_budget(socket_budget: usize) -> Arc<QueryOutcome> {
    Arc::new(QueryOutcome::new(
        Err(FunctionFailure::new(format!(
            "this query's result does not fit in the live results a socket may hold ({} MiB) or the server holds for all sockets; subscribe to fewer or smaller queries",
            socket_budget >> 20
        ))),
        Vec::new(),
    ))
}

impl Worker {
    /// Brings the server-wide count of live result bytes up to date with
    /// what this socket holds now.
    pub(super) fn account_results(&mut self) {
        let now: usize = self.queries.values().map(LiveQuery::sent_size).sum();
        let live = &self.context.live_result_bytes;
        if now >= self.result_bytes {
            live.fetch_add(now - self.result_bytes, Ordering::Relaxed);
        } else {
            live.fetch_sub(self.result_bytes - now, Ordering::Relaxed);
        }
        self.result_bytes = now;
    }
}

/// `text` cut into pieces of at most `size` bytes at character boundaries.
fn chunks(text: &str, size: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = size.min(rest.len());
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (part, tail) = rest.split_at(end);
        parts.push(part);
        rest = tail;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::chunks;

    #[test]
    fn chunks_split_at_character_boundaries_and_join_back() {
        let text = "aé€😀".repeat(100);
        for size in [4, 5, 7, 64] {
            let parts = chunks(&text, size);
            assert!(parts.iter().all(|p| p.len() <= size && !p.is_empty()));
            assert_eq!(parts.concat(), text);
        }
    }
}
