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
    store::{Accepted, Admission, Store, StoreError},
};
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("invalid event")]
    Invalid(Vec<FieldError>),
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The intake batch could not be written, or intake is shutting down.
    #[error("{0}")]
    Unavailable(String),
}

/// One delivery per URL of each webhook, sharing the webhook's rendered payload.
pub fn plan_deliveries<'a>(
    event: &Event,
    webhooks: impl IntoIterator<Item = &'a Webhook>,
) -> Vec<NewDelivery> {
    let mut out = Vec::new();
    let created_at = Timestamp::now();
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
                created_at,
            });
        }
    }
    out
}

/// Group commit for intake: concurrent requests are written together, in one transaction
/// with a few multi-row statements, while the previous batch commits. Each request is
/// answered only after its batch is committed.
#[derive(Clone)]
pub struct IntakeQueue {
    requests: mpsc::Sender<Request>,
}

struct Request {
    event: Event,
    deliveries: Vec<NewDelivery>,
    reply: oneshot::Sender<Result<Accepted, String>>,
}

/// Events per transaction at most.
const MAX_BATCH: usize = 256;

impl IntakeQueue {
    pub fn start(store: Arc<dyn Store>, engine: Engine) -> IntakeQueue {
        let (requests, mut incoming) = mpsc::channel::<Request>(4 * MAX_BATCH);
        tokio::spawn(async move {
            while let Some(first) = incoming.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match incoming.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                commit(&store, &engine, batch).await;
            }
        });
        IntakeQueue { requests }
    }

    async fn submit(
        &self,
        event: Event,
        deliveries: Vec<NewDelivery>,
    ) -> Result<Accepted, IntakeError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || IntakeError::Unavailable("intake is shutting down".into());
        self.requests
            .send(Request {
                event,
                deliveries,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        answer
            .await
            .map_err(|_| stopped())?
            .map_err(IntakeError::Unavailable)
    }
}

/// Writes a batch; if it fails as a whole, each request is tried alone so that one bad
/// event cannot fail the others.
async fn commit(store: &Arc<dyn Store>, engine: &Engine, batch: Vec<Request>) {
    let admission = engine.admission();
    let (items, replies): (Vec<(Event, Vec<NewDelivery>)>, Vec<_>) = batch
        .into_iter()
        .map(|r| ((r.event, r.deliveries), r.reply))
        .unzip();
    match store.accept_events(&items, &admission).await {
        Ok(answers) => {
            engine.parked(&admission, items.iter().flat_map(|(_, d)| d));
            for (((_, deliveries), reply), answer) in items.iter().zip(replies).zip(answers) {
                start_leased(engine, deliveries, &answer.leased, &admission);
                let _ = reply.send(Ok(answer));
            }
        }
        Err(e) if items.len() > 1 => {
            tracing::warn!(error = %e, events = items.len(), "intake batch failed; writing its events one by one");
            for (item, reply) in items.iter().zip(replies) {
                let answer = store
                    .accept_events(std::slice::from_ref(item), &admission)
                    .await
                    .map(|mut answers| answers.remove(0));
                if let Ok(answer) = &answer {
                    engine.parked(&admission, &item.1);
                    start_leased(engine, &item.1, &answer.leased, &admission);
                }
                let _ = reply.send(answer.map_err(|e| e.to_string()));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.to_string()));
            }
        }
    }
}

fn start_leased(
    engine: &Engine,
    deliveries: &[NewDelivery],
    leased: &[String],
    admission: &Admission,
) {
    let Some(lease) = &admission.lease else {
        return;
    };
    let jobs = deliveries
        .iter()
        .filter(|d| leased.contains(&d.id))
        .map(|d| Job::from_new(d, lease))
        .collect();
    engine.submit(jobs);
}

/// `POST /v3/events`: answers only once the event and all its deliveries are committed.
pub async fn accept(
    catalog: &Catalog,
    queue: &IntakeQueue,
    organization_id: &str,
    body: &Value,
) -> Result<Accepted, IntakeError> {
    let webhooks = catalog.webhooks(organization_id).await?;
    let organization = webhooks.organization.as_ref().ok_or_else(|| {
        IntakeError::Unavailable(format!("organization {organization_id} is missing"))
    })?;
    let tenant = Tenant {
        id: &organization.id,
        name: &organization.name,
    };
    let event = parse_event(body, tenant).map_err(IntakeError::Invalid)?;
    let matching = webhooks
        .webhooks
        .iter()
        .filter(|w| fires_for(w, &event))
        .map(|w| &w.webhook);
    let deliveries = plan_deliveries(&event, matching);
    queue.submit(event, deliveries).await
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
    let admission = engine.admission();
    let leased = store.add_deliveries(&deliveries, &admission).await?;
    engine.parked(&admission, &deliveries);
    start_leased(engine, &deliveries, &leased, &admission);
    Ok(webhook)
}
