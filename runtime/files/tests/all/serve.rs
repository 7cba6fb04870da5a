use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use capstan_files::{EntityTag, FileBackend, FileMeta, LocalFiles, serve};
use tempfile::TempDir;

use crate::body;

const CONTENT: &[u8] = b"0123456789";

/// A store holding `CONTENT` under "file", and its record.
struct Fixture {
    _dir: TempDir,
    files: LocalFiles,
    meta: FileMeta,
}

impl Fixture {
    async fn new(content: &'static [u8], content_type: Option<&str>) -> anyhow::Result<Fixture> {
        let dir = tempfile::tempdir()?;
        let files = LocalFiles::open(dir.path())?;
        let stored = files.put("file", body([content]), 1024).await?;
        Ok(Fixture {
            _dir: dir,
            files,
            meta: FileMeta {
                size: stored.size,
                sha256: stored.sha256,
                content_type: content_type.map(str::to_owned),
            },
        })
    }

    fn etag(&self) -> String {
        EntityTag::from_sha256(&self.meta.sha256).to_string()
    }

    async fn get(&self, headers: &[(header::HeaderName, &str)]) -> anyhow::Result<Answer> {
        self.request(headers, false).await
    }

    async fn head(&self, headers: &[(header::HeaderName, &str)]) -> anyhow::Result<Answer> {
        self.request(headers, true).await
    }

    async fn request(
        &self,
        headers: &[(header::HeaderName, &str)],
        head: bool,
    ) -> anyhow::Result<Answer> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(name.clone(), HeaderValue::from_str(value)?);
        }
        let response = serve(&self.files, "file", &self.meta, &map, head)
            .await?
            .expect("the file is stored");
        Answer::read(response).await
    }
}

