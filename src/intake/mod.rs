//! From a received event to started deliveries: match webhooks, render each payload once,
//! store everything in one transaction, hand what was leased to the engine.

mod company;
mod locked;
mod stall;

use std::{collections::HashMap, sync::Arc, time::Duration};

use serde_json::Value;

use crate::{
    catalog::{Catalog, Snapshot},
    dispatch::Engine,
    domain::{
        delivery::{NewDelivery, Origin},
        event::{event_from_members, parse_event_text, Event, Members, Tenant},
        ids::{new_id, DeliveryId, OrganizationId},
        webhook::{PayloadType, PayloadVersion, Webhook},
        FieldError, Timestamp,
    },
    filter, payload,
    store::{Accepted, Admission, Store, StoreError},
};
use company::Company;
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("invalid event")]
    Invalid(Vec<FieldError>),
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something on our side failed (the organization vanished, matching panicked).
    #[error("{0}")]
    Internal(String),
    /// The event could not be written (its batch failed, and so did the event alone when the
    /// batch held others): nothing of it was kept, and sending it again may well succeed.
    #[error("{0}")]
    NotStored(String),
    #[error("intake is shutting down")]
    ShuttingDown,
}

/// One delivery per URL of each webhook. Each distinct payload is rendered and stored once:
/// standard payloads are the same for every webhook of a version, and any deliveries whose
/// rendered bytes are equal share one payload row.
pub fn plan_deliveries<'a>(
    event: &Event,
    webhooks: impl IntoIterator<Item = &'a Webhook>,
) -> Vec<NewDelivery> {
    let mut out = Vec::new();
    let created_at = Timestamp::now();
    let mut standard: Vec<(PayloadVersion, Result<Arc<str>, String>)> = Vec::new();
    let mut stored: Vec<(Arc<str>, String)> = Vec::new();
    for webhook in webhooks {
        let spec = &webhook.spec;
        let rendered = if spec.payload_type == PayloadType::Standard {
            match standard.iter().find(|(v, _)| *v == spec.version) {
                Some((_, done)) => done.clone(),
                None => {
                    let done = payload::render(webhook, event).map(Arc::from);
                    standard.push((spec.version, done.clone()));
                    done
                }
            }
        } else {
            payload::render(webhook, event).map(Arc::from)
        };
        let (body, payload_id, failure) = match rendered {
            Ok(body) => {
                let id = match stored.iter().find(|(text, _)| *text == body) {
                    Some((_, id)) => id.clone(),
                    None => {
                        let id = new_id("pld");
                        stored.push((body.clone(), id.clone()));
                        id
                    }
                };
                (body, Some(id), None)
            }
            Err(reason) => (Arc::from(""), None, Some(reason)),
        };
        for url in &spec.urls {
            out.push(NewDelivery {
                id: DeliveryId::generate(),
                organization_id: event.organization_id.clone(),
                webhook_id: webhook.id.clone(),
                event_id: event.id.clone(),
                event_type: event.event_type.name,
                incident_id: event.incident_id().to_owned(),
                url: url.url.clone(),
                method: url.method,
                payload: body.clone(),
                payload_id: payload_id.clone(),
                failure: failure.clone(),
                notify: !spec.mail_ids.is_empty(),
                origin: Origin::Event,
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
    stall: Arc<std::sync::Mutex<stall::Stall>>,
}

struct Request {
    event: Event,
    deliveries: Vec<NewDelivery>,
    arrived: Instant,
    reply: oneshot::Sender<Result<Accepted, String>>,
}

/// Events per transaction at most.
const MAX_BATCH: usize = 256;

impl IntakeQueue {
    /// `linger`: how long a batch of one may wait for company when events come often
    /// (`delivery.intake_linger`; see `company.rs`).
    pub fn start(store: Arc<dyn Store>, engine: Engine, linger: Duration) -> IntakeQueue {
        let (requests, mut incoming) = mpsc::channel::<Request>(4 * MAX_BATCH);
        let stall = Arc::new(std::sync::Mutex::new(stall::Stall::default()));
        let watched = stall.clone();
        let note = move |f: &dyn Fn(&mut stall::Stall)| {
            f(&mut watched.lock().unwrap_or_else(|e| e.into_inner()));
        };
        tokio::spawn(async move {
            let mut company = Company::new(linger);
            let mut locked = locked::LockedIncidents::default();
            while let Some(batch) = next_batch(&mut incoming, &mut company, |r| r.arrived).await {
                crate::metrics::metrics().intake_batch(batch.len());
                note(&|s| s.batch_started(Instant::now().into_std()));
                let stored = commit(&store, &engine, batch, &mut locked).await;
                note(&|s| s.batch_ended(stored));
            }
        });
        IntakeQueue { requests, stall }
    }

    /// How long intake has been unable to commit (a write waiting on a lock or for the
    /// database, or failing since); `None` while it commits. Readiness reports it.
    pub fn stuck_for(&self) -> Option<Duration> {
        self.stall
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stuck_for(std::time::Instant::now())
    }

    async fn submit(
        &self,
        event: Event,
        deliveries: Vec<NewDelivery>,
    ) -> Result<Accepted, IntakeError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request {
                event,
                deliveries,
                arrived: Instant::now(),
                reply,
            })
            .await
            .map_err(|_| IntakeError::ShuttingDown)?;
        answer
            .await
            .map_err(|_| IntakeError::ShuttingDown)?
            .map_err(IntakeError::NotStored)
    }
}

/// The next batch to commit: what has arrived (up to [`MAX_BATCH`]), and, when `company`
/// says so, what arrives within its wait. `None` once the queue is closed and empty.
async fn next_batch<T>(
    incoming: &mut mpsc::Receiver<T>,
    company: &mut Company,
    arrived: impl Fn(&T) -> Instant,
) -> Option<Vec<T>> {
    let first = incoming.recv().await?;
    company.arrived(arrived(&first));
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match incoming.try_recv() {
            Ok(next) => {
                company.arrived(arrived(&next));
                batch.push(next);
            }
            Err(_) => break,
        }
    }
    let wait = company.wait_until(arrived(&batch[0]), batch.len());
    let held = batch.len();
    if let Some(until) = wait {
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(until, incoming.recv()).await {
                Ok(Some(next)) => {
                    company.arrived(arrived(&next));
                    batch.push(next);
                }
                // Time is up, or the queue closed (this batch still commits).
                _ => break,
            }
        }
    }
    company.committed(wait.is_some(), batch.len() - held);
    Some(batch)
}

