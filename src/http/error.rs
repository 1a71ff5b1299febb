//! The one error type of the HTTP edge: a stable machine code, a status, and a message that
//! tells the caller what to fix.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;

use crate::{domain::FieldError, store::StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    /// A cookie-authenticated write without its session's CSRF token.
    #[error("missing or wrong CSRF token: send the page's csrf-token as the X-CSRF-Token header (or the csrf_token form field); reload the page if your session changed")]
    Csrf,
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Seconds until another try may succeed (sent as `Retry-After`).
    #[error("too many requests: try again in {} seconds", .0)]
    TooManyRequests(u64),
    #[error("request body is larger than the 1 MiB limit")]
    PayloadTooLarge,
    #[error("{}", join(.1))]
    Invalid(&'static str, Vec<FieldError>),
    /// Not done now, nothing kept, and the same request may succeed in a moment (sent with
    /// `Retry-After: 1`): the database could not be written, the server is stopping.
    #[error("{0}")]
    Unavailable(String),
    /// Logged with detail; the caller sees only that something went wrong on our side.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::Csrf => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Invalid(..) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::Csrf => "csrf_failed",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::TooManyRequests(_) => "too_many_requests",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::Invalid(code, _) => code,
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }
}

/// Why a call was refused, set on its answer by whoever refused it (the API's errors, the
/// pages' refusals), for the audit of refusals (`refusals.rs`).
#[derive(Debug, Clone)]
pub struct RefusedBecause {
    pub action: &'static str,
    pub reason: String,
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_unreachable() {
            tracing::warn!(error = %e, "the database cannot be reached; answering 503");
            return ApiError::Unavailable(
                "the database cannot be reached right now: nothing was changed; try again in a moment".to_owned(),
            );
        }
        ApiError::Internal(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = ?e, "request failed");
        }
        let mut meta = json!({
            "status": self.status().as_u16(),
            "error_message": self.to_string(),
            "error_code": self.code(),
        });
        if let ApiError::Invalid(_, errors) = &self {
            meta["errors"] = json!(errors);
        }
        let mut response = (self.status(), Json(json!({ "meta": meta }))).into_response();
        // What the audit of refusals records (see `refusals.rs`).
        let because = match &self {
            ApiError::Forbidden(reason) => Some(("access.refused", reason.clone())),
            ApiError::Csrf => Some((
                "csrf.refused",
                "a write made with the session cookie without its CSRF token".to_owned(),
            )),
            _ => None,
        };
        if let Some((action, reason)) = because {
            response
                .extensions_mut()
                .insert(RefusedBecause { action, reason });
        }
        let retry_after = match self {
            ApiError::TooManyRequests(seconds) => Some(seconds),
            ApiError::Unavailable(_) => Some(1),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds),
            );
        }
        response
    }
}
