//! The schema an app declares: its tables, their indexes and optional
//! document validators.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::validator::Validator;

/// The index every table has, over `_id`.
pub const BY_ID: &str = "by_id";
/// The index every table has, over `_creationTime`.
pub const BY_CREATION_TIME: &str = "by_creation_time";
/// Field every index ends with, implicitly.
pub const CREATION_TIME: &str = "_creationTime";
pub const ID: &str = "_id";

const MAX_INDEXES_PER_TABLE: usize = 32;
const MAX_INDEX_FIELDS: usize = 16;
const MAX_NAME_LEN: usize = 64;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    pub tables: BTreeMap<String, TableDefinition>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TableDefinition {
    #[serde(default)]
    pub indexes: Vec<IndexDefinition>,
    /// Documents must match this, if set.
    #[serde(default)]
    pub document: Option<Validator>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexDefinition {
    pub name: String,
    /// Field paths (`"author"`, `"address.city"`); `_creationTime` is implied
    /// at the end.
    pub fields: Vec<String>,
}

impl Schema {
    pub fn new() -> Self {
        Schema::default()
    }

    /// Adds a table; for building schemas in code and tests.
    pub fn table(mut self, name: &str, definition: TableDefinition) -> Self {
        self.tables.insert(name.to_owned(), definition);
        self
    }

    /// Checks names, index shapes and id references.
    pub fn validate(&self) -> Result<()> {
        for (table, definition) in &self.tables {
            check_name("table", table)?;
            if definition.indexes.len() > MAX_INDEXES_PER_TABLE {
                return Err(Error::InvalidSchema(format!(
                    "table {table:?} has {} indexes; the limit is {MAX_INDEXES_PER_TABLE}",
                    definition.indexes.len()
                )));
            }
            let mut seen = Vec::new();
            for index in &definition.indexes {
                check_name("index", &index.name)?;
                if index.name == BY_ID || index.name == BY_CREATION_TIME {
                    return Err(Error::InvalidSchema(format!(
                        "index name {:?} on table {table:?} is reserved",
                        index.name
                    )));
                }
                if seen.contains(&&index.name) {
                    return Err(Error::InvalidSchema(format!(
                        "table {table:?} declares index {:?} twice",
                        index.name
                    )));
                }
                seen.push(&index.name);
                check_index_fields(table, index)?;
            }
            if let Some(validator) = &definition.document {
                if !matches!(
                    validator,
                    Validator::Object { .. } | Validator::Union { .. } | Validator::Any
                ) {
                    return Err(Error::InvalidSchema(format!(
                        "the document validator of table {table:?} must be an object or a union of objects"
                    )));
                }
                let mut referenced = Vec::new();
                validator.referenced_tables(&mut referenced);
                // System tables (`_storage`) are the server's to add.
                if let Some(missing) = referenced
                    .iter()
                    .find(|t| !t.starts_with('_') && !self.tables.contains_key(**t))
                {
                    return Err(Error::InvalidSchema(format!(
                        "table {table:?} refers to ids of table {missing:?}, which the schema does not declare"
                    )));
                }
            }
        }
        Ok(())
    }
}

impl TableDefinition {
    pub fn index(mut self, name: &str, fields: &[&str]) -> Self {
        self.indexes.push(IndexDefinition {
            name: name.to_owned(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        });
        self
    }

    pub fn document(mut self, validator: Validator) -> Self {
        self.document = Some(validator);
        self
    }
}

fn check_name(what: &str, name: &str) -> Result<()> {
    // A leading underscore marks a system table (`_storage`): the server
    // adds those, and refuses them in an app's own schema.
    let body = match what {
        "table" => name.strip_prefix('_').unwrap_or(name),
        _ => name,
    };
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && body.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidSchema(format!(
            "{what} name {name:?} must start with a letter, contain only letters, digits and \
             underscores, and be at most {MAX_NAME_LEN} characters"
        )))
    }
}

fn check_index_fields(table: &str, index: &IndexDefinition) -> Result<()> {
    let invalid = |reason: String| {
        Err(Error::InvalidSchema(format!(
            "index {table}.{}: {reason}",
            index.name
        )))
    };
    if index.fields.is_empty() {
        return invalid("an index needs at least one field".to_owned());
    }
    if index.fields.len() > MAX_INDEX_FIELDS {
        return invalid(format!("an index has at most {MAX_INDEX_FIELDS} fields"));
    }
    for (i, field) in index.fields.iter().enumerate() {
        if field == ID || field == CREATION_TIME {
            return invalid(format!(
                "{field} cannot be an index field; every index ends with _creationTime and the document id"
            ));
        }
        let valid_path = field
            .split('.')
            .all(|part| !part.is_empty() && capstan_protocol::validate_field_name(part).is_ok());
        if !valid_path {
            return invalid(format!("{field:?} is not a valid field path"));
        }
        if index.fields[..i].contains(field) {
            return invalid(format!("field {field:?} appears twice"));
        }
    }
    Ok(())
}
