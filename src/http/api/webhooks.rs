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
        audit::{self, ActorKind, AuditEntry},
        token::Ability,
        webhook::{self, audit_mask, audit_view, is_credential_header, mask_value, Webhook},
        Timestamp,
    },
    http::{
        auth::Caller,
        error::ApiError,
        extract::{query_pairs, JsonBody},
        AppState,
    },
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

/// The whole webhook check: its fields, then its filter and custom payload.
/// A webhook body, checked; `stored`: the filters of the webhook it replaces (kept as they
/// are, they need not meet rules added since).
fn parse(body: &Value, stored: Option<&Value>) -> Result<webhook::WebhookSpec, ApiError> {
    let invalid = |errors| ApiError::Invalid("invalid_webhook", errors);
    let checked = crate::webhook_check::check_change(body, stored).map_err(invalid)?;
    Ok(checked.spec)
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("webhook {id}"))
}

/// The caller's organization's webhook `id`, or 404.
pub async fn existing(
    state: &AppState,
    caller: &Caller,
    id: &WebhookId,
) -> Result<Webhook, ApiError> {
    state
        .store
        .webhook(caller.organization_id(), id)
        .await?
        .ok_or_else(|| not_found(id))
}

/// The audit entry of a change the caller makes to webhook `id`.
fn audit_entry(
    caller: &Caller,
    action: &str,
    id: &str,
    name: &str,
    changes: Vec<audit::Change>,
) -> AuditEntry {
    AuditEntry::new(
        caller.organization_id(),
        &caller.actor(),
        action,
        audit::webhook_object(id, name),
        changes,
    )
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

/// Creates a webhook from its API body: the one path the JSON API and the pages share.
pub async fn create_webhook(
    state: &AppState,
    caller: &Caller,
    body: &Value,
) -> Result<Webhook, ApiError> {
    caller.require(Ability::ManageWebhooks)?;
    let spec = parse(body, None)?;
    let actor = caller.actor();
    let hook = Webhook::new(caller.organization_id(), &actor.id, spec);
    let entry = audit_entry(
        caller,
        "webhook.created",
        &hook.id,
        &hook.spec.name,
        audit::created(&audit_view(&hook.spec), audit_mask),
    );
    state.store.insert_webhook(&hook, &entry).await?;
    state.catalog.invalidate(caller.organization_id());
    tracing::info!(webhook = %hook.id, name = ?hook.spec.name, "webhook created");
    Ok(hook)
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let hook = create_webhook(&state, &caller, &body).await?;
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
    let hook = existing(&state, &caller, &id).await?;
    let mut body = webhook_json(&hook);
    body["author"] = Authors::load(&state, caller.organization_id())
        .await?
        .of(&hook.author_id);
    Ok(Json(json!({ "data": body })))
}

/// Replaces a webhook's configuration from its API body (masked credentials sent back keep
/// their stored values); disabling cancels its pending deliveries.
pub async fn update_webhook(
    state: &AppState,
    caller: &Caller,
    id: &WebhookId,
    body: &Value,
) -> Result<Webhook, ApiError> {
    caller.require(Ability::ManageWebhooks)?;
    let current = existing(state, caller, id).await?;
    let mut spec = parse(body, current.spec.filters.as_ref())?;
    // URLs sent back with a masked password keep the stored one; then, if any URL now
    // points to another server, masked credentials must be entered again.
    let stored_urls: Vec<&str> = current.spec.urls.iter().map(|u| u.url.as_str()).collect();
    for u in &mut spec.urls {
        u.url = webhook::restore_masked_url(&u.url, &stored_urls);
    }
    let old_origins: Vec<String> = stored_urls.iter().map(|u| webhook::origin(u)).collect();
    let origins_changed = spec
        .urls
        .iter()
        .any(|u| !old_origins.contains(&webhook::origin(&u.url)));
    webhook::restore_masked(&mut spec.header, &current.spec.header, origins_changed)
        .map_err(|errors| ApiError::Invalid("invalid_webhook", errors))?;
    let entry = audit_entry(
        caller,
        "webhook.updated",
        id,
        &spec.name,
        audit::diff(&audit_view(&current.spec), &audit_view(&spec), audit_mask),
    );
    let hook = state
        .store
        .update_webhook(caller.organization_id(), id, &spec, entry.at, &entry)
        .await?
        .ok_or_else(|| not_found(id))?;
    state.catalog.invalidate(caller.organization_id());
    if !hook.spec.enabled {
        let cancelled = state
            .store
            .cancel_pending(caller.organization_id(), id, Timestamp::now())
            .await?;
        crate::metrics::metrics().deliveries_finished("cancelled", cancelled);
        tracing::info!(webhook = %hook.id, cancelled, "webhook disabled; pending deliveries cancelled");
    }
    tracing::info!(webhook = %hook.id, "webhook updated");
    Ok(hook)
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<WebhookId>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let hook = update_webhook(&state, &caller, &id, &body).await?;
    let mut body = webhook_json(&hook);
    body["author"] = Authors::load(&state, caller.organization_id())
        .await?
        .of(&hook.author_id);
    Ok(Json(with_warnings(&state, &hook, body)))
}

/// Deletes a webhook (its deliveries go with it).
pub async fn delete_webhook(
    state: &AppState,
    caller: &Caller,
    id: &WebhookId,
) -> Result<(), ApiError> {
    caller.require(Ability::ManageWebhooks)?;
    let current = existing(state, caller, id).await?;
    let entry = audit_entry(
        caller,
        "webhook.deleted",
        id,
        &current.spec.name,
        Vec::new(),
    );
    let deleted = state
        .store
        .delete_webhook(caller.organization_id(), id, &entry)
        .await?;
    state.catalog.invalidate(caller.organization_id());
    if !deleted {
        return Err(not_found(id));
    }
    tracing::info!(webhook = %id, "webhook deleted");
    Ok(())
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<WebhookId>,
) -> Result<StatusCode, ApiError> {
    delete_webhook(&state, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How long the old secret keeps signing after a rotation, unless the caller says.
pub const DEFAULT_GRACE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
pub const MAX_GRACE_SECONDS: u64 = 7 * 24 * 3600;

/// `grace_period_seconds` of a rotation request (absent: 24 h), checked.
pub fn grace_period(
    value: Option<&Value>,
) -> Result<std::time::Duration, crate::domain::FieldError> {
    match value {
        None | Some(Value::Null) => Ok(DEFAULT_GRACE),
        Some(v) => match crate::domain::json_text::whole_number(v) {
            Some(s) if (0..=MAX_GRACE_SECONDS as i64).contains(&s) => {
                Ok(std::time::Duration::from_secs(s as u64))
            }
            _ => Err(crate::domain::FieldError::new(
                "grace_period_seconds",
                format!(
                    "must be a whole number of seconds from 0 (the old secret stops at once) to {MAX_GRACE_SECONDS} (7 days), got {v}"
                ),
            )),
        },
    }
}

/// A webhook with its signing secret, for someone who may manage webhooks: the same people
/// who see a secret when they create or rotate it (one rule for seeing secrets). Each
/// reveal is audited as `webhook.secret_revealed`.
pub async fn reveal_webhook_secret(
    state: &AppState,
    caller: &Caller,
    id: &WebhookId,
) -> Result<Webhook, ApiError> {
    caller.require(Ability::ManageWebhooks)?;
    let hook = existing(state, caller, id).await?;
    let entry = audit_entry(
        caller,
        "webhook.secret_revealed",
        id,
        &hook.spec.name,
        vec![],
    );
    state.store.append_audit(&entry).await?;
    Ok(hook)
}

/// Gives a webhook a new signing secret; the answer is the only place it is shown. Until
/// `grace` has passed, deliveries carry a signature with the old secret too.
pub async fn rotate_webhook_secret(
    state: &AppState,
    caller: &Caller,
    id: &WebhookId,
    grace: std::time::Duration,
) -> Result<Webhook, ApiError> {
    caller.require(Ability::ManageWebhooks)?;
    let current = existing(state, caller, id).await?;
    // The secret is named as changed, never shown.
    let entry = audit_entry(
        caller,
        "webhook.secret_rotated",
        id,
        &current.spec.name,
        vec![audit::Change {
            field: "secret".into(),
            before: Value::String("****".into()),
            after: Value::String("****".into()),
        }],
    );
    let previous = (!grace.is_zero()).then(|| webhook::PreviousSecret {
        secret: current.secret.clone(),
        until: entry.at.plus(grace),
    });
    let hook = state
        .store
        .set_webhook_secret(
            caller.organization_id(),
            id,
            &webhook::new_secret(),
            previous.as_ref(),
            entry.at,
            &entry,
        )
        .await?
        .ok_or_else(|| not_found(id))?;
    state.catalog.invalidate(caller.organization_id());
    tracing::info!(webhook = %hook.id, "webhook secret rotated");
    Ok(hook)
}

/// `POST …/rotate-secret`, with an optional body `{"grace_period_seconds": N}`.
async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<WebhookId>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let body = crate::http::extract::optional_json(&body)?;
    let grace = grace_period(body.get("grace_period_seconds"))
        .map_err(|e| ApiError::Invalid("invalid_rotation", vec![e]))?;
    let hook = rotate_webhook_secret(&state, &caller, &id, grace).await?;
    let mut data = with_secret(&hook);
    data["previous_secret_expires_at"] = hook
        .previous_secret
        .as_ref()
        .map_or(Value::Null, |p| Value::String(p.until.to_rfc3339()));
    Ok(Json(json!({ "data": data })))
}

/// The event type a test sends: `event_type` (a v2 or v1 name, or a trigger's `event_type`)
/// if given, else the webhook's first trigger. A v1 webhook can only be tested with the
/// four incident events.
pub fn test_event_type(
    webhook: &Webhook,
    requested: Option<&str>,
) -> Result<&'static crate::domain::event_type::EventType, crate::domain::FieldError> {
    use crate::domain::event_type::EventType;
    let chosen = match requested.filter(|s| !s.is_empty()) {
        Some(name) => EventType::from_name(name)
            .or_else(|| EventType::from_trigger("incident", name))
            .ok_or_else(|| {
                crate::domain::FieldError::new(
                    "event_type",
                    format!("unknown event type \"{name}\"; use one of the webhook's triggers, like incident.triggered"),
                )
            })?,
        None => webhook
            .spec
            .triggers
            .first()
            .and_then(|t| EventType::from_trigger(&t.event_class, &t.event_type))
            .ok_or_else(|| crate::domain::FieldError::new("event_type", "is required: the webhook has no trigger"))?,
    };
    if webhook.spec.version == webhook::PayloadVersion::V1
        && webhook.spec.payload_type == webhook::PayloadType::Standard
        && chosen.v1_name.is_none()
    {
        return Err(crate::domain::FieldError::new(
            "event_type",
            format!(
                "{} is sent only in v2 payloads and this webhook sends v1",
                chosen.name
            ),
        ));
    }
    Ok(chosen)
}

/// Each URL's answer to a test, as the API and the pages show it.
pub fn test_outcome_json(outcome: &crate::intake::TestOutcome) -> Value {
    match outcome {
        crate::intake::TestOutcome::Sent(s) => json!({
            "delivery_id": s.delivery_id,
            "url": webhook::mask_url(&s.url),
            "method": s.method,
            "succeeded": s.succeeded,
            "status": s.attempt.response_status,
            "duration_ms": s.attempt.duration_ms,
            "body": s.attempt.response_body,
            "error": s.attempt.error,
        }),
        crate::intake::TestOutcome::NotSent {
            delivery_id,
            url,
            method,
            reason,
        } => json!({
            "delivery_id": delivery_id,
            "url": webhook::mask_url(url),
            "method": method,
            "succeeded": false,
            "status": null,
            "duration_ms": null,
            "body": null,
            "error": reason,
        }),
    }
}

/// Sends a test now and answers with every URL's outcome: `POST …/{id}/test`, optional
/// body `{"event_type": "incident.incident_notes_created"}`.
pub async fn run_test(
    state: &AppState,
    caller: &Caller,
    id: &WebhookId,
    requested: Option<&str>,
) -> Result<(String, Vec<crate::intake::TestOutcome>), ApiError> {
    caller.require(Ability::ManageWebhooks)?;
    let hook = existing(state, caller, id).await?;
    let event_type = test_event_type(&hook, requested)
        .map_err(|e| ApiError::Invalid("invalid_test", vec![e]))?;
    let snapshot = state.catalog.webhooks(caller.organization_id()).await?;
    let organization = snapshot
        .organization
        .as_ref()
        .ok_or_else(|| not_found(id))?;
    let (_, outcomes) =
        crate::intake::send_test(&state.store, &state.engine, organization, &hook, event_type)
            .await?;
    tracing::info!(webhook = %hook.id, event_type = event_type.name, "test sent");
    Ok((event_type.name.to_owned(), outcomes))
}

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
    let (event_type, outcomes) = run_test(&state, &caller, &id, requested).await?;
    Ok(Json(json!({"data": {
        "event_type": event_type,
        "results": outcomes.iter().map(test_outcome_json).collect::<Vec<_>>(),
    }})))
}
