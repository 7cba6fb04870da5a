//! The platform's HTTP endpoints: HTTP actions under `/http`, file uploads
//! and downloads under `/api/storage`, and the admin listing of scheduled
//! runs and cron jobs (`/api/jobs`).

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use capstan_host::HttpRequest;
use capstan_protocol::{ErrorCode, Value};
use serde::Deserialize;

use super::http_actions::{Resolution, settable};
use super::jobs;
use super::tables::{CRONS, SCHEDULED};
use crate::app::Caller;
use crate::error::Error;
use crate::http::{HttpState, Peer};

/// Where HTTP actions are served.
pub const PREFIX: &str = "/http";

pub fn router(state: HttpState) -> Router {
    // Browsers upload and download files from the app's pages, as they
    // call functions: the same CORS.
    let files = Router::new()
        .route("/api/storage/upload", post(upload))
        .route("/api/storage/{id}", get(download).head(download))
        .layer(crate::http::cors(&state.http));
    Router::new()
        // Each route's own CORS, answered by the action's route.
        .route("/http", any(http_action))
        .route("/http/{*rest}", any(http_action))
        .route("/api/jobs", get(list_jobs))
        .merge(files)
        .with_state(state)
}

#[derive(Deserialize)]
struct Token {
    token: Option<String>,
}

fn now_ms(state: &HttpState) -> f64 {
    state.app.services().now_ms()
}

