//! The HTTP API: Convex's `/api/query`, `/api/mutation`, `/api/action`,
//! with CORS for the browsers the config allows, and the admin API (deploy,
//! functions, environment variables, service keys, metrics, the audit
//! log), which answers no browser.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine as _;
use capstan_host::FunctionKind;
use capstan_protocol::http::{
    DeployRequest, FunctionRequest, FunctionResponse, Health, NewServiceKey, NewServiceKeyRequest,
    SetEnvironmentVariable,
};
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::Instrument as _;

use crate::app::{App, Caller, FunctionResult, public_result};
use crate::arguments::call_arguments;
use crate::audit::AuditLog;
use crate::client_ip::TrustedProxies;
use crate::credentials::Credentials;
use crate::deployment::AppConfig;
use crate::error::Error;
use crate::limits::{HttpLimits, ServerLimits};
use crate::metrics::Metrics;
use crate::rate_limit::Limiters;
use capstan_protocol::ErrorCode;

#[derive(Clone)]
pub struct HttpState {
    pub app: App,
    pub credentials: Credentials,
    pub limits: ServerLimits,
    pub http: HttpLimits,
    pub metrics: Metrics,
    /// Bytes of request bodies being read, server-wide, in KiB.
    pub body_budget: Arc<Semaphore>,
    /// Sets the metrics' gauges from their owners, before a scrape.
    pub scrape: Arc<dyn Fn(&Metrics) + Send + Sync>,
    pub limiters: Arc<Limiters>,
    pub trusted: TrustedProxies,
    pub audit: Arc<AuditLog>,
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpState").finish_non_exhaustive()
    }
}

/// An origin as a header value; the error says what is wrong with it.
pub fn origin_header(origin: &str) -> Result<HeaderValue, String> {
    let host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    let valid =
        host.is_some_and(|host| !host.is_empty() && !host.contains(['/', ' ', '?', '#', '*']));
    if !valid {
        return Err(format!(
            "allowed_origins: {origin:?} is not an origin such as \"https://app.example.com\""
        ));
    }
    HeaderValue::from_str(origin).map_err(|_| format!("allowed_origins: {origin:?} is not valid"))
}

/// CORS for the function API: the allowed origins (any, when none are
/// listed), never with credentials; the headers Convex clients send.
pub(crate) fn cors(http: &HttpLimits) -> CorsLayer {
    let origins = if http.allowed_origins.is_empty() {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            http.allowed_origins
                .iter()
                .filter_map(|origin| origin_header(origin).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(origins)
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("convex-client"),
        ])
        .allow_credentials(false)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .max_age(std::time::Duration::from_secs(86_400))
}

pub fn router(state: HttpState, sync: crate::ws::SyncState) -> Router {
    let sockets = Router::new()
        .route("/api/{client_version}/sync", get(crate::ws::sync))
        // The client appends `/api/...` to the address as given, so an
        // address ending in `/` asks for `//api/...`.
        .route("//api/{client_version}/sync", get(crate::ws::sync))
        .with_state(sync);
    let public = Router::new()
        .route("/health", get(health))
        .route("/api/query", post(query))
        .route("/api/mutation", post(mutation))
        .route("/api/action", post(action))
        .layer(DefaultBodyLimit::disable())
        .layer(cors(&state.http))
        .with_state(state.clone());
    Router::new()
        .route("/metrics", get(metrics))
        .route("/api/deploy", post(deploy))
        .route("/api/functions", get(functions))
        .route("/api/env", get(list_env))
        .route("/api/env/{name}", put(set_env).delete(unset_env))
        .route("/api/service_keys", get(list_service_keys))
        .route(
            "/api/service_keys/{name}",
            post(create_service_key).delete(revoke_service_key),
        )
        .route("/api/admin_key/rotate", post(rotate_admin_key))
        .route("/api/auth/keys/rotate", post(rotate_auth_keys))
        .route("/api/auth/keys/import", post(import_auth_key))
        .route("/api/audit", get(audit_log))
        // Bodies are read with explicit limits so the error is ours.
        .layer(DefaultBodyLimit::disable())
        .with_state(state.clone())
        .merge(public)
        .merge(crate::platform::routes::router(state.clone()))
        .merge(crate::snapshot::routes::router(state.clone()))
        .merge(crate::auth::routes::router(state.app.clone()).layer(cors(&state.http)))
        .merge(sockets)
}

