//! `/v3/extensions/event-webhooks/{id}/logs`: every delivery of a webhook, and each one's
//! payload and attempts.

use crate::domain::ids::{DeliveryId, WebhookId};
use axum::{
    extract::{Path, RawQuery, State},
    Json,
};
use serde_json::{json, Map, Value};

use super::ApiRoutes;

use crate::{
    domain::{
        delivery::{Attempt, Delivery, DeliveryState, RetryJob},
        event_type::EventType,
        notification::NotificationState,
        token::Ability,
        Timestamp,
    },
    http::{auth::Caller, error::ApiError, extract::query_pairs, AppState},
    store::LogQuery,
};

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 200;

pub fn routes() -> ApiRoutes {
    const LOGS: &str = "/v3/extensions/event-webhooks/{id}/logs";
    ApiRoutes::new()
        .get(LOGS, list)
        .get(
            "/v3/extensions/event-webhooks/{id}/logs/{delivery_id}",
            show,
        )
        .post(
            "/v3/extensions/event-webhooks/{id}/logs/{delivery_id}/resend",
            resend,
        )
        .post("/v3/extensions/event-webhooks/{id}/logs/retry", bulk_retry)
        .get(
            "/v3/extensions/event-webhooks/{id}/logs/retry/{job_id}",
            retry_progress,
        )
        .get(
            "/v3/extensions/event-webhooks/{id}/notifications",
            notifications,
        )
}

fn ts(t: Option<Timestamp>) -> Value {
    t.map_or(Value::Null, |t| Value::String(t.to_rfc3339()))
}

fn summary(d: &Delivery) -> Value {
    json!({
        "id": d.id,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "incident_id": d.incident_id,
        "url": crate::domain::webhook::mask_url(&d.url),
        "method": d.method,
        "state": d.state,
        "attempts": d.attempts,
        "last_status": d.last_status,
        "last_error": d.last_error,
        "next_attempt_at": ts(d.next_attempt()),
        "created_at": d.created_at.to_rfc3339(),
        "updated_at": d.updated_at.to_rfc3339(),
        "completed_at": ts(d.completed_at),
        "origin": d.origin.as_str(),
        "resent_from": d.origin.resent_from(),
    })
}

fn header_map(headers: &[(String, String)]) -> Value {
    Value::Object(
        headers
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<Map<_, _>>(),
    )
}

fn attempt_json(a: &Attempt) -> Value {
    json!({
        "number": a.number,
        "started_at": a.started_at.to_rfc3339(),
        "duration_ms": a.duration_ms,
        "request_headers": header_map(&a.request_headers),
        "response_status": a.response_status,
        "response_headers": if a.response_status.is_some() { header_map(&a.response_headers) } else { Value::Null },
        "response_body": a.response_body,
        "error": a.error,
    })
}

fn parse_query(query: Option<&str>) -> Result<LogQuery, ApiError> {
    parse_pairs(query_pairs(query))
}

/// Log filters from name/value pairs (a query string, or a bulk retry's body).
fn parse_pairs(pairs: Vec<(String, String)>) -> Result<LogQuery, ApiError> {
    use super::paging::{self, bad};
    let mut q = LogQuery {
        limit: DEFAULT_LIMIT,
        ..LogQuery::default()
    };
    for (name, value) in pairs {
        match name.as_str() {
            "state" => {
                q.state = Some(DeliveryState::parse(&value).ok_or_else(|| {
                    bad(&name, "must be pending, succeeded, failed or cancelled", &value)
                })?)
            }
            "event_type" => {
                let t = EventType::from_name(&value)
                    .ok_or_else(|| bad(&name, "must be an event type like incident.triggered", &value))?;
                q.event_type = Some(t.name.to_owned());
            }
            "incident_id" => q.incident_id = Some(value),
            "since" => q.since = Some(paging::time(&name, &value)?),
            "until" => q.until = Some(paging::time(&name, &value)?),
            "limit" => q.limit = paging::limit(&name, &value, MAX_LIMIT)?,
            "cursor" => q.before_seq = Some(paging::cursor(&name, &value)?),
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter {name}: use state, event_type, incident_id, since, until, limit or cursor"
                )))
            }
        }
    }
    Ok(q)
}

async fn require_webhook(
    state: &AppState,
    caller: &Caller,
    id: &WebhookId,
) -> Result<(), ApiError> {
    state
        .store
        .webhook(caller.organization_id(), id)
        .await?
        .map(|_| ())
        .ok_or_else(|| ApiError::NotFound(format!("webhook {id}")))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<WebhookId>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    caller.require(Ability::Read)?;
    let mut q = parse_query(query.as_deref())?;
    require_webhook(&state, &caller, &id).await?;
    let limit = q.limit as usize;
    q.limit += 1; // one more tells whether there is a next page
    let mut rows = state
        .store
        .list_deliveries(caller.organization_id(), &id, &q)
        .await?;
    let next_cursor = super::paging::next_cursor(&mut rows, limit);
    let result: Vec<Value> = rows.iter().map(|(_, d)| summary(d)).collect();
    Ok(Json(json!({
        "data": {"result": result, "meta": {"next_cursor": next_cursor}}
    })))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, delivery_id)): Path<(WebhookId, DeliveryId)>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Ability::Read)?;
    let (delivery, attempts) = state
        .store
        .delivery(caller.organization_id(), &id, &delivery_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("delivery {delivery_id} of webhook {id}")))?;
    let mut body = summary(&delivery);
    body["payload"] = Value::String(delivery.payload.clone());
    body["request_headers"] = attempts
        .last()
        .map_or(Value::Null, |a| header_map(&a.request_headers));
    body["attempts"] = Value::Array(attempts.iter().map(attempt_json).collect());
    Ok(Json(json!({"data": body})))
}

