//! `/incidents`: the incidents tocsin received events for, with their last state, and
//! "Send to webhook" for webhooks that send only by hand (the API's manual trigger);
//! `/incidents/{id}`: one incident's deliveries across every webhook.

use axum::{
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
};
use minijinja::{context, Value as Ctx};
use serde_json::Value;

use super::{base_context, flash, render, FormBody, Person};
use super::{OrPage, PageResult};
use crate::{
    domain::{token::Ability, webhook::TriggerType},
    http::{error::ApiError, AppState},
};

const SHOWN: u32 = 100;

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub async fn list(
    State(state): State<AppState>,
    person: Person,
    RawQuery(query): RawQuery,
) -> PageResult {
    let org = person.caller().organization_id().to_owned();
    let events = state
        .store
        .recent_incidents(&org, SHOWN)
        .await
        .or_page(person.caller())?;
    let rows: Vec<Ctx> = events
        .iter()
        .map(|e| {
            let i = &e.incident;
            let get = |k: &str| i.get(k).map(text).unwrap_or_default();
            let service = i
                .get("service")
                .map(|s| text(s.get("name").unwrap_or(&s["id"])))
                .unwrap_or_default();
            context! {
                id => e.incident_id(),
                message => get("message").chars().take(160).collect::<String>(),
                status => get("status"),
                service => service,
                event_type => e.event_type.name,
                received_at => e.received_at.to_rfc3339(),
            }
        })
        .collect();
    let snapshot = state
        .catalog
        .webhooks(&org)
        .await
        .or_page(person.caller())?;
    let manual: Vec<Ctx> = snapshot
        .webhooks
        .iter()
        .filter(|c| c.webhook.spec.trigger_type == TriggerType::Manual)
        .map(|c| context! { id => c.webhook.id.as_str(), name => &c.webhook.spec.name })
        .collect();
    Ok(render(
        StatusCode::OK,
        "incidents.html",
        base_context(Some(person.caller())),
        context! {
            title => "Incidents",
            nav => "incidents",
            flash => flash(query.as_deref()),
            rows => rows,
            manual => manual,
            can_send => person.caller().allows(Ability::ManageWebhooks),
        },
    ))
}

/// At most this many deliveries on an incident's page (the oldest: how it began).
const DELIVERIES_SHOWN: u32 = 500;

/// `/incidents/{id}`: the incident as its latest event left it, and every delivery of its
/// events across the webhooks, in the order they were made, each opening to its payload
/// and attempts as on the webhook's Logs tab.
pub async fn show(
    State(state): State<AppState>,
    person: Person,
    Path(incident_id): Path<String>,
) -> PageResult {
    let org = person.caller().organization_id().to_owned();
    let not_found = || ApiError::NotFound(format!("incident {incident_id}"));
    let latest = state
        .store
        .latest_incident_event(&org, &incident_id)
        .await
        .map_err(ApiError::from)
        .and_then(|found| found.ok_or_else(not_found))
        .or_page(person.caller())?;
    let (deliveries, webhooks) = tokio::try_join!(
        state
            .store
            .incident_deliveries(&org, &incident_id, DELIVERIES_SHOWN),
        state.catalog.webhooks(&org),
    )
    .or_page(person.caller())?;
    let name_of = |id: &crate::domain::ids::WebhookId| {
        webhooks
            .webhooks
            .iter()
            .find(|c| &c.webhook.id == id)
            .map(|c| c.webhook.spec.name.clone())
    };
    let rows: Vec<Ctx> = deliveries
        .iter()
        .map(|d| {
            let masked = crate::domain::webhook::mask_url(&d.url);
            context! {
                id => d.id.as_str(),
                webhook_id => d.webhook_id.as_str(),
                webhook => name_of(&d.webhook_id),
                state => d.state.as_str(),
                event_type => &d.event_type,
                url_end => super::logs::url_end(&masked),
                url => masked,
                method => d.method.as_str(),
                attempts => d.attempts,
                last_status => d.last_status,
                next_attempt_at => d.next_attempt().map(|t| t.to_rfc3339()),
                created_at => d.created_at.to_rfc3339(),
                origin => d.origin.as_str(),
            }
        })
        .collect();
    let i = &latest.incident;
    let get = |k: &str| i.get(k).map(text).unwrap_or_default();
    // Named as the filter builder names them (the directory's rule).
    let entries = crate::domain::directory::from_parts(
        i.get("service"),
        i.get("alert_source"),
        None,
        latest.received_at,
    );
    let named = |kind: crate::domain::directory::Kind| {
        entries
            .iter()
            .find(|e| e.kind == kind)
            .map(|e| e.name.clone())
            .unwrap_or_default()
    };
    Ok(render(
        StatusCode::OK,
        "incident.html",
        base_context(Some(person.caller())),
        context! {
            title => format!("Incident {incident_id}"),
            nav => "incidents",
            incident => context! {
                id => &incident_id,
                message => get("message"),
                status => get("status"),
                service => named(crate::domain::directory::Kind::Service),
                alert_source => named(crate::domain::directory::Kind::AlertSource),
                last_event => latest.event_type.name,
                received_at => latest.received_at.to_rfc3339(),
            },
            rows => rows,
            cut => deliveries.len() as u32 == DELIVERIES_SHOWN,
            shown => DELIVERIES_SHOWN,
        },
    ))
}

pub async fn send(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path(incident_id): Path<String>,
    form: FormBody,
) -> PageResult {
    person.permit(
        &headers,
        &form,
        Ability::ManageWebhooks,
        "sending incidents to webhooks",
    )?;
    let org = person.caller().organization_id().to_owned();
    let webhook_id = form.get("webhook_id").into();
    crate::sends::trigger_manually(&state.store, &state.engine, &org, &incident_id, &webhook_id)
        .await
        .or_page(person.caller())?;
    Ok(super::redirect("/incidents?done=sent").into_response())
}
