//! "Send a test": a sample event to every URL of a webhook, now, one attempt each, the
//! caller waiting for the answers.

use crate::{
    dispatch::{Engine, Job, SentNow},
    domain::{
        delivery::Origin,
        event::{Event, Tenant},
        event_type::EventType,
        ids::{new_id, DeliveryId},
        organization::Organization,
        webhook::{mask_url, Method, Webhook},
        Timestamp,
    },
    intake::{plan_deliveries, IntakeError},
    payload,
    store::{Admission, Lease, Store},
};
use serde_json::{json, Value};
use std::sync::Arc;

/// "Send a test": a sample event of `event_type` (Squadcast's, with this organization) to
/// every URL of the webhook, now, one attempt each; logged as deliveries marked `test`.
/// Returns each URL's outcome, and deliveries whose payload could not be rendered as
/// their error.
pub async fn send_test(
    store: &Arc<dyn Store>,
    engine: &Engine,
    organization: &Organization,
    webhook: &Webhook,
    event_type: &'static EventType,
) -> Result<(Event, Vec<TestOutcome>), IntakeError> {
    let event = payload::samples::event_of(
        event_type,
        Some(Tenant {
            id: &organization.id,
            name: &organization.name,
        }),
    );
    let mut deliveries = plan_deliveries(&event, [webhook]);
    for d in &mut deliveries {
        d.origin = Origin::Test;
        d.notify = false;
    }
    let lease = Lease {
        owner: new_id("test"),
        until: Timestamp::now().plus(std::time::Duration::from_secs(60)),
    };
    let admission = Admission {
        lease: Some(lease.clone()),
        park_urls: Vec::new(),
        park_until: Timestamp::now(),
    };
    let accepted = store
        .accept_events(&[(event.clone(), deliveries.clone())], &admission)
        .await?;
    let leased = accepted
        .first()
        .map(|a| a.leased.clone())
        .unwrap_or_default();
    let jobs = deliveries
        .iter()
        .filter(|d| leased.contains(&d.id))
        .map(|d| Job::from_new(d, &lease))
        .collect();
    let sent = engine.send_now(jobs, webhook, &lease).await;
    let outcomes = deliveries
        .into_iter()
        .map(|d| match sent.iter().find(|s| s.delivery_id == d.id) {
            Some(s) => TestOutcome::Sent(s.clone()),
            None => TestOutcome::NotSent {
                delivery_id: d.id,
                url: d.url,
                method: d.method,
                reason: d
                    .failure
                    .unwrap_or_else(|| "it could not be started".to_owned()),
            },
        })
        .collect();
    Ok((event, outcomes))
}

/// One URL's answer to a test.
#[derive(Debug, Clone)]
pub enum TestOutcome {
    Sent(SentNow),
    NotSent {
        delivery_id: DeliveryId,
        url: String,
        method: Method,
        reason: String,
    },
}

impl TestOutcome {
    /// Each URL's answer to a test, as the API and the pages show it.
    pub fn to_json(&self) -> Value {
        match self {
            TestOutcome::Sent(s) => json!({
                "delivery_id": s.delivery_id,
                "url": mask_url(&s.url),
                "method": s.method,
                "succeeded": s.succeeded,
                "status": s.attempt.response_status,
                "duration_ms": s.attempt.duration_ms,
                "body": s.attempt.response_body,
                "error": s.attempt.error,
            }),
            TestOutcome::NotSent {
                delivery_id,
                url,
                method,
                reason,
            } => json!({
                "delivery_id": delivery_id,
                "url": mask_url(url),
                "method": method,
                "succeeded": false,
                "status": null,
                "duration_ms": null,
                "body": null,
                "error": reason,
            }),
        }
    }
}
