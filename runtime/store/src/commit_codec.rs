//! The binary form of a [`CommitEntry`] in a shared commit log, so that a
//! node can validate against, and tell its subscribers about, commits other
//! nodes made.
//!
//! ```text
//! entry   := flags[1] ts[8] catalog? count[4] write*
//! catalog := len[4] json                      (when flags & 1: a schema change)
//! write   := id[20] deleted[1] count[2] change*
//! change  := index[4] key? key?               (old, new)
//! key     := 0 | 1 len[4] bytes
//! ```

use capstan_protocol::Timestamp;

use crate::error::{Error, Result};
use crate::id::{DocumentId, ID_BYTES, IndexId};
use crate::read_set::{CommitEntry, DocumentWrite, IndexKeyChange};

const SCHEMA_CHANGED: u8 = 1;

/// A commit as a shared log holds it: the entry, and for a schema change the
/// catalog it installed (JSON), so readers switch to exactly that one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedCommit {
    pub entry: CommitEntry,
    pub catalog: Option<Vec<u8>>,
}

pub fn encode(entry: &CommitEntry, catalog: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + entry.size());
    out.push(if entry.schema_changed {
        SCHEMA_CHANGED
    } else {
        0
    });
    out.extend_from_slice(&entry.ts.nanos().to_be_bytes());
    if entry.schema_changed {
        let catalog = catalog.unwrap_or_default();
        out.extend_from_slice(&len32(catalog.len()).to_be_bytes());
        out.extend_from_slice(catalog);
    }
    out.extend_from_slice(&len32(entry.writes.len()).to_be_bytes());
    for write in &entry.writes {
        out.extend_from_slice(&write.id.to_bytes());
        out.push(u8::from(write.deleted));
        let changes = u16::try_from(write.index_keys.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&changes.to_be_bytes());
        for change in write.index_keys.iter().take(usize::from(changes)) {
            out.extend_from_slice(&change.index.0.to_be_bytes());
            for key in [&change.old, &change.new] {
                match key {
                    None => out.push(0),
                    Some(key) => {
                        out.push(1);
                        out.extend_from_slice(&len32(key.len()).to_be_bytes());
                        out.extend_from_slice(key);
                    }
                }
            }
        }
    }
    out
}

fn len32(len: usize) -> u32 {
    // Entries are bounded by the transaction limits (16 MiB written).
    u32::try_from(len).unwrap_or(u32::MAX)
}

pub fn decode(bytes: &[u8]) -> Result<LoggedCommit> {
    let mut reader = Reader { bytes };
    let flags = reader.take::<1>()?[0];
    let ts = Timestamp::new(u64::from_be_bytes(reader.take::<8>()?));
    let schema_changed = flags & SCHEMA_CHANGED != 0;
    let catalog = if schema_changed {
        Some(reader.slice()?.to_vec())
    } else {
        None
    };
    let count = u32::from_be_bytes(reader.take::<4>()?) as usize;
    let mut writes = Vec::with_capacity(count.min(bytes.len() / ID_BYTES));
    for _ in 0..count {
        let id = DocumentId::from_bytes(&reader.take::<ID_BYTES>()?)?;
        let deleted = reader.take::<1>()?[0] != 0;
        let changes = u16::from_be_bytes(reader.take::<2>()?);
        let mut index_keys = Vec::with_capacity(usize::from(changes));
        for _ in 0..changes {
            let index = IndexId(u32::from_be_bytes(reader.take::<4>()?));
            let old = reader.key()?;
            let new = reader.key()?;
            index_keys.push(IndexKeyChange { index, old, new });
        }
        writes.push(DocumentWrite {
            id,
            deleted,
            index_keys,
        });
    }
    if !reader.bytes.is_empty() {
        return Err(Error::Corrupt("trailing bytes in a logged commit".into()));
    }
    Ok(LoggedCommit {
        entry: CommitEntry {
            ts,
            writes,
            schema_changed,
        },
        catalog,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        let (head, rest) = self
            .bytes
            .split_first_chunk::<N>()
            .ok_or_else(|| Error::Corrupt("a logged commit ends early".into()))?;
        self.bytes = rest;
        Ok(*head)
    }

    fn slice(&mut self) -> Result<&[u8]> {
        let len = u32::from_be_bytes(self.take::<4>()?) as usize;
        if self.bytes.len() < len {
            return Err(Error::Corrupt("a logged commit ends early".into()));
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(head)
    }

    fn key(&mut self) -> Result<Option<Vec<u8>>> {
        match self.take::<1>()?[0] {
            0 => Ok(None),
            1 => Ok(Some(self.slice()?.to_vec())),
            other => Err(Error::Corrupt(format!(
                "key marker {other} in a logged commit"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::TableNumber;

    #[test]
    fn entries_round_trip_and_damage_is_refused() {
        let entry = CommitEntry {
            ts: Timestamp::new(1_700_000_000_000_000_123),
            writes: vec![
                DocumentWrite {
                    id: DocumentId::new(TableNumber(3), [9; 16]),
                    deleted: false,
                    index_keys: vec![
                        IndexKeyChange {
                            index: IndexId(7),
                            old: None,
                            new: Some(vec![1, 2, 3]),
                        },
                        IndexKeyChange {
                            index: IndexId(8),
                            old: Some(vec![]),
                            new: None,
                        },
                    ],
                },
                DocumentWrite {
                    id: DocumentId::new(TableNumber(4), [1; 16]),
                    deleted: true,
                    index_keys: vec![],
                },
            ],
            schema_changed: false,
        };
        let bytes = encode(&entry, None);
        assert_eq!(
            decode(&bytes).expect("decodes"),
            LoggedCommit {
                entry: entry.clone(),
                catalog: None
            }
        );
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let schema = CommitEntry {
            ts: Timestamp::new(5),
            writes: vec![],
            schema_changed: true,
        };
        let decoded = decode(&encode(&schema, Some(b"{\"version\":2}"))).expect("decodes");
        assert_eq!(decoded.catalog.as_deref(), Some(&b"{\"version\":2}"[..]));
        assert!(decoded.entry.schema_changed);
    }
}
