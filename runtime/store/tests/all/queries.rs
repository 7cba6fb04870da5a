use capstan_protocol::Value;
use capstan_store::{Error, Expression, Order, Query};

use crate::common::*;

fn ns(documents: &[capstan_store::Document]) -> Vec<f64> {
    documents
        .iter()
        .map(|d| match field(d, "n") {
            Value::Float64(n) => *n,
            other => panic!("n is {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn index_ranges_orders_filters_and_limits() -> anyhow::Result<()> {
    let store = memory_store().await?;
    for n in 0..10 {
        let channel = if n % 2 == 0 { "even" } else { "odd" };
        insert(
            &store,
            "messages",
            serde_json::json!({"n": n, "channel": channel}),
        )
        .await?;
    }
    let mut tx = store.begin();
    let by_n = || Query::index("messages", "by_n");
    assert_eq!(
        ns(&tx.query(&by_n().gte("n", 3.0).lt("n", 6.0), None)?),
        [3.0, 4.0, 5.0]
    );
    assert_eq!(
        ns(&tx.query(&by_n().gt("n", 3.0).lte("n", 6.0), None)?),
        [4.0, 5.0, 6.0]
    );
    assert_eq!(
        ns(&tx.query(&by_n().gt("n", 7.0).order(Order::Desc), None)?),
        [9.0, 8.0]
    );
    assert_eq!(
        ns(&tx.query(&by_n().order(Order::Desc), Some(3))?),
        [9.0, 8.0, 7.0]
    );
    assert_eq!(ns(&tx.query(&by_n().eq("n", 4.0), None)?), [4.0]);

    let odd = Query::index("messages", "by_channel").eq("channel", "odd");
    assert_eq!(ns(&tx.query(&odd, None)?), [1.0, 3.0, 5.0, 7.0, 9.0]);
    let odd_after_4 = odd.clone().gt("_creationTime", 0.0);
    assert_eq!(tx.query(&odd_after_4, None)?.len(), 5);

    let filtered = by_n().filter(Expression::And(vec![
        Expression::Gt(
            Box::new(Expression::field("n")),
            Box::new(Expression::literal(2.0)),
        ),
        Expression::eq(
            Expression::Mod(
                Box::new(Expression::field("n")),
                Box::new(Expression::literal(3.0)),
            ),
            Expression::literal(0.0),
        ),
    ]));
    assert_eq!(ns(&tx.query(&filtered, None)?), [3.0, 6.0, 9.0]);
    assert_eq!(ns(&tx.query(&filtered, Some(2))?), [3.0, 6.0]);

    let missing = by_n().filter(Expression::eq(
        Expression::field("nope"),
        Expression::literal(Value::Null),
    ));
    assert!(
        tx.query(&missing, None)?.is_empty(),
        "undefined is not null"
    );

    let all = tx.query(&Query::full_table_scan("messages"), None)?;
    assert_eq!(ns(&all), (0..10).map(f64::from).collect::<Vec<_>>());
    let newest = tx.query(
        &Query::full_table_scan("messages").order(Order::Desc),
        Some(1),
    )?;
    assert_eq!(ns(&newest), [9.0]);

    let by_id = Query::index("messages", "by_id").eq("_id", all[4].id.to_string());
    assert_eq!(ns(&tx.query(&by_id, None)?), [4.0]);
    let users_by_id = tx.query(
        &Query::index("users", "by_id").eq("_id", all[4].id.to_string()),
        None,
    )?;
    assert!(users_by_id.is_empty(), "by_id never leaves its table");
    Ok(())
}

#[tokio::test]
async fn a_range_on_a_missing_field_finds_the_documents_without_it() -> anyhow::Result<()> {
    let store = memory_store().await?;
    insert(
        &store,
        "messages",
        serde_json::json!({"n": 1, "channel": "a"}),
    )
    .await?;
    insert(&store, "messages", serde_json::json!({"channel": "b"})).await?;
    insert(
        &store,
        "messages",
        serde_json::json!({"n": null, "channel": "c"}),
    )
    .await?;
    let mut tx = store.begin();
    let channels =
        |query: &Query, tx: &mut capstan_store::Transaction| -> anyhow::Result<Vec<Value>> {
            Ok(tx
                .query(query, None)?
                .iter()
                .map(|d| field(d, "channel").clone())
                .collect())
        };
    // No `value`: the field is missing (Convex's `undefined`), not null.
    let missing: Query = serde_json::from_value(serde_json::json!({
        "table": "messages",
        "source": {"index": {"name": "by_n", "range": [{"field": "n", "op": "eq"}]}},
    }))?;
    assert_eq!(channels(&missing, &mut tx)?, [Value::from("b")]);
    let null = Query::index("messages", "by_n").eq("n", Value::Null);
    assert_eq!(channels(&null, &mut tx)?, [Value::from("c")]);
    // `"value": null` on the wire is null, not missing.
    let null: Query = serde_json::from_value(serde_json::json!({
        "table": "messages",
        "source": {"index": {"name": "by_n", "range": [{"field": "n", "op": "eq", "value": null}]}},
    }))?;
    assert_eq!(channels(&null, &mut tx)?, [Value::from("c")]);
    // Missing sorts before every value.
    let present: Query = serde_json::from_value(serde_json::json!({
        "table": "messages",
        "source": {"index": {"name": "by_n", "range": [{"field": "n", "op": "gt"}]}},
    }))?;
    assert_eq!(
        channels(&present, &mut tx)?,
        [Value::from("c"), Value::from("a")]
    );
    Ok(())
}

#[tokio::test]
async fn index_order_follows_the_value_order_across_types() -> anyhow::Result<()> {
    let store = memory_store().await?;
    let values = [
        serde_json::json!({"$integer": "AQAAAAAAAAA="}),
        serde_json::json!(null),
        serde_json::json!("text"),
        serde_json::json!(-1.5),
        serde_json::json!(true),
        serde_json::json!([1]),
        serde_json::json!({"$bytes": "AQID"}),
        serde_json::json!({"k": 1}),
    ];
    for value in &values {
        insert(&store, "messages", serde_json::json!({"n": value})).await?;
    }
    insert(&store, "messages", serde_json::json!({"other": 1})).await?;
    let read = store
        .begin()
        .query(&Query::index("messages", "by_n"), None)?;
    let order: Vec<Option<&Value>> = read.iter().map(|d| d.fields.get("n")).collect();
    let mut expected: Vec<Option<Value>> = values
        .iter()
        .map(|v| Some(Value::from_json(v).expect("value")))
        .collect();
    expected.push(None);
    expected.sort();
    assert_eq!(
        order,
        expected.iter().map(Option::as_ref).collect::<Vec<_>>()
    );
    Ok(())
}

#[tokio::test]
async fn bad_ranges_unknown_indexes_and_bad_filters_are_refused() -> anyhow::Result<()> {
    let store = memory_store().await?;
    let mut tx = store.begin();
    let cases = [
        Query::index("messages", "by_n").eq("channel", "a"),
        Query::index("messages", "by_n").gt("n", 1.0).eq("n", 2.0),
        Query::index("messages", "by_n").gt("n", 1.0).gte("n", 2.0),
        Query::index("messages", "by_n")
            .eq("n", 1.0)
            .eq("_creationTime", 1.0)
            .eq("x", 1.0),
        Query::index("messages", "by_id").eq("_id", 5.0),
    ];
    for query in cases {
        let result = tx.query(&query, None);
        assert!(
            matches!(result, Err(Error::InvalidIndexRange { .. })),
            "{query:?} gave {result:?}"
        );
    }
    assert!(matches!(
        tx.query(&Query::index("messages", "by_nothing"), None),
        Err(Error::UnknownIndex { .. })
    ));
    assert!(matches!(
        tx.query(&Query::full_table_scan("nope"), None),
        Err(Error::UnknownTable(_))
    ));
    assert!(matches!(
        tx.query(
            &Query::index("messages", "by_id").eq("_id", "not an id"),
            None
        ),
        Err(Error::InvalidId { .. })
    ));
    insert(&store, "messages", serde_json::json!({"n": 1})).await?;
    let bad_arithmetic = Query::full_table_scan("messages").filter(Expression::eq(
        Expression::Add(
            Box::new(Expression::field("n")),
            Box::new(Expression::literal("x")),
        ),
        Expression::literal(1.0),
    ));
    assert!(matches!(
        store.begin().query(&bad_arithmetic, None),
        Err(Error::InvalidFilter(_))
    ));
    Ok(())
}
