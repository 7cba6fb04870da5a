//! HTTP actions and their routes: [`HttpRouter`], given to
//! [`app!`](crate::app)'s `http:`.

use std::time::Duration;

use crate::http::{HttpRequest, HttpResult, Method};

/// An HTTP action as its attribute describes it.
#[derive(Clone, Copy, Debug)]
pub struct HttpActionDefinition {
    /// `module_path!()` where the function is defined.
    pub module: &'static str,
    pub name: &'static str,
    /// Runs the action on a request.
    pub invoke: fn(HttpRequest) -> HttpResult,
}

impl HttpActionDefinition {
    /// The Convex path, `module:function`.
    pub fn path(&self) -> String {
        crate::function::path(self.module, self.name)
    }
}

/// A `#[capstan::http_action]`: named as a type in
/// [`HttpRouter::route`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an HTTP action",
    note = "mark it `#[capstan::http_action]`: `fn name(ctx: &mut ActionCtx, request: HttpRequest) -> capstan::HttpResult`"
)]
pub trait HttpActionFunction: 'static {
    fn definition() -> HttpActionDefinition;
}

/// Which browsers may call a route (CORS): the server answers preflight
/// `OPTIONS` requests and adds the headers to the route's responses.
///
/// ```
/// use capstan::Cors;
/// let cors = Cors::origins(["https://app.example.com"]).allow_headers(["content-type"]);
/// # let _ = cors;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cors {
    origins: Vec<String>,
    headers: Vec<String>,
    credentials: bool,
    max_age: Option<Duration>,
}

impl Cors {
    /// Any origin (`*`); no credentials.
    pub fn any_origin() -> Cors {
        Cors {
            origins: vec!["*".into()],
            ..Cors::default()
        }
    }

    /// These origins only (`https://app.example.com`).
    pub fn origins<S: Into<String>>(origins: impl IntoIterator<Item = S>) -> Cors {
        Cors {
            origins: origins.into_iter().map(Into::into).collect(),
            ..Cors::default()
        }
    }

    /// Request headers browsers may send beyond the simple ones.
    pub fn allow_headers<S: Into<String>>(mut self, headers: impl IntoIterator<Item = S>) -> Cors {
        self.headers = headers.into_iter().map(Into::into).collect();
        self
    }

    /// Browsers may send cookies and credentials (named origins only).
    pub fn allow_credentials(mut self) -> Cors {
        self.credentials = true;
        self
    }

    /// How long browsers may keep a preflight's answer.
    pub fn max_age(mut self, max_age: Duration) -> Cors {
        self.max_age = Some(max_age);
        self
    }

    fn to_json(&self) -> String {
        let mut object = serde_json::Map::new();
        object.insert("origins".into(), self.origins.clone().into());
        object.insert("headers".into(), self.headers.clone().into());
        object.insert("credentials".into(), self.credentials.into());
        if let Some(max_age) = self.max_age {
            object.insert("maxAgeSeconds".into(), max_age.as_secs().into());
        }
        serde_json::Value::Object(object).to_string()
    }
}

/// One route.
#[derive(Clone, Debug)]
struct Route {
    /// A method, or `*` for any.
    method: &'static str,
    path: String,
    prefix: bool,
    handler: HttpActionDefinition,
    cors: Option<Cors>,
}

/// The app's HTTP routes, each to an HTTP action. The server serves them
/// under `/http` of its origin: `POST /webhooks/payment` is
/// `https://your-server/http/webhooks/payment`. A path ending in `/*` is a
/// prefix: `/files/*` serves `/files/a` and `/files/a/b`. An exact route
/// wins over a prefix, and a longer prefix over a shorter one.
///
/// ```ignore
/// fn http() -> capstan::HttpRouter {
///     capstan::HttpRouter::new()
///         .post::<payments::webhook>("/webhooks/payment")
///         .get::<files::download>("/files/*")
///         .post::<files::upload>("/upload")
///         .cors(capstan::Cors::origins(["https://app.example.com"]))
/// }
/// capstan::app! { tables: [...], functions: [...], http: http() }
/// ```
#[derive(Clone, Debug, Default)]
pub struct HttpRouter {
    routes: Vec<Route>,
}

impl HttpRouter {
    pub fn new() -> HttpRouter {
        HttpRouter::default()
    }

    /// Routes `method` requests to `path` (or under it, for `/…/*`) to `F`.
    pub fn route<F: HttpActionFunction>(self, method: Method, path: &str) -> HttpRouter {
        self.add::<F>(method.as_str(), path)
    }

    /// Routes requests of any method.
    pub fn any<F: HttpActionFunction>(self, path: &str) -> HttpRouter {
        self.add::<F>("*", path)
    }

    pub fn get<F: HttpActionFunction>(self, path: &str) -> HttpRouter {
        self.route::<F>(Method::Get, path)
    }

    pub fn post<F: HttpActionFunction>(self, path: &str) -> HttpRouter {
        self.route::<F>(Method::Post, path)
    }

    pub fn put<F: HttpActionFunction>(self, path: &str) -> HttpRouter {
        self.route::<F>(Method::Put, path)
    }

    pub fn patch<F: HttpActionFunction>(self, path: &str) -> HttpRouter {
        self.route::<F>(Method::Patch, path)
    }

    pub fn delete<F: HttpActionFunction>(self, path: &str) -> HttpRouter {
        self.route::<F>(Method::Delete, path)
    }

    /// Lets browsers call the route added last.
    pub fn cors(mut self, cors: Cors) -> HttpRouter {
        if let Some(route) = self.routes.last_mut() {
            route.cors = Some(cors);
        }
        self
    }

    fn add<F: HttpActionFunction>(mut self, method: &'static str, path: &str) -> HttpRouter {
        let (path, prefix) = match path.strip_suffix('*') {
            Some(prefix) => (prefix.to_owned(), true),
            None => (path.to_owned(), false),
        };
        self.routes.push(Route {
            method,
            path,
            prefix,
            handler: F::definition(),
            cors: None,
        });
        self
    }

    /// The HTTP action at `path`.
    #[doc(hidden)]
    pub fn handler(&self, path: &str) -> Option<&HttpActionDefinition> {
        self.routes
            .iter()
            .map(|route| &route.handler)
            .find(|handler| handler.path() == path)
    }

    #[doc(hidden)]
    pub fn specs(&self) -> Vec<crate::bindings::capstan::runtime::http_types::Route> {
        self.routes
            .iter()
            .map(
                |route| crate::bindings::capstan::runtime::http_types::Route {
                    method: route.method.to_owned(),
                    path: route.path.clone(),
                    prefix: route.prefix,
                    handler: route.handler.path(),
                    cors: route.cors.as_ref().map(Cors::to_json),
                },
            )
            .collect()
    }
}
