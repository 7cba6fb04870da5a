//! What the client should learn, sent as one Transition from the state it
//! last saw to the published one, cut into chunks when it is too long.

use std::sync::Arc;

use capstan_protocol::sync::{
    ServerMessage, StateModification, StateVersion, Transition, TransitionChunk,
};

use super::Worker;
use super::close::Close;

impl Worker {
    /// Sends a Transition to the published timestamp if anything the client
    /// should learn changed: a query's result, the query set or identity
    /// version (`forced`), or a mutation now covered.
    pub(super) async fn transition(&mut self, forced: bool) -> Result<(), Close> {
        let (ts, mut changes) = self.context.subscriptions.read(|published| {
            let mut changes = Vec::new();
            for (query_id, query) in &self.queries {
                let Some(outcome) = published.results.get(&query.handle) else {
                    continue;
                };
                let same = query
                    .sent
                    .as_ref()
                    .is_some_and(|sent| Arc::ptr_eq(sent, outcome) || **sent == **outcome);
                if !same {
                    changes.push(StateModification::Query {
                        query_id: *query_id,
                        outcome: outcome.clone(),
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
