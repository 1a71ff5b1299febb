//! One attempt of one delivery, from its turn to its result: wait for the URL's and the
//! engine's room, pass the circuit, hold the lease, send, tell the book and the recorder.
//! Each step that can end the attempt early says why in its comment; a delivery that does
//! not go is parked, or left to its lease (released at shutdown, or run out).

use std::{
    sync::{Arc, PoisonError},
    time::Duration,
};

use rand::Rng;
use tokio::sync::Semaphore;

use super::{
    book::{Admit, AfterClaim, Refill},
    circuit::Gate,
    cluster,
    job::Job,
    recorder::Message,
    send::Outcome,
    shared::Inner,
};
use crate::{
    domain::{
        delivery::{AttemptResult, DeliveryState},
        retry::{retry_delay, verdict, Verdict},
        webhook::Webhook,
    },
    store::Lease,
};

/// One attempt of `job`, within its URL's `url_permits`.
pub(super) async fn attempt(inner: &Arc<Inner>, mut job: Job, url_permits: Arc<Semaphore>) {
    // The URL's own limits first (its concurrency, then its rate), so deliveries waiting on
    // a slow or rate-limited URL hold none of the shared capacity.
    let Ok(_url_permit) = url_permits.acquire_owned().await else {
        return;
    };
    let Some(probe) = turn(inner, &job) else {
        return;
    };
    let Some(webhook) = webhook_of(inner, &job).await else {
        return;
    };
    if let Some(per_second) = webhook.spec.rate_limit_per_second {
        if !rate_slot(inner, &job, per_second).await {
            return; // stopping: the lease is released at shutdown
        }
    }
    let Ok(_permit) = inner.global.clone().acquire_owned().await else {
        return;
    };
    let timeout = Duration::from_secs(webhook.spec.timeout_seconds as u64);
    if !lease_covers(inner, &mut job, timeout).await {
        return; // lost to another node, cancelled, or done
    }
    let Some(probe) = claimed(inner, &job, probe).await else {
        return; // parked until the probe's time
    };
    let number = job.attempts + 1;
    let outcome = inner.send(&job, &webhook, timeout, number).await;
    let was_probe = probe.map(ProbeSlot::sent).is_some();
    cluster::attempted(inner, &job, &webhook, &outcome, was_probe, timeout).await;
    if outcome.attempt.response_status == Some(410) {
        // Before the result is recorded: the lane must not move on to the next delivery.
        disable_gone(inner, &job, &webhook).await;
    }
    record(inner, &job, &webhook, outcome, number);
}

/// A job's hold on its URL's one probe. Dropped before the probe was sent (stopping,
/// webhook gone, lease lost, …) it gives the slot back so another probe may go.
struct ProbeSlot {
    inner: Arc<Inner>,
    url: String,
    sent: bool,
}

impl ProbeSlot {
    fn new(inner: &Arc<Inner>, url: &str) -> Self {
        Self {
            inner: inner.clone(),
            url: url.to_owned(),
            sent: false,
        }
    }

    fn sent(mut self) {
        self.sent = true;
    }
}

impl Drop for ProbeSlot {
    fn drop(&mut self) {
        if !self.sent {
            self.inner.book().probe_abandoned(&self.url);
            self.inner.wakeup.now();
        }
    }
}

/// The job's turn came: whether it goes, and whether as its URL's probe. `None` when it
/// does not: the engine is stopping (the lease is released at shutdown), or the circuit
/// opened while it waited for its turn (it is parked).
fn turn(inner: &Arc<Inner>, job: &Job) -> Option<Option<ProbeSlot>> {
    let probe = job.probe.then(|| ProbeSlot::new(inner, &job.url));
    if inner.book().is_stopping() {
        return None;
    }
    if probe.is_some() {
        return Some(probe);
    }
    let gate = inner.book().recheck(&job.url, inner.clock.now());
    match gate {
        Gate::Send => Some(None),
        Gate::Probe => Some(Some(ProbeSlot::new(inner, &job.url))),
        Gate::Hold => {
            inner.park(vec![job.delivery_id.clone()]);
            None
        }
    }
}

