//! `/webhooks`: every webhook with its triggers, URLs, last 24 hours and state at a glance.

use axum::{
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use minijinja::{context, Value as Ctx};
use serde_json::json;

use super::{base_context, flash, render, FormBody, Person};
use super::{OrPage, PageResult};
use crate::{
    domain::{token::Ability, Timestamp},
    http::{api::webhooks::webhook_json, extract::query_pairs, AppState},
};

pub const PAGE: usize = 25;
const DAY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Since when "the last 24 hours" counts.
pub fn day_ago() -> Timestamp {
    Timestamp::now().minus(DAY)
}

pub async fn list(
    State(state): State<AppState>,
    person: Person,
    RawQuery(query): RawQuery,
) -> PageResult {
    let org = person.caller().organization_id().to_owned();
    let params = query_pairs(query.as_deref());
    let search = params
        .iter()
        .find(|(k, _)| k == "q")
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    let page: usize = params
        .iter()
        .find(|(k, _)| k == "page")
        .and_then(|(_, v)| v.parse().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1);
    let snapshot = state
        .catalog
        .webhooks(&org)
        .await
        .or_page(person.caller())?;
    let needle = search.to_lowercase();
    let matching: Vec<_> = snapshot
        .webhooks
        .iter()
        .map(|c| &c.webhook)
        .filter(|w| needle.is_empty() || w.spec.name.to_lowercase().contains(&needle))
        .collect();
    let total = matching.len();
    let pages = total.div_ceil(PAGE).max(1);
    let shown: Vec<_> = matching
        .into_iter()
        .skip((page - 1) * PAGE)
        .take(PAGE)
        .collect();
    let ids: Vec<_> = shown.iter().map(|w| w.id.clone()).collect();
    let counts = state
        .store
        .webhook_counts(&org, day_ago())
        .await
        .or_page(person.caller())?;
    let last = state
        .store
        .last_deliveries(&org, &ids)
        .await
        .or_page(person.caller())?;
    let urls: Vec<&str> = shown
        .iter()
        .flat_map(|w| &w.spec.urls)
        .map(|u| u.url.as_str())
        .collect();
    let open = super::open_urls(&state, &urls)
        .await
        .or_page(person.caller())?;
    let rows: Vec<Ctx> = shown
        .iter()
        .map(|w| {
            let (succeeded, failed) = counts.get(&w.id).copied().unwrap_or_default();
            let done = succeeded + failed;
            let rate = (done > 0).then(|| (succeeded * 100) / done);
            let last = last.get(&w.id);
            let triggers: Vec<String> = w
                .spec
                .triggers
                .iter()
                .map(|t| t.event_type.clone())
                .collect();
            context! {
                id => w.id.as_str(),
                name => &w.spec.name,
                enabled => w.spec.enabled,
                manual => w.spec.trigger_type == crate::domain::webhook::TriggerType::Manual,
                triggers => triggers,
                urls => w.spec.urls.len(),
                succeeded => succeeded,
                failed => failed,
                rate => rate,
                last_state => last.map(|(s, _, _)| s.as_str()),
                last_at => last.map(|(_, t, _)| t.to_rfc3339()),
                circuit_open => w.spec.urls.iter().any(|u| open.contains(&u.url)),
            }
        })
        .collect();
    let page_link = |p: usize| {
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("q", &search)
            .append_pair("page", &p.to_string())
            .finish();
        format!("/webhooks?{q}")
    };
    Ok(render(
        StatusCode::OK,
        "webhooks.html",
        base_context(Some(person.caller())),
        context! {
            title => "Webhooks",
            nav => "webhooks",
            flash => flash(query.as_deref()),
            rows => rows,
            search => &search,
            total => total,
            page => page,
            pages => pages,
            prev => (page > 1).then(|| page_link(page - 1)),
            next => (page < pages).then(|| page_link(page + 1)),
            can_edit => person.caller().allows(Ability::ManageWebhooks),
        },
    ))
}

/// `/webhooks/{id}` opens the Logs tab, where most visits go.
pub async fn open(Path(id): Path<String>) -> Response {
    super::redirect(&format!("/webhooks/{id}/logs")).into_response()
}

/// The list's enabled switch: the whole webhook goes back through the API's update with
/// only `enabled` changed (disabling cancels pending deliveries, as there).
pub async fn set_enabled(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path(id): Path<crate::domain::ids::WebhookId>,
    form: FormBody,
) -> PageResult {
    person.permit(
        &headers,
        &form,
        crate::domain::token::Ability::ManageWebhooks,
        "turning webhooks on and off",
    )?;
    let back = match form.get("back") {
        b if b.starts_with("/webhooks") && super::local_path(b).is_some() => b.to_owned(),
        _ => "/webhooks".to_owned(),
    };
    // Turning off cancels what is still pending: one click must not do that unasked.
    let caller = person.caller();
    let hook = person.webhook(&state, &id).await?;
    if form.get("enabled") != "true" && form.get("confirm") != "yes" && hook.spec.enabled {
        let pending = state.store.pending_count(&id).await.or_page(caller)?;
        if pending > 0 {
            return Ok(render(
                StatusCode::OK,
                "confirm_off.html",
                base_context(Some(caller)),
                context! {
                    title => format!("Turn off {}?", hook.spec.name),
                    nav => "webhooks",
                    id => id.as_str(), name => &hook.spec.name, pending => pending, back => &back,
                },
            ));
        }
    }
    let turning_on = form.get("enabled") == "true";
    let was_on = hook.spec.enabled;
    let mut body = webhook_json(&hook);
    body["enabled"] = json!(turning_on);
    let editor = state.webhook_editor(caller).or_page(caller)?;
    editor.update(&id, &body).await.or_page(caller)?;
    // Turned back on: cancelled deliveries (turning it off cancels what is pending) are
    // offered for a retry. It is on whatever this count says.
    let cancelled = if turning_on && !was_on {
        let q = crate::store::LogQuery {
            state: Some(crate::domain::delivery::DeliveryState::Cancelled),
            ..Default::default()
        };
        state
            .store
            .count_finished_matching(caller.organization_id(), &id, &q)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "could not count cancelled deliveries to offer");
                0
            })
    } else {
        0
    };
    Ok(match cancelled {
        0 => super::redirect(&back).into_response(),
        _ => super::redirect(&format!(
            "/webhooks/{id}/logs?state=cancelled&done=turned-on"
        ))
        .into_response(),
    })
}
