//! JSON API handlers, one file per resource.

pub mod audit;
pub mod directory;
pub mod events;
pub mod filters;
pub mod health;
pub mod logs;
pub mod openapi;
mod openapi_parts;
mod openapi_sources;
pub mod paging;
pub mod sources;
pub mod tokens;
pub mod users;
pub mod webhooks;

use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{handler::Handler, routing::MethodRouter, Json, Router};
use serde_json::json;

use super::{error::ApiError, AppState};

/// The JSON API's routes, each recorded with its method as it is added: what is served and
/// what `operations` reports come from the same calls, so a test can hold the OpenAPI
/// document to every route there is.
#[derive(Default)]
pub struct ApiRoutes {
    pub router: Router<AppState>,
    pub operations: Vec<(Method, String)>,
}

macro_rules! api_method {
    ($($name:ident => $method:ident),* $(,)?) => {$(
        pub fn $name<H, T>(self, path: &str, handler: H) -> Self
        where
            H: Handler<T, AppState>,
            T: 'static,
        {
            self.add(path, Method::$method, axum::routing::$name(handler))
        }
    )*};
}

impl ApiRoutes {
    pub fn new() -> Self {
        Self::default()
    }

    api_method!(get => GET, post => POST, put => PUT, delete => DELETE);

    fn add(mut self, path: &str, method: Method, handler: MethodRouter<AppState>) -> Self {
        self.router = self.router.route(path, handler);
        self.operations.push((method, path.to_owned()));
        self
    }

    pub fn merge(mut self, other: ApiRoutes) -> Self {
        self.router = self.router.merge(other.router);
        self.operations.extend(other.operations);
        self
    }
}

/// Every route of the JSON API (health, metrics and the OpenAPI document included; the
/// pages are not API).
pub fn routes() -> ApiRoutes {
    ApiRoutes::new()
        .get("/healthz", health::healthz)
        .get("/readyz", health::readyz)
        .get("/metrics", health::metrics)
        .get("/v3/openapi.json", openapi::serve)
        .merge(webhooks::routes())
        .merge(filters::routes())
        .merge(logs::routes())
        .merge(events::routes())
        .merge(users::routes())
        .merge(tokens::routes())
        .merge(audit::routes())
        .merge(directory::routes())
        .merge(sources::routes())
}

pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("route {}", uri.path()))
}

pub async fn method_not_allowed() -> Response {
    let body = json!({"meta": {
        "status": 405,
        "error_message": "method not allowed on this route",
        "error_code": "method_not_allowed",
    }});
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}
