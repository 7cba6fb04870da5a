use std::io;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use capstan_files::{ByteStream, Error, FileBackend, LocalFiles, PARTIAL_DIR};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::{body, collect, sha256};

const LIMIT: u64 = 1024 * 1024;

/// Names in a directory, sorted.
fn names(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names = std::fs::read_dir(dir)?
        .map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    names.sort();
    Ok(names)
}

/// Asserts the store holds exactly `keys` and no upload is in progress.
#[track_caller]
fn assert_holds(dir: &Path, keys: &[&str]) -> anyhow::Result<()> {
    let mut expected: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    expected.push(PARTIAL_DIR.to_owned());
    expected.sort();
    assert_eq!(names(dir)?, expected);
    assert_eq!(names(&dir.join(PARTIAL_DIR))?, Vec::<String>::new());
    Ok(())
}

#[tokio::test]
async fn put_then_read_returns_the_bytes_their_size_and_hash() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let files = LocalFiles::open(dir.path())?;
    let stored = files
        .put("hello", body([&b"hello, "[..], b"", b"world"]), LIMIT)
        .await?;
    assert_eq!(stored.size, 12);
    assert_eq!(stored.sha256, sha256(b"hello, world"));

    let whole = files.read("hello", None).await?.expect("stored");
    assert_eq!(collect(whole).await?, b"hello, world");
    for (range, expected) in [
        (0..5, &b"hello"[..]),
        (7..12, b"world"),
        (5..6, b","),
        (3..3, b""),
        (0..12, b"hello, world"),
    ] {
        let part = files
            .read("hello", Some(range.clone()))
            .await?
            .expect("stored");
        assert_eq!(collect(part).await?, expected, "{range:?}");
    }
    assert_holds(dir.path(), &["hello"])?;
    Ok(())
}

#[tokio::test]
async fn an_empty_body_is_an_empty_file() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let files = LocalFiles::open(dir.path())?;
    let stored = files.put("empty", body([]), 0).await?;
    assert_eq!(stored.size, 0);
    assert_eq!(stored.sha256, sha256(b""));
    assert_eq!(
        collect(files.read("empty", None).await?.expect("stored")).await?,
        b""
    );
    Ok(())
}

#[tokio::test]
async fn reading_a_missing_key_is_none() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let files = LocalFiles::open(dir.path())?;
    assert!(files.read("nothing", None).await?.is_none());
    assert!(files.read("nothing", Some(0..1)).await?.is_none());
    assert!(!files.exists("nothing").await?);
    Ok(())
}

#[tokio::test]
async fn a_body_exactly_at_the_limit_is_kept_and_one_byte_more_is_not() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let files = LocalFiles::open(dir.path())?;
    files.put("exact", body([&b"12345"[..]]), 5).await?;
    let over = files.put("over", body([&b"123"[..], b"456"]), 5).await;
    assert!(
        matches!(over, Err(Error::TooLarge { limit: 5 })),
        "{over:?}"
    );
    assert_holds(dir.path(), &["exact"])?;
    Ok(())
}

#[tokio::test]
async fn an_upload_over_the_limit_stops_without_reading_the_rest() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let files = LocalFiles::open(dir.path())?;
    // An endless body: the put must stop at the limit, not at its end.
    let endless: ByteStream = Box::pin(futures_util::stream::repeat_with(|| {
        Ok(Bytes::from_static(&[7; 4096]))
    }));
    let over = files.put("endless", endless, 100_000).await;
    assert!(
        matches!(over, Err(Error::TooLarge { limit: 100_000 })),
        "{over:?}"
    );
    assert_holds(dir.path(), &[])?;
    Ok(())
}

#[tokio::test]
async fn a_body_that_fails_midway_leaves_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let files = LocalFiles::open(dir.path())?;
    let failing: ByteStream = Box::pin(futures_util::stream::iter([
        Ok(Bytes::from_static(b"first part")),
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "client went away",
        )),
        Ok(Bytes::from_static(b"never read")),
    ]));
    let failed = files.put("broken", failing, LIMIT).await;
    let Err(Error::Body(message)) = failed else {
        panic!("expected a Body error, got {failed:?}");
    };
    assert!(message.contains("client went away"), "{message}");
    assert!(files.read("broken", None).await?.is_none());
    assert_holds(dir.path(), &[])?;
    Ok(())
}

#[tokio::test]
async fn a_failed_put_leaves_an_older_object_under_the_key_whole() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let files = LocalFiles::open(dir.path())?;
    files.put("kept", body([&b"old"[..]]), LIMIT).await?;
    let over = files.put("kept", body([&b"much too long"[..]]), 4).await;
    assert!(matches!(over, Err(Error::TooLarge { .. })), "{over:?}");
    assert_eq!(
        collect(files.read("kept", None).await?.expect("stored")).await?,
        b"old"
    );
    Ok(())
}

#[tokio::test]
async fn an_upload_dropped_midway_leaves_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let files = LocalFiles::open(dir.path())?;
    // One chunk, then a client that never sends more: the server gives up
    // by dropping the put future, as axum does when the connection closes.
    let stalled: ByteStream = Box::pin(
        futures_util::stream::iter([Ok(Bytes::from_static(b"some bytes"))])
            .chain(futures_util::stream::pending()),
    );
    let put = files.put("stalled", stalled, LIMIT);
    let timed_out = tokio::time::timeout(Duration::from_millis(200), put).await;
    assert!(timed_out.is_err(), "the put finished: {timed_out:?}");
    assert_holds(dir.path(), &[])?;
    Ok(())
}

