//! JSON API handlers, one file per resource.

pub mod audit;
pub mod directory;
pub mod events;
pub mod filters;
pub mod health;
pub mod logs;
pub mod paging;
pub mod tokens;
pub mod users;
pub mod webhooks;

use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::error::ApiError;

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
