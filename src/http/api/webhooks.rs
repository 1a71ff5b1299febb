//! `/v3/extensions/event-webhooks`: Squadcast's webhook configuration API.

use crate::domain::ids::{OrganizationId, WebhookId};
use axum::{
    extract::{Path, RawQuery, State},
    http::StatusCode,
    response::IntoResponse,
    Json,
};
use serde_json::{json, Map, Value};

use crate::{
    domain::{
        audit::ActorKind,
        token::Ability,
        webhook::{self, is_credential_header, mask_value, Webhook},
    },
    http::{
        auth::Caller,
        error::ApiError,
        extract::{query_pairs, JsonBody},
        AppState,
    },
    sends::TestOutcome,
    webhooks::{self, WebhookError},
};

use super::ApiRoutes;

const DEFAULT_PAGE_LIMIT: u64 = 100;
const MAX_PAGE_LIMIT: u64 = 1000;

pub fn routes() -> ApiRoutes {
    const ONE: &str = "/v3/extensions/event-webhooks/{id}";
    ApiRoutes::new()
        .get("/v3/extensions/event-webhooks", list)
        .post("/v3/extensions/event-webhooks", create)
        .get(ONE, show)
        .put(ONE, update)
        .delete(ONE, remove)
        .post(
            "/v3/extensions/event-webhooks/{id}/rotate-secret",
            rotate_secret,
        )
        .post("/v3/extensions/event-webhooks/{id}/test", send_test)
}

/// The webhook as the API shows it: Squadcast's fields, header credentials masked, and no
/// secret (only create and rotate add it).
pub fn webhook_json(w: &Webhook) -> Value {
    let s = &w.spec;
    let header: Map<String, Value> = s
        .header
        .iter()
        .map(|h| {
            let value = if is_credential_header(&h.name) {
                mask_value(&h.value)
            } else {
                h.value.clone()
            };
            (h.name.clone(), Value::String(value))
        })
        .collect();
    json!({
        "id": w.id,
        "name": s.name,
        "description": s.description,
        "slug": w.slug,
        "organization_id": w.organization_id,
        "author_id": w.author_id,
        "created_at": w.created_at.to_rfc3339(),
        "updated_at": w.updated_at.to_rfc3339(),
        "version": s.version,
        "triggers": s.triggers,
        "urls": s.urls.iter().map(|u| json!({"url": webhook::mask_url(&u.url), "method": u.method})).collect::<Vec<_>>(),
        "header": header,
        "filters": s.filters,
        "max_retry": s.max_retry,
        "timeout_seconds": s.timeout_seconds,
        "rate_limit_per_second": s.rate_limit_per_second,
        "enabled": s.enabled,
        "disabled_reason": w.disabled_reason,
        "teams": s.teams,
        "is_all_teams_configured": s.is_all_teams_configured,
        "mail_ids": s.mail_ids,
        "trigger_type": s.trigger_type,
        "payload_type": s.payload_type,
        "custom_payload": s.custom_payload.clone().unwrap_or_default(),
        "custom_payload_template_slug": s.custom_payload_template_slug.clone().unwrap_or_default(),
        "language": s.language.clone().unwrap_or_default(),
    })
}

/// Who created webhooks, by the id stored as `author_id`: the organization's people and
/// tokens, shown as `{"type": "user"|"token", "id", "name"}`.
struct Authors(std::collections::HashMap<String, Value>);

impl Authors {
    async fn load(state: &AppState, organization_id: &OrganizationId) -> Result<Self, ApiError> {
        let mut map = std::collections::HashMap::new();
        for u in state.store.list_users(organization_id).await? {
            map.insert(u.id.clone(), author(ActorKind::User, &u.id, &u.email));
        }
        for t in state.store.list_tokens(Some(organization_id)).await? {
            map.insert(t.id.clone(), author(ActorKind::Token, &t.id, &t.name));
        }
        Ok(Self(map))
    }

    /// A deleted author keeps its id and kind, without a name.
    fn of(&self, id: &str) -> Value {
        self.0.get(id).cloned().unwrap_or_else(|| {
            let kind = if id.starts_with("usr_") {
                "user"
            } else {
                "token"
            };
            json!({"type": kind, "id": id, "name": null})
        })
    }
}

fn author(kind: ActorKind, id: &str, name: &str) -> Value {
    json!({"type": kind.as_str(), "id": id, "name": name})
}

fn with_secret(w: &Webhook) -> Value {
    let mut body = webhook_json(w);
    body["secret"] = Value::String(w.secret.clone());
    body
}

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::Invalid(errors) => ApiError::Invalid("invalid_webhook", errors),
            WebhookError::InvalidTest(error) => ApiError::Invalid("invalid_test", vec![error]),
            WebhookError::NotFound(id) => ApiError::NotFound(format!("webhook {id}")),
            WebhookError::Store(e) => e.into(),
            WebhookError::Send(e) => e.into(),
        }
    }
}

