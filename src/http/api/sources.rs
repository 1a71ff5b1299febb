//! `/v3/sources`: where alerting and incident tools post (managing them needs
//! `manage-webhooks`), and `POST /v3/sources/{id}/events`, which those tools call with the
//! source's own credential.

use axum::{
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Value};

use super::ApiRoutes;
use crate::{
    domain::{ids::SourceId, token::Ability, Timestamp},
    http::{
        auth::Caller,
        error::ApiError,
        extract::{parse_strict, JsonBody},
        AppState, MAX_BODY_BYTES,
    },
    sources::{
        change::Refusal,
        credential,
        manage::{self, SourceError, WithToken},
        receive::{self, Reply},
        view::{preview_json, receipt_json, source_json},
    },
};

pub fn routes() -> ApiRoutes {
    const ONE: &str = "/v3/sources/{id}";
    ApiRoutes::new()
        .get("/v3/sources", list)
        .post("/v3/sources", create)
        .post("/v3/sources/preview", preview)
        .get(ONE, show)
        .put(ONE, update)
        .delete(ONE, remove)
        .post("/v3/sources/{id}/rotate-token", rotate_token)
        .get("/v3/sources/{id}/receipts", receipts)
        .post("/v3/sources/{id}/events", ingest)
}

impl From<SourceError> for ApiError {
    fn from(e: SourceError) -> Self {
        match e {
            SourceError::Invalid(errors) => ApiError::Invalid("invalid_source", errors),
            SourceError::NotFound(id) => ApiError::NotFound(format!("source {id}")),
            SourceError::Conflict(message) => ApiError::Conflict(message),
            SourceError::Store(e) => e.into(),
        }
    }
}

fn with_token(created: &WithToken, public_url: &str) -> Value {
    let mut body = source_json(&created.source, public_url, None);
    body["token"] = Value::String(created.token.clone());
    body
}

async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Ability::Read)?;
    let org = caller.organization_id();
    let sources = state.store.list_sources(org).await?;
    let activity = state.store.source_activity(org, Timestamp::now()).await?;
    let public_url = state.config.public_url();
    Ok(Json(json!({"data": sources
        .iter()
        .map(|s| source_json(s, &public_url, activity.get(&s.id)))
        .collect::<Vec<_>>()})))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(Ability::ManageWebhooks)?;
    let created = manage::create(
        &state.store,
        caller.organization_id(),
        &caller.actor(),
        &body,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"data": with_token(&created, &state.config.public_url())})),
    ))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<SourceId>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Ability::Read)?;
    let org = caller.organization_id();
    let source = manage::find(&state.store, org, &id).await?;
    let activity = state.store.source_activity(org, Timestamp::now()).await?;
    Ok(Json(
        json!({"data": source_json(&source, &state.config.public_url(), activity.get(&id))}),
    ))
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<SourceId>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    caller.require(Ability::ManageWebhooks)?;
    let source = manage::update(
        &state.store,
        caller.organization_id(),
        &caller.actor(),
        &id,
        &body,
    )
    .await?;
    Ok(Json(
        json!({"data": source_json(&source, &state.config.public_url(), None)}),
    ))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<SourceId>,
) -> Result<StatusCode, ApiError> {
    caller.require(Ability::ManageWebhooks)?;
    manage::delete(&state.store, caller.organization_id(), &caller.actor(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn rotate_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<SourceId>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Ability::ManageWebhooks)?;
    let rotated =
        manage::rotate_token(&state.store, caller.organization_id(), &caller.actor(), &id).await?;
    Ok(Json(
        json!({"data": with_token(&rotated, &state.config.public_url())}),
    ))
}

async fn receipts(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<SourceId>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Ability::Read)?;
    let source = manage::find(&state.store, caller.organization_id(), &id).await?;
    let receipts = state
        .store
        .receipts(&source.id, crate::domain::source::RECEIPTS_KEPT as u32)
        .await?;
    Ok(Json(
        json!({"data": receipts.iter().map(receipt_json).collect::<Vec<_>>()}),
    ))
}