/// Writes a batch. Should that fail, the events stored all the same are answered as
/// accepted (the failure came after the commit: the connection dropped while `COMMIT` was
/// answered, and a 503 would have the sender post a copy), and each other event is tried
/// alone, so that one bad event cannot fail the others and a connection that died in the
/// pool costs no event.
///
/// Returns whether the store took what it was given: every event stored but those of an incident
/// another node's write holds locked (answered at once, not tried: see `locked.rs`) — one
/// stuck incident does not make the node unready, only intake that cannot commit does.
async fn commit(
    store: &Arc<dyn Store>,
    engine: &Engine,
    batch: Vec<Request>,
    locked: &mut locked::LockedIncidents,
) -> bool {
    let now = std::time::Instant::now();
    let (skipped, batch): (Vec<Request>, Vec<Request>) = batch
        .into_iter()
        .partition(|r| locked.is_locked(&r.event.organization_id, r.event.incident_id(), now));
    for r in skipped {
        let _ = r.reply.send(Err(locked::refusal(r.event.incident_id())));
    }
    if batch.is_empty() {
        return true;
    }
    let admission = engine.admission();
    let (items, replies): (Vec<(Event, Vec<NewDelivery>)>, Vec<_>) = batch
        .into_iter()
        .map(|r| ((r.event, r.deliveries), r.reply))
        .unzip();
    let error = match store.accept_events(&items, &admission).await {
        Ok(answers) => {
            let stored: Vec<(&[NewDelivery], &[DeliveryId])> = items
                .iter()
                .zip(&answers)
                .map(|((_, deliveries), answer)| (deliveries.as_slice(), answer.leased.as_slice()))
                .collect();
            engine.stored(&admission, &stored);
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = reply.send(Ok(answer));
            }
            return true;
        }
        Err(e) => e,
    };
    if error.before_any_statement() {
        // No connection to be had (the database unreachable): nothing was written, and each
        // event alone would wait as long again. Senders hear at once to send again.
        tracing::warn!(error = %error, events = items.len(), "intake batch got no database connection; nothing was stored");
        for reply in replies {
            let _ = reply.send(Err(error.to_string()));
        }
        return false;
    }
    tracing::warn!(error = %error, events = items.len(), "intake batch failed; writing its events one by one");
    let stored = stored_anyway(store, engine, &admission, &items).await;
    let mut all_stored = true;
    for (item, reply) in items.iter().zip(replies) {
        let (organization_id, incident_id) = (&item.0.organization_id, item.0.incident_id());
        let answer = match &stored {
            Some(stored) if stored.contains_key(&item.0.id) => Ok(stored[&item.0.id].clone()),
            // Its lane lock was just waited for in vain: not tried alone, which would wait as
            // long again, holding every event queued behind.
            _ if locked.is_locked(organization_id, incident_id, std::time::Instant::now()) => {
                Err(locked::refusal(incident_id))
            }
            // The store did not answer: each event is tried once more, no more asked of it.
            stored => match alone(store, engine, &admission, item, stored.is_some()).await {
                Err((e, true)) => {
                    locked.note(organization_id, incident_id, std::time::Instant::now());
                    Err(e)
                }
                Err((e, false)) => {
                    all_stored = false;
                    Err(e)
                }
                Ok(answer) => Ok(answer),
            },
        };
        let _ = reply.send(answer);
    }
    all_stored
}