/// A response with its body read.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    async fn read(response: Response) -> anyhow::Result<Answer> {
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await?.to_vec();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[tokio::test]
async fn a_plain_get_is_the_whole_file_with_every_header() -> anyhow::Result<()> {
    let fixture = Fixture::new(CONTENT, Some("text/plain; charset=utf-8")).await?;
    let answer = fixture.get(&[]).await?;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, CONTENT);
    assert_eq!(answer.header(header::CONTENT_LENGTH), Some("10"));
    assert_eq!(
        answer.header(header::CONTENT_TYPE),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(answer.header(header::ACCEPT_RANGES), Some("bytes"));
    assert_eq!(
        answer.header(header::CACHE_CONTROL),
        Some("private, max-age=86400")
    );
    assert_eq!(
        answer.header(header::X_CONTENT_TYPE_OPTIONS),
        Some("nosniff")
    );
    assert_eq!(answer.header(header::CONTENT_RANGE), None);
    let etag = answer.header(header::ETAG).expect("an ETag");
    assert_eq!(etag, fixture.etag());
    // The SHA-256, base64url without padding, in quotes.
    assert_eq!(etag.len(), 45);
    assert!(
        etag[1..44]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    Ok(())
}

#[tokio::test]
async fn an_unknown_or_invalid_content_type_is_octet_stream() -> anyhow::Result<()> {
    for content_type in [None, Some("text/html\nX-Evil: 1")] {
        let fixture = Fixture::new(CONTENT, content_type).await?;
        let answer = fixture.get(&[]).await?;
        assert_eq!(
            answer.header(header::CONTENT_TYPE),
            Some("application/octet-stream"),
            "{content_type:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn one_satisfiable_range_is_a_206_with_its_content_range() -> anyhow::Result<()> {
    let fixture = Fixture::new(CONTENT, None).await?;
    for (range, body, content_range) in [
        ("bytes=2-5", &b"2345"[..], "bytes 2-5/10"),
        ("bytes=7-", b"789", "bytes 7-9/10"),
        ("bytes=-3", b"789", "bytes 7-9/10"),
        ("bytes=8-100", b"89", "bytes 8-9/10"),
        ("bytes=0-", CONTENT, "bytes 0-9/10"),
    ] {
        let answer = fixture.get(&[(header::RANGE, range)]).await?;
        assert_eq!(answer.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(answer.body, body, "{range}");
        assert_eq!(answer.header(header::CONTENT_RANGE), Some(content_range));
        assert_eq!(
            answer.header(header::CONTENT_LENGTH),
            Some(body.len().to_string().as_str())
        );
        assert_eq!(answer.header(header::ETAG), Some(fixture.etag().as_str()));
    }
    Ok(())
}

#[tokio::test]
async fn an_unsatisfiable_range_is_a_416_with_the_size() -> anyhow::Result<()> {
    let fixture = Fixture::new(CONTENT, None).await?;
    for range in ["bytes=10-", "bytes=50-60", "bytes=-0"] {
        let answer = fixture.get(&[(header::RANGE, range)]).await?;
        assert_eq!(answer.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(answer.header(header::CONTENT_RANGE), Some("bytes */10"));
        assert_eq!(answer.header(header::CONTENT_LENGTH), Some("0"));
        assert!(answer.body.is_empty());
    }
    Ok(())
}

#[tokio::test]
async fn any_range_of_an_empty_file_but_a_suffix_is_a_416() -> anyhow::Result<()> {
    let fixture = Fixture::new(b"", None).await?;
    let answer = fixture.get(&[(header::RANGE, "bytes=0-")]).await?;
    assert_eq!(answer.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(answer.header(header::CONTENT_RANGE), Some("bytes */0"));
    let answer = fixture.get(&[(header::RANGE, "bytes=-5")]).await?;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header(header::CONTENT_LENGTH), Some("0"));
    assert!(answer.body.is_empty());
    Ok(())
}

#[tokio::test]
async fn several_or_malformed_ranges_are_the_whole_file() -> anyhow::Result<()> {
    let fixture = Fixture::new(CONTENT, None).await?;
    for range in [
        "bytes=0-1,4-5",
        "bytes=5-2",
        "items=0-1",
        "bytes=x-y",
        "bytes=0-1, 50-60",
    ] {
        let answer = fixture.get(&[(header::RANGE, range)]).await?;
        assert_eq!(answer.status, StatusCode::OK, "{range}");
        assert_eq!(answer.body, CONTENT, "{range}");
        assert_eq!(answer.header(header::CONTENT_RANGE), None, "{range}");
    }
    Ok(())
}

#[tokio::test]
async fn a_matching_if_none_match_is_a_304_without_a_body() -> anyhow::Result<()> {
    let fixture = Fixture::new(CONTENT, None).await?;
    let etag = fixture.etag();
    for if_none_match in [
        etag.clone(),
        format!("W/{etag}"),
        "*".to_owned(),
        format!("\"stale\", {etag}"),
    ] {
        for head in [false, true] {
            // A Range does not turn a 304 into a 206.
            let answer = fixture
                .request(
                    &[
                        (header::IF_NONE_MATCH, &if_none_match),
                        (header::RANGE, "bytes=0-1"),
                    ],
                    head,
                )
                .await?;
            assert_eq!(answer.status, StatusCode::NOT_MODIFIED, "{if_none_match}");
            assert!(answer.body.is_empty());
            assert_eq!(answer.header(header::ETAG), Some(etag.as_str()));
            assert_eq!(
                answer.header(header::CACHE_CONTROL),
                Some("private, max-age=86400")
            );
            assert_eq!(answer.header(header::CONTENT_LENGTH), None);
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_different_if_none_match_is_the_file() -> anyhow::Result<()> {
    let fixture = Fixture::new(CONTENT, None).await?;
    for if_none_match in ["\"stale\"", "W/\"stale\", \"older\"", "garbage"] {
        let answer = fixture
            .get(&[(header::IF_NONE_MATCH, if_none_match)])
            .await?;
        assert_eq!(answer.status, StatusCode::OK, "{if_none_match}");
        assert_eq!(answer.body, CONTENT);
    }
    Ok(())
}

#[tokio::test]
async fn if_range_serves_the_range_only_for_the_current_etag() -> anyhow::Result<()> {
    let fixture = Fixture::new(CONTENT, None).await?;
    let etag = fixture.etag();
    let answer = fixture
        .get(&[(header::RANGE, "bytes=0-1"), (header::IF_RANGE, &etag)])
        .await?;
    assert_eq!(answer.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(answer.body, b"01");

    for if_range in [
        "\"stale\"".to_owned(),
        format!("W/{etag}"),
        "Wed, 21 Oct 2015 07:28:00 GMT".to_owned(),
    ] {
        let answer = fixture
            .get(&[(header::RANGE, "bytes=0-1"), (header::IF_RANGE, &if_range)])
            .await?;
        assert_eq!(answer.status, StatusCode::OK, "{if_range}");
        assert_eq!(answer.body, CONTENT, "{if_range}");
    }
    // An unsatisfiable range under a stale If-Range is the whole file too.
    let answer = fixture
        .get(&[
            (header::RANGE, "bytes=50-"),
            (header::IF_RANGE, "\"stale\""),
        ])
        .await?;
    assert_eq!(answer.status, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn head_has_the_headers_of_a_get_without_a_body() -> anyhow::Result<()> {
    let fixture = Fixture::new(CONTENT, Some("image/png")).await?;
    let get = fixture.get(&[]).await?;
    let head = fixture.head(&[]).await?;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(head.headers, get.headers);
    assert_eq!(head.header(header::CONTENT_LENGTH), Some("10"));

    // Range handling is defined for GET only (RFC 9110 §14.2).
    let head = fixture.head(&[(header::RANGE, "bytes=0-1")]).await?;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header(header::CONTENT_RANGE), None);
    assert_eq!(head.header(header::CONTENT_LENGTH), Some("10"));
    Ok(())
}

#[tokio::test]
async fn a_file_the_backend_lost_is_none_for_every_kind_of_answer() -> anyhow::Result<()> {
    let fixture = Fixture::new(CONTENT, None).await?;
    fixture.files.delete("file").await?;
    let etag = fixture.etag();
    let cases: [(&[(header::HeaderName, &str)], bool); 5] = [
        (&[], false),
        (&[], true),
        (&[(header::RANGE, "bytes=0-1")], false),
        (&[(header::RANGE, "bytes=50-")], false),
        (&[(header::IF_NONE_MATCH, &etag)], false),
    ];
    for (headers, head) in cases {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(name.clone(), HeaderValue::from_str(value)?);
        }
        let answer = serve(&fixture.files, "file", &fixture.meta, &map, head).await?;
        assert!(answer.is_none(), "{headers:?} head={head}");
    }
    Ok(())
}

#[test]
fn serve_is_a_send_future_for_axum_handlers() {
    fn assert_send<T: Send>(_: &T) {}
    let files = LocalFiles::open(tempfile::tempdir().unwrap().path()).unwrap();
    let backend: &dyn FileBackend = &files;
    let meta = FileMeta {
        size: 0,
        sha256: [0; 32],
        content_type: None,
    };
    let headers = HeaderMap::new();
    let future = serve(backend, "file", &meta, &headers, false);
    assert_send(&future);
}
