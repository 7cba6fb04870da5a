//! The HTTP API: Convex's `/api/query`, `/api/mutation`, `/api/action`, and
//! the admin API (deploy, functions, environment variables), with CORS for
//! browsers.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine as _;
use capstan_host::FunctionKind;
use capstan_protocol::http::{
    DeployRequest, FunctionRequest, FunctionResponse, Health, NewServiceKey, SetEnvironmentVariable,
};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use crate::app::{App, Caller, FunctionResult, public_result};
use crate::arguments::call_arguments;
use crate::credentials::Credentials;
use crate::deployment::AppConfig;
use crate::error::Error;
use crate::limits::ServerLimits;
use capstan_protocol::ErrorCode;

#[derive(Clone, Debug)]
pub struct HttpState {
    pub app: App,
    pub credentials: Credentials,
    pub limits: ServerLimits,
}

pub fn router(state: HttpState, sync: crate::ws::SyncState) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_headers(AllowHeaders::mirror_request())
        .allow_credentials(true)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::OPTIONS,
            Method::PATCH,
            Method::DELETE,
            Method::PUT,
        ])
        .max_age(std::time::Duration::from_secs(86_400));
    let sockets = Router::new()
        .route("/api/{client_version}/sync", get(crate::ws::sync))
        // The client appends `/api/...` to the address as given, so an
        // address ending in `/` asks for `//api/...`.
        .route("//api/{client_version}/sync", get(crate::ws::sync))
        .with_state(sync);
    Router::new()
        .route("/health", get(health))
        .route("/api/query", post(query))
        .route("/api/mutation", post(mutation))
        .route("/api/action", post(action))
        .route("/api/deploy", post(deploy))
        .route("/api/functions", get(functions))
        .route("/api/env", get(list_env))
        .route("/api/env/{name}", put(set_env).delete(unset_env))
        .route("/api/service_keys", get(list_service_keys))
        .route(
            "/api/service_keys/{name}",
            post(create_service_key).delete(revoke_service_key),
        )
        // Bodies are read with explicit limits so the error is ours.
        .layer(DefaultBodyLimit::disable())
        .layer(cors)
        .with_state(state)
        .merge(sockets)
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
fn authorization(headers: &HeaderMap) -> Result<Option<&str>, Error> {
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
async fn require_admin(state: &HttpState, headers: &HeaderMap) -> Result<(), Error> {
    state.credentials.require_admin(authorization(headers)?)
}

async fn query(state: State<HttpState>, headers: HeaderMap, body: Body) -> Response {
    function_call(state, headers, body, FunctionKind::Query).await
}

async fn mutation(state: State<HttpState>, headers: HeaderMap, body: Body) -> Response {
    function_call(state, headers, body, FunctionKind::Mutation).await
}

async fn action(state: State<HttpState>, headers: HeaderMap, body: Body) -> Response {
    function_call(state, headers, body, FunctionKind::Action).await
}

async fn function_call(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Body,
    kind: FunctionKind,
) -> Response {
    match try_function_call(&state, &headers, body, kind).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn try_function_call(
    state: &HttpState,
    headers: &HeaderMap,
    body: Body,
    kind: FunctionKind,
) -> Result<Response, Error> {
    let caller = caller(state, headers).await?;
    let bytes = read_body(body, state.limits.max_request_body, state.limits.body_drain).await?;
    let request: FunctionRequest = serde_json::from_slice(&bytes).map_err(|e| {
        Error::new(
            ErrorCode::BadRequest,
            format!("the request body is not valid JSON of the form {{\"path\", \"args\"}}: {e}"),
        )
    })?;
    let args = call_arguments(request.args)?;
    let span = tracing::info_span!("call", function = %request.path);
    let _entered = span.enter();
    let result = state
        .app
        .call(Some(kind), &request.path, args, caller)
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

async fn deploy(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    require_admin(&state, &headers).await?;
    let bytes = read_body(body, state.limits.max_deploy_body, state.limits.body_drain).await?;
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
    let summary = state.app.deploy(components, request.config).await?;
    Ok(axum::Json(summary).into_response())
}

async fn functions(State(state): State<HttpState>, headers: HeaderMap) -> Result<Response, Error> {
    require_admin(&state, &headers).await?;
    let list: Vec<_> = state
        .app
        .deployment()
        .map(|d| d.functions().cloned().collect())
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
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    require_admin(&state, &headers).await?;
    let bytes = read_body(body, state.limits.max_admin_body, state.limits.body_drain).await?;
    let request: SetEnvironmentVariable = serde_json::from_slice(&bytes).map_err(|e| {
        Error::new(
            ErrorCode::BadRequest,
            format!("expected {{\"value\": \"…\"}}: {e}"),
        )
    })?;
    state
        .app
        .set_environment_variable(&name, Some(request.value))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn unset_env(
    State(state): State<HttpState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    require_admin(&state, &headers).await?;
    state.app.set_environment_variable(&name, None).await?;
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
    headers: HeaderMap,
) -> Result<Response, Error> {
    require_admin(&state, &headers).await?;
    let key = state.credentials.service_keys.create(&name)?;
    tracing::info!(%name, "service key created");
    Ok(axum::Json(NewServiceKey { name, key }).into_response())
}

async fn revoke_service_key(
    State(state): State<HttpState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    require_admin(&state, &headers).await?;
    state.credentials.service_keys.revoke(&name)?;
    tracing::info!(%name, "service key revoked");
    Ok(StatusCode::NO_CONTENT.into_response())
}
