//! Admin: `GET /api/export[?includeFileStorage=true]` answers a snapshot
//! ZIP, written to an anonymous temporary file first (a deployment's data
//! may not fit in memory) and streamed from it; `POST /api/import` loads
//! one.

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::error::Error;
use crate::http::HttpState;

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/api/export", get(export))
        .route("/api/import", axum::routing::post(import))
        // The body is written to disk as it comes, bounded here.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExportOptions {
    #[serde(default)]
    include_file_storage: bool,
}

async fn export(
    State(state): State<HttpState>,
    Query(options): Query<ExportOptions>,
    headers: HeaderMap,
) -> Response {
    if let Err(error) = crate::http::require_admin(&state, &headers).await {
        return error.into_response();
    }
    let app = state.app.clone();
    let runtime = tokio::runtime::Handle::current();
    // The ZIP is written synchronously: on the blocking pool.
    let written = tokio::task::spawn_blocking(move || {
        let file = tempfile::tempfile().map_err(|e| e.to_string())?;
        let files = options.include_file_storage.then(|| &app.services().files);
        runtime.block_on(super::export::export(app.store(), files, file))
    })
    .await;
    let (mut file, exported) = match written {
        Ok(Ok(written)) => written,
        Ok(Err(reason)) => {
            return Error::internal(format!("export failed: {reason}")).into_response();
        }
        Err(e) => return Error::internal(format!("export failed: {e}")).into_response(),
    };
    if let Err(e) = std::io::Seek::rewind(&mut file) {
        return Error::internal(format!("export failed: {e}")).into_response();
    }
    tracing::info!(
        ts = exported.ts,
        documents = exported.documents,
        files = exported.files,
        "exported a snapshot"
    );
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(
        tokio::fs::File::from_std(file),
    ));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    if let Ok(disposition) = HeaderValue::from_str(&format!(
        "attachment; filename=\"snapshot-{}.zip\"",
        exported.ts
    )) {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    response
}

/// The largest snapshot an import accepts.
const MAX_IMPORT_BYTES: u64 = 64 << 30;

/// `POST /api/import` with a snapshot ZIP as the body: written to an
/// anonymous temporary file as it arrives, then loaded.
async fn import(State(state): State<HttpState>, headers: HeaderMap, body: Body) -> Response {
    use futures_util::StreamExt as _;
    use std::io::Write as _;
    if let Err(error) = crate::http::require_admin(&state, &headers).await {
        return error.into_response();
    }
    let mut file = match tempfile::tempfile() {
        Ok(file) => file,
        Err(e) => return Error::internal(format!("import failed: {e}")).into_response(),
    };
    let mut size = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                return Error::new(
                    capstan_protocol::ErrorCode::BadRequest,
                    format!("the snapshot was cut short: {e}"),
                )
                .into_response();
            }
        };
        size += chunk.len() as u64;
        if size > MAX_IMPORT_BYTES {
            return Error::new(
                capstan_protocol::ErrorCode::PayloadTooLarge,
                format!("a snapshot is at most {MAX_IMPORT_BYTES} bytes"),
            )
            .into_response();
        }
        if let Err(e) = file.write_all(&chunk) {
            return Error::internal(format!("import failed: {e}")).into_response();
        }
    }
    let app = state.app.clone();
    let runtime = tokio::runtime::Handle::current();
    let loaded = tokio::task::spawn_blocking(move || {
        std::io::Seek::rewind(&mut file).map_err(|e| e.to_string())?;
        super::import::import(app.store(), &app.services().files, &runtime, file)
    })
    .await;
    match loaded {
        Ok(Ok(imported)) => {
            tracing::info!(
                documents = imported.documents,
                files = imported.files,
                "imported a snapshot"
            );
            axum::Json(imported).into_response()
        }
        Ok(Err(reason)) => Error::new(
            capstan_protocol::ErrorCode::BadRequest,
            format!("import failed: {reason}"),
        )
        .into_response(),
        Err(e) => Error::internal(format!("import failed: {e}")).into_response(),
    }
}