/// Reads a request body of at most `limit` bytes within `deadline`, with
/// room for it taken from the server's budget for bodies being read (a
/// request that finds none is refused rather than queued).
pub(crate) async fn read_body_within(
    state: &HttpState,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    deadline: std::time::Duration,
) -> Result<Bytes, Error> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(limit)
        .min(limit);
    let kib = u32::try_from(declared.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
    let Ok(_room) = state.body_budget.clone().try_acquire_many_owned(kib) else {
        state.metrics.refused("request_body_budget");
        return Err(Error::new(
            ErrorCode::TooManyConcurrentRequests,
            "the server is reading as many request bodies as it holds; try again",
        ));
    };
    match tokio::time::timeout(deadline, read_body(body, limit, state.limits.body_drain)).await {
        Ok(read) => read,
        Err(_) => {
            state.metrics.refused("body_timeout");
            Err(Error::new(
                ErrorCode::BadRequest,
                format!(
                    "the request body did not arrive within {} s",
                    deadline.as_secs()
                ),
            ))
        }
    }
}

/// The body of an admin request other than a deploy.
async fn read_admin_body(
    state: &HttpState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, Error> {
    let limit = state.limits.max_admin_body;
    read_body_within(state, headers, body, limit, state.http.body_timeout).await
}

/// Reads at most `limit` bytes of `body`; a larger one is read on (at most
/// `drain` bytes more) and dropped, and refused.
async fn read_body(body: Body, limit: usize, drain: usize) -> Result<Bytes, Error> {
    use futures_util::StreamExt as _;
    let unreadable = |e: axum::Error| {
        Error::new(
            ErrorCode::BadRequest,
            format!("cannot read the request body: {e}"),
        )
    };
    let mut stream = body.into_data_stream();
    let mut read = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(unreadable)?;
        if read.len() + chunk.len() > limit {
            let mut drained = read.len() + chunk.len();
            while drained <= limit.saturating_add(drain) {
                match stream.next().await {
                    Some(Ok(chunk)) => drained += chunk.len(),
                    _ => break,
                }
            }
            return Err(Error::new(
                ErrorCode::PayloadTooLarge,
                format!("the request body is larger than {limit} bytes"),
            ));
        }
        read.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(read))
}

/// The `Authorization` header, if any.
pub(crate) fn authorization(headers: &HeaderMap) -> Result<Option<&str>, Error> {
    headers
        .get(header::AUTHORIZATION)
        .map(|value| {
            value.to_str().map_err(|_| {
                Error::new(
                    ErrorCode::Unauthorized,
                    "the Authorization header is not valid text",
                )
            })
        })
        .transpose()
}

/// Who the request is from (see [`Credentials::from_authorization`]).
async fn caller(state: &HttpState, headers: &HeaderMap) -> Result<Caller, Error> {
    let identity = state
        .credentials
        .from_authorization(authorization(headers)?)
        .await?;
    Ok(Caller::new(identity))
}

/// Admin endpoints take the admin key itself (see
/// [`Credentials::require_admin`]).
pub(crate) async fn require_admin(state: &HttpState, headers: &HeaderMap) -> Result<(), Error> {
    state.credentials.require_admin(authorization(headers)?)
}

/// Where a request comes from.
pub(crate) type Peer = ConnectInfo<SocketAddr>;

async fn query(state: State<HttpState>, peer: Peer, headers: HeaderMap, body: Body) -> Response {
    function_call(state, peer, headers, body, FunctionKind::Query).await
}

async fn mutation(state: State<HttpState>, peer: Peer, headers: HeaderMap, body: Body) -> Response {
    function_call(state, peer, headers, body, FunctionKind::Mutation).await
}

async fn action(state: State<HttpState>, peer: Peer, headers: HeaderMap, body: Body) -> Response {
    function_call(state, peer, headers, body, FunctionKind::Action).await
}

