use axum::{extract::State, http::StatusCode, Json};
use serde_json::{json, Value};

use crate::http::AppState;

/// The process is up.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// How long readiness waits for the database before saying it cannot reach it: a load
/// balancer's probe must get an answer, not time out.
const READY_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
/// Intake stuck this long (a write waiting on a lock a frozen peer holds, or failing)
/// makes the node not ready, though its database answers.
const INTAKE_STALL: std::time::Duration = std::time::Duration::from_secs(2);

/// The process can reach its database, and its intake commits.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if let Some(stuck) = state.intake.stuck_for().filter(|s| *s >= INTAKE_STALL) {
        let reason = format!(
            "intake cannot commit: its writes have waited or failed for {} s",
            stuck.as_secs()
        );
        tracing::warn!(reason, "readiness check failed");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "reason": reason})),
        );
    }
    let ping = tokio::time::timeout(READY_WAIT, state.store.ping())
        .await
        .unwrap_or_else(|_| {
            Err(crate::store::StoreError::Database(
                sqlx::Error::PoolTimedOut,
            ))
        });
    match ping {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "reason": "database unreachable"})),
            )
        }
    }
}

/// The metrics in the Prometheus text format, with the queue gauges read now.
pub async fn metrics_text(state: &AppState) -> axum::response::Response {
    use axum::response::IntoResponse;
    let counted = crate::metrics::metrics();
    match state.store.queue_counts().await {
        Ok((pending, parked)) => {
            counted.pending.set(pending as i64);
            counted.parked.set(parked as i64);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot count the queue"),
    }
    // The cluster's circuits (one row per open URL, whichever node opened it), so every
    // node reports the same number and a node that never called a dead URL counts it too.
    match state.store.open_circuits().await {
        Ok(open) => {
            counted.circuits_open.set(open.len() as i64);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the open circuits"),
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        counted.encode(),
    )
        .into_response()
}

/// `GET /metrics` on the API's address: the `read` ability.
pub async fn metrics(
    State(state): State<AppState>,
    caller: crate::http::auth::Caller,
) -> Result<axum::response::Response, crate::http::error::ApiError> {
    caller.require(crate::domain::token::Ability::Read)?;
    Ok(metrics_text(&state).await)
}

/// `GET /metrics` on `metrics_listen`: no authentication (that address is for scrapers).
pub async fn open_metrics(State(state): State<AppState>) -> axum::response::Response {
    metrics_text(&state).await
}
