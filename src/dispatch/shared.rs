//! What the delivery engine's parts share: the store and the catalog, the HTTP client and
//! its network policy, the book behind its lock, the rate limiter, the wake-ups, the
//! recorder's queue, the clocks and the lease. Below every other part of `dispatch/`.

use std::{
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use tokio::sync::{mpsc, Notify, Semaphore};

use super::{
    book::Book,
    guard::NetworkPolicy,
    job::Job,
    recorder::Message,
    send::{send, Call, Outcome},
    wakeup::Wakeup,
};
use crate::{
    catalog::Catalog,
    domain::{clock::Clock, ids::DeliveryId, rate_limit::RateLimiter, webhook::Webhook},
    store::{Lease, Store},
};

/// A parked delivery falls due on its own after this, should the node that parked it be
/// gone; the engine normally takes parked work back long before.
pub(super) const PARK_SAFETY: Duration = Duration::from_secs(3600);

/// What the engine's parts share.
pub(super) struct Inner {
    pub(super) store: Arc<dyn Store>,
    /// Webhook settings (headers, secret, timeout, max_retry) read at each attempt.
    pub(super) catalog: Arc<Catalog>,
    pub(super) client: reqwest::Client,
    pub(super) policy: Arc<NetworkPolicy>,
    pub(super) schedule: Vec<Duration>,
    pub(super) owner: String,
    /// Calls in flight over all URLs.
    pub(super) global: Arc<Semaphore>,
    pub(super) book: Mutex<Book>,
    /// Per webhook and URL, for webhooks with `rate_limit_per_second`.
    pub(super) rates: Mutex<RateLimiter>,
    pub(super) wakeup: Arc<Wakeup>,
    /// Told when the last delivery in flight finishes (shutdown waits for it).
    pub(super) idle: Notify,
    pub(super) recorder: mpsc::UnboundedSender<Message>,
    /// The book decides in process time; what the store keeps is wall time.
    pub(super) clock: Clock,
    /// How long a claim lasts (`delivery.lease`): only a crashed node's work waits this long
    /// to be taken over, as a claim about to run out is renewed before sending.
    pub(super) lease_length: Duration,
}

impl Inner {
    /// Sends `job` to its URL as its attempt `number`, with `webhook`'s headers and the
    /// secrets that sign now.
    pub(super) async fn send(
        &self,
        job: &Job,
        webhook: &Webhook,
        timeout: Duration,
        number: u32,
    ) -> Outcome {
        let call = Call {
            delivery_id: &job.delivery_id,
            url: &job.url,
            method: job.method,
            payload: &job.payload,
            headers: &webhook.spec.header,
            secrets: &webhook.signing_secrets(self.clock.wall()),
            timeout,
            number,
        };
        send(&self.client, &self.policy, call).await
    }

    /// The book. Its methods never await, so no lock is held across an `.await`; should
    /// one panic, the book's counters are still the best knowledge there is, and going on
    /// beats wedging every delivery and shutdown behind a poisoned lock.
    pub(super) fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn lease(&self) -> Lease {
        Lease {
            owner: self.owner.clone(),
            until: self.clock.wall().plus(self.lease_length),
        }
    }

    /// Gives deliveries back to the store parked, without an attempt.
    pub(super) fn park(&self, delivery_ids: Vec<DeliveryId>) {
        let until = self.clock.wall().plus(PARK_SAFETY);
        let _ = self.recorder.send(Message::Park(delivery_ids, until));
    }
}
