//! Deliveries people ask for, outside the flow of events: the manual trigger, "send again",
//! "send a test" (`test.rs`) and the bulk retry (`bulk_retry.rs`). Each is made as intake
//! makes an event's (`intake::plan_deliveries`) and stored and started as the engine says.

mod bulk_retry;
mod test;

use std::sync::Arc;

pub use bulk_retry::{adopt_bulk_retries, start_bulk_retry};
pub use test::{send_test, TestOutcome};

use crate::{
    dispatch::Engine,
    domain::{
        delivery::{NewDelivery, Origin},
        event_type::EventType,
        ids::{new_id, DeliveryId, OrganizationId, WebhookId},
        webhook::Webhook,
        FieldError, Timestamp,
    },
    intake::{plan_deliveries, IntakeError},
    store::Store,
};

/// The manual trigger: the incident's latest snapshot, as the payload of its latest event,
/// to every URL of one webhook, whatever its triggers.
pub async fn trigger_manually(
    store: &Arc<dyn Store>,
    engine: &Engine,
    organization_id: &OrganizationId,
    incident_id: &str,
    webhook_id: &WebhookId,
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
    add_deliveries(store, engine, &deliveries).await?;
    Ok(webhook)
}

/// "Send again": a new delivery (a new `webhook-id`) of a logged one, with the same URL,
/// method and payload bytes, started like any other.
pub async fn resend(
    store: &Arc<dyn Store>,
    engine: &Engine,
    organization_id: &OrganizationId,
    webhook_id: &WebhookId,
    delivery_id: &DeliveryId,
) -> Result<DeliveryId, IntakeError> {
    let not_found =
        || IntakeError::NotFound(format!("delivery {delivery_id} of webhook {webhook_id}"));
    let (old, _) = store
        .delivery(organization_id, webhook_id, delivery_id)
        .await?
        .ok_or_else(not_found)?;
    let webhook = store
        .webhook(organization_id, webhook_id)
        .await?
        .ok_or_else(not_found)?;
    let event_type = EventType::from_name(&old.event_type).ok_or_else(not_found)?;
    // A delivery whose payload could not be rendered has nothing to send again.
    if old.payload.is_empty() && old.attempts == 0 {
        return Err(IntakeError::Invalid(vec![FieldError::new(
            "delivery",
            format!(
                "was never sent: {}; fix the webhook's payload instead",
                old.last_error
                    .as_deref()
                    .unwrap_or("its payload could not be rendered")
            ),
        )]));
    }
    let delivery = NewDelivery {
        id: DeliveryId::generate(),
        organization_id: organization_id.clone(),
        webhook_id: webhook_id.clone(),
        event_id: old.event_id,
        event_type: event_type.name,
        incident_id: old.incident_id,
        url: old.url,
        method: old.method,
        payload: Arc::from(old.payload),
        // The same bytes: the original's payload row when it has one.
        payload_id: old.payload_id.clone().or_else(|| Some(new_id("pld"))),
        failure: None,
        notify: !webhook.spec.mail_ids.is_empty(),
        origin: Origin::Resend(old.id.clone()),
        created_at: Timestamp::now(),
    };
    let deliveries = [delivery];
    add_deliveries(store, engine, &deliveries).await?;
    Ok(deliveries[0].id.clone())
}

/// Writes deliveries made here (a manual trigger, a "send again") and starts them. A write
/// that seems to fail may have landed (the connection dropped while `COMMIT` was answered):
/// the store is asked, and deliveries it holds are reported as made, their
/// leases given back to the poller, so that a person told "failed" does not press again and
/// send twice. A write that did not land is tried once more (a pooled connection may have
/// died between its ping and its use).
async fn add_deliveries(
    store: &Arc<dyn Store>,
    engine: &Engine,
    deliveries: &[NewDelivery],
) -> Result<(), IntakeError> {
    let ids: Vec<&str> = deliveries.iter().map(|d| d.id.as_str()).collect();
    let mut tries = 0;
    loop {
        tries += 1;
        let admission = engine.admission();
        let error = match store.add_deliveries(deliveries, &admission).await {
            Ok(leased) => {
                engine.stored(&admission, &[(deliveries, &leased)]);
                return Ok(());
            }
            Err(e) => e,
        };
        // One transaction: all of them are stored, or none.
        match store.deliveries_stored_anyway(engine.node(), &ids).await {
            Ok(found) if !found.is_empty() => {
                tracing::warn!(error = %error, deliveries = found.len(), "deliveries whose write seemed to fail had been stored");
                engine.stored_unanswered(&admission, deliveries);
                return Ok(());
            }
            Ok(_) if tries < 2 => {
                tracing::warn!(error = %error, "writing deliveries failed; trying once more");
            }
            _ => return Err(error.into()),
        }
    }
}