/// One event written alone after its batch failed; when that fails too and `ask` is set,
/// the store is asked whether it was stored all the same. A failure says whether it was a
/// lock waited for in vain.
async fn alone(
    store: &Arc<dyn Store>,
    engine: &Engine,
    admission: &Admission,
    item: &(Event, Vec<NewDelivery>),
    ask: bool,
) -> Result<Accepted, (String, bool)> {
    let one = std::slice::from_ref(item);
    match store.accept_events(one, admission).await {
        Ok(mut answers) => {
            let answer = answers.remove(0);
            engine.stored(admission, &[(&item.1, &answer.leased)]);
            Ok(answer)
        }
        Err(e) => {
            let failed = (e.to_string(), e.is_lock_timeout());
            if !ask {
                return Err(failed);
            }
            match stored_anyway(store, engine, admission, one).await {
                Some(mut stored) => stored.remove(&item.0.id).ok_or(failed),
                None => Err(failed),
            }
        }
    }
}

/// Of `items`, whose write failed, those stored all the same, by event id, answered as
/// accepted; their deliveries this node leased are given back and the poller woken to claim
/// them (the answer that named them was lost). `None` when the store could not say.
async fn stored_anyway(
    store: &Arc<dyn Store>,
    engine: &Engine,
    admission: &Admission,
    items: &[(Event, Vec<NewDelivery>)],
) -> Option<HashMap<String, Accepted>> {
    let ids: Vec<&str> = items.iter().map(|(e, _)| e.id.as_str()).collect();
    let found = match store.stored_anyway(engine.node(), &ids).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e, "could not tell whether events whose write failed were stored");
            return None;
        }
    };
    if !found.is_empty() {
        tracing::warn!(
            events = found.len(),
            "events whose write seemed to fail had been stored: answered as accepted"
        );
        engine.stored_unanswered(
            admission,
            items
                .iter()
                .filter(|(e, _)| found.contains_key(&e.id))
                .flat_map(|(_, d)| d),
        );
    }
    Some(
        found
            .into_iter()
            .map(|(event_id, deliveries)| {
                let answer = Accepted {
                    event_id: event_id.clone(),
                    deliveries,
                    duplicate: false,
                    leased: Vec::new(),
                };
                (event_id, answer)
            })
            .collect(),
    )
}

/// `POST /v3/events`: answers only once the event and all its deliveries are committed.
pub async fn accept(
    catalog: &Catalog,
    queue: &IntakeQueue,
    organization_id: &OrganizationId,
    body: &Value,
    text: &[u8],
) -> Result<Accepted, IntakeError> {
    let event = parse(catalog, organization_id, body, text).await?;
    accept_event(catalog, queue, event).await
}

/// A `POST /v3/events` body as the organization's event (its name fills in a missing
/// `organization`).
pub async fn parse(
    catalog: &Catalog,
    organization_id: &OrganizationId,
    body: &Value,
    text: &[u8],
) -> Result<Event, IntakeError> {
    checked(catalog, organization_id, |tenant| {
        parse_event_text(body, text, tenant)
    })
    .await
}

/// An event an event source made, checked as a posted body is.
pub async fn from_members(
    catalog: &Catalog,
    organization_id: &OrganizationId,
    members: Members,
) -> Result<Event, IntakeError> {
    checked(catalog, organization_id, |tenant| {
        event_from_members(members, tenant)
    })
    .await
}

