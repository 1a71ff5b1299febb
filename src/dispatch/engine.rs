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
    guard::NetworkPolicy,
    recorder::{self, Message},
    send::{send, Call},
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
    store::{Lease, Store},
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
}

impl Job {
    pub fn from_new(d: &NewDelivery, lease: &Lease) -> Self {
        Self {
            delivery_id: d.id.clone(),
            organization_id: d.organization_id.clone(),
            webhook_id: d.webhook_id.clone(),
            url: d.url.clone(),
            method: d.method,
            payload: Arc::from(d.payload.as_str()),
            attempts: 0,
            lease_until: lease.until,
        }
    }

    fn from_claimed(d: Delivery, lease: &Lease) -> Self {
        Self {
            delivery_id: d.id,
            organization_id: d.organization_id,
            webhook_id: d.webhook_id,
            url: d.url,
            method: d.method,
            payload: Arc::from(d.payload),
            attempts: d.attempts,
            lease_until: lease.until,
        }
    }
}

/// Per-URL isolation: its own concurrency limit, and a bound on how much of the engine's
/// capacity deliveries waiting for that URL may hold.
struct UrlSlot {
    permits: Arc<Semaphore>,
    queued: usize,
}

struct Inner {
    store: Arc<dyn Store>,
    /// Webhook settings (headers, secret, timeout, max_retry) read at each attempt.
    catalog: Arc<Catalog>,
    client: reqwest::Client,
    policy: Arc<NetworkPolicy>,
    schedule: Vec<Duration>,
    owner: String,
    global: Arc<Semaphore>,
    per_url: usize,
    max_queued_per_url: usize,
    max_in_flight: usize,
    in_flight: AtomicUsize,
    urls: Mutex<HashMap<String, UrlSlot>>,
    /// Wakes the poller early: a lane moved on, or a retry was scheduled.
    wake: Notify,
    /// The earliest scheduled retry (micros), so the poller need not poll fast.
    next_due: AtomicI64,
    stopping: AtomicBool,
    idle: Notify,
    recorder: mpsc::UnboundedSender<Message>,
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
            max_queued_per_url: (per_url * 4).max(16),
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

    /// A fresh lease for work this node takes.
    pub fn lease(&self) -> Lease {
        self.inner.lease()
    }

    /// Whether the engine takes more work now, and which URLs it has no room for.
    pub fn admission(&self) -> (bool, Vec<String>) {
        let inner = &self.inner;
        let room = !inner.stopping.load(Ordering::Relaxed)
            && inner.in_flight.load(Ordering::Relaxed) < inner.max_in_flight;
        (room, inner.saturated_urls())
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
    fn lease(&self) -> Lease {
        Lease {
            owner: self.owner.clone(),
            until: Timestamp::from_micros(Timestamp::now().as_micros() + LEASE.as_micros() as i64),
        }
    }

    fn saturated_urls(&self) -> Vec<String> {
        let urls = self.urls.lock().expect("url slots");
        urls.iter()
            .filter(|(_, slot)| slot.queued >= self.max_queued_per_url)
            .map(|(url, _)| url.clone())
            .collect()
    }

    fn wake_at(&self, at: Timestamp) {
        self.next_due.fetch_min(at.as_micros(), Ordering::SeqCst);
        self.wake.notify_one();
    }
}

fn submit(inner: &Arc<Inner>, jobs: Vec<Job>) {
    for job in jobs {
        inner.in_flight.fetch_add(1, Ordering::SeqCst);
        let permits = {
            let mut urls = inner.urls.lock().expect("url slots");
            let slot = urls.entry(job.url.clone()).or_insert_with(|| UrlSlot {
                permits: Arc::new(Semaphore::new(inner.per_url)),
                queued: 0,
            });
            slot.queued += 1;
            slot.permits.clone()
        };
        let inner = inner.clone();
        tokio::spawn(async move {
            let url = job.url.clone();
            run(&inner, job, permits).await;
            {
                let mut urls = inner.urls.lock().expect("url slots");
                if let Some(slot) = urls.get_mut(&url) {
                    slot.queued -= 1;
                    if slot.queued == 0 {
                        urls.remove(&url);
                    }
                }
            }
            if inner.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
                inner.idle.notify_waiters();
            }
        });
    }
}

async fn run(inner: &Inner, mut job: Job, url_permits: Arc<Semaphore>) {
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
        return; // the lease is released at shutdown
    }
    let webhook = match inner
        .catalog
        .webhook(&job.organization_id, &job.webhook_id)
        .await
    {
        Ok(Some(w)) => w,
        Ok(None) => return, // deleted: its deliveries went with it
        Err(e) => {
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
            _ => return, // lost to another node, cancelled, or done
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
        Verdict::RetryIn(wait) => (
            DeliveryState::Pending,
            Some(Timestamp::from_micros(
                Timestamp::now().as_micros() + wait.as_micros() as i64,
            )),
        ),
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
    loop {
        if inner.stopping.load(Ordering::SeqCst) {
            return;
        }
        inner.next_due.store(i64::MAX, Ordering::SeqCst);
        let room = inner
            .max_in_flight
            .saturating_sub(inner.in_flight.load(Ordering::SeqCst));
        let mut claimed = 0;
        if room > 0 {
            let lease = inner.lease();
            let limit = room.min(CLAIM_BATCH);
            match inner
                .store
                .claim_due(
                    &lease,
                    Timestamp::now(),
                    limit as u32,
                    &inner.saturated_urls(),
                )
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
        // re-read, again and again, work that cannot start (a saturated URL's backlog).
        tokio::time::sleep(MIN_CLAIM_GAP).await;
    }
}