async fn upload(
    State(state): State<HttpState>,
    Query(token): Query<Token>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let files = &state.app.services().files;
    let token = token.token.unwrap_or_default();
    match files
        .upload(state.app.store(), &token, now_ms(&state), &headers, body)
        .await
    {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn download(
    State(state): State<HttpState>,
    method: Method,
    Path(id): Path<String>,
    Query(token): Query<Token>,
    headers: HeaderMap,
) -> Response {
    let files = &state.app.services().files;
    let token = token.token.unwrap_or_default();
    match files
        .download(
            state.app.store(),
            &id,
            &token,
            &headers,
            method == Method::HEAD,
        )
        .await
    {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn http_action(
    State(state): State<HttpState>,
    ConnectInfo(peer): Peer,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match serve_http_action(&state, peer, method, uri, headers, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn serve_http_action(
    state: &HttpState,
    peer: std::net::SocketAddr,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    let deployment = state.app.deployment().ok_or_else(|| {
        Error::new(
            ErrorCode::NotFound,
            "no app is deployed yet; run `capstan deploy`",
        )
    })?;
    let path = uri.path().strip_prefix(PREFIX).unwrap_or("/");
    let path = if path.is_empty() { "/" } else { path };
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    // A browser's preflight: answered from the route's CORS settings.
    if method == Method::OPTIONS
        && let Some(requested) = headers
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|v| v.to_str().ok())
    {
        return Ok(match deployment.http.resolve(requested, path) {
            Resolution::Found(route) => match &route.cors {
                Some(cors) => cors.preflight(origin, requested).into_response(),
                None => StatusCode::NO_CONTENT.into_response(),
            },
            _ => StatusCode::NOT_FOUND.into_response(),
        });
    }
    let route = match deployment.http.resolve(method.as_str(), path) {
        Resolution::Found(route) => route.clone(),
        Resolution::MethodNotAllowed(allowed) => {
            let mut response = Error::new(
                ErrorCode::BadRequest,
                format!(
                    "{method} is not routed at {path}; it takes {}",
                    allowed.join(", ")
                ),
            )
            .into_response();
            *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            if let Ok(allow) = HeaderValue::from_str(&allowed.join(", ")) {
                response.headers_mut().insert(header::ALLOW, allow);
            }
            return Ok(response);
        }
        Resolution::NotFound => {
            return Err(Error::new(
                ErrorCode::NotFound,
                format!("no HTTP action is routed at {method} {path}"),
            ));
        }
    };
    let limit = state.app.services().max_http_body;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        // Refused before a byte is read.
        return Err(Error::new(
            ErrorCode::PayloadTooLarge,
            format!("the request body is larger than the limit of {limit} bytes"),
        ));
    }
    // A bearer token that verifies gives the caller's identity; one that
    // does not (a webhook's shared secret) leaves the caller anonymous,
    // and the action reads the header itself.
    let identity = state
        .credentials
        .from_authorization(crate::http::authorization(&headers).ok().flatten())
        .await
        .unwrap_or(capstan_protocol::Identity::Anonymous);
    let client = state.trusted.client(peer, &headers);
    let caller = Caller::new(identity).from(client);
    let keys = crate::rate_limit::keys(client, &caller.identity);
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    if let Err(wait) = state.limiters.calls.take(&keys) {
        state.metrics.refused("call_rate");
        return Ok(crate::rate_limit::refusal("calls from this client", wait));
    }
    let body = crate::http::read_body_within(state, &headers, body, limit, state.http.body_timeout)
        .await?;
    let url = format!(
        "{}{}",
        state.app.services().public_url(),
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let request = HttpRequest {
        method: method.as_str().to_owned(),
        url,
        headers: headers
            .iter()
            .filter_map(|(name, value)| {
                Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect(),
        body: body.into(),
    };
    let outcome = state
        .app
        .call_http(route.module.clone(), &route.handler, request, caller)
        .await?;
    let mut response = match outcome.result {
        Ok(answer) => {
            let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
            let mut response = (status, answer.body).into_response();
            let out = response.headers_mut();
            for (name, value) in answer.headers {
                if let (Ok(name), Ok(value)) =
                    (HeaderName::try_from(name), HeaderValue::try_from(value))
                    && settable(&name)
                {
                    out.append(name, value);
                }
            }
            response
        }
        Err(failure) => {
            let failure = failure.into_public();
            let mut body = serde_json::Map::new();
            body.insert("error".into(), failure.message.into());
            if let Some(data) = failure.data
                && let Ok(data) = serde_json::from_str::<serde_json::Value>(data.as_str())
            {
                body.insert("data".into(), data);
            }
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(serde_json::Value::Object(body)),
            )
                .into_response()
        }
    };
    if let Some(cors) = &route.cors {
        cors.response_headers(origin, response.headers_mut());
    }
    Ok(response)
}

/// Admin: recent scheduled runs (newest first) and the cron jobs.
async fn list_jobs(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    if let Err(error) = crate::http::require_admin(&state, &headers).await {
        return error.into_response();
    }
    let mut tx = state.app.store().begin();
    let mut scheduled = Vec::new();
    if tx.catalog().table(SCHEDULED).is_ok() {
        let query = capstan_store::Query::index(SCHEDULED, "by_creation_time")
            .order(capstan_store::Order::Desc);
        match tx.query(&query, Some(200)) {
            Ok(rows) => scheduled = rows,
            Err(e) => return Error::internal(e.to_string()).into_response(),
        }
    }
    let mut crons = Vec::new();
    if tx.catalog().table(CRONS).is_ok() {
        match tx.query(
            &capstan_store::Query::index(CRONS, super::tables::BY_NAME),
            None,
        ) {
            Ok(rows) => crons = rows,
            Err(e) => return Error::internal(e.to_string()).into_response(),
        }
    }
    let describe = |schedule: &str| {
        serde_json::from_str::<super::cron_schedule::Schedule>(schedule)
            .map(|s| s.describe())
            .unwrap_or_else(|_| schedule.to_owned())
    };
    let crons: Vec<serde_json::Value> = crons
        .iter()
        .map(|row| {
            let field = |name: &str| row.fields.get(name).cloned().unwrap_or(Value::Null);
            let last_state = row
                .fields
                .get("lastJob")
                .and_then(Value::as_str)
                .and_then(|id| jobs::get(&mut tx, id).ok().flatten())
                .map(|job| jobs::kind(&job).to_owned());
            serde_json::json!({
                "name": field("name").to_json(),
                "function": field("function").to_json(),
                "schedule": describe(field("schedule").as_str().unwrap_or_default()),
                "lastRun": field("lastRun").to_json(),
                "nextRun": field("nextRun").to_json(),
                "lastState": last_state,
            })
        })
        .collect();
    let scheduled: Vec<serde_json::Value> = scheduled
        .iter()
        .map(|row| serde_json::from_str(&row.to_json_string()).unwrap_or_default())
        .collect();
    axum::Json(serde_json::json!({ "scheduled": scheduled, "crons": crons })).into_response()
}