/// One probe per URL for the whole cluster: the store says whose it is. The probe goes as
/// the probe, or as an ordinary delivery (the circuit closed meanwhile); `None` when it was
/// parked instead (another node's probe is out, the cool-down runs, or the store cannot
/// say).
async fn claimed(
    inner: &Arc<Inner>,
    job: &Job,
    probe: Option<ProbeSlot>,
) -> Option<Option<ProbeSlot>> {
    let Some(slot) = probe else {
        return Some(None);
    };
    let Some(answer) = cluster::claim_probe(inner, &job.url).await else {
        inner.park(vec![job.delivery_id.clone()]);
        return None; // the slot is given back as it drops
    };
    let after = inner
        .book()
        .probe_claimed(&job.url, answer, inner.clock.now());
    match after {
        AfterClaim::Probe => Some(Some(slot)),
        AfterClaim::Send => {
            slot.sent();
            Some(None)
        }
        AfterClaim::ParkUntil(at) => {
            slot.sent();
            inner.wakeup.at(at);
            inner.park(vec![job.delivery_id.clone()]);
            None
        }
    }
}

/// A URL that answers 410 Gone says its receiver no longer exists: the webhook is disabled
/// (with the reason), its other pending deliveries cancelled, and its failure addresses
/// told. The delivery that got the answer is recorded as failed as usual.
async fn disable_gone(inner: &Inner, job: &Job, webhook: &Webhook) {
    let url = crate::domain::webhook::mask_url(&job.url);
    let reason = format!("{url} answered 410 Gone: the receiver says it no longer exists.");
    let disabled = crate::disabling::disable_webhook(
        inner.store.as_ref(),
        &inner.catalog,
        webhook,
        &job.url,
        reason,
        inner.clock.wall(),
        job.delivery_id.as_str(),
    )
    .await;
    match disabled {
        Ok(()) => {
            tracing::warn!(webhook = %webhook.id, url = %url, "webhook disabled: its URL answered 410 Gone")
        }
        Err(e) => {
            tracing::warn!(error = %e, webhook = %webhook.id, "could not disable the webhook after 410 Gone")
        }
    }
}

/// Waits for a slot under the webhook's per-URL rate: a second's worth at once, then
/// evenly, counted in the store so every node shares it (in memory on this node should the
/// store not answer). Waiting is not an attempt. False when the engine stops meanwhile.
async fn rate_slot(inner: &Inner, job: &Job, per_second: u32) -> bool {
    // The URL is hashed: the key names it without holding a password.
    let key = crate::domain::delivery::lane(&job.webhook_id, job.method, &job.url, "rate");
    let rate = f64::from(per_second);
    loop {
        let taken = match inner
            .store
            .take_rate_slot(&key, rate, rate, inner.clock.wall())
            .await
        {
            Ok(taken) => taken,
            Err(e) => {
                tracing::warn!(error = %e, "rate slots unavailable in the store; counting on this node");
                inner
                    .rates
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take_at_rate(&key, rate, rate, std::time::Instant::now())
            }
        };
        match taken {
            Ok(()) => return true,
            Err(wait) => tokio::time::sleep(wait).await,
        }
        if inner.book().is_stopping() {
            return false;
        }
    }
}

/// The delivery's webhook; `None` when it was deleted (its deliveries went with it) or
/// cannot be read now (the lease runs out and the delivery is attempted again).
async fn webhook_of(inner: &Inner, job: &Job) -> Option<Webhook> {
    match inner
        .catalog
        .webhook(&job.organization_id, &job.webhook_id)
        .await
    {
        Ok(webhook) => webhook,
        Err(e) => {
            tracing::warn!(error = %e, delivery = %job.delivery_id, "cannot load webhook; the delivery will be retried when its lease expires");
            None
        }
    }
}

/// Renews the lease when it could run out during the attempt; false when it was lost.
/// A job that waited in memory past its lease (a slow URL's queue) finds it claimed again,
/// by another node or by this node's poller for a second job, and must not send.
async fn lease_covers(inner: &Inner, job: &mut Job, timeout: Duration) -> bool {
    let margin = timeout + Duration::from_secs(30);
    let held_until = *job
        .held_until
        .get_or_insert_with(|| inner.clock.from_wall(job.lease_until));
    if held_until.as_micros() - inner.clock.now().as_micros() >= margin.as_micros() as i64 {
        return true;
    }
    let held = Lease {
        owner: inner.owner.clone(),
        until: job.lease_until,
    };
    // Renewed to cover the attempt whatever `delivery.lease` says: a claim that ran out
    // mid-call would let another node send the delivery too.
    let length = inner.lease_length.max(margin);
    let (until, held_until) = (
        inner.clock.wall().plus(length),
        inner.clock.now().plus(length),
    );
    match inner
        .store
        .renew_lease(&job.delivery_id, &held, until)
        .await
    {
        Ok(true) => {
            job.lease_until = until;
            job.held_until = Some(held_until);
            true
        }
        _ => false,
    }
}

