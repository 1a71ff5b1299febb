//! The delivery engine. Intake hands it the deliveries it leased (no polling delay); a
//! poller claims the rest: retries that fell due, lanes that moved on, work left by a
//! crashed node, parked work and circuit probes. Each delivery holds a lease while it is
//! attempted; no transaction stays open across an HTTP call. Every decision about a URL
//! (start or park, refill, probe) is the [`Book`]'s; this file carries them out.

use std::{
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use rand::Rng;
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};

use super::{
    book::{Admit, Book, Limits, Refill},
    circuit::{Gate, Health, FIRST_COOLDOWN, MAX_COOLDOWN},
    guard::NetworkPolicy,
    recorder::{self, Message},
    send::{send, Call, Outcome},
    wakeup::Wakeup,
};
use crate::{
    catalog::Catalog,
    config::DeliveryConfig,
    domain::{
        clock::Clock,
        delivery::{url_key, Attempt, AttemptResult, Delivery, DeliveryState, NewDelivery},
        ids::{new_id, DeliveryId, OrganizationId, WebhookId},
        notification::{Notice, NoticeKind},
        rate_limit::RateLimiter,
        retry::{retry_delay, verdict, Verdict},
        webhook::{Method, Webhook},
        Timestamp,
    },
    store::{Admission, Lease, ProbeClaim, Store},
};

/// What a claim renewed before an attempt covers at most: the longest timeout (30 s) and
/// 30 s more.
const LONGEST_ATTEMPT_COVER: Duration = Duration::from_secs(60);
/// The poller looks for due work at least this often.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
const CLAIM_BATCH: usize = 500;
/// At most this often a claim that found less than a full batch runs again.
const MIN_CLAIM_GAP: Duration = Duration::from_millis(50);
/// A parked delivery falls due on its own after this, should the node that parked it be
/// gone; the engine normally takes parked work back long before.
const PARK_SAFETY: Duration = Duration::from_secs(3600);
/// How often the poller asks the store which URLs have parked work: another node's, this
/// node's from before a restart, or deliveries parked behind an earlier one of their lane
/// that has since finished. One index probe per URL, so it can be often.
const PARKED_RESCAN: Duration = Duration::from_secs(5);
/// How often the poller reads the circuits open in the cluster (one small table).
const CIRCUIT_SYNC: Duration = Duration::from_secs(1);
/// A node that lost the probe to another asks again at least this often, in case that
/// node is gone (its claim runs out after `delivery.lease`).
const PROBE_RECHECK: Duration = Duration::from_millis(100);

/// One delivery sent by [`Engine::send_now`], with its one attempt.
#[derive(Debug, Clone)]
pub struct SentNow {
    pub delivery_id: DeliveryId,
    pub url: String,
    pub method: Method,
    pub attempt: Attempt,
    pub succeeded: bool,
}

/// A leased delivery, ready to attempt.
#[derive(Debug, Clone)]
pub struct Job {
    pub delivery_id: DeliveryId,
    pub organization_id: OrganizationId,
    pub webhook_id: WebhookId,
    pub url: String,
    pub method: Method,
    pub payload: Arc<str>,
    /// Attempts already made.
    pub attempts: u32,
    pub lease_until: Timestamp,
    /// Until when this node counts on the lease, in process time (see [`Clock`]): set as
    /// the engine takes the job, so a wall clock stepped back cannot stretch the lease here
    /// while the other nodes see it run out.
    held_until: Option<Timestamp>,
    /// Taken from the store as its URL's circuit probe.
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
            held_until: None,
            probe: false,
        }
    }

    fn from_claimed(d: Delivery, lease: &Lease, probe: bool) -> Self {
        Self {
            delivery_id: d.id,
            organization_id: d.organization_id,
            webhook_id: d.webhook_id,
            url: d.url,
            method: d.method,
            payload: Arc::from(d.payload),
            attempts: d.attempts,
            lease_until: lease.until,
            held_until: None,
            probe,
        }
    }
}

