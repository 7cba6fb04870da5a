use std::collections::BTreeSet;

use capstan_store::{Error, Order, PaginationOptions, Query};

use crate::common::*;

async fn collect_pages(
    store: &capstan_store::Store,
    query: &Query,
    page_size: usize,
    mut between_pages: impl AsyncFnMut(usize) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<f64>> {
    let mut seen = Vec::new();
    let mut cursor = None;
    for page_number in 0.. {
        let mut tx = store.begin();
        let page = tx.paginate(
            query,
            &PaginationOptions {
                end_cursor: None,
                cursor: cursor.clone(),
                num_items: page_size,
            },
        )?;
        assert!(page.page.len() <= page_size);
        for document in &page.page {
            let capstan_protocol::Value::Float64(n) = field(document, "n") else {
                panic!("n")
            };
            seen.push(*n);
        }
        if page.is_done {
            break;
        }
        cursor = Some(page.continue_cursor);
        between_pages(page_number).await?;
    }
    Ok(seen)
}

#[tokio::test]
async fn pagination_stays_correct_when_documents_are_inserted_between_pages() -> anyhow::Result<()>
{
    let store = memory_store().await?;
    for n in 0..25 {
        insert(&store, "messages", serde_json::json!({"n": n * 10})).await?;
    }
    let query = Query::index("messages", "by_n");
    let store2 = store.clone();
    let seen = collect_pages(&store, &query, 10, async |page| {
        // One document lands before the cursor (already passed) and one after.
        insert(
            &store2,
            "messages",
            serde_json::json!({"n": page as f64 * 10.0 + 1.0}),
        )
        .await?;
        insert(&store2, "messages", serde_json::json!({"n": 1000 + page})).await?;
        Ok(())
    })
    .await?;

    let unique: BTreeSet<u64> = seen.iter().map(|n| n.to_bits()).collect();
    assert_eq!(
        unique.len(),
        seen.len(),
        "no document appears twice: {seen:?}"
    );
    for n in 0..25 {
        assert!(
            seen.contains(&(n as f64 * 10.0)),
            "original {n} missing: {seen:?}"
        );
    }
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "in index order: {seen:?}"
    );
    // Documents inserted after the cursor show up on later pages.
    assert!(seen.contains(&1000.0) && seen.contains(&1001.0));
    // The one inserted before the cursor on the first page does not.
    assert!(!seen.contains(&1.0));
    Ok(())
}

#[tokio::test]
async fn descending_pages_with_a_filter_cover_every_match_once() -> anyhow::Result<()> {
    let store = memory_store().await?;
    for n in 0..30 {
        insert(
            &store,
            "messages",
            serde_json::json!({"n": n, "even": n % 2 == 0}),
        )
        .await?;
    }
    let query =
        Query::index("messages", "by_n")
            .order(Order::Desc)
            .filter(capstan_store::Expression::eq(
                capstan_store::Expression::field("even"),
                capstan_store::Expression::literal(true),
            ));
    let seen = collect_pages(&store, &query, 4, async |_| Ok(())).await?;
    let expected: Vec<f64> = (0..30)
        .rev()
        .filter(|n| n % 2 == 0)
        .map(f64::from)
        .collect();
    assert_eq!(seen, expected);
    Ok(())
}

#[tokio::test]
async fn the_last_cursor_picks_up_documents_added_at_the_end() -> anyhow::Result<()> {
    let store = memory_store().await?;
    for n in 0..3 {
        insert(&store, "messages", serde_json::json!({"n": n})).await?;
    }
    let query = Query::index("messages", "by_n");
    let page = store.begin().paginate(
        &query,
        &PaginationOptions {
            end_cursor: None,
            cursor: None,
            num_items: 10,
        },
    )?;
    assert!(page.is_done);
    assert_eq!(page.page.len(), 3);
    insert(&store, "messages", serde_json::json!({"n": 3})).await?;
    let next = store.begin().paginate(
        &query,
        &PaginationOptions {
            end_cursor: None,
            cursor: Some(page.continue_cursor),
            num_items: 10,
        },
    )?;
    assert_eq!(next.page.len(), 1);
    assert_eq!(
        field(&next.page[0], "n"),
        &capstan_protocol::Value::Float64(3.0)
    );
    Ok(())
}

