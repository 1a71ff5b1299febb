//! The delivery engine. Intake hands it the deliveries it leased (no polling delay); a
//! poller claims the rest: retries that fell due, lanes that moved on, work left by a
//! crashed node. Each delivery holds a lease while it is attempted; no transaction stays
//! open across an HTTP call.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use rand::Rng;
use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit, Semaphore};

use super::{
    circuit::{Gate, Health},
    guard::NetworkPolicy,
    parking::{
        adopt_parked, refill_waiting, start_probes, start_refill, UrlState, PARKED_RESCAN,
        PARK_SAFETY,
    },
    recorder::{self, Message},
    send::{send, Call, Outcome},
};
use crate::{
    catalog::Catalog,
    config::DeliveryConfig,
    domain::{
        delivery::{AttemptResult, Delivery, DeliveryState, NewDelivery},
        ids::new_id,
        retry::{retry_delay, verdict, Verdict},
        webhook::Method,
        Timestamp,
    },
    store::{Admission, Lease, Store},
};

/// How long a claim lasts. An attempt takes at most 30 s; a lease about to run out is
/// renewed before sending, so only a crashed node's work waits this long to be reclaimed.
const LEASE: Duration = Duration::from_secs(60);
/// The poller looks for due work at least this often.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
const CLAIM_BATCH: usize = 500;
/// At most this often a claim that found less than a full batch runs again.
const MIN_CLAIM_GAP: Duration = Duration::from_millis(50);
/// A leased delivery, ready to attempt.
#[derive(Debug, Clone)]
pub struct Job {
    pub delivery_id: String,
    pub organization_id: String,
    pub webhook_id: String,
    pub url: String,
    pub method: Method,
    pub payload: Arc<str>,
    /// Attempts already made.
    pub attempts: u32,
    pub lease_until: Timestamp,
    /// Sent as its URL's circuit probe.
    pub probe: bool,
}

impl Job {
    pub fn from_new(d: &NewDelivery, lease: &Lease) -> Self {
        Self {
            delivery_id: d.id.clone(),
            organization_id: d.organization_id.clone(),
            webhook_id: d.webhook_id.clone(),
            url: d.url.clone(),
            method: d.method,
            payload: d.payload.clone(),
            attempts: 0,
            lease_until: lease.until,
            probe: false,
        }
    }

    pub(super) fn from_claimed(d: Delivery, lease: &Lease) -> Self {
        Self {
            delivery_id: d.id,
            organization_id: d.organization_id,
            webhook_id: d.webhook_id,
            url: d.url,
            method: d.method,
            payload: Arc::from(d.payload),
            attempts: d.attempts,
            lease_until: lease.until,
            probe: false,
        }
    }
}

pub(super) struct Inner {
    pub(super) store: Arc<dyn Store>,
    /// Webhook settings (headers, secret, timeout, max_retry) read at each attempt.
    pub(super) catalog: Arc<Catalog>,
    pub(super) client: reqwest::Client,
    pub(super) policy: Arc<NetworkPolicy>,
    pub(super) schedule: Vec<Duration>,
    pub(super) owner: String,
    pub(super) global: Arc<Semaphore>,
    pub(super) per_url: usize,
    pub(super) max_queued_per_url: usize,
    pub(super) max_in_flight: usize,
    pub(super) in_flight: AtomicUsize,
    pub(super) urls: Mutex<HashMap<String, UrlState>>,
    /// Wakes the poller early: a lane moved on, or a retry was scheduled.
    pub(super) wake: Notify,
    /// The earliest scheduled retry (micros), so the poller need not poll fast.
    pub(super) next_due: AtomicI64,
    pub(super) stopping: AtomicBool,
    pub(super) idle: Notify,
    pub(super) recorder: mpsc::UnboundedSender<Message>,
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    pub fn start(
        store: Arc<dyn Store>,
        catalog: Arc<Catalog>,
        config: &DeliveryConfig,
    ) -> anyhow::Result<Engine> {
        let policy =
            Arc::new(NetworkPolicy::new(&config.allowed_networks).map_err(anyhow::Error::msg)?);
        let client = super::client::build(policy.clone())?;
        let concurrency = config.concurrency as usize;
        let per_url = config.per_url_concurrency as usize;
        let owner = new_id("node");
        // The recorder wakes the poller once a result is committed: a lane's next delivery
        // becomes claimable, or a retry has a time.
        let wake_me: Arc<std::sync::OnceLock<std::sync::Weak<Inner>>> = Arc::default();
        let wake_target = wake_me.clone();
        let recorder = recorder::start(store.clone(), owner.clone(), move |results| {
            let Some(inner) = wake_target.get().and_then(std::sync::Weak::upgrade) else {
                return;
            };
            for r in results {
                match r.next_attempt_at {
                    Some(at) => inner.wake_at(at),
                    None => inner.wake.notify_one(),
                }
            }
        });
        let inner = Arc::new(Inner {
            store,
            catalog,
            client,
            policy,
            schedule: config.retry_schedule.clone(),
            owner,
            global: Arc::new(Semaphore::new(concurrency)),
            per_url,
            // Enough per URL to keep its connections busy between refills, and a small
            // share of the whole, so that a few hanging URLs cannot hold all the room.
            max_queued_per_url: (per_url * 8).max(32).min(concurrency / 2).max(per_url),
            max_in_flight: concurrency * 4,
            in_flight: AtomicUsize::new(0),
            urls: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            next_due: AtomicI64::new(i64::MAX),
            stopping: AtomicBool::new(false),
            idle: Notify::new(),
            recorder,
        });
        let _ = wake_me.set(Arc::downgrade(&inner));
        tokio::spawn(poll(inner.clone()));
        Ok(Engine { inner })
    }