async fn checked(
    catalog: &Catalog,
    organization_id: &OrganizationId,
    check: impl FnOnce(Tenant<'_>) -> Result<Event, Vec<FieldError>>,
) -> Result<Event, IntakeError> {
    let webhooks = catalog.webhooks(organization_id).await?;
    let organization = webhooks.organization.as_ref().ok_or_else(|| {
        IntakeError::Internal(format!("organization {organization_id} is missing"))
    })?;
    check(Tenant {
        id: &organization.id,
        name: &organization.name,
    })
    .map_err(IntakeError::Invalid)
}

/// Matches, renders and stores a parsed event with its deliveries (answered after the
/// commit).
pub async fn accept_event(
    catalog: &Catalog,
    queue: &IntakeQueue,
    event: Event,
) -> Result<Accepted, IntakeError> {
    let webhooks = catalog.webhooks(&event.organization_id).await?;
    // Matching is bounded in regex work per event; when any filter has a regex it runs on
    // the blocking pool, so a heavy event cannot hold an async worker (and /healthz).
    let plan = move |webhooks: &Snapshot, event: &Event| {
        let (deliveries, exhausted) = filter::with_regex_budget(filter::EVENT_REGEX_BUDGET, || {
            let matching = webhooks.matching(event).map(|w| &w.webhook);
            plan_deliveries(event, matching)
        });
        if exhausted {
            tracing::warn!(
                incident = ?event.incident_id(),
                "regex filters hit the per-event limit; the remaining regex conditions did not match"
            );
        }
        deliveries
    };
    let (event, deliveries) = if webhooks.has_regex {
        let snapshot = webhooks.clone();
        tokio::task::spawn_blocking(move || {
            let deliveries = plan(&snapshot, &event);
            (event, deliveries)
        })
        .await
        .map_err(|e| IntakeError::Internal(format!("matching failed: {e}")))?
    } else {
        let deliveries = plan(&webhooks, &event);
        (event, deliveries)
    };
    queue.submit(event, deliveries).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        event::{parse_event, Tenant},
        webhook::parse_spec,
    };
    use serde_json::json;

    /// `n` arrivals `every` apart, sent into a queue that `next_batch` takes from with a
    /// wait of `linger`: the sizes of the batches it made.
    async fn batch_sizes(linger: Duration, every: Duration, n: u32) -> Vec<usize> {
        let (tx, mut rx) = mpsc::channel::<Instant>(MAX_BATCH);
        let producer = tokio::spawn(async move {
            let start = Instant::now();
            for i in 0..n {
                tokio::time::sleep_until(start + every * i).await;
                tx.send(Instant::now()).await.unwrap();
            }
        });
        let mut company = Company::new(linger);
        let mut sizes = Vec::new();
        while let Some(batch) = next_batch(&mut rx, &mut company, |at| *at).await {
            sizes.push(batch.len());
        }
        producer.await.unwrap();
        sizes
    }

    // Paused time: the producer's sleeps and the batch's wait move a clock of their own, so
    // what each batch holds does not depend on how busy the machine is.
    #[tokio::test(start_paused = true)]
    async fn events_that_come_often_share_commits_and_without_a_wait_do_not() {
        // 100 events/s, a 20 ms wait: two expected within it. Nothing waits in the first
        // tenth of a second (no rate yet); after it, a batch takes the events that come
        // within its first event's wait.
        let every = Duration::from_millis(10);
        let sizes = batch_sizes(Duration::from_millis(20), every, 40).await;
        // Ten alone in the first tenth of a second, then each batch with the one event that
        // comes within its wait (the one after that arrives as the wait ends).
        assert_eq!(sizes, [vec![1; 10], vec![2; 15]].concat());
        let sizes = batch_sizes(Duration::ZERO, every, 40).await;
        assert_eq!(
            sizes.len(),
            40,
            "with no wait, every event alone: {sizes:?}"
        );
    }

    fn hook(name: &str, patch: Value) -> Webhook {
        let mut body = json!({
            "name": name,
            "triggers": [{"event_class": "incident", "event_type": "triggered"}],
            "urls": [{"url": "https://a.example/h"}, {"url": "https://b.example/h"}],
            "is_all_teams_configured": true
        });
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        Webhook::new(&"o".into(), "t", parse_spec(&body).unwrap())
    }

    #[test]
    fn each_distinct_payload_is_stored_once_per_event() {
        let body = json!({"type": "incident.triggered", "team": {"id": "t"},
            "incident": {"id": "i", "message": "m", "status": "triggered",
                         "service": {"id": "s"}, "alert_source": {"id": "a"}}});
        let event = parse_event(&body, Tenant { id: "o", name: "O" }).unwrap();
        let hooks = [
            hook("v2 one", json!({})),
            hook("v2 two", json!({})),
            hook("v1", json!({"version": "v1"})),
            hook(
                "custom",
                json!({"payload_type": "custom", "custom_payload": "{\"m\": {{ incident.message }}}"}),
            ),
            hook(
                "same custom",
                json!({"payload_type": "custom", "custom_payload": "{\"m\": {{ incident.message }}}"}),
            ),
        ];
        let planned = plan_deliveries(&event, &hooks);
        assert_eq!(planned.len(), 10, "one per URL");
        let id = |i: usize| planned[i].payload_id.clone().unwrap();
        assert_eq!(id(0), id(1), "URLs of a webhook share it");
        assert_eq!(id(0), id(2), "so do webhooks rendering the same bytes");
        assert_ne!(id(0), id(4), "v1 differs");
        assert_ne!(id(4), id(6), "so does the template");
        assert_eq!(id(6), id(8), "equal templates share");
        for d in &planned {
            let expected =
                payload::render(hooks.iter().find(|h| h.id == d.webhook_id).unwrap(), &event)
                    .unwrap();
            assert_eq!(&*d.payload, expected, "each carries its own rendering");
        }
    }
}
