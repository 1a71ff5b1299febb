//! The delivery engine. Intake hands it the deliveries it leased (no polling delay); a
//! poller (`poller.rs`) claims the rest: retries that fell due, lanes that moved on, work
//! left by a crashed node, parked work and circuit probes. Each delivery holds a lease
//! while it is attempted (`attempt.rs`); no transaction stays open across an HTTP call.
//! Every decision about a URL (start or park, refill, probe, what the cluster's circuit
//! row is told) is the [`Book`]'s; this file starts the parts (what they share is
//! `shared.rs`) and is what intake and the rest of tocsin talk to.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::{oneshot, Notify, Semaphore};

use super::{
    attempt::{start_refill, submit},
    book::{Book, Limits},
    guard::NetworkPolicy,
    job::Job,
    poller::poll,
    recorder::{self, Message},
    shared::{Inner, PARK_SAFETY},
    wakeup::Wakeup,
};
use crate::{
    catalog::Catalog,
    config::DeliveryConfig,
    domain::{
        clock::Clock,
        delivery::NewDelivery,
        ids::{new_id, DeliveryId},
        rate_limit::RateLimiter,
    },
    store::{Admission, Store},
};

#[derive(Clone)]
pub struct Engine {
    pub(super) inner: Arc<Inner>,
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

    /// Deliveries were stored under `admission`: remember which URLs now have parked work,
    /// and take it back at once where room appeared meanwhile.
    fn parked<'a>(
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

    /// Deliveries were stored under `admission` (a batch: each event's, with those of them
    /// the store leased to this node): the URLs that now have parked work are noted, once
    /// for the batch, and the leased ones start.
    pub fn stored(&self, admission: &Admission, stored: &[(&[NewDelivery], &[DeliveryId])]) {
        self.parked(admission, stored.iter().flat_map(|(ds, _)| ds.iter()));
        let Some(lease) = &admission.lease else {
            return;
        };
        let jobs = stored
            .iter()
            .flat_map(|(ds, leased)| ds.iter().filter(|d| leased.contains(&d.id)))
            .map(|d| Job::from_new(d, lease))
            .collect();
        submit(&self.inner, jobs);
    }

    /// Deliveries were stored under `admission` although the write seemed to fail: the
    /// answer naming the leased ones was lost, and the store gave their leases back. The
    /// URLs with parked work are noted and the poller claims the rest now.
    pub fn stored_unanswered<'a>(
        &self,
        admission: &Admission,
        deliveries: impl IntoIterator<Item = &'a NewDelivery>,
    ) {
        self.parked(admission, deliveries);
        self.wake();
    }

    /// This node's name, as the `lease_owner` of the deliveries it holds (random per start).
    pub fn node(&self) -> &str {
        &self.inner.owner
    }

    /// Another node made work claimable: the poller looks now instead of at its interval.
    pub fn wake(&self) {
        self.inner.wakeup.now();
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