    /// How intake should store new deliveries: leased to this node while it has room,
    /// parked for URLs whose queue is full or whose circuit is open.
    /// The URLs whose circuit is open on this node (for the pages), sorted.
    pub fn open_circuits(&self) -> Vec<String> {
        let urls = self.inner.urls.lock().unwrap_or_else(|e| e.into_inner());
        let mut open: Vec<String> = urls
            .iter()
            .filter(|(_, state)| state.circuit.is_open())
            .map(|(url, _)| url.clone())
            .collect();
        open.sort();
        open
    }

    pub fn admission(&self) -> Admission {
        let inner = &self.inner;
        let room = !inner.stopping.load(Ordering::Relaxed)
            && inner.in_flight.load(Ordering::Relaxed) < inner.max_in_flight;
        Admission {
            lease: room.then(|| inner.lease()),
            park_urls: inner.park_urls(),
            park_until: Timestamp::now().plus(PARK_SAFETY),
        }
    }

    /// Intake stored `deliveries` under `admission`: remember which URLs now have parked
    /// work, and take it back at once where room appeared meanwhile.
    pub fn parked<'a>(
        &self,
        admission: &Admission,
        deliveries: impl IntoIterator<Item = &'a NewDelivery>,
    ) {
        if admission.park_urls.is_empty() {
            return;
        }
        let mut refills = Vec::new();
        {
            let mut urls = self.inner.urls.lock().expect("url states");
            for d in deliveries {
                if d.failure.is_none() && admission.park_urls.contains(&d.url) {
                    let state = self.inner.url_state(&mut urls, &d.url);
                    state.note_parked();
                }
            }
            for url in &admission.park_urls {
                if let Some(state) = urls.get_mut(url) {
                    refills.extend(self.inner.refill_if_room(url, state));
                }
            }
        }
        for refill in refills {
            start_refill(&self.inner, refill);
        }
    }

    /// Starts leased deliveries now.
    pub fn submit(&self, jobs: Vec<Job>) {
        submit(&self.inner, jobs);
    }

    /// Stops claiming, lets attempts in flight finish for up to `grace`, then gives back
    /// every lease this node still holds, so another start picks the work up at once.
    pub async fn shutdown(&self, grace: Duration) {
        let inner = &self.inner;
        inner.stopping.store(true, Ordering::SeqCst);
        inner.wake.notify_one();
        let drained = tokio::time::timeout(grace, async {
            while inner.in_flight.load(Ordering::SeqCst) > 0 {
                let idle = inner.idle.notified();
                if inner.in_flight.load(Ordering::SeqCst) == 0 {
                    break;
                }
                idle.await;
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                in_flight = inner.in_flight.load(Ordering::SeqCst),
                "attempts still running at shutdown; their deliveries will be retried"
            );
        }
        // Results must be written while this node still holds their leases.
        let (flushed, done) = oneshot::channel();
        if inner.recorder.send(Message::Flush(flushed)).is_ok() {
            let _ = done.await;
        }
        match inner.store.release_leases(&inner.owner).await {
            Ok(n) if n > 0 => tracing::info!(released = n, "released delivery leases"),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not release leases; they expire on their own")
            }
        }
    }
}

