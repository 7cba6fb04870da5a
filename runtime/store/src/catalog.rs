//! The persisted catalog: which tables and indexes exist, with their stable
//! numbers, and the validators in force. It changes only when a schema is
//! applied, and each transaction reads against the catalog of its snapshot.

use std::collections::{BTreeMap, HashMap};

use capstan_protocol::Value;
use capstan_protocol::key::{encode_key_value, encode_value};
use serde::{Deserialize, Serialize};

use crate::document::Document;
use crate::error::{Error, Result};
use crate::id::{DocumentId, IndexId, TableNumber};
use crate::schema::{BY_CREATION_TIME, BY_ID, CREATION_TIME, ID};
use crate::validator::{IdCheck, Validator};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Catalog {
    /// Bumped by every schema change; a transaction that began under another
    /// version conflicts.
    pub version: u64,
    /// Commit timestamp of the schema change that produced this catalog;
    /// snapshots older than this cannot use it.
    pub since: u64,
    pub tables: BTreeMap<String, TableEntry>,
    pub next_table: u32,
    pub next_index: u32,
    #[serde(skip)]
    by_number: HashMap<TableNumber, String>,
    #[serde(skip)]
    by_index: HashMap<IndexId, (String, String)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TableEntry {
    pub number: TableNumber,
    pub by_id: IndexId,
    pub by_creation_time: IndexId,
    /// User indexes by name.
    pub indexes: BTreeMap<String, IndexEntry>,
    pub document: Option<Validator>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub id: IndexId,
    pub fields: Vec<String>,
}

/// An index resolved for reading: which entries it holds and how its sort key
/// is built.
#[derive(Clone, Debug)]
pub struct IndexInfo {
    pub id: IndexId,
    pub table: TableNumber,
    pub table_name: String,
    pub name: String,
    pub kind: IndexKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexKind {
    /// `by_id`: the sort key is the id itself, stored with the documents.
    ById,
    /// A field index (`by_creation_time` has no fields): the sort key is the
    /// fields, then `_creationTime`, then the id.
    Fields(Vec<String>),
}

impl IndexInfo {
    /// The fields a range expression may name, in order.
    pub fn range_fields(&self) -> Vec<&str> {
        match &self.kind {
            IndexKind::ById => vec![ID],
            IndexKind::Fields(fields) => fields
                .iter()
                .map(String::as_str)
                .chain(std::iter::once(CREATION_TIME))
                .collect(),
        }
    }

    /// The key under which `document` sorts in this index.
    pub fn sort_key(&self, document: &Document) -> Vec<u8> {
        match &self.kind {
            IndexKind::ById => document.id.to_bytes().to_vec(),
            IndexKind::Fields(fields) => {
                let mut key = Vec::with_capacity(64);
                for field in fields {
                    encode_key_value(document.get_path(field), &mut key);
                }
                encode_value(&Value::Float64(document.creation_time), &mut key);
                key.extend_from_slice(&document.id.to_bytes());
                key
            }
        }
    }
}

impl Catalog {
    /// Rebuilds the lookup maps after loading or changing the tables.
    pub fn reindex(&mut self) {
        self.by_number = self
            .tables
            .iter()
            .map(|(name, t)| (t.number, name.clone()))
            .collect();
        self.by_index = HashMap::new();
        for (table, entry) in &self.tables {
            self.by_index
                .insert(entry.by_id, (table.clone(), BY_ID.to_owned()));
            self.by_index.insert(
                entry.by_creation_time,
                (table.clone(), BY_CREATION_TIME.to_owned()),
            );
            for (name, index) in &entry.indexes {
                self.by_index
                    .insert(index.id, (table.clone(), name.clone()));
            }
        }
    }

    pub fn table(&self, name: &str) -> Result<&TableEntry> {
        self.tables
            .get(name)
            .ok_or_else(|| Error::UnknownTable(name.to_owned()))
    }

    pub fn table_name(&self, number: TableNumber) -> Option<&str> {
        self.by_number.get(&number).map(String::as_str)
    }

    /// The table an id belongs to, or an error if that table does not exist.
    pub fn table_of(&self, id: &DocumentId) -> Result<&str> {
        self.table_name(id.table())
            .ok_or_else(|| Error::UnknownTable(format!("#{}", id.table().0)))
    }

    pub fn index_names(&self, id: IndexId) -> (&str, &str) {
        self.by_index
            .get(&id)
            .map(|(t, i)| (t.as_str(), i.as_str()))
            .unwrap_or(("?", "?"))
    }

    pub fn index(&self, table: &str, name: &str) -> Result<IndexInfo> {
        let entry = self.table(table)?;
        let (id, kind) = match name {
            BY_ID => (entry.by_id, IndexKind::ById),
            BY_CREATION_TIME => (entry.by_creation_time, IndexKind::Fields(Vec::new())),
            _ => {
                let index = entry.indexes.get(name).ok_or_else(|| Error::UnknownIndex {
                    table: table.to_owned(),
                    index: name.to_owned(),
                })?;
                (index.id, IndexKind::Fields(index.fields.clone()))
            }
        };
        Ok(IndexInfo {
            id,
            table: entry.number,
            table_name: table.to_owned(),
            name: name.to_owned(),
            kind,
        })
    }

    /// Every index of a table, `by_id` first.
    pub fn indexes_of(&self, table: &str) -> Result<Vec<IndexInfo>> {
        let entry = self.table(table)?;
        let mut names = vec![BY_ID, BY_CREATION_TIME];
        names.extend(entry.indexes.keys().map(String::as_str));
        names
            .into_iter()
            .map(|name| self.index(table, name))
            .collect()
    }
}

impl IdCheck for Catalog {
    fn is_id_of(&self, text: &str, table: &str) -> bool {
        text.parse::<DocumentId>()
            .ok()
            .and_then(|id| self.table_name(id.table()).map(|name| name == table))
            .unwrap_or(false)
    }
}