struct Inner {
    store: Arc<dyn Store>,
    /// Webhook settings (headers, secret, timeout, max_retry) read at each attempt.
    catalog: Arc<Catalog>,
    client: reqwest::Client,
    policy: Arc<NetworkPolicy>,
    schedule: Vec<Duration>,
    owner: String,
    /// Calls in flight over all URLs.
    global: Arc<Semaphore>,
    book: Mutex<Book>,
    /// Per webhook and URL, for webhooks with `rate_limit_per_second`.
    rates: Mutex<RateLimiter>,
    wakeup: Arc<Wakeup>,
    /// Told when the last delivery in flight finishes (shutdown waits for it).
    idle: Notify,
    recorder: mpsc::UnboundedSender<Message>,
    /// The book decides in process time; what the store keeps is wall time.
    clock: Clock,
    /// How long a claim lasts (`delivery.lease`): only a crashed node's work waits this long
    /// to be taken over, as a claim about to run out is renewed before sending.
    lease_length: Duration,
}

impl Inner {
    /// The book. Its methods never await, so no lock is held across an `.await`; should
    /// one panic, the book's counters are still the best knowledge there is, and going on
    /// beats wedging every delivery and shutdown behind a poisoned lock.
    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lease(&self) -> Lease {
        Lease {
            owner: self.owner.clone(),
            until: self.clock.wall().plus(self.lease_length),
        }
    }