impl Inner {
    pub(super) fn lease(&self) -> Lease {
        Lease {
            owner: self.owner.clone(),
            until: Timestamp::now().plus(LEASE),
        }
    }

    pub(super) fn wake_at(&self, at: Timestamp) {
        self.next_due.fetch_min(at.as_micros(), Ordering::SeqCst);
        self.wake.notify_one();
    }
}

pub(super) fn submit(inner: &Arc<Inner>, jobs: Vec<Job>) {
    let now = Timestamp::now();
    let mut park = Vec::new();
    for mut job in jobs {
        let permits = {
            let mut urls = inner.urls.lock().expect("url states");
            let state = inner.url_state(&mut urls, &job.url);
            let gate = if job.probe {
                Gate::Probe // the circuit chose it already
            } else {
                match state.circuit.gate(now) {
                    Gate::Send if state.queued >= inner.max_queued_per_url => Gate::Hold,
                    gate => gate,
                }
            };
            match gate {
                Gate::Hold => {
                    state.note_parked();
                    park.push(job.delivery_id);
                    continue;
                }
                Gate::Probe => job.probe = true,
                Gate::Send => {}
            }
            state.queued += 1;
            state.permits.clone()
        };
        inner.in_flight.fetch_add(1, Ordering::SeqCst);
        let inner = inner.clone();
        tokio::spawn(async move {
            let url = job.url.clone();
            run(&inner, job, permits).await;
            let refill = {
                let mut urls = inner.urls.lock().expect("url states");
                let mut refill = None;
                if let Some(state) = urls.get_mut(&url) {
                    state.queued -= 1;
                    refill = inner.refill_if_room(&url, state);
                    if state.forgettable() {
                        urls.remove(&url);
                    }
                }
                refill
            };
            if let Some(refill) = refill {
                start_refill(&inner, refill);
            }
            if inner.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
                inner.idle.notify_waiters();
            }
        });
    }
    if !park.is_empty() {
        let until = now.plus(PARK_SAFETY);
        let _ = inner.recorder.send(Message::Park(park, until));
    }
}

/// What an attempt says about its URL.
fn health(outcome: &Outcome) -> Health {
    match outcome.attempt.response_status {
        _ if outcome.succeeded => Health::Answered,
        Some(429) => Health::Failing,
        Some(status) if status >= 500 => Health::Failing,
        Some(_) => Health::Answered,
        None if outcome.retryable => Health::Failing,
        None => Health::Unknown,
    }
}