#[tokio::test]
async fn malformed_or_foreign_cursors_are_refused() -> anyhow::Result<()> {
    let store = memory_store().await?;
    insert(
        &store,
        "messages",
        serde_json::json!({"n": 1, "channel": "a"}),
    )
    .await?;
    let mut tx = store.begin();
    let page = tx.paginate(
        &Query::index("messages", "by_n"),
        &PaginationOptions {
            end_cursor: None,
            cursor: None,
            num_items: 1,
        },
    )?;

    let mut tampered = page.continue_cursor.clone().into_bytes();
    let last = tampered.len() - 3;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let cases = [
        "not a cursor!".to_owned(),
        String::new(),
        "AAAA".to_owned(),
        String::from_utf8(tampered)?,
        "x".repeat(10_000),
    ];
    for cursor in cases {
        let result = tx.paginate(
            &Query::index("messages", "by_n"),
            &PaginationOptions {
                end_cursor: None,
                cursor: Some(cursor.clone()),
                num_items: 1,
            },
        );
        assert!(
            matches!(result, Err(Error::InvalidCursor(_))),
            "{cursor:?} gave {result:?}"
        );
    }
    let foreign = tx.paginate(
        &Query::index("messages", "by_channel"),
        &PaginationOptions {
            end_cursor: None,
            cursor: Some(page.continue_cursor),
            num_items: 1,
        },
    );
    assert!(
        matches!(foreign, Err(Error::InvalidCursor(reason)) if reason.contains("different query"))
    );
    Ok(())
}

#[tokio::test]
async fn a_page_read_again_to_its_end_cursor_holds_what_lies_between_its_cursors()
-> anyhow::Result<()> {
    let store = memory_store().await?;
    for n in 0..10 {
        insert(&store, "messages", serde_json::json!({"n": n * 10})).await?;
    }
    let ns = |page: &capstan_store::Page| -> Vec<f64> {
        page.page
            .iter()
            .map(|d| match field(d, "n") {
                capstan_protocol::Value::Float64(n) => *n,
                other => panic!("{other:?}"),
            })
            .collect()
    };
    for (order, first_page, grown) in [
        (Order::Asc, [0.0, 10.0, 20.0], vec![0.0, 5.0, 10.0, 20.0]),
        (
            Order::Desc,
            [90.0, 80.0, 70.0],
            vec![90.0, 80.0, 75.0, 70.0],
        ),
    ] {
        let query = Query::index("messages", "by_n").order(order);
        let options = |cursor: Option<String>, end_cursor: Option<String>| PaginationOptions {
            cursor,
            num_items: 3,
            end_cursor,
        };
        let first = store.begin().paginate(&query, &options(None, None))?;
        assert_eq!(ns(&first), first_page);
        // Documents land inside the first page; read again to its end
        // cursor, it holds them, however many, and ends where it ended.
        let inside = if order == Order::Asc { 5 } else { 75 };
        insert(&store, "messages", serde_json::json!({"n": inside})).await?;
        let again = store
            .begin()
            .paginate(&query, &options(None, Some(first.continue_cursor.clone())))?;
        assert_eq!(ns(&again), grown, "{order:?}");
        assert_eq!(again.continue_cursor, first.continue_cursor);
        assert!(!again.is_done);
        // The page after it, read to the end of the range, is done.
        let rest = store
            .begin()
            .paginate(&query, &options(Some(first.continue_cursor.clone()), None))?;
        let rest_again = store.begin().paginate(
            &query,
            &options(
                Some(first.continue_cursor),
                Some(rest.continue_cursor.clone()),
            ),
        )?;
        assert_eq!(ns(&rest_again), ns(&rest));
        // A cursor of another query is refused.
        let other = Query::index("messages", "by_channel");
        assert!(matches!(
            store
                .begin()
                .paginate(&other, &options(None, Some(rest.continue_cursor))),
            Err(Error::InvalidCursor(_))
        ));
    }
    Ok(())
}
