//! HTTP actions: the app's routes, resolved for each request under
//! `/http`, with CORS for the routes that allow browsers.
//!
//! `POST https://server/http/webhooks/payment` runs the action routed at
//! `POST /webhooks/payment`. An exact route wins over a prefix, a longer
//! prefix over a shorter one; a path with routes for other methods only is
//! answered 405 with `Allow`.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use capstan_host::Module;
use serde::Deserialize;

/// Which browsers may call a route.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CorsRule {
    pub origins: Vec<String>,
    #[serde(default)]
    pub headers: Vec<String>,
    #[serde(default)]
    pub credentials: bool,
    pub max_age_seconds: Option<u64>,
}

/// One route of a deployment.
#[derive(Clone, Debug)]
pub struct HttpRoute {
    /// `None`: any method.
    pub method: Option<String>,
    pub path: String,
    pub prefix: bool,
    /// The HTTP action, `module:function`.
    pub handler: String,
    pub module: Arc<Module>,
    pub cors: Option<CorsRule>,
}

/// A deployment's routes.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    routes: Vec<HttpRoute>,
}

/// What a request's method and path find.
#[derive(Debug)]
pub enum Resolution<'a> {
    Found(&'a HttpRoute),
    /// The path has routes, for these methods only.
    MethodNotAllowed(Vec<String>),
    NotFound,
}

const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "*",
];

impl Routes {
    /// The routes every module declares, checked: paths start with `/`,
    /// prefixes end with `/`, methods are known, no route is declared twice,
    /// CORS settings are well formed.
    pub fn build(modules: &[Arc<Module>]) -> Result<Routes, String> {
        let mut routes: Vec<HttpRoute> = Vec::new();
        for module in modules {
            for route in module.routes() {
                let method = route.method.to_ascii_uppercase();
                if !METHODS.contains(&method.as_str()) {
                    return Err(format!(
                        "HTTP route {} {}: unknown method",
                        route.method, route.path
                    ));
                }
                if !route.path.starts_with('/')
                    || route.path.contains(['?', '#', ' '])
                    || route.path.len() > 1024
                {
                    return Err(format!(
                        "HTTP route {:?}: a path starts with `/` and has no query, fragment or spaces",
                        route.path
                    ));
                }
                if route.prefix && !route.path.ends_with('/') {
                    return Err(format!(
                        "HTTP route {:?}: a prefix ends with `/` (`/files/*`)",
                        route.path
                    ));
                }
                let method = (method != "*").then_some(method);
                if routes.iter().any(|other| {
                    other.path == route.path
                        && other.prefix == route.prefix
                        && other.method == method
                }) {
                    return Err(format!(
                        "HTTP route {} {}{} is declared twice",
                        method.as_deref().unwrap_or("*"),
                        route.path,
                        if route.prefix { "*" } else { "" }
                    ));
                }
                let cors = route
                    .cors
                    .as_deref()
                    .map(serde_json::from_str::<CorsRule>)
                    .transpose()
                    .map_err(|e| format!("HTTP route {}: bad CORS settings: {e}", route.path))?;
                if let Some(cors) = &cors {
                    if cors.credentials && cors.origins.iter().any(|o| o == "*") {
                        return Err(format!(
                            "HTTP route {}: CORS with credentials needs named origins, not `*`",
                            route.path
                        ));
                    }
                    for origin in cors.origins.iter().filter(|o| *o != "*") {
                        crate::http::origin_header(origin)
                            .map_err(|e| format!("HTTP route {}: {e}", route.path))?;
                    }
                }
                routes.push(HttpRoute {
                    method,
                    path: route.path.clone(),
                    prefix: route.prefix,
                    handler: route.handler.clone(),
                    module: module.clone(),
                    cors,
                });
            }
        }
        Ok(Routes { routes })
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &HttpRoute> {
        self.routes.iter()
    }

    /// The route for `method` at `path` (the path under `/http`).
    pub fn resolve(&self, method: &str, path: &str) -> Resolution<'_> {
        let matching = |exact: bool| {
            self.routes.iter().filter(move |route| {
                if exact {
                    !route.prefix && route.path == path
                } else {
                    route.prefix && path.starts_with(&route.path)
                }
            })
        };
        // HEAD is served by a GET route when there is no HEAD route.
        let fits =
            |route: &HttpRoute, method: &str| route.method.as_deref().is_none_or(|m| m == method);
        let mut allowed = Vec::new();
        for exact in [true, false] {
            let mut candidates: Vec<&HttpRoute> = matching(exact).collect();
            // The longest prefix first.
            candidates.sort_by_key(|route| std::cmp::Reverse(route.path.len()));
            let longest = candidates.first().map(|route| route.path.len());
            let best = candidates
                .into_iter()
                .filter(|route| Some(route.path.len()) == longest)
                .collect::<Vec<_>>();
            if let Some(route) = best.iter().find(|route| fits(route, method)) {
                return Resolution::Found(route);
            }
            if method == "HEAD"
                && let Some(route) = best.iter().find(|route| fits(route, "GET"))
            {
                return Resolution::Found(route);
            }
            if !best.is_empty() {
                allowed.extend(best.iter().filter_map(|route| route.method.clone()));
                break;
            }
        }
        if allowed.is_empty() {
            Resolution::NotFound
        } else {
            allowed.sort();
            allowed.dedup();
            Resolution::MethodNotAllowed(allowed)
        }
    }
}

impl CorsRule {
    /// Whether `origin` may call.
    fn allows(&self, origin: &str) -> bool {
        self.origins
            .iter()
            .any(|allowed| allowed == "*" || allowed == origin)
    }

    /// The headers of a response to a request from `origin`.
    pub fn response_headers(&self, origin: Option<&str>, headers: &mut HeaderMap) {
        let Some(origin) = origin.filter(|origin| self.allows(origin)) else {
            return;
        };
        let value = if self.origins.iter().any(|o| o == "*") && !self.credentials {
            HeaderValue::from_static("*")
        } else {
            match HeaderValue::from_str(origin) {
                Ok(value) => value,
                Err(_) => return,
            }
        };
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        if self.credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }

    /// The answer to a preflight from `origin` for `method`.
    pub fn preflight(&self, origin: Option<&str>, method: &str) -> (StatusCode, HeaderMap) {
        let mut headers = HeaderMap::new();
        self.response_headers(origin, &mut headers);
        if headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
            if let Ok(method) = HeaderValue::from_str(method) {
                headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, method);
            }
            if !self.headers.is_empty()
                && let Ok(allowed) = HeaderValue::from_str(&self.headers.join(", "))
            {
                headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allowed);
            }
            let max_age = self.max_age_seconds.unwrap_or(600).to_string();
            if let Ok(max_age) = HeaderValue::from_str(&max_age) {
                headers.insert(header::ACCESS_CONTROL_MAX_AGE, max_age);
            }
        }
        (StatusCode::NO_CONTENT, headers)
    }
}

/// Response headers an HTTP action may not set: the server frames the
/// response itself.
pub fn settable(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection"
            | "transfer-encoding"
            | "content-length"
            | "keep-alive"
            | "upgrade"
            | "proxy-connection"
            | "te"
            | "trailer"
    )
}
