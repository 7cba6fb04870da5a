//! The issuer's public documents (`/.well-known/openid-configuration` and
//! `/.well-known/jwks.json`, with Convex Auth's caching headers, so third
//! parties can verify Capstan's tokens) and the OAuth round trip's routes
//! (`/api/auth/signin/{provider}`, `/api/auth/callback/{provider}`).

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use capstan_protocol::Identity;

use super::{AuthError, Flow, oauth};
use crate::app::{App, Caller};

const CACHE: &str = "public, max-age=15, stale-while-revalidate=15, stale-if-error=86400";
/// Largest form Apple (or anyone) may POST to the callback.
const MAX_FORM: usize = 64 * 1024;

pub fn router(app: App) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/api/auth/signin/{provider}", get(sign_in))
        .route(
            "/api/auth/callback/{provider}",
            get(callback_get).post(callback_post),
        )
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

/// Runs `f` with a flow for the deployment's built-in auth, or answers 404.
async fn with_flow<F>(app: &App, f: F) -> Response
where
    F: AsyncFnOnce(&Flow<'_>) -> Response,
{
    let Some(deployment) = app.deployment() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(config) = deployment.config.auth.built_in.as_ref() else {
        return (StatusCode::NOT_FOUND, "built-in auth is not on").into_response();
    };
    let environment = app.environment();
    let caller = Caller::new(Identity::Anonymous);
    let flow = Flow {
        auth: app.sign_in(),
        app,
        config,
        environment: &environment,
        caller: &caller,
    };
    f(&flow).await
}

fn refusal(error: AuthError) -> Response {
    match error {
        AuthError::Refused { message, .. } => (StatusCode::BAD_REQUEST, message).into_response(),
        other => {
            tracing::warn!(target: "capstan::auth", error = ?other, "OAuth sign-in failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn redirect(location: &str, cookie: Option<String>) -> Response {
    let mut response = (
        StatusCode::FOUND,
        [
            (header::LOCATION, location.to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response();
    if let Some(cookie) = cookie.and_then(|c| c.parse().ok()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// The state cookie: readable by the server only, for the round trip; sent
/// on the provider's cross-site POST (Apple) only over https.
fn state_cookie(flow: &Flow<'_>, provider: &str, value: &str, max_age: u32) -> String {
    let secure = flow.auth.issuer.url.starts_with("https://");
    let same_site = if secure { "None; Secure" } else { "Lax" };
    format!(
        "{}={value}; Path=/api/auth/callback/{provider}; HttpOnly; SameSite={same_site}; Max-Age={max_age}",
        oauth::state_cookie(provider)
    )
}

async fn sign_in(
    State(app): State<App>,
    Path(provider): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    with_flow(&app, async |flow: &Flow<'_>| {
        let Some(verifier) = query.get("code") else {
            return (StatusCode::BAD_REQUEST, "Missing sign-in verifier").into_response();
        };
        match oauth::authorization(flow, &provider, verifier).await {
            Ok((url, state)) => redirect(&url, Some(state_cookie(flow, &provider, &state, 900))),
            Err(error) => refusal(error),
        }
    })
    .await
}

async fn callback_get(
    State(app): State<App>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    callback(app, provider, headers, query).await
}

/// Apple's `form_post`: the fields come in the body.
async fn callback_post(
    State(app): State<App>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    Query(mut query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if form && body.len() <= MAX_FORM {
        for (name, value) in url::form_urlencoded::parse(&body) {
            query.insert(name.into_owned(), value.into_owned());
        }
    }
    callback(app, provider, headers, query).await
}

async fn callback(
    app: App,
    provider: String,
    headers: HeaderMap,
    query: HashMap<String, String>,
) -> Response {
    let name = oauth::state_cookie(&provider);
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned());
    with_flow(&app, async |flow: &Flow<'_>| {
        let clear = state_cookie(flow, &provider, "", 0);
        match oauth::callback(flow, &provider, &query, cookie.as_deref()).await {
            Ok(location) => redirect(&location, Some(clear)),
            Err(error) => {
                tracing::info!(target: "capstan::auth", %provider, error = ?error, "OAuth callback refused");
                // Back to the app, without a code (as Convex Auth does).
                match super::redirects::site_url(flow) {
                    Ok(site) => redirect(&site, Some(clear)),
                    Err(_) => refusal(error),
                }
            }
        }
    })
    .await
}
