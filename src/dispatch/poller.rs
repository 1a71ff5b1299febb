//! The poller: whatever intake did not hand the engine directly — retries that fell due,
//! lanes that moved on, a crashed node's work, parked work, circuit probes — it claims
//! from the store, at least every [`POLL_INTERVAL`] and at once when woken.

use std::{sync::Arc, time::Duration};

use super::{
    attempt::{start_refill, submit},
    cluster,
    job::Job,
    shared::Inner,
};

/// The poller looks for due work at least this often.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
const CLAIM_BATCH: usize = 500;
/// At most this often a claim that found less than a full batch runs again.
const MIN_CLAIM_GAP: Duration = Duration::from_millis(50);
/// How often the poller asks the store which URLs have parked work: another node's, this
/// node's from before a restart, or deliveries parked behind an earlier one of their lane
/// that has since finished. One index probe per URL, so it can be often.
const PARKED_RESCAN: Duration = Duration::from_secs(5);
/// How often the poller reads the circuits open in the cluster (one small table).
const CIRCUIT_SYNC: Duration = Duration::from_secs(1);

pub(super) async fn poll(inner: Arc<Inner>) {
    let mut rescan_at = inner.clock.now(); // at start: parked work left from before
    let mut sync_at = inner.clock.now();
    loop {
        if inner.book().is_stopping() {
            return;
        }
        inner.wakeup.forget_due();
        let now = inner.clock.now();
        if now >= sync_at {
            sync_at = now.plus(CIRCUIT_SYNC);
            for refill in cluster::sync_circuits(&inner).await {
                start_refill(&inner, refill);
            }
        }
        if now >= rescan_at {
            rescan_at = now.plus(PARKED_RESCAN);
            adopt_parked(&inner).await;
        }
        let tick = inner.book().tick(now);
        if let Some(at) = tick.next_probe {
            inner.wakeup.note_due(at);
        }
        for refill in tick.refills {
            start_refill(&inner, refill);
        }
        if tick.room > 0 && claim_due(&inner, tick.room.min(CLAIM_BATCH)).await {
            continue; // a full batch: more may be waiting
        }
        inner.wakeup.note_due(rescan_at);
        inner.wakeup.note_due(sync_at);
        inner.wakeup.wait(POLL_INTERVAL).await;
        // Wake-ups come with every committed batch of results; claiming that often would
        // only re-read the same queue.
        tokio::time::sleep(MIN_CLAIM_GAP).await;
    }
}

/// Claims up to `limit` due deliveries and starts them; true when it got all `limit`.
async fn claim_due(inner: &Arc<Inner>, limit: usize) -> bool {
    let lease = inner.lease();
    match inner
        .store
        .claim_due(&lease, inner.clock.wall(), limit as u32)
        .await
    {
        Ok(deliveries) => {
            let full = deliveries.len() == limit;
            let jobs = deliveries
                .into_iter()
                .map(|d| Job::from_claimed(d, &lease, false))
                .collect();
            submit(inner, jobs);
            full
        }
        Err(e) => {
            tracing::warn!(error = %e, "claiming due deliveries failed; trying again");
            false
        }
    }
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