/// Decides what becomes of the delivery and hands the result to the recorder, which
/// commits it with others and wakes the poller once it is durable.
fn record(inner: &Inner, job: &Job, webhook: &Webhook, outcome: Outcome, number: u32) {
    let jitter = rand::rng().random_range(-1.0..=1.0);
    // 410 Gone: the receiver says it no longer exists; trying again cannot help.
    let gone = outcome.attempt.response_status == Some(410);
    let decision = verdict(
        outcome.succeeded,
        outcome.retryable && !gone,
        number,
        webhook.spec.max_retry,
        |retry| retry_delay(&inner.schedule, retry, jitter, outcome.retry_after),
    );
    let (state, next_attempt_at) = match decision {
        Verdict::Delivered => (DeliveryState::Succeeded, None),
        Verdict::GiveUp => (DeliveryState::Failed, None),
        Verdict::RetryIn(wait) => (DeliveryState::Pending, Some(inner.clock.wall().plus(wait))),
    };
    let counted = crate::metrics::metrics();
    counted.attempt(
        outcome.attempt.response_status,
        outcome.attempt.error.as_deref(),
        outcome.attempt.duration_ms as f64 / 1000.0,
    );
    match state {
        DeliveryState::Succeeded => counted.deliveries_finished("succeeded", 1),
        DeliveryState::Failed => counted.deliveries_finished("failed", 1),
        _ => {}
    }
    tracing::debug!(delivery = %job.delivery_id, attempt = number, state = state.as_str(), status = ?outcome.attempt.response_status, "attempt finished");
    let result = AttemptResult {
        delivery_id: job.delivery_id.clone(),
        attempt: outcome.attempt,
        state,
        next_attempt_at,
        notify: !webhook.spec.mail_ids.is_empty(),
    };
    let _ = inner.recorder.send(Message::Result(result));
}

/// Starts each job the book admits, each in its own task; the rest go back parked.
pub(super) fn submit(inner: &Arc<Inner>, jobs: Vec<Job>) {
    let now = inner.clock.now();
    let mut park = Vec::new();
    for mut job in jobs {
        // Taken just now (claimed, or stored by intake a moment ago): the clocks' offset now
        // is the one the lease was written under.
        job.held_until
            .get_or_insert_with(|| inner.clock.from_wall(job.lease_until));
        let admit = inner.book().admit(&job.url, job.probe, now);
        match admit {
            Admit::Park => park.push(job.delivery_id),
            Admit::Start { probe, permits } => {
                let inner = inner.clone();
                tokio::spawn(async move {
                    let url = job.url.clone();
                    attempt(&inner, Job { probe, ..job }, permits).await;
                    let finished = inner.book().finished(&url);
                    if let Some(refill) = finished.refill {
                        start_refill(&inner, refill);
                    }
                    if finished.idle {
                        inner.idle.notify_waiters();
                    }
                });
            }
        }
    }
    if !park.is_empty() {
        inner.park(park);
    }
}

/// Takes parked deliveries back from the store and starts them.
pub(super) fn start_refill(inner: &Arc<Inner>, refill: Refill) {
    let inner = inner.clone();
    tokio::spawn(async move {
        let lease = inner.lease();
        let claimed = inner
            .store
            .claim_parked(&lease, &refill.url, refill.limit as u32, refill.probe)
            .await;
        let deliveries = match claimed {
            Ok(deliveries) => deliveries,
            Err(e) => {
                tracing::warn!(error = %e, url = %refill.url, "taking back parked deliveries failed; trying again later");
                inner.book().refilled(&refill, None);
                return;
            }
        };
        inner.book().refilled(&refill, Some(deliveries.len()));
        let jobs = deliveries
            .into_iter()
            .map(|d| Job::from_claimed(d, &lease, refill.probe))
            .collect();
        submit(&inner, jobs);
    });
}
