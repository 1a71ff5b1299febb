//! `/incidents`: the incidents tocsin received events for, with their last state, and
//! "Send to webhook" for webhooks that send only by hand (the API's manual trigger).

use axum::{
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use minijinja::{context, Value as Ctx};
use serde_json::Value;

use super::{base_context, error_page, flash, render, FormBody, Person};
use crate::{
    domain::{token::Ability, webhook::TriggerType},
    http::AppState,
    intake,
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
) -> Response {
    let org = person.caller().organization_id().to_owned();
    let events = match state.store.recent_incidents(&org, SHOWN).await {
        Ok(e) => e,
        Err(e) => return error_page(person.caller(), e.into()),
    };
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
    let manual: Vec<Ctx> = match state.catalog.webhooks(&org).await {
        Ok(s) => s
            .webhooks
            .iter()
            .filter(|c| c.webhook.spec.trigger_type == TriggerType::Manual)
            .map(|c| context! { id => c.webhook.id.as_str(), name => &c.webhook.spec.name })
            .collect(),
        Err(e) => return error_page(person.caller(), e.into()),
    };
    render(
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
    )
}

pub async fn send(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path(incident_id): Path<String>,
    form: FormBody,
) -> Response {
    if let Err(r) = person.permit(
        &headers,
        &form,
        Ability::ManageWebhooks,
        "sending incidents to webhooks",
    ) {
        return r;
    }
    let org = person.caller().organization_id().to_owned();
    match intake::trigger_manually(
        &state.store,
        &state.engine,
        &org,
        &incident_id,
        &form.get("webhook_id").into(),
    )
    .await
    {
        Ok(_) => super::redirect("/incidents?done=sent").into_response(),
        Err(e) => error_page(person.caller(), e.into()),
    }
}