fn parse_page_param(name: &str, text: &str, min: u64, max: u64) -> Result<u64, ApiError> {
    match text.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ApiError::BadRequest(format!(
            "query parameter {name} must be a whole number from {min} to {max}, got \"{text}\""
        ))),
    }
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    caller.require(Ability::Read)?;
    let mut limit = DEFAULT_PAGE_LIMIT;
    let mut offset = 0;
    for (name, value) in query_pairs(query.as_deref()) {
        match name.as_str() {
            "page-limit" => limit = parse_page_param(&name, &value, 1, MAX_PAGE_LIMIT)?,
            "offset" => offset = parse_page_param(&name, &value, 0, u64::MAX >> 1)?,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter {name}: use page-limit and offset"
                )))
            }
        }
    }
    let page = state
        .store
        .list_webhooks(caller.organization_id(), limit, offset)
        .await?;
    let authors = Authors::load(&state, caller.organization_id()).await?;
    let result: Vec<Value> = page
        .items
        .iter()
        .map(|w| {
            let mut item = webhook_json(w);
            item["author"] = authors.of(&w.author_id);
            // Squadcast's list items carry the template's display name.
            item["custom_payload_template_name"] = Value::String(
                w.spec
                    .custom_payload_template_slug
                    .clone()
                    .unwrap_or_default(),
            );
            item
        })
        .collect();
    Ok(Json(json!({
        "data": {"result": result, "meta": {"total_count": page.total}}
    })))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let hook = state.webhook_editor(&caller)?.create(&body).await?;
    let actor = caller.actor();
    let mut body = with_secret(&hook);
    body["author"] = author(actor.kind, &actor.id, &actor.name);
    Ok((
        StatusCode::CREATED,
        Json(with_warnings(&state, &hook, body)),
    ))
}

/// Saving a URL deliveries would be refused is allowed (the policy may change), and said:
/// `{"data": …, "warnings": [{"field": "urls[0].url", "message": …}]}`; so are failure
/// addresses while e-mail is off.
fn with_warnings(state: &AppState, hook: &Webhook, data: Value) -> Value {
    let mut warnings = url_warnings(state, hook.spec.urls.iter().map(|u| u.url.as_str()));
    // Addresses saved while e-mail is off would look set up and never hear a thing.
    if !hook.spec.mail_ids.is_empty() && state.config.smtp.host.is_empty() {
        warnings.push(crate::domain::FieldError::new(
            "mail_ids",
            format!(
                "e-mail is off, so these addresses get nothing and failures are recorded as skipped: {}",
                crate::notify::NO_SMTP
            ),
        ));
    }
    let mut answer = json!({ "data": data });
    if !warnings.is_empty() {
        answer["warnings"] = json!(warnings);
    }
    answer
}

/// What saving these URLs should warn of, each named by its field (`urls[1].url`).
pub fn url_warnings<'a>(
    state: &AppState,
    urls: impl Iterator<Item = &'a str>,
) -> Vec<crate::domain::FieldError> {
    let policy =
        crate::dispatch::guard::NetworkPolicy::new(&state.config.delivery.allowed_networks);
    urls.enumerate()
        .filter_map(|(i, url)| {
            policy
                .warning_at_save(url)
                .map(|message| crate::domain::FieldError::new(format!("urls[{i}].url"), message))
        })
        .collect()
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<WebhookId>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Ability::Read)?;
    let hook = state.webhook(&caller, &id).await?;
    let mut body = webhook_json(&hook);
    body["author"] = Authors::load(&state, caller.organization_id())
        .await?
        .of(&hook.author_id);
    Ok(Json(json!({ "data": body })))
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<WebhookId>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let hook = state.webhook_editor(&caller)?.update(&id, &body).await?;
    let mut body = webhook_json(&hook);
    body["author"] = Authors::load(&state, caller.organization_id())
        .await?
        .of(&hook.author_id);
    Ok(Json(with_warnings(&state, &hook, body)))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<WebhookId>,
) -> Result<StatusCode, ApiError> {
    state.webhook_editor(&caller)?.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST …/rotate-secret`, with an optional body `{"grace_period_seconds": N}`.
async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<WebhookId>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let body = crate::http::extract::optional_json(&body)?;
    let grace = webhooks::grace_period(body.get("grace_period_seconds"))
        .map_err(|e| ApiError::Invalid("invalid_rotation", vec![e]))?;
    let hook = state
        .webhook_editor(&caller)?
        .rotate_secret(&id, grace)
        .await?;
    let mut data = with_secret(&hook);
    data["previous_secret_expires_at"] = hook
        .previous_secret
        .as_ref()
        .map_or(Value::Null, |p| Value::String(p.until.to_rfc3339()));
    Ok(Json(json!({ "data": data })))
}

/// `POST …/{id}/test`, optional body `{"event_type": "incident.incident_notes_created"}`: sends a
/// test now and answers with every URL's outcome.
async fn send_test(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<WebhookId>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let body = crate::http::extract::optional_json(&body)?;
    let requested = match body.get("event_type") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => {
            return Err(ApiError::Invalid(
                "invalid_test",
                vec![crate::domain::FieldError::new(
                    "event_type",
                    "must be a string like incident.triggered",
                )],
            ))
        }
    };
    let editor = state.webhook_editor(&caller)?;
    let (event_type, outcomes) = editor.test(&state.engine, &id, requested).await?;
    Ok(Json(json!({"data": {
        "event_type": event_type.name,
        "results": outcomes.iter().map(TestOutcome::to_json).collect::<Vec<_>>(),
    }})))
}
