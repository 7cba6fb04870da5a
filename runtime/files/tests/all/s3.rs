//! `S3Files` against a real S3-compatible server on loopback: moto's server
//! (PyPI `moto[server]`, installed by `./tests/run` into
//! `target/moto-venv`, or named by `CAPSTAN_MOTO_SERVER`).

use bytes::Bytes;
use capstan_files::{ByteStream, Error, FileBackend, S3Config, S3Files};
use capstan_test_support::S3Server;

use crate::{body, collect, sha256};

fn bucket(server: &S3Server, prefix: &str) -> anyhow::Result<S3Files> {
    Ok(S3Files::new(&S3Config {
        bucket: server.bucket.clone(),
        region: "us-east-1".into(),
        endpoint: Some(server.endpoint.clone()),
        prefix: prefix.into(),
        access_key_id: "testing".into(),
        secret_access_key: "testing".into(),
        allow_http: true,
    })?)
}

#[tokio::test]
async fn s3_puts_reads_ranges_lists_and_deletes_whole_objects_only() -> anyhow::Result<()> {
    let server = S3Server::start("capstan-files");
    let files = bucket(&server, "files")?;
    let other = bucket(&server, "elsewhere")?;

    let stored = files
        .put("hello", body([&b"hello, "[..], b"world"]), 1 << 20)
        .await?;
    assert_eq!(stored.size, 12);
    assert_eq!(stored.sha256, sha256(b"hello, world"));
    let read = files.read("hello", None).await?.expect("stored");
    assert_eq!(collect(read).await?, b"hello, world");
    let part = files.read("hello", Some(7..12)).await?.expect("stored");
    assert_eq!(collect(part).await?, b"world");
    assert!(files.exists("hello").await?);
    assert!(files.read("absent", None).await?.is_none());

    // 20 MiB in many chunks: several parts of a multipart upload.
    let big: Vec<u8> = (0..20u32 << 20).map(|n| (n % 251) as u8).collect();
    let chunks: Vec<Bytes> = big.chunks(256 << 10).map(Bytes::copy_from_slice).collect();
    let stream: ByteStream = Box::pin(futures_util::stream::iter(chunks.into_iter().map(Ok)));
    let stored = files.put("big", stream, 64 << 20).await?;
    assert_eq!(stored.sha256, sha256(&big));
    assert_eq!(
        collect(files.read("big", None).await?.expect("stored")).await?,
        big
    );

    // Over the limit, or cut short: nothing appears.
    let over = files
        .put("over", body([&[0u8; 600][..], &[0u8; 600][..]]), 1000)
        .await;
    assert!(
        matches!(over, Err(Error::TooLarge { limit: 1000 })),
        "{over:?}"
    );
    let failing: ByteStream = Box::pin(futures_util::stream::iter([
        Ok(Bytes::from_static(b"part")),
        Err(std::io::Error::other("the client went away")),
    ]));
    assert!(matches!(
        files.put("cut", failing, 1 << 20).await,
        Err(Error::Body(_))
    ));
    assert!(!files.exists("over").await? && !files.exists("cut").await?);

    let mut listed: Vec<String> = files
        .list()
        .await?
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    listed.sort();
    assert_eq!(listed, ["big", "hello"]);
    assert!(
        other.list().await?.is_empty(),
        "prefixes keep deployments apart"
    );

    files.delete("hello").await?;
    files.delete("hello").await?;
    assert!(files.read("hello", None).await?.is_none());
    assert!(matches!(
        files.put("../x", body([&b"x"[..]]), 10).await,
        Err(Error::InvalidKey(_))
    ));
    Ok(())
}
