//! One log line per request — method, route (the pattern, never ids), status, duration and
//! a request id — and the id echoed back in `X-Request-Id`. A caller's own id (visible
//! ASCII, at most 128 bytes) is kept, so one id follows a call across systems; else one is
//! made. Successful calls log at debug (intake can be thousands a second), 4xx at info,
//! 5xx at warn.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request},
    http::HeaderValue,
    middleware::Next,
    response::Response,
};

const HEADER: &str = "x-request-id";
const MAX_ID: usize = 128;

pub async fn request_log(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= MAX_ID && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| crate::domain::ids::new_id("req"));
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(no route)".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let mut response = next.run(req).await;
    let status = response.status().as_u16();
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                target: "tocsin::http::request",
                method = %method,
                route = %route,
                status,
                duration_ms = (duration_ms * 1000.0).round() / 1000.0,
                request_id = %id,
                "request"
            )
        };
    }
    match status {
        500.. => line!(warn),
        400..=499 => line!(info),
        _ => line!(debug),
    }
    response
}
