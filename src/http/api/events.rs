//! Event intake and the manual trigger.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use serde_json::{json, Value};

use super::ApiRoutes;

use super::webhooks::webhook_json;
use crate::{
    domain::token::Ability,
    http::{auth::Caller, error::ApiError, extract::JsonBodyText, AppState},
    intake::{self, IntakeError},
};

pub fn routes() -> ApiRoutes {
    ApiRoutes::new().post("/v3/events", ingest).post(
        "/v3/incidents/{incident_id}/actions/webhook/{webhook_id}",
        trigger,
    )
}

impl From<IntakeError> for ApiError {
    fn from(e: IntakeError) -> Self {
        match e {
            IntakeError::Invalid(errors) => ApiError::Invalid("invalid_event", errors),
            IntakeError::NotFound(what) => ApiError::NotFound(what),
            IntakeError::Store(e) => e.into(),
            IntakeError::Internal(reason) => ApiError::Internal(anyhow::anyhow!(reason)),
            IntakeError::NotStored(reason) => {
                // The cause is the store's, worded for an operator: logged, not returned.
                tracing::warn!(
                    reason,
                    "an event was not stored; its sender was told to send it again"
                );
                ApiError::Unavailable(
                    "the event was not stored (tocsin could not write it to its database just \
                     now) and nothing of it was kept: send it again"
                        .to_owned(),
                )
            }
            IntakeError::ShuttingDown => ApiError::Unavailable(
                "tocsin is shutting down and did not take the event: send it again (to another \
                 node, or once this one is back)"
                    .to_owned(),
            ),
        }
    }
}

async fn ingest(
    State(state): State<AppState>,
    caller: Caller,
    JsonBodyText(body, text): JsonBodyText,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Ability::Ingest)?;
    let started = std::time::Instant::now();
    let accepted = intake::accept(
        &state.catalog,
        &state.intake,
        caller.organization_id(),
        &body,
        &text,
    )
    .await?;
    if !accepted.duplicate {
        let counted = crate::metrics::metrics();
        counted.intake(started.elapsed().as_secs_f64());
        if let Some(kind) = body.get("type").and_then(Value::as_str) {
            // The registry's name, so v1 spellings count with their v2 type.
            if let Some(t) = crate::domain::event_type::EventType::from_name(kind) {
                counted.event(t.name);
            }
        }
        state.directory.observe(
            caller.organization_id(),
            crate::domain::directory::from_event(&body, crate::domain::Timestamp::now()),
        );
        tracing::debug!(event = %accepted.event_id, deliveries = accepted.deliveries, "event accepted");
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"data": {"id": accepted.event_id, "deliveries": accepted.deliveries}})),
    ))
}

async fn trigger(
    State(state): State<AppState>,
    caller: Caller,
    Path((incident_id, webhook_id)): Path<(String, crate::domain::ids::WebhookId)>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Ability::ManageWebhooks)?;
    let webhook = crate::sends::trigger_manually(
        &state.store,
        &state.engine,
        caller.organization_id(),
        &incident_id,
        &webhook_id,
    )
    .await?;
    Ok(Json(json!({"data": webhook_json(&webhook)})))
}