#[tokio::test]
async fn invalid_keys_are_refused_by_every_operation() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let files = LocalFiles::open(dir.path().join("store"))?;
    std::fs::write(dir.path().join("secret"), b"outside")?;
    for key in [
        "",
        "../secret",
        ".partial",
        "a/b",
        "..",
        "a.b",
        &"k".repeat(129),
    ] {
        let put = files.put(key, body([&b"x"[..]]), LIMIT).await;
        assert!(
            matches!(put, Err(Error::InvalidKey(_))),
            "put {key:?}: {put:?}"
        );
        let read = files.read(key, None).await;
        assert!(matches!(read, Err(Error::InvalidKey(_))), "read {key:?}");
        let delete = files.delete(key).await;
        assert!(
            matches!(delete, Err(Error::InvalidKey(_))),
            "delete {key:?}: {delete:?}"
        );
        let exists = files.exists(key).await;
        assert!(
            matches!(exists, Err(Error::InvalidKey(_))),
            "exists {key:?}: {exists:?}"
        );
    }
    assert_eq!(std::fs::read(dir.path().join("secret"))?, b"outside");
    assert_holds(&dir.path().join("store"), &[])?;
    Ok(())
}

#[tokio::test]
async fn delete_removes_the_object_and_ignores_a_missing_one() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let files = LocalFiles::open(dir.path())?;
    files.put("doomed", body([&b"x"[..]]), LIMIT).await?;
    assert!(files.exists("doomed").await?);
    files.delete("doomed").await?;
    assert!(!files.exists("doomed").await?);
    assert!(files.read("doomed", None).await?.is_none());
    files.delete("doomed").await?;
    files.delete("never-was").await?;
    assert_holds(dir.path(), &[])?;
    Ok(())
}

#[tokio::test]
async fn list_returns_every_object_and_nothing_else() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let files = LocalFiles::open(dir.path())?;
    let before = std::time::SystemTime::now() - Duration::from_secs(5);
    for key in ["a", "b-2", "C_3"] {
        files.put(key, body([&b"x"[..]]), LIMIT).await?;
    }
    // Not objects: an upload in progress, a stray file, a directory.
    std::fs::write(dir.path().join(PARTIAL_DIR).join("inflight"), b"x")?;
    std::fs::write(dir.path().join("notes.txt"), b"x")?;
    std::fs::create_dir(dir.path().join("subdir"))?;

    let mut listed = files.list().await?;
    listed.sort();
    let keys: Vec<&str> = listed.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(keys, ["C_3", "a", "b-2"]);
    for (key, modified) in &listed {
        assert!(*modified > before, "{key}: {modified:?}");
    }
    Ok(())
}

#[tokio::test]
async fn open_removes_uploads_a_crash_left_in_partial() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let files = LocalFiles::open(dir.path())?;
    files.put("kept", body([&b"whole"[..]]), LIMIT).await?;
    drop(files);
    // What a kill -9 mid-upload leaves behind.
    let partial = dir.path().join(PARTIAL_DIR);
    std::fs::write(partial.join("0123456789abcdef"), b"half an upl")?;
    std::fs::create_dir(partial.join("odd"))?;
    std::fs::write(partial.join("odd").join("inner"), b"x")?;

    let files = LocalFiles::open(dir.path())?;
    assert_holds(dir.path(), &["kept"])?;
    assert_eq!(
        collect(files.read("kept", None).await?.expect("stored")).await?,
        b"whole"
    );
    Ok(())
}

#[tokio::test]
async fn open_creates_missing_directories() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let nested = dir.path().join("a").join("b");
    let files = LocalFiles::open(&nested)?;
    assert_eq!(files.dir(), nested);
    files.put("k", body([&b"x"[..]]), LIMIT).await?;
    assert_holds(&nested, &["k"])?;
    Ok(())
}

#[tokio::test]
async fn a_64_mib_upload_streams_through_in_many_chunks() -> anyhow::Result<()> {
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 1024;
    let dir = tempfile::tempdir()?;
    let files = LocalFiles::open(dir.path())?;

    // Each chunk differs, so a dropped, repeated or reordered chunk changes
    // the hash.
    let chunk = |i: usize| Bytes::from(vec![(i % 251) as u8; CHUNK]);
    let generated: ByteStream = Box::pin(futures_util::stream::iter(
        (0..CHUNKS).map(move |i| Ok(chunk(i))),
    ));
    let mut expected = Sha256::new();
    for i in 0..CHUNKS {
        expected.update(chunk(i));
    }
    let expected: [u8; 32] = expected.finalize().into();

    let size = (CHUNK * CHUNKS) as u64;
    let stored = files.put("big", generated, size).await?;
    assert_eq!(stored.size, size);
    assert_eq!(stored.sha256, expected);

    let mut read = files.read("big", None).await?.expect("stored");
    let (mut read_size, mut hasher) = (0u64, Sha256::new());
    while let Some(piece) = read.next().await {
        let piece = piece?;
        read_size += piece.len() as u64;
        hasher.update(&piece);
    }
    assert_eq!(read_size, size);
    assert_eq!(<[u8; 32]>::from(hasher.finalize()), expected);

    // A range across a chunk boundary, deep in the file.
    let start = (CHUNK * 700 - 3) as u64;
    let part = files
        .read("big", Some(start..start + 6))
        .await?
        .expect("stored");
    assert_eq!(
        collect(part).await?,
        [
            699 % 251,
            699 % 251,
            699 % 251,
            700 % 251,
            700 % 251,
            700 % 251
        ]
        .map(|b| b as u8)
    );
    assert_holds(dir.path(), &["big"])?;
    Ok(())
}