/// What a payload would become for a source of this kind and these settings, before
/// saving: `{"kind", "settings", "payload"}` → the events (as they would be posted to
/// `/v3/events`, for an incident this source has not seen) and what is ignored, or the
/// refusal. Nothing is stored.
async fn preview(caller: Caller, JsonBody(body): JsonBody) -> Result<Json<Value>, ApiError> {
    caller.require(Ability::ManageWebhooks)?;
    let preview = preview_json(&body).map_err(|e| ApiError::Invalid("invalid_preview", e))?;
    Ok(Json(json!({"data": preview})))
}

/// The same answer whether the source does not exist, is disabled, or the credential is
/// wrong or missing: nothing tells a caller which sources exist.
fn not_accepted() -> ApiError {
    ApiError::Unauthorized(
        "unknown source or wrong credential: send the source's token as `Authorization: Bearer <token>` or as the password of HTTP basic auth, to the URL shown on the source's page; a disabled source takes nothing".to_owned(),
    )
}

async fn ingest(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let id = SourceId::from(id);
    let source = match state.sources.get(&id) {
        Some(source) => source,
        None => {
            let changes = crate::sources::cache::generation();
            let source = state
                .store
                .source_by_id(&id)
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, "a source could not be read");
                    ApiError::Unavailable(
                        "tocsin could not read its database just now and kept nothing: send it again"
                            .to_owned(),
                    )
                })?
                .ok_or_else(not_accepted)?;
            state.sources.put(source.clone(), changes);
            source
        }
    };
    let presented = credential::presented(
        headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    );
    let authorised = presented
        .as_deref()
        .is_some_and(|token| credential::matches(token, &source.token_hash));
    if !authorised {
        // Shown in the source's receipts (without the body), where a person setting up the
        // tool looks; the caller learns nothing.
        receive::record_refusal(
            &state.receipts,
            &source,
            Refusal {
                status: 401,
                field: "credential".into(),
                message: if presented.is_some() {
                    "a wrong token (was it rotated?)".into()
                } else {
                    "no token: send it as `Authorization: Bearer <token>` or as the basic auth password".into()
                },
            },
            b"",
        );
        return Err(not_accepted());
    }
    if !source.spec.enabled {
        return Err(not_accepted());
    }
    state
        .rate_limits
        .intake
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take(source.id.as_str(), std::time::Instant::now())
        .map_err(|wait| ApiError::TooManyRequests(wait.as_secs().max(1)))?;
    let started = std::time::Instant::now();
    let text = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(text) => text,
        Err(_) => {
            let refusal = Refusal {
                status: 413,
                field: "body".into(),
                message: "larger than the 1 MiB limit: send fewer alerts per notification (Alertmanager: lower max_alerts)".into(),
            };
            receive::record_refusal(&state.receipts, &source, refusal, b"");
            return Err(ApiError::PayloadTooLarge);
        }
    };
    let payload = match parse_strict(&text) {
        Ok(payload) => payload,
        Err(why) => {
            receive::record_refusal(
                &state.receipts,
                &source,
                Refusal {
                    status: 400,
                    ..Refusal::new("body", why.clone())
                },
                &text,
            );
            return Err(ApiError::BadRequest(why));
        }
    };
    let signature = headers
        .get("x-pagerduty-signature")
        .and_then(|v| v.to_str().ok());
    let reply = receive::receive(
        &state.catalog,
        &state.intake,
        &state.receipts,
        &state.source_states,
        &source,
        &payload,
        &text,
        signature,
    )
    .await;
    match reply {
        Reply::Done { ref stored, .. } => {
            let counted = crate::metrics::metrics();
            for s in stored.iter().filter(|s| !s.accepted.duplicate) {
                counted.intake(started.elapsed().as_secs_f64());
                counted.event(s.event_type.name);
                state
                    .directory
                    .observe(&source.organization_id, s.seen.clone());
            }
            Ok((StatusCode::ACCEPTED, Json(json!({"data": reply.data()}))).into_response())
        }
        Reply::Refused(r) if r.status == 401 => Err(ApiError::Unauthorized(r.message)),
        Reply::Refused(r) => Err(ApiError::Invalid(
            "invalid_payload",
            vec![crate::domain::FieldError::new(r.field, r.message)],
        )),
        Reply::Invalid(errors) => Err(ApiError::Invalid("invalid_payload", errors)),
        Reply::Unavailable(why) => Err(ApiError::Unavailable(why)),
    }
}