    /// Gives deliveries back to the store parked, without an attempt.
    fn park(&self, delivery_ids: Vec<DeliveryId>) {
        let until = self.clock.wall().plus(PARK_SAFETY);
        let _ = self.recorder.send(Message::Park(delivery_ids, until));
    }
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
        clock: Clock,
    ) -> anyhow::Result<Engine> {
        let policy = Arc::new(NetworkPolicy::new(&config.allowed_networks));
        let client = super::client::build(policy.clone())?;
        let concurrency = config.concurrency as usize;
        let owner = new_id("node");
        let wakeup = Arc::new(Wakeup::new(clock.clone()));
        let recorder = recorder::start(
            store.clone(),
            owner.clone(),
            wakeup.clone(),
            config.record_linger,
        );
        let inner = Arc::new(Inner {
            store,
            catalog,
            client,
            policy,
            schedule: config.retry_schedule.clone(),
            owner,
            global: Arc::new(Semaphore::new(concurrency)),
            book: Mutex::new(Book::new(Limits::new(
                concurrency,
                config.per_url_concurrency as usize,
            ))),
            rates: Mutex::new(RateLimiter::new(0, 1)),
            wakeup,
            idle: Notify::new(),
            recorder,
            clock,
            lease_length: config.lease,
        });
        tokio::spawn(poll(inner.clone()));
        Ok(Engine { inner })
    }

    /// How intake should store new deliveries: leased to this node while it has room,
    /// parked for URLs whose queue is full or whose circuit is open.
    pub fn admission(&self) -> Admission {
        let book = self.inner.book();
        Admission {
            lease: (book.room() > 0).then(|| self.inner.lease()),
            park_urls: book.park_urls(),
            park_until: self.inner.clock.wall().plus(PARK_SAFETY),
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
        let refills = {
            let mut book = self.inner.book();
            for d in deliveries {
                if d.failure.is_none() && admission.park_urls.contains(&d.url) {
                    book.parked(&d.url);
                }
            }
            book.refills()
        };
        for refill in refills {
            start_refill(&self.inner, refill);
        }
    }

    /// This node's name, as the `lease_owner` of the deliveries it holds (random per start).
    pub fn node(&self) -> &str {
        &self.inner.owner
    }

    /// Another node made work claimable: the poller looks now instead of at its interval.
    pub fn wake(&self) {
        self.inner.wakeup.now();
    }

    /// Starts leased deliveries now.
    pub fn submit(&self, jobs: Vec<Job>) {
        submit(&self.inner, jobs);
    }

    /// Sends deliveries once each, now and side by side, outside the queue and the URLs'
    /// circuits (tests sent by hand: the caller waits for the answers). They were stored
    /// leased to `lease`; their results are recorded (succeeded or failed, never retried,
    /// never e-mailed) before this returns.
    pub async fn send_now(&self, jobs: Vec<Job>, webhook: &Webhook, lease: &Lease) -> Vec<SentNow> {
        let timeout = Duration::from_secs(webhook.spec.timeout_seconds as u64);
        let tasks: Vec<_> = jobs
            .into_iter()
            .map(|job| {
                let inner = self.inner.clone();
                let webhook = webhook.clone();
                tokio::spawn(async move {
                    let outcome = send(
                        &inner.client,
                        &inner.policy,
                        Call {
                            delivery_id: &job.delivery_id,
                            url: &job.url,
                            method: job.method,
                            payload: &job.payload,
                            headers: &webhook.spec.header,
                            secrets: &webhook.signing_secrets(inner.clock.wall()),
                            timeout,
                            number: 1,
                        },
                    )
                    .await;
                    SentNow {
                        delivery_id: job.delivery_id,
                        url: job.url,
                        method: job.method,
                        attempt: outcome.attempt,
                        succeeded: outcome.succeeded,
                    }
                })
            })
            .collect();
        let mut sent = Vec::with_capacity(tasks.len());
        for task in tasks {
            if let Ok(one) = task.await {
                sent.push(one);
            }
        }
        for s in &sent {
            let counted = crate::metrics::metrics();
            counted.attempt(
                s.attempt.response_status,
                s.attempt.error.as_deref(),
                s.attempt.duration_ms as f64 / 1000.0,
            );
            counted.deliveries_finished(if s.succeeded { "succeeded" } else { "failed" }, 1);
        }
        let results: Vec<AttemptResult> = sent
            .iter()
            .map(|s| AttemptResult {
                delivery_id: s.delivery_id.clone(),
                attempt: s.attempt.clone(),
                state: if s.succeeded {
                    DeliveryState::Succeeded
                } else {
                    DeliveryState::Failed
                },
                next_attempt_at: None,
                notify: false,
            })
            .collect();
        if let Err(e) = self
            .inner
            .store
            .record_attempts(&lease.owner, &results)
            .await
        {
            tracing::warn!(error = %e, "recording test deliveries failed; they will be attempted again when their leases expire");
        }
        sent
    }

    /// Stops claiming, lets attempts in flight finish for up to `grace`, then gives back
    /// every lease this node still holds, so another start picks the work up at once.
    pub async fn shutdown(&self, grace: Duration) {
        let inner = &self.inner;
        inner.book().stop();
        inner.wakeup.now();
        let drained = tokio::time::timeout(grace, async {
            loop {
                let idle = inner.idle.notified();
                if inner.book().in_flight() == 0 {
                    break;
                }
                idle.await;
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                in_flight = inner.book().in_flight(),
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

/// Starts each job the book admits, each in its own task; the rest go back parked.
fn submit(inner: &Arc<Inner>, jobs: Vec<Job>) {
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

/// Claims the URL's probe in the store; `None` when the store cannot say now.
async fn claim_probe(inner: &Inner, url: &str) -> Option<ProbeClaim> {
    let now = inner.clock.wall();
    // The claim covers the longest probe (its attempt's cover) whatever `delivery.lease`
    // says, and every node's claims are of one length: the store tells a stale claim by it.
    let length = inner.lease_length.max(LONGEST_ATTEMPT_COVER);
    match inner
        .store
        .claim_probe(&url_key(url), &inner.owner, now, now.plus(length))
        .await
    {
        Ok(claim) => Some(claim),
        Err(e) => {
            tracing::warn!(error = %e, "cannot claim the URL's probe; trying again later");
            None
        }
    }
}

/// Whether a write to the cluster's circuits changed it (this node opened or closed the
/// circuit); a failed write changes nothing and is logged.
async fn circuit_write(
    write: impl std::future::Future<Output = crate::store::StoreResult<bool>>,
) -> bool {
    match write.await {
        Ok(changed) => changed,
        Err(e) => {
            tracing::warn!(error = %e, "cannot record the URL's circuit for the other nodes");
            false
        }
    }
}

/// Reads the circuits open in the cluster and brings this node's in line: refills the
/// URLs closed elsewhere.
async fn sync_circuits(inner: &Arc<Inner>) {
    let read_at = inner.clock.now();
    let open = match inner.store.open_circuits().await {
        // The cluster's probe times are wall times: the book's are process times.
        Ok(open) => open
            .into_iter()
            .map(|(key, probe_at)| (key, inner.clock.from_wall(probe_at)))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the cluster's open circuits; trying again");
            return;
        }
    };
    let refills = inner.book().sync_circuits(open, read_at, inner.clock.now());
    for refill in refills {
        start_refill(inner, refill);
    }
}

/// A timeout that fired this much later than it was set for means the node itself stood
/// still (a pause, a VM stall), not that the URL hung.
const STALL_SLACK: Duration = Duration::from_secs(2);

/// What an attempt, allowed `timeout`, says about its URL. One that timed out long after its
/// timeout says nothing: the node was paused, and on waking every call in flight timed out
/// at once — which opened a healthy URL's circuit.
fn health(outcome: &Outcome, timeout: Duration) -> Health {
    let took = Duration::from_millis(outcome.attempt.duration_ms);
    match outcome.attempt.response_status {
        _ if outcome.succeeded => Health::Answered,
        _ if outcome.timed_out && took > timeout + STALL_SLACK => Health::Unknown,
        Some(429) => Health::Failing,
        Some(status) if status >= 500 => Health::Failing,
        Some(_) => Health::Answered,
        None if outcome.retryable => Health::Failing,
        None => Health::Unknown,
    }
}

/// One attempt of one delivery: wait for its turn, send, tell the book and the recorder.
async fn attempt(inner: &Arc<Inner>, mut job: Job, url_permits: Arc<Semaphore>) {
    // The URL's own limits first (its concurrency, then its rate), so deliveries waiting on
    // a slow or rate-limited URL hold none of the shared capacity.
    let Ok(_url_permit) = url_permits.acquire_owned().await else {
        return;
    };
    let mut probe = job.probe.then(|| ProbeSlot::new(inner, &job.url));
    if inner.book_is_stopping() {
        return; // the lease is released at shutdown
    }
    if probe.is_none() {
        // The circuit may have opened while this delivery waited for its turn.
        let gate = inner.book().recheck(&job.url, inner.clock.now());
        match gate {
            Gate::Send => {}
            Gate::Probe => probe = Some(ProbeSlot::new(inner, &job.url)),
            Gate::Hold => {
                inner.park(vec![job.delivery_id]);
                return;
            }
        }
    }
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
    if let Some(slot) = probe.take() {
        // One probe per URL for the whole cluster: the store says whose it is.
        match claim_probe(inner, &job.url).await {
            Some(ProbeClaim::Won) => probe = Some(slot),
            Some(ProbeClaim::Closed) => {
                slot.sent();
                inner.book().closed_by_cluster(&job.url);
            }
            Some(ProbeClaim::Wait(at)) => {
                slot.sent();
                let now = inner.clock.now();
                let at = inner.clock.from_wall(at);
                let at = at.max(now.plus(PROBE_RECHECK)).min(now.plus(MAX_COOLDOWN));
                inner.book().defer_probe(&job.url, at, now);
                inner.wakeup.at(at);
                inner.park(vec![job.delivery_id]);
                return;
            }
            None => {
                inner.park(vec![job.delivery_id]);
                return; // the slot is given back as it drops
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
            secrets: &webhook.signing_secrets(inner.clock.wall()),
            timeout,
            number,
        },
    )
    .await;

    let was_probe = probe.take().map(ProbeSlot::sent).is_some();
    let health = health(&outcome, timeout);
    let attempted = inner
        .book()
        .attempted(&job.url, health, was_probe, inner.clock.now());
    // The cluster's circuit follows: only the node that opens or closes it tells people.
    // (Most attempts change nothing here, and pay nothing.)
    let key = || url_key(&job.url);
    let mut told = false;
    if attempted.opened {
        tracing::warn!(url = ?job.url, "the URL stopped answering; its deliveries wait and one probe at a time goes");
        let first_probe = attempted.probe_due.unwrap_or_else(|| inner.clock.now());
        told = circuit_write(inner.store.open_circuit(
            &key(),
            inner.clock.to_wall(first_probe),
            FIRST_COOLDOWN,
            inner.clock.wall(),
        ))
        .await;
    } else if attempted.closed {
        tracing::info!(url = ?job.url, "the URL answers again; its parked deliveries follow");
        told = circuit_write(inner.store.close_circuit(&key())).await;
    } else if was_probe && health == Health::Failing {
        let wall = inner.clock.wall();
        if let Ok(Some(at)) = inner.store.probe_failed(&key(), wall, MAX_COOLDOWN).await {
            let (at, now) = (inner.clock.from_wall(at), inner.clock.now());
            inner.book().defer_probe(&job.url, at, now);
            inner.wakeup.at(at);
        }
    }
    if let Some(at) = attempted.probe_due {
        inner.wakeup.at(at);
    }
    if told {
        // Everyone whose webhook sends to this URL hears of it, not only the webhook whose
        // delivery happened to open or close the circuit.
        let (kind, detail) = if attempted.opened {
            (NoticeKind::Outage, last_answer(&outcome.attempt))
        } else {
            (NoticeKind::Recovered, String::new())
        };
        let notices: Vec<Notice> = webhooks_sending_to(inner, &job, &webhook)
            .await
            .iter()
            .filter(|w| !w.spec.mail_ids.is_empty())
            .map(|w| Notice::new(&w.organization_id, &w.id, kind, &job.url, detail.clone()))
            .collect();
        let store = inner.store.clone();
        tokio::spawn(async move {
            for notice in notices {
                if let Err(e) = store.insert_notice(&notice).await {
                    tracing::warn!(error = %e, "could not record the notice about the URL");
                }
            }
        });
    }
    if outcome.attempt.response_status == Some(410) {
        // Before the result is recorded: the lane must not move on to the next delivery.
        disable_gone(inner, &job, &webhook).await;
    }
    record(inner, &job, &webhook, outcome, number);
}

/// The organization's webhooks with `job`'s URL among theirs (the job's own at least, also
/// when the catalog cannot be read).
async fn webhooks_sending_to(inner: &Inner, job: &Job, own: &Webhook) -> Vec<Webhook> {
    let mut found = vec![own.clone()];
    match inner.catalog.webhooks(&job.organization_id).await {
        Ok(snapshot) => found.extend(
            snapshot
                .webhooks
                .iter()
                .map(|c| &c.webhook)
                .filter(|w| w.id != own.id && w.spec.urls.iter().any(|u| u.url == job.url))
                .cloned(),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the webhooks sharing the URL; telling its own only")
        }
    }
    found
}

/// "Last answer: HTTP 503." or "Last error: …." for a notice.
fn last_answer(attempt: &Attempt) -> String {
    match (attempt.response_status, &attempt.error) {
        (Some(status), _) => format!("Last answer: HTTP {status}."),
        (None, Some(error)) => format!("Last error: {error}."),
        (None, None) => String::new(),
    }
}

/// A URL that answers 410 Gone says its receiver no longer exists: the webhook is disabled
/// (with the reason), its other pending deliveries cancelled, and its failure addresses
/// told. The delivery that got the answer is recorded as failed as usual.
async fn disable_gone(inner: &Arc<Inner>, job: &Job, webhook: &Webhook) {
    let reason = format!(
        "{} answered 410 Gone: the receiver says it no longer exists.",
        crate::domain::webhook::mask_url(&job.url)
    );
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
            tracing::warn!(webhook = %webhook.id, url = %crate::domain::webhook::mask_url(&job.url), "webhook disabled: its URL answered 410 Gone")
        }
        Err(e) => {
            tracing::warn!(error = %e, webhook = %webhook.id, "could not disable the webhook after 410 Gone")
        }
    }
}

impl Inner {
    fn book_is_stopping(&self) -> bool {
        self.book().is_stopping()
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
        if inner.book_is_stopping() {
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

/// Takes parked deliveries back from the store and starts them.
fn start_refill(inner: &Arc<Inner>, refill: Refill) {
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

/// Notes every URL the store holds parked work for, and starts taking it back.
async fn adopt_parked(inner: &Arc<Inner>) {
    let urls = match inner.store.parked_urls().await {
        Ok(urls) => urls,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list parked deliveries; trying again later");
            return;
        }
    };
    let refills = {
        let mut book = inner.book();
        for url in &urls {
            book.parked(url);
        }
        book.refills()
    };
    for refill in refills {
        start_refill(inner, refill);
    }
}

async fn poll(inner: Arc<Inner>) {
    let mut rescan_at = inner.clock.now(); // at start: parked work left from before
    let mut sync_at = inner.clock.now();
    loop {
        if inner.book_is_stopping() {
            return;
        }
        inner.wakeup.forget_due();
        let now = inner.clock.now();
        if now >= sync_at {
            sync_at = now.plus(CIRCUIT_SYNC);
            sync_circuits(&inner).await;
        }
        if now >= rescan_at {
            rescan_at = now.plus(PARKED_RESCAN);
            adopt_parked(&inner).await;
        }
        let (probes, next_probe) = inner.book().due_probes(now);
        if let Some(at) = next_probe {
            inner.wakeup.note_due(at);
        }
        let refills = inner.book().refills();
        for refill in probes.into_iter().chain(refills) {
            start_refill(&inner, refill);
        }
        let room = inner.book().room();
        let mut full_batch = false;
        if room > 0 {
            let lease = inner.lease();
            let limit = room.min(CLAIM_BATCH);
            match inner
                .store
                .claim_due(&lease, inner.clock.wall(), limit as u32)
                .await
            {
                Ok(deliveries) => {
                    full_batch = deliveries.len() == limit;
                    let jobs = deliveries
                        .into_iter()
                        .map(|d| Job::from_claimed(d, &lease, false))
                        .collect();
                    submit(&inner, jobs);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "claiming due deliveries failed; trying again")
                }
            }
        }
        if full_batch {
            continue; // more may be waiting
        }
        inner.wakeup.note_due(rescan_at);
        inner.wakeup.note_due(sync_at);
        inner.wakeup.wait(POLL_INTERVAL).await;
        // Wake-ups come with every committed batch of results; claiming that often would
        // only re-read the same queue.
        tokio::time::sleep(MIN_CLAIM_GAP).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(status: Option<u16>, error: &str, took_ms: u64) -> Outcome {
        Outcome {
            timed_out: error.ends_with("(timeout)"),
            attempt: crate::domain::delivery::Attempt {
                response_status: status,
                error: Some(error.to_owned()),
                duration_ms: took_ms,
                ..Default::default()
            },
            succeeded: false,
            retryable: true,
            retry_after: None,
        }
    }

    #[test]
    fn a_timeout_long_past_its_time_says_nothing_about_the_url() {
        let timeout = Duration::from_secs(10);
        let hung = failed(None, "no answer within 10 s (timeout)", 10_010);
        assert_eq!(health(&hung, timeout), Health::Failing, "the URL hung");
        let woke = failed(None, "no answer within 10 s (timeout)", 25_000);
        assert_eq!(
            health(&woke, timeout),
            Health::Unknown,
            "the node was paused"
        );
        let stalled = failed(
            Some(200),
            "answered 200 OK but the rest of the answer did not come within 10 s (timeout)",
            40_000,
        );
        assert_eq!(health(&stalled, timeout), Health::Unknown);
        let refused = failed(None, "connection refused", 25_000);
        assert_eq!(health(&refused, timeout), Health::Failing, "not a timeout");
        assert_eq!(
            health(&failed(Some(503), "", 25_000), timeout),
            Health::Failing
        );
    }
}