async fn function_call(
    State(state): State<HttpState>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    body: Body,
    kind: FunctionKind,
) -> Response {
    let caller = match caller(&state, &headers).await {
        Ok(caller) => caller,
        Err(error) => return error.into_response(),
    };
    let client = state.trusted.client(peer, &headers);
    let keys = crate::rate_limit::keys(client, &caller.identity);
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    if let Err(wait) = state.limiters.calls.take(&keys) {
        state.metrics.refused("call_rate");
        return crate::rate_limit::refusal("calls from this client", wait);
    }
    match try_run_call(&state, &headers, body, kind, caller.from(client)).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn try_run_call(
    state: &HttpState,
    headers: &HeaderMap,
    body: Body,
    kind: FunctionKind,
    caller: Caller,
) -> Result<Response, Error> {
    let bytes = read_body_within(
        state,
        headers,
        body,
        state.limits.max_request_body,
        state.http.body_timeout,
    )
    .await?;
    let request: FunctionRequest = serde_json::from_slice(&bytes).map_err(|e| {
        Error::new(
            ErrorCode::BadRequest,
            format!("the request body is not valid JSON of the form {{\"path\", \"args\"}}: {e}"),
        )
    })?;
    let args = call_arguments(request.args)?;
    let span = tracing::info_span!("call", function = %request.path, %kind);
    let result = state
        .app
        .call(Some(kind), &request.path, args, caller)
        .instrument(span)
        .await?;
    Ok(function_response(result))
}

fn function_response(result: FunctionResult) -> Response {
    let body = FunctionResponse {
        result: public_result(result.result),
        log_lines: result.log_lines,
    };
    (StatusCode::OK, axum::Json(body)).into_response()
}

async fn health(State(state): State<HttpState>) -> Response {
    axum::Json(Health {
        status: "ok".into(),
        deployment: state.app.deployment().map(|d| d.id.clone()),
        components: state.app.component_stats(),
    })
    .into_response()
}

/// Records an admin action in the audit log with the client's address
/// and how it ended, and passes its result on.
fn audited<T>(
    state: &HttpState,
    peer: SocketAddr,
    headers: &HeaderMap,
    action: &str,
    target: Option<&str>,
    result: Result<T, Error>,
) -> Result<T, Error> {
    let source = state.trusted.client(peer, headers).to_string();
    let outcome = match &result {
        Ok(_) => "ok".to_owned(),
        Err(error) => format!("failed: {}", error.code()),
    };
    state.audit.record(action, target, &source, &outcome);
    result
}

async fn deploy(
    State(state): State<HttpState>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    require_admin(&state, &headers).await?;
    let result = run_deploy(&state, &headers, body).await;
    let target = result.as_ref().ok().map(|s| s.deployment.clone());
    let summary = audited(&state, peer, &headers, "deploy", target.as_deref(), result)?;
    Ok(axum::Json(summary).into_response())
}

async fn run_deploy(
    state: &HttpState,
    headers: &HeaderMap,
    body: Body,
) -> Result<capstan_protocol::http::DeploySummary, Error> {
    let bytes = read_body_within(
        state,
        headers,
        body,
        state.limits.max_deploy_body,
        state.http.body_timeout * 4,
    )
    .await?;
    let request: DeployRequest<AppConfig> = serde_json::from_slice(&bytes).map_err(|e| {
        Error::new(
            ErrorCode::BadDeploy,
            format!("the deploy request is invalid: {e}"),
        )
    })?;
    let components = request
        .components
        .iter()
        .enumerate()
        .map(|(i, text)| {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| {
                    Error::new(
                        ErrorCode::BadDeploy,
                        format!("component {i} is not valid base64: {e}"),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    state.app.deploy(components, request.config).await
}

/// The Prometheus text exposition; the admin key is the scraper's bearer
/// token.
async fn metrics(State(state): State<HttpState>, headers: HeaderMap) -> Result<Response, Error> {
    require_admin(&state, &headers).await?;
    (state.scrape)(&state.metrics);
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response())
}

async fn functions(State(state): State<HttpState>, headers: HeaderMap) -> Result<Response, Error> {
    require_admin(&state, &headers).await?;
    let list: Vec<_> = state
        .app
        .deployment()
        .map(|d| {
            let mut list: Vec<_> = d.functions().cloned().collect();
            // Built-in auth's functions are the app's too.
            if d.config.auth.built_in.is_some() {
                list.extend(crate::auth::functions());
            }
            list
        })
        .unwrap_or_default();
    Ok(axum::Json(list).into_response())
}

async fn list_env(State(state): State<HttpState>, headers: HeaderMap) -> Result<Response, Error> {
    require_admin(&state, &headers).await?;
    Ok(axum::Json(state.app.environment_variables()).into_response())
}

async fn set_env(
    State(state): State<HttpState>,
    Path(name): Path<String>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    require_admin(&state, &headers).await?;
    let result = run_set_env(&state, &name, &headers, body).await;
    audited(&state, peer, &headers, "env.set", Some(&name), result)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn run_set_env(
    state: &HttpState,
    name: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<(), Error> {
    let bytes = read_admin_body(state, headers, body).await?;
    let request: SetEnvironmentVariable = serde_json::from_slice(&bytes).map_err(|e| {
        Error::new(
            ErrorCode::BadRequest,
            format!("expected {{\"value\": \"…\"}}: {e}"),
        )
    })?;
    state
        .app
        .set_environment_variable(name, Some(request.value))
        .await
}

async fn unset_env(
    State(state): State<HttpState>,
    Path(name): Path<String>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
) -> Result<Response, Error> {
    require_admin(&state, &headers).await?;
    let result = state.app.set_environment_variable(&name, None).await;
    audited(&state, peer, &headers, "env.unset", Some(&name), result)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_service_keys(
    State(state): State<HttpState>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    require_admin(&state, &headers).await?;
    Ok(axum::Json(state.credentials.service_keys.list()).into_response())
}

/// Answers the new key once; only its digest is kept.
async fn create_service_key(
    State(state): State<HttpState>,
    Path(name): Path<String>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    require_admin(&state, &headers).await?;
    let result = run_create_service_key(&state, &name, &headers, body).await;
    let key = audited(
        &state,
        peer,
        &headers,
        "service_key.create",
        Some(&name),
        result,
    )?;
    Ok(axum::Json(NewServiceKey { name, key }).into_response())
}

/// The new key; the body may set `{"expiresInSeconds": n}`.
async fn run_create_service_key(
    state: &HttpState,
    name: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<String, Error> {
    let bytes = read_admin_body(state, headers, body).await?;
    let request: NewServiceKeyRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        NewServiceKeyRequest::default()
    } else {
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::new(
                ErrorCode::BadRequest,
                format!("expected nothing or {{\"expiresInSeconds\": n}}: {e}"),
            )
        })?
    };
    let expires_in = request
        .expires_in_seconds
        .map(std::time::Duration::from_secs);
    state.credentials.service_keys.create(name, expires_in)
}

async fn revoke_service_key(
    State(state): State<HttpState>,
    Path(name): Path<String>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
) -> Result<Response, Error> {
    require_admin(&state, &headers).await?;
    let result = state.credentials.service_keys.revoke(&name);
    audited(
        &state,
        peer,
        &headers,
        "service_key.revoke",
        Some(&name),
        result,
    )?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Replaces the admin key: the new one is answered once, the old one
/// stops working at once.
async fn rotate_admin_key(
    State(state): State<HttpState>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
) -> Result<Response, Error> {
    require_admin(&state, &headers).await?;
    let result = state.credentials.admin_key.rotate();
    let key = audited(&state, peer, &headers, "admin_key.rotate", None, result)?;
    Ok(axum::Json(serde_json::json!({ "adminKey": key })).into_response())
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RotateAuthKeys {
    /// `RS256` (default), `ES256` or `EdDSA`.
    algorithm: Option<String>,
}

/// A new signing key for built-in auth; the old one stays published until
/// its tokens expire.
async fn rotate_auth_keys(
    State(state): State<HttpState>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    require_admin(&state, &headers).await?;
    let bytes = read_admin_body(&state, &headers, body).await?;
    let request: RotateAuthKeys = if bytes.is_empty() {
        RotateAuthKeys::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::new(ErrorCode::BadRequest, format!("invalid request: {e}")))?
    };
    let algorithm = match request.algorithm.as_deref() {
        None => capstan_auth::Algorithm::Rs256,
        Some(name) => capstan_auth::Algorithm::parse(name).ok_or_else(|| {
            Error::new(
                ErrorCode::BadRequest,
                format!("algorithm {name:?}: use RS256, ES256 or EdDSA"),
            )
        })?,
    };
    let result = state.app.sign_in().rotate_keys(algorithm);
    let kid = audited(&state, peer, &headers, "auth_keys.rotate", None, result)?;
    Ok(axum::Json(serde_json::json!({ "kid": kid })).into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ImportAuthKey {
    /// Convex Auth's `JWT_PRIVATE_KEY`.
    jwt_private_key: String,
}

/// Makes Convex Auth's signing key the current one, so an app moving over
/// keeps the same JWKS.
async fn import_auth_key(
    State(state): State<HttpState>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    require_admin(&state, &headers).await?;
    let bytes = read_admin_body(&state, &headers, body).await?;
    let request: ImportAuthKey = serde_json::from_slice(&bytes).map_err(|_| {
        // The body holds a private key: the error does not quote it.
        Error::new(
            ErrorCode::BadRequest,
            "the body must be {\"jwtPrivateKey\": \"-----BEGIN PRIVATE KEY----- …\"}",
        )
    })?;
    let result = state.app.sign_in().import_key(&request.jwt_private_key);
    let kid = audited(&state, peer, &headers, "auth_keys.import", None, result)?;
    Ok(axum::Json(serde_json::json!({ "kid": kid })).into_response())
}

/// The newest admin actions: `?limit=n` (default 100, at most 10 000).
async fn audit_log(
    State(state): State<HttpState>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<AuditQuery>,
) -> Result<Response, Error> {
    require_admin(&state, &headers).await?;
    let limit = query.limit.unwrap_or(100).min(10_000);
    Ok(axum::Json(state.audit.read(limit)?).into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    limit: Option<usize>,
}
