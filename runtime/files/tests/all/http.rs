//! `serve` behind a real axum server on 127.0.0.1:0, spoken to over TCP, so
//! hyper's handling of lengths, HEAD and 304 is part of what is tested.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use capstan_files::{EntityTag, FileBackend, FileMeta, LocalFiles, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::body;

struct App {
    files: LocalFiles,
    meta: FileMeta,
}

async fn download(State(app): State<Arc<App>>, method: Method, headers: HeaderMap) -> Response {
    match serve(
        &app.files,
        "file",
        &app.meta,
        &headers,
        method == Method::HEAD,
    )
    .await
    {
        Ok(Some(response)) => response,
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Sends one HTTP/1.1 request and returns the whole raw response.
async fn raw(addr: std::net::SocketAddr, request: &str) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    Ok(String::from_utf8(response)?)
}

#[tokio::test]
async fn downloads_over_http_carry_their_lengths_and_bodies() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let files = LocalFiles::open(dir.path())?;
    let stored = files.put("file", body([&b"0123456789"[..]]), 1024).await?;
    let meta = FileMeta {
        size: stored.size,
        sha256: stored.sha256,
        content_type: Some("text/plain".into()),
    };
    let etag = EntityTag::from_sha256(&stored.sha256).to_string();
    let app = Router::new()
        .route("/file", axum::routing::get(download))
        .with_state(Arc::new(App { files, meta }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    // Ended with the test's runtime.
    tokio::spawn(async move { axum::serve(listener, app).await });

    let get = raw(
        addr,
        "GET /file HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await?;
    assert!(get.starts_with("HTTP/1.1 200 OK\r\n"), "{get}");
    assert!(get.contains("\r\ncontent-length: 10\r\n"), "{get}");
    assert!(get.ends_with("\r\n\r\n0123456789"), "{get}");

    let range = raw(
        addr,
        "GET /file HTTP/1.1\r\nHost: t\r\nRange: bytes=-4\r\nConnection: close\r\n\r\n",
    )
    .await?;
    assert!(
        range.starts_with("HTTP/1.1 206 Partial Content\r\n"),
        "{range}"
    );
    assert!(
        range.contains("\r\ncontent-range: bytes 6-9/10\r\n"),
        "{range}"
    );
    assert!(range.contains("\r\ncontent-length: 4\r\n"), "{range}");
    assert!(range.ends_with("\r\n\r\n6789"), "{range}");

    let head = raw(
        addr,
        "HEAD /file HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await?;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("\r\ncontent-length: 10\r\n"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "{head}");

    let not_modified = raw(
        addr,
        &format!(
            "GET /file HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n"
        ),
    )
    .await?;
    assert!(
        not_modified.starts_with("HTTP/1.1 304 Not Modified\r\n"),
        "{not_modified}"
    );
    assert!(
        not_modified.contains(&format!("\r\netag: {etag}\r\n")),
        "{not_modified}"
    );
    assert!(not_modified.ends_with("\r\n\r\n"), "{not_modified}");
    Ok(())
}