/// A new delivery of a logged one: the same URL, method and payload bytes, a new
/// `webhook-id`, linked to the original (`origin: "resend"`, `resent_from`).
async fn resend(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, delivery_id)): Path<(WebhookId, DeliveryId)>,
) -> Result<(axum::http::StatusCode, Json<Value>), ApiError> {
    caller.require(Ability::ManageWebhooks)?;
    let new_id = crate::sends::resend(
        &state.store,
        &state.engine,
        caller.organization_id(),
        &id,
        &delivery_id,
    )
    .await?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(json!({"data": {"id": new_id, "resent_from": delivery_id}})),
    ))
}

fn job_json(job: &RetryJob) -> Value {
    json!({
        "id": job.id,
        "state": job.state.as_str(),
        "filters": job.filters,
        "total": job.total,
        "done": job.done,
        "error": job.error,
        "created_at": job.created_at.to_rfc3339(),
        "finished_at": ts(job.finished_at),
    })
}

/// `POST …/logs/retry` with filters (`state` — failed, cancelled or succeeded; any of them
/// when absent —, `event_type`, `incident_id`, `since`, `until`): every matching finished
/// delivery is set pending again, oldest first, by a background job whose progress
/// `GET …/logs/retry/{job_id}` shows.
async fn bulk_retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<WebhookId>,
    body: axum::body::Bytes,
) -> Result<(axum::http::StatusCode, Json<Value>), ApiError> {
    caller.require(Ability::ManageWebhooks)?;
    let webhook = state
        .store
        .webhook(caller.organization_id(), &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("webhook {id}")))?;
    // Re-queued deliveries are sent whatever the webhook's switch says: a disabled webhook
    // (by a person, or by tocsin after 410 Gone) must be enabled first.
    if !webhook.spec.enabled {
        return Err(ApiError::Conflict(format!(
            "webhook {id} is disabled{}; enable it first, then retry its deliveries",
            webhook
                .disabled_reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        )));
    }
    // An object of filters, or nothing (`optional_json` refuses anything else).
    let body = crate::http::extract::optional_json(&body)?;
    let filters = body.as_object().cloned().unwrap_or_default();
    let mut pairs = Vec::new();
    for (name, value) in &filters {
        if !["state", "event_type", "incident_id", "since", "until"].contains(&name.as_str()) {
            return Err(ApiError::Invalid(
                "invalid_retry",
                vec![crate::domain::FieldError::new(
                    name.clone(),
                    "unknown filter; use state, event_type, incident_id, since or until",
                )],
            ));
        }
        let Some(text) = value.as_str() else {
            return Err(ApiError::Invalid(
                "invalid_retry",
                vec![crate::domain::FieldError::new(
                    name.clone(),
                    "must be a string",
                )],
            ));
        };
        pairs.push((name.clone(), text.to_owned()));
    }
    let q = parse_pairs(pairs)?;
    if q.state == Some(DeliveryState::Pending) {
        return Err(ApiError::Invalid(
            "invalid_retry",
            vec![crate::domain::FieldError::new(
                "state",
                "must be failed, cancelled or succeeded: pending deliveries are still being tried",
            )],
        ));
    }
    let job = crate::sends::start_bulk_retry(
        &state.store,
        caller.organization_id(),
        &id,
        Value::Object(filters),
        q,
    )
    .await?;
    tracing::info!(webhook = %id, job = %job.id, total = job.total, "bulk retry started");
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(json!({"data": job_json(&job)})),
    ))
}

async fn retry_progress(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, job_id)): Path<(WebhookId, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Ability::Read)?;
    let job = state
        .store
        .retry_job(caller.organization_id(), &id, &job_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("retry job {job_id} of webhook {id}")))?;
    Ok(Json(json!({"data": job_json(&job)})))
}

/// The webhook's failure notifications, newest first: which delivery, whether the e-mail
/// went out (`pending`, `sent`, `skipped`) and the last error or reason.
async fn notifications(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<WebhookId>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Ability::Read)?;
    require_webhook(&state, &caller, &id).await?;
    let list = state
        .store
        .list_notifications(caller.organization_id(), &id, MAX_LIMIT)
        .await?;
    let result: Vec<Value> = list
        .iter()
        .map(|n| {
            json!({
                "id": n.id,
                "delivery_id": n.delivery_id,
                "state": n.state,
                "attempts": n.attempts,
                "last_error": n.last_error,
                "next_attempt_at": if n.state == NotificationState::Pending { ts(n.next_attempt_at) } else { Value::Null },
                "created_at": n.created_at.to_rfc3339(),
                "sent_at": ts(n.sent_at),
            })
        })
        .collect();
    Ok(Json(json!({"data": {"result": result}})))
}