async fn run(inner: &Arc<Inner>, mut job: Job, url_permits: Arc<Semaphore>) {
    // The URL's own limit first, so deliveries waiting on a slow URL hold none of the
    // shared capacity.
    let Ok(_url_permit) = url_permits.acquire_owned().await else {
        return;
    };
    let Ok(_permit): Result<OwnedSemaphorePermit, _> = inner.global.clone().acquire_owned().await
    else {
        return;
    };
    if inner.stopping.load(Ordering::SeqCst) {
        if job.probe {
            inner.circuit_probe_abandoned(&job.url);
        }
        return; // the lease is released at shutdown
    }
    if !job.probe {
        // The circuit may have opened while this delivery waited for its turn.
        let gate = {
            let mut urls = inner.urls.lock().expect("url states");
            urls.get_mut(&job.url)
                .map_or(Gate::Send, |s| s.circuit.gate(Timestamp::now()))
        };
        match gate {
            Gate::Send => {}
            Gate::Probe => job.probe = true,
            Gate::Hold => {
                if let Some(s) = inner.urls.lock().expect("url states").get_mut(&job.url) {
                    s.note_parked();
                }
                let until = Timestamp::now().plus(PARK_SAFETY);
                let _ = inner
                    .recorder
                    .send(Message::Park(vec![job.delivery_id], until));
                return;
            }
        }
    }
    let webhook = match inner
        .catalog
        .webhook(&job.organization_id, &job.webhook_id)
        .await
    {
        Ok(Some(w)) => w,
        Ok(None) => {
            if job.probe {
                inner.circuit_probe_abandoned(&job.url);
            }
            return; // deleted: its deliveries went with it
        }
        Err(e) => {
            if job.probe {
                inner.circuit_probe_abandoned(&job.url);
            }
            tracing::warn!(error = %e, delivery = %job.delivery_id, "cannot load webhook; the delivery will be retried when its lease expires");
            return;
        }
    };
    let timeout = Duration::from_secs(webhook.spec.timeout_seconds as u64);
    let margin = (timeout + Duration::from_secs(30)).as_micros() as i64;
    if job.lease_until.as_micros() - Timestamp::now().as_micros() < margin {
        let lease = inner.lease();
        match inner.store.renew_lease(&job.delivery_id, &lease).await {
            Ok(true) => job.lease_until = lease.until,
            _ => {
                if job.probe {
                    inner.circuit_probe_abandoned(&job.url);
                }
                return; // lost to another node, cancelled, or done
            }
        }
    }

    let number = job.attempts + 1;
    let outcome = send(
        &inner.client,
        &inner.policy,
        Call {
            delivery_id: &job.delivery_id,
            url: &job.url,
            method: job.method,
            payload: &job.payload,
            headers: &webhook.spec.header,
            secret: &webhook.secret,
            timeout,
            number,
        },
    )
    .await;

    let refill = {
        let mut urls = inner.urls.lock().expect("url states");
        let state = inner.url_state(&mut urls, &job.url);
        let closed = state
            .circuit
            .record(health(&outcome), job.probe, Timestamp::now());
        if closed {
            tracing::info!(url = ?job.url, "the URL answers again; its parked deliveries follow");
        }
        if let Some(at) = state.circuit.probe_due() {
            inner.wake_at(at);
        }
        inner.refill_if_room(&job.url, state)
    };
    if let Some(refill) = refill {
        start_refill(inner, refill);
    }

    let jitter = rand::rng().random_range(-1.0..=1.0);
    let decision = verdict(
        outcome.succeeded,
        outcome.retryable,
        number,
        webhook.spec.max_retry,
        |retry| retry_delay(&inner.schedule, retry, jitter, outcome.retry_after),
    );
    let (state, next_attempt_at) = match decision {
        Verdict::Delivered => (DeliveryState::Succeeded, None),
        Verdict::GiveUp => (DeliveryState::Failed, None),
        Verdict::RetryIn(wait) => (DeliveryState::Pending, Some(Timestamp::now().plus(wait))),
    };
    tracing::debug!(delivery = %job.delivery_id, attempt = number, state = state.as_str(), status = ?outcome.attempt.response_status, "attempt finished");
    let result = AttemptResult {
        delivery_id: job.delivery_id.clone(),
        attempt: outcome.attempt,
        state,
        next_attempt_at,
        notify: !webhook.spec.mail_ids.is_empty(),
    };
    // Recorded in the next group commit; the recorder wakes the poller when it is durable.
    let _ = inner.recorder.send(Message::Result(result));
}

async fn poll(inner: Arc<Inner>) {
    let mut rescan_at = Timestamp::now(); // at start: parked work left from before
    loop {
        if inner.stopping.load(Ordering::SeqCst) {
            return;
        }
        inner.next_due.store(i64::MAX, Ordering::SeqCst);
        let now = Timestamp::now();
        if now >= rescan_at {
            rescan_at = now.plus(PARKED_RESCAN);
            adopt_parked(&inner).await;
        }
        start_probes(&inner, now);
        refill_waiting(&inner);
        let room = inner
            .max_in_flight
            .saturating_sub(inner.in_flight.load(Ordering::SeqCst));
        let mut claimed = 0;
        if room > 0 {
            let lease = inner.lease();
            let limit = room.min(CLAIM_BATCH);
            match inner
                .store
                .claim_due(&lease, Timestamp::now(), limit as u32)
                .await
            {
                Ok(deliveries) => {
                    claimed = deliveries.len();
                    let jobs = deliveries
                        .into_iter()
                        .map(|d| Job::from_claimed(d, &lease))
                        .collect();
                    submit(&inner, jobs);
                    if claimed == limit {
                        continue; // more may be waiting
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "claiming due deliveries failed; trying again")
                }
            }
        }
        inner
            .next_due
            .fetch_min(rescan_at.as_micros(), Ordering::SeqCst);
        let now = Timestamp::now().as_micros();
        let until_due = inner
            .next_due
            .load(Ordering::SeqCst)
            .saturating_sub(now)
            .max(0) as u64;
        let sleep = POLL_INTERVAL.min(Duration::from_micros(until_due));
        if claimed == 0 || !sleep.is_zero() {
            let _ = tokio::time::timeout(sleep, inner.wake.notified()).await;
        }
        // Wake-ups come with every committed batch of results; claiming that often would
        // only re-read the same queue.
        tokio::time::sleep(MIN_CLAIM_GAP).await;
    }
}
