//! Parked deliveries and per-URL state: what does not fit in a URL's in-memory queue, or
//! waits for its circuit, stays in the store and is taken back per URL, in order, when
//! room frees up; circuit probes are taken the same way.

use std::{
    collections::HashMap,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use tokio::sync::Semaphore;

use super::{
    circuit::{Circuit, Gate},
    engine::{submit, Inner, Job},
};
use crate::domain::Timestamp;

/// A parked delivery falls due on its own after this, should the node that parked it be
/// gone; the engine normally takes parked work back long before.
pub(super) const PARK_SAFETY: Duration = Duration::from_secs(3600);
/// How often the poller asks the store which URLs have parked work: another node's, this
/// node's from before a restart, or deliveries parked behind an earlier one of their lane
/// that has since finished. One index probe per URL, so it can be often.
pub(super) const PARKED_RESCAN: Duration = Duration::from_secs(5);

/// Per-URL isolation: its own concurrency limit, a bound on how many of its deliveries the
/// engine holds in memory (the rest are parked in the store and taken back in order as
/// room frees up), and a circuit breaker.
pub(super) struct UrlState {
    pub(super) permits: Arc<Semaphore>,
    pub(super) queued: usize,
    pub(super) circuit: Circuit,
    /// The store may hold parked deliveries to this URL.
    pub(super) has_parked: bool,
    /// Bumped at each park: a refill that came back short clears `has_parked` only if
    /// nothing was parked while it ran.
    pub(super) parked_gen: u64,
    pub(super) refilling: bool,
}

impl UrlState {
    pub(super) fn new(per_url: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(per_url)),
            queued: 0,
            circuit: Circuit::default(),
            has_parked: false,
            parked_gen: 0,
            refilling: false,
        }
    }

    pub(super) fn note_parked(&mut self) {
        self.has_parked = true;
        self.parked_gen += 1;
    }

    pub(super) fn forgettable(&self) -> bool {
        self.queued == 0 && !self.has_parked && !self.refilling && self.circuit.is_pristine()
    }
}

/// A refill to start: how many parked deliveries to take back, as a probe or not.
pub(super) struct Refill {
    url: String,
    limit: usize,
    probe: bool,
    generation: u64,
}

impl Inner {
    /// The URL's state, created on first use.
    pub(super) fn url_state<'a>(
        &self,
        urls: &'a mut HashMap<String, UrlState>,
        url: &str,
    ) -> &'a mut UrlState {
        urls.entry(url.to_owned())
            .or_insert_with(|| UrlState::new(self.per_url))
    }

    pub(super) fn park_urls(&self) -> Vec<String> {
        let urls = self.urls.lock().expect("url states");
        urls.iter()
            .filter(|(_, s)| s.queued >= self.max_queued_per_url || s.circuit.is_open())
            .map(|(url, _)| url.clone())
            .collect()
    }

    /// Under the lock: a refill of the URL's parked work if it has some, none is running,
    /// its circuit is closed and its queue is at most half full.
    pub(super) fn refill_if_room(&self, url: &str, state: &mut UrlState) -> Option<Refill> {
        if !state.has_parked
            || state.refilling
            || state.circuit.is_open()
            || self.stopping.load(Ordering::Relaxed)
            || state.queued > self.max_queued_per_url / 2
        {
            return None;
        }
        let global_room = self
            .max_in_flight
            .saturating_sub(self.in_flight.load(Ordering::SeqCst));
        let limit = (self.max_queued_per_url - state.queued).min(global_room);
        if limit == 0 {
            return None;
        }
        state.refilling = true;
        Some(Refill {
            url: url.to_owned(),
            limit,
            probe: false,
            generation: state.parked_gen,
        })
    }

    pub(super) fn circuit_probe_abandoned(&self, url: &str) {
        if let Some(state) = self.urls.lock().expect("url states").get_mut(url) {
            state.circuit.probe_abandoned();
        }
        self.wake.notify_one();
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
        let jobs: Vec<Job> = {
            let mut urls = inner.urls.lock().expect("url states");
            let state = inner.url_state(&mut urls, &refill.url);
            state.refilling = false;
            match claimed {
                Ok(deliveries) => {
                    // Short: nothing more is parked, or what is waits behind an earlier
                    // delivery of its lane. While some of this URL's deliveries are in
                    // flight, one of them may be that earlier delivery, so its completion
                    // tries again; otherwise the next rescan does.
                    if deliveries.len() < refill.limit
                        && state.parked_gen == refill.generation
                        && state.queued == 0
                    {
                        state.has_parked = false;
                    }
                    if refill.probe && deliveries.is_empty() {
                        state.circuit.probe_abandoned();
                    }
                    deliveries
                        .into_iter()
                        .map(|d| Job {
                            probe: refill.probe,
                            ..Job::from_claimed(d, &lease)
                        })
                        .collect()
                }
                Err(e) => {
                    tracing::warn!(error = %e, url = %refill.url, "taking back parked deliveries failed; trying again later");
                    if refill.probe {
                        state.circuit.probe_abandoned();
                    }
                    Vec::new()
                }
            }
        };
        submit(&inner, jobs);
    });
}

/// Notes every URL the store holds parked work for, and starts taking it back.
pub(super) async fn adopt_parked(inner: &Arc<Inner>) {
    let urls = match inner.store.parked_urls().await {
        Ok(urls) => urls,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list parked deliveries; trying again later");
            return;
        }
    };
    {
        let mut states = inner.urls.lock().expect("url states");
        for url in urls {
            inner.url_state(&mut states, &url).note_parked();
        }
    }
    refill_waiting(inner);
}

/// For each open circuit whose cool-down is over: a probe, taken from the URL's parked work
/// (never attempted first); without parked work the next delivery to arrive is the probe.
pub(super) fn start_probes(inner: &Arc<Inner>, now: Timestamp) {
    let probes: Vec<Refill> = {
        let mut urls = inner.urls.lock().expect("url states");
        urls.iter_mut()
            .filter_map(|(url, state)| {
                let due = state.circuit.probe_due()?;
                if due > now {
                    inner.next_due.fetch_min(due.as_micros(), Ordering::SeqCst);
                    return None;
                }
                if !state.has_parked || state.refilling {
                    return None;
                }
                if state.circuit.gate(now) != Gate::Probe {
                    return None;
                }
                state.refilling = true;
                Some(Refill {
                    url: url.clone(),
                    limit: 1,
                    probe: true,
                    generation: state.parked_gen,
                })
            })
            .collect()
    };
    for probe in probes {
        start_refill(inner, probe);
    }
}

/// Refills every URL with parked work that has room now: a completion starts its own URL's
/// refill, but room that frees up in the engine as a whole (other URLs finishing) is
/// noticed here, at each poll.
pub(super) fn refill_waiting(inner: &Arc<Inner>) {
    let refills: Vec<Refill> = {
        let mut urls = inner.urls.lock().expect("url states");
        urls.iter_mut()
            .filter(|(_, state)| state.has_parked)
            .filter_map(|(url, state)| inner.refill_if_room(url, state))
            .collect()
    };
    for refill in refills {
        start_refill(inner, refill);
    }
}
