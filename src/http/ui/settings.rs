//! The Settings tab: name, description, failure e-mails, retries, timeout, enabled; the
//! signing secret (revealed on click, and audited, to those who may manage webhooks; rotated with confirmation); the failure
//! notifications; deleting with the webhook's name typed as confirmation.

use crate::domain::ids::WebhookId;
use axum::{
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
};
use minijinja::{context, Value as Ctx};
use serde_json::{json, Value};

use super::{
    base_context, flash, render,
    webhook_body::{number, split_list},
    FormBody, OrPage, PageResult, Person,
};
use crate::{
    domain::{token::Ability, webhook::Webhook},
    http::{api::webhooks::webhook_json, error::ApiError, AppState},
    webhooks::{DEFAULT_GRACE, MAX_GRACE_SECONDS},
};

#[allow(clippy::too_many_arguments)]
async fn page(
    state: &AppState,
    person: &Person,
    status: StatusCode,
    hook: &Webhook,
    values: &Value,
    errors: std::collections::BTreeMap<String, String>,
    new_secret: Option<&str>,
    query: Option<&str>,
) -> PageResult {
    // A page that says "none" when it could not look would not tell the truth.
    let org = person.caller().organization_id();
    let (notifications, notices) = tokio::try_join!(
        state.store.list_notifications(org, &hook.id, 20),
        state.store.list_notices(org, &hook.id, 20),
    )
    .or_page(person.caller())?;
    let notes: Vec<Ctx> = notifications
        .iter()
        .map(|n| {
            context! {
                state => format!("{:?}", n.state).to_lowercase(),
                created_at => n.created_at.to_rfc3339(),
                sent_at => n.sent_at.map(|t| t.to_rfc3339()),
                last_error => &n.last_error,
                delivery_id => n.delivery_id.as_str(),
            }
        })
        .collect();
    // Notices about the URL (it stopped answering, answers again, the webhook was turned
    // off), each with what became of its e-mail: a skipped one is shown, not hidden.
    let notices: Vec<Ctx> = notices
        .iter()
        .map(|r| {
            context! {
                kind => r.notice.kind.as_str(),
                url => &r.notice.url,
                detail => &r.notice.detail,
                state => r.state.as_str(),
                created_at => r.notice.created_at.to_rfc3339(),
                last_error => &r.last_error,
            }
        })
        .collect();
    let mail_ids = values["mail_ids"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    Ok(render(
        status,
        "settings.html",
        base_context(Some(person.caller())),
        context! {
            title => format!("{} · Settings", hook.spec.name),
            nav => "webhooks",
            tab => "settings",
            flash => flash(query),
            hook => context! { id => hook.id.as_str(), name => &hook.spec.name, enabled => hook.spec.enabled },
            v => Ctx::from(minijinja::value::Serde(values)),
            mail_ids => mail_ids,
            errors => Ctx::from(errors),
            notifications => notes,
            notices => notices,
            new_secret => new_secret,
            can_edit => person.caller().allows(Ability::ManageWebhooks),
            can_reveal => person.caller().allows(Ability::ManageWebhooks),
            // E-mail looked set up when it was not: say so where addresses are entered.
            mail_off => state.config.smtp.host.is_empty(),
            // During a rotation's grace period, until when the old secret signs too.
            previous_until => hook
                .previous_secret
                .as_ref()
                .filter(|p| p.until > crate::domain::Timestamp::now())
                .map(|p| p.until.to_rfc3339()),
        },
    ))
}

pub async fn show(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path(id): Path<WebhookId>,
    RawQuery(query): RawQuery,
) -> PageResult {
    let hook = person.webhook(&state, &id).await?;
    let values = webhook_json(&hook);
    // The secret this person just rotated to, this once.
    let rotated = super::once::take(&state, &headers, person.caller(), "secret")
        .filter(|v| v["webhook"] == id.as_str())
        .and_then(|v| v["secret"].as_str().map(str::to_owned));
    let shown = page(
        &state,
        &person,
        StatusCode::OK,
        &hook,
        &values,
        Default::default(),
        rotated.as_deref(),
        query.as_deref(),
    )
    .await
    // The value shown once is gone with this answer, an error page too.
    .unwrap_or_else(IntoResponse::into_response);
    Ok(super::once::finish(&state, shown, rotated.is_some()))
}

pub async fn save(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path(id): Path<WebhookId>,
    form: FormBody,
) -> PageResult {
    let hook = person
        .webhook_to_change(&state, &headers, &form, &id)
        .await?;
    let mut body = webhook_json(&hook);
    body["name"] = json!(form.get("name"));
    body["description"] = json!(form.get("description"));
    body["mail_ids"] = Value::Array(split_list(form.get("mail_ids")));
    for key in ["max_retry", "timeout_seconds"] {
        body[key] = number(form.get(key));
    }
    body["rate_limit_per_second"] = match form.get("rate_limit_per_second").trim() {
        "" => Value::Null,
        text => number(text),
    };
    body["enabled"] = json!(form.get("enabled") == "true");
    match person.update_webhook(&state, &id, &body).await {
        Ok(_) => {
            Ok(super::redirect(&format!("/webhooks/{id}/settings?done=saved")).into_response())
        }
        Err(e @ (ApiError::Invalid(..) | ApiError::Forbidden(_))) => {
            let errors = match &e {
                ApiError::Invalid(_, list) => list
                    .iter()
                    .map(|f| (f.field.clone(), f.message.clone()))
                    .collect(),
                other => [("form".to_owned(), other.to_string())]
                    .into_iter()
                    .collect(),
            };
            page(
                &state,
                &person,
                e.status(),
                &hook,
                &body,
                errors,
                None,
                None,
            )
            .await
        }
        Err(e) => Err(e).or_page(person.caller()),
    }
}

/// The signing secret, for those who may manage webhooks, on click (htmx).
pub async fn reveal_secret(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path(id): Path<WebhookId>,
    form: FormBody,
) -> PageResult {
    person.permit(
        &headers,
        &form,
        Ability::ManageWebhooks,
        "seeing signing secrets",
    )?;
    let caller = person.caller();
    let editor = state.webhook_editor(caller).or_page(caller)?;
    let hook = editor.reveal_secret(&id).await.or_page(caller)?;
    Ok(render(
        StatusCode::OK,
        "secret.html",
        context! {},
        context! { secret => hook.secret, id => hook.id.as_str() },
    ))
}

pub async fn rotate(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path(id): Path<WebhookId>,
    form: FormBody,
) -> PageResult {
    let hook = person
        .webhook_to_change(&state, &headers, &form, &id)
        .await?;
    if form.get("confirm") != "yes" {
        let errors = [(
            "rotate".to_owned(),
            "Tick the box to confirm: receivers must switch to the new secret (the old one signs too until the time you chose).".to_owned(),
        )]
        .into_iter()
        .collect();
        return page(
            &state,
            &person,
            StatusCode::UNPROCESSABLE_ENTITY,
            &hook,
            &webhook_json(&hook),
            errors,
            None,
            None,
        )
        .await;
    }
    let grace = match form.get("grace").parse::<u64>() {
        Ok(seconds) if seconds <= MAX_GRACE_SECONDS => std::time::Duration::from_secs(seconds),
        _ => DEFAULT_GRACE,
    };
    let caller = person.caller();
    let editor = state.webhook_editor(caller).or_page(caller)?;
    let hook = editor.rotate_secret(&id, grace).await.or_page(caller)?;
    // Shown to the person who rotated it, this once (as the API answers with it), on the
    // page the rotation redirects to: a reload does not rotate again.
    Ok(super::once::redirect(
        &state,
        caller,
        &format!("/webhooks/{id}/settings?done=rotated"),
        "secret",
        json!({"webhook": id.as_str(), "secret": hook.secret}),
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path(id): Path<WebhookId>,
    form: FormBody,
) -> PageResult {
    let hook = person
        .webhook_to_change(&state, &headers, &form, &id)
        .await?;
    if form.get("confirm_name").trim() != hook.spec.name.trim() {
        let errors = [(
            "confirm_name".to_owned(),
            format!("Type the webhook's name, {}, to delete it.", hook.spec.name),
        )]
        .into_iter()
        .collect();
        return page(
            &state,
            &person,
            StatusCode::UNPROCESSABLE_ENTITY,
            &hook,
            &webhook_json(&hook),
            errors,
            None,
            None,
        )
        .await;
    }
    let caller = person.caller();
    let editor = state.webhook_editor(caller).or_page(caller)?;
    editor.delete(&id).await.or_page(caller)?;
    Ok(super::redirect("/webhooks?done=deleted").into_response())
}
