//! From a received event to started deliveries: match webhooks, render each payload once,
//! store everything in one transaction, hand what was leased to the engine.

use std::sync::Arc;

use serde_json::Value;

use crate::{
    catalog::{fires_for, Catalog},
    dispatch::{Engine, Job},
    domain::{
        delivery::NewDelivery,
        event::{parse_event, Event, Tenant},
        ids::new_id,
        webhook::Webhook,
        FieldError, Timestamp,
    },
    payload,
    store::{Accepted, Store, StoreError},
};

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("invalid event")]
    Invalid(Vec<FieldError>),
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One delivery per URL of each webhook, sharing the webhook's rendered payload.
pub fn plan_deliveries<'a>(
    event: &Event,
    webhooks: impl IntoIterator<Item = &'a Webhook>,
) -> Vec<NewDelivery> {
    let mut out = Vec::new();
    for webhook in webhooks {
        let (body, failure) = match payload::render(webhook, event) {
            Ok(body) => (body, None),
            Err(reason) => (String::new(), Some(reason)),
        };
        for url in &webhook.spec.urls {
            out.push(NewDelivery {
                id: new_id("msg"),
                organization_id: event.organization_id.clone(),
                webhook_id: webhook.id.clone(),
                event_id: event.id.clone(),
                event_type: event.event_type.name,
                incident_id: event.incident_id().to_owned(),
                url: url.url.clone(),
                method: url.method,
                payload: body.clone(),
                failure: failure.clone(),
                notify: !webhook.spec.mail_ids.is_empty(),
                created_at: Timestamp::now(),
            });
        }
    }
    out
}

/// Stores deliveries (with the event, when new) and starts those the engine leased.
async fn store_and_start(
    store: &Arc<dyn Store>,
    engine: &Engine,
    event: Option<&Event>,
    deliveries: Vec<NewDelivery>,
) -> Result<Option<Accepted>, StoreError> {
    let (room, saturated) = engine.admission();
    let lease = engine.lease();
    let lease_ref = room.then_some(&lease);
    let (accepted, leased) = match event {
        Some(event) => {
            let accepted = store
                .accept_event(event, &deliveries, lease_ref, &saturated)
                .await?;
            let leased = accepted.leased.clone();
            (Some(accepted), leased)
        }
        None => (
            None,
            store
                .add_deliveries(&deliveries, lease_ref, &saturated)
                .await?,
        ),
    };
    let jobs = deliveries
        .iter()
        .filter(|d| leased.contains(&d.id))
        .map(|d| Job::from_new(d, &lease))
        .collect();
    engine.submit(jobs);
    Ok(accepted)
}

/// `POST /v3/events`: answers only once the event and all its deliveries are committed.
pub async fn accept(
    store: &Arc<dyn Store>,
    catalog: &Catalog,
    engine: &Engine,
    tenant: Tenant<'_>,
    body: &Value,
) -> Result<Accepted, IntakeError> {
    let event = parse_event(body, tenant).map_err(IntakeError::Invalid)?;
    let webhooks = catalog.webhooks(&event.organization_id).await?;
    let matching = webhooks
        .iter()
        .filter(|w| fires_for(w, &event))
        .map(|w| &w.webhook);
    let deliveries = plan_deliveries(&event, matching);
    let accepted = store_and_start(store, engine, Some(&event), deliveries).await?;
    Ok(accepted.expect("an event was given"))
}

/// The manual trigger: the incident's latest snapshot, as the payload of its latest event,
/// to every URL of one webhook, whatever its triggers.
pub async fn trigger_manually(
    store: &Arc<dyn Store>,
    engine: &Engine,
    organization_id: &str,
    incident_id: &str,
    webhook_id: &str,
) -> Result<Webhook, IntakeError> {
    let webhook = store
        .webhook(organization_id, webhook_id)
        .await?
        .ok_or_else(|| IntakeError::NotFound(format!("webhook {webhook_id}")))?;
    let event = store
        .latest_incident_event(organization_id, incident_id)
        .await?
        .ok_or_else(|| {
            IntakeError::NotFound(format!(
                "incident {incident_id} (tocsin knows the incidents it received events for)"
            ))
        })?;
    let deliveries = plan_deliveries(&event, [&webhook]);
    store_and_start(store, engine, None, deliveries).await?;
    Ok(webhook)
}
