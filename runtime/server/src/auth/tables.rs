//! The auth tables, with Convex Auth's names and indexes: ordinary tables
//! of the app, merged into its schema when built-in auth is on. An app may
//! declare `users` itself (to add fields and a validator); it must keep the
//! `email` and `phone` indexes.

use capstan_store::{IndexDefinition, Schema, TableDefinition};

pub const USERS: &str = "users";
pub const SESSIONS: &str = "authSessions";
pub const ACCOUNTS: &str = "authAccounts";
pub const REFRESH_TOKENS: &str = "authRefreshTokens";
pub const CODES: &str = "authVerificationCodes";
pub const VERIFIERS: &str = "authVerifiers";
pub const RATE_LIMITS: &str = "authRateLimits";

/// An index: its name and fields.
pub(crate) type IndexSpec = (&'static str, &'static [&'static str]);

/// A table without a validator, with `indexes`.
pub(crate) fn definition(indexes: &[IndexSpec]) -> TableDefinition {
    TableDefinition {
        indexes: indexes
            .iter()
            .map(|(name, fields)| IndexDefinition {
                name: (*name).to_owned(),
                fields: fields.iter().map(|f| (*f).to_owned()).collect(),
            })
            .collect(),
        document: None,
    }
}

/// Every auth table with its indexes.
const TABLES: &[(&str, &[IndexSpec])] = &[
    (USERS, &[("email", &["email"]), ("phone", &["phone"])]),
    (SESSIONS, &[("userId", &["userId"])]),
    (
        ACCOUNTS,
        &[
            ("userIdAndProvider", &["userId", "provider"]),
            ("providerAndAccountId", &["provider", "providerAccountId"]),
        ],
    ),
    (
        REFRESH_TOKENS,
        &[
            ("sessionId", &["sessionId"]),
            (
                "sessionIdAndParentRefreshTokenId",
                &["sessionId", "parentRefreshTokenId"],
            ),
        ],
    ),
    (CODES, &[("accountId", &["accountId"]), ("code", &["code"])]),
    (VERIFIERS, &[("signature", &["signature"])]),
    (RATE_LIMITS, &[("identifier", &["identifier"])]),
];

/// Adds the auth tables to `schema`. A table the app declares itself stays
/// as declared, but must have the indexes sign-in uses.
pub fn merge_into(schema: &mut Schema) -> Result<(), String> {
    for (table, indexes) in TABLES {
        match schema.tables.get(*table) {
            Some(declared) => {
                for (name, fields) in *indexes {
                    let has = declared.indexes.iter().any(|index| {
                        index.name == *name
                            && index
                                .fields
                                .iter()
                                .map(String::as_str)
                                .eq(fields.iter().copied())
                    });
                    if !has {
                        return Err(format!(
                            "table {table:?} is an auth table: with built-in auth on it needs index {name:?} on {fields:?}"
                        ));
                    }
                }
            }
            None => {
                schema
                    .tables
                    .insert((*table).to_owned(), definition(indexes));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_are_added_and_a_declared_users_table_must_keep_its_indexes() {
        let mut schema = Schema::default();
        merge_into(&mut schema).unwrap();
        assert_eq!(schema.tables.len(), TABLES.len());
        schema.validate().unwrap();

        let mut schema =
            Schema::default().table(USERS, TableDefinition::default().index("email", &["email"]));
        let error = merge_into(&mut schema).unwrap_err();
        assert!(error.contains("\"phone\""), "{error}");
    }
}
