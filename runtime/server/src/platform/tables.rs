//! The system tables the platform writes, merged into every deployment's
//! schema: functions read them; only the server writes them (the host
//! refuses an app's writes to a table whose name starts with `_`).

use capstan_store::Schema;

use crate::auth::tables::{IndexSpec, definition};

/// Scheduled runs (Convex's name and fields).
pub const SCHEDULED: &str = "_scheduled_functions";
/// Files' metadata (Convex's name and fields, with the object's key).
pub const STORAGE: &str = "_storage";
/// The cron jobs' state: when each ran and runs next.
pub const CRONS: &str = "_cron_jobs";

/// Pending runs by due time; every run by state.
pub const BY_STATE: &str = "by_state";
pub const BY_KEY: &str = "by_key";
pub const BY_NAME: &str = "by_name";

const TABLES: &[(&str, &[IndexSpec])] = &[
    (SCHEDULED, &[(BY_STATE, &["state.kind", "scheduledTime"])]),
    (STORAGE, &[(BY_KEY, &["key"])]),
    (CRONS, &[(BY_NAME, &["name"])]),
];

/// Adds the system tables to `schema`.
pub fn merge_into(schema: &mut Schema) {
    for (table, indexes) in TABLES {
        schema
            .tables
            .insert((*table).to_owned(), definition(indexes));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_tables_make_a_valid_schema() {
        let mut schema = Schema::default();
        merge_into(&mut schema);
        schema.validate().unwrap();
        assert_eq!(schema.tables.len(), 3);
    }
}
