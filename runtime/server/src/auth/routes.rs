//! The issuer's public documents: `GET /.well-known/openid-configuration`
//! and `GET /.well-known/jwks.json`, with Convex Auth's caching headers, so
//! third parties (and Convex-shaped configs) can verify Capstan's tokens.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::app::App;

const CACHE: &str = "public, max-age=15, stale-while-revalidate=15, stale-if-error=86400";

pub fn router(app: App) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/.well-known/jwks.json", get(jwks))
        .with_state(app)
}

fn json(body: serde_json::Value) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, CACHE),
        ],
        body.to_string(),
    )
        .into_response()
}

async fn discovery(State(app): State<App>) -> Response {
    json(app.sign_in().issuer.discovery())
}

async fn jwks(State(app): State<App>) -> Response {
    json(app.sign_in().issuer.keys.jwks())
}
