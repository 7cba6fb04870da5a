use capstan_store::{Error, Query, Schema, TableDefinition};

use crate::common::*;

#[tokio::test]
async fn adding_an_index_backfills_it() -> anyhow::Result<()> {
    let store = memory_store().await?;
    for (name, age) in [("ann", 30), ("bob", 25), ("cy", 35)] {
        insert(
            &store,
            "users",
            serde_json::json!({"name": name, "age": age}),
        )
        .await?;
    }
    // The same tables, with one more index on users.
    let schema = messages_schema().table(
        "users",
        TableDefinition::default()
            .index("by_name", &["name"])
            .index("by_age", &["age"]),
    );
    let change = store.apply_schema(schema.clone()).await?;
    assert_eq!(change.indexes_added, vec!["users.by_age".to_owned()]);
    assert_eq!(change.entries_backfilled, 3);

    let by_age = store
        .begin()
        .query(&Query::index("users", "by_age").gte("age", 26.0), None)?;
    let names: Vec<_> = by_age.iter().map(|d| field(d, "name").clone()).collect();
    assert_eq!(names, [capstan_protocol::Value::from("ann"), "cy".into()]);

    // The same schema again changes nothing.
    let again = store.apply_schema(schema).await?;
    assert_eq!(again.ts, None);

    // Dropping the index removes it.
    let change = store.apply_schema(messages_schema()).await?;
    assert_eq!(change.indexes_removed, vec!["users.by_age".to_owned()]);
    assert!(matches!(
        store.begin().query(&Query::index("users", "by_age"), None),
        Err(Error::UnknownIndex { .. })
    ));
    Ok(())
}

#[tokio::test]
async fn a_schema_that_existing_documents_violate_is_refused_naming_the_document()
-> anyhow::Result<()> {
    let store = test_store(config())?;
    store
        .apply_schema(Schema::new().table("scores", TableDefinition::default()))
        .await?;
    insert(
        &store,
        "scores",
        serde_json::json!({"player": "a", "points": 3}),
    )
    .await?;
    let bad = insert(
        &store,
        "scores",
        serde_json::json!({"player": "b", "points": "many"}),
    )
    .await?;
    let before = store.catalog().version;

    let refused = store
        .apply_schema(float_validator_schema())
        .await
        .expect_err("violated");
    match &refused {
        Error::SchemaViolation { table, id, reason } => {
            assert_eq!(table, "scores");
            assert_eq!(id, &bad.id.to_string());
            assert!(reason.contains("points"), "{reason}");
        }
        other => panic!("expected a schema violation, got {other}"),
    }
    assert!(refused.to_string().contains(&bad.id.to_string()));
    assert_eq!(store.catalog().version, before, "nothing changed");

    // Once the document is fixed, the schema applies and then guards writes.
    let mut tx = store.begin();
    tx.delete(bad.id)?;
    commit(&store, tx).await?;
    store.apply_schema(float_validator_schema()).await?;
    let mut tx = store.begin();
    let err = tx
        .insert("scores", obj(serde_json::json!({"player": 5})))
        .expect_err("validated");
    assert!(matches!(err, Error::SchemaViolation { .. }), "{err}");
    tx.insert("scores", obj(serde_json::json!({"player": "c"})))?;
    commit(&store, tx).await?;
    Ok(())
}

#[tokio::test]
async fn a_schema_dropping_a_table_with_documents_is_refused() -> anyhow::Result<()> {
    let store = memory_store().await?;
    insert(&store, "users", serde_json::json!({"name": "kept"})).await?;
    let without_users = Schema::new().table("messages", TableDefinition::default());
    let err = store
        .apply_schema(without_users.clone())
        .await
        .expect_err("users has documents");
    assert!(
        matches!(err, Error::InvalidSchema(ref m) if m.contains("users")),
        "{err}"
    );
    assert_eq!(
        store
            .begin()
            .query(&Query::full_table_scan("users"), None)?
            .len(),
        1
    );

    // An empty table may go.
    let change = store
        .apply_schema(messages_schema().table("spare", TableDefinition::default()))
        .await?;
    assert_eq!(change.tables_added, vec!["spare".to_owned()]);
    let change = store.apply_schema(messages_schema()).await?;
    assert_eq!(change.tables_removed, vec!["spare".to_owned()]);
    Ok(())
}

#[tokio::test]
async fn invalid_schemas_are_refused_with_the_reason() -> anyhow::Result<()> {
    let store = memory_store().await?;
    let cases = [
        Schema::new().table("bad name", TableDefinition::default()),
        // One leading underscore marks a system table (`_storage`), followed
        // by a letter.
        Schema::new().table("__system", TableDefinition::default()),
        Schema::new().table("_1", TableDefinition::default()),
        Schema::new().table("_", TableDefinition::default()),
        Schema::new().table("t", TableDefinition::default().index("by_id", &["x"])),
        Schema::new().table("t", TableDefinition::default().index("by_x", &[])),
        Schema::new().table("t", TableDefinition::default().index("by_x", &["x", "x"])),
        Schema::new().table(
            "t",
            TableDefinition::default().index("by_x", &["_creationTime"]),
        ),
        Schema::new().table(
            "t",
            TableDefinition::default()
                .index("by_x", &["x"])
                .index("by_x", &["y"]),
        ),
    ];
    for schema in cases {
        let err = store
            .apply_schema(schema.clone())
            .await
            .expect_err("invalid");
        assert!(
            matches!(err, Error::InvalidSchema(_)),
            "{schema:?} gave {err}"
        );
    }
    Ok(())
}
