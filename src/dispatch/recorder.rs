//! Group commit for attempt results (and for deliveries given back parked): whatever
//! finished while the previous batch was being written goes into the next transaction, so
//! recording keeps up with sending.

use std::{sync::Arc, time::Duration};

use tokio::sync::{mpsc, oneshot};

use super::wakeup::Wakeup;
use crate::{
    domain::{delivery::AttemptResult, Timestamp},
    store::Store,
};

const MAX_BATCH: usize = 256;
/// A failed batch is tried again after these waits, then left to lease expiry (the
/// deliveries are attempted again: at-least-once).
const RETRY_WAITS: [Duration; 3] = [
    Duration::from_millis(100),
    Duration::from_millis(500),
    Duration::from_secs(2),
];

pub(super) enum Message {
    Result(AttemptResult),
    /// Deliveries to give back to the store parked (their URL has no room, or its circuit
    /// is open), without an attempt, until at most this time.
    Park(Vec<crate::domain::ids::DeliveryId>, Timestamp),
    /// Answered once everything sent before it is committed.
    Flush(oneshot::Sender<()>),
}

/// Starts the recorder; once a batch of results is committed it wakes the poller: a lane's
/// next delivery became claimable, or a retry has a time.
///
/// A batch of results may wait up to `linger` from its first message for more (not when
/// it is full, holds parks, or a flush is asked for). At ordinary rates each result would
/// otherwise be a transaction of its own, and a commit rewrites every page it touched:
/// waiting 20 ms cut CPU per event at 200 events/s by a quarter (BENCHMARKS.md).
/// Recording is not on the way to the receiver; what waits is a lane's next delivery, and
/// a retry's schedule by that much (`delivery.record_linger`, 20 ms by default).
pub(super) fn start(
    store: Arc<dyn Store>,
    owner: String,
    wakeup: Arc<Wakeup>,
    linger: Duration,
) -> mpsc::UnboundedSender<Message> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut batch = Vec::new();
            let mut parks = Vec::new();
            let mut park_until = Timestamp::default();
            let mut flushes = Vec::new();
            let mut next = Some(first);
            let linger_until = std::time::Instant::now() + linger;
            while let Some(message) = next.take() {
                match message {
                    Message::Result(r) => batch.push(r),
                    Message::Park(ids, until) => {
                        parks.extend(ids);
                        park_until = park_until.max(until);
                    }
                    Message::Flush(done) => flushes.push(done),
                }
                if batch.len() + parks.len() < MAX_BATCH {
                    next = rx.try_recv().ok();
                }
                // Never with parks: the engine counts on a park reaching the store at once
                // (an attempt of that delivery already under way must then find its lease
                // gone and not send; a park kept waiting let it send, and the park, landing
                // first, made its result unrecordable: the delivery went again elsewhere).
                if next.is_none()
                    && !linger.is_zero()
                    && flushes.is_empty()
                    && parks.is_empty()
                    && batch.len() < MAX_BATCH
                {
                    if let Some(left) =
                        linger_until.checked_duration_since(std::time::Instant::now())
                    {
                        next = tokio::time::timeout(left, rx.recv()).await.ok().flatten();
                    }
                }
            }
            if !batch.is_empty() {
                let recorded = retrying("recording attempts", batch.len(), || {
                    store.record_attempts(&owner, &batch)
                })
                .await;
                if !recorded && batch.len() > 1 {
                    one_by_one(store.as_ref(), &owner, &batch).await;
                }
                for result in &batch {
                    match result.next_attempt_at {
                        Some(at) => wakeup.at_wall(at),
                        None => wakeup.now(),
                    }
                }
            }
            if !parks.is_empty() {
                retrying("parking deliveries", parks.len(), || {
                    store.park(&owner, &parks, park_until)
                })
                .await;
            }
            for done in flushes {
                let _ = done.send(());
            }
        }
    });
    tx
}

/// Runs a write, trying again after each of [`RETRY_WAITS`]; past them the deliveries are
/// left to lease expiry (attempted again: at-least-once). Whether it was written.
async fn retrying<F, Fut>(what: &str, count: usize, mut write: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = crate::store::StoreResult<()>>,
{
    let mut waits = RETRY_WAITS.iter();
    loop {
        match write().await {
            Ok(()) => return true,
            Err(e) => match waits.next() {
                Some(wait) => {
                    tracing::warn!(error = %e, deliveries = count, "{what} failed; trying again");
                    tokio::time::sleep(*wait).await;
                }
                None => {
                    tracing::error!(error = %e, deliveries = count, "{what} failed for good; these deliveries will be attempted again when their leases expire");
                    return false;
                }
            },
        }
    }
}

/// Consecutive results that fail alone before the rest are given up: then the store
/// itself is failing, not one result, and each try could wait for a connection.
const GIVE_UP_AFTER: usize = 3;

/// A batch that failed for good is recorded a result at a time, once each, so that one
/// result the store refuses (seen twice: a chunked upsert, a NUL in an answer) leaves only
/// its own delivery to lease expiry and is not sent again with up to 255 others. Stops
/// after [`GIVE_UP_AFTER`] failures in a row.
async fn one_by_one(store: &dyn Store, owner: &str, batch: &[AttemptResult]) {
    let mut recorded = 0;
    let mut failed_in_a_row = 0;
    for result in batch {
        match store
            .record_attempts(owner, std::slice::from_ref(result))
            .await
        {
            Ok(()) => {
                recorded += 1;
                failed_in_a_row = 0;
            }
            Err(e) => {
                tracing::error!(error = %e, delivery = %result.delivery_id, "recording this attempt failed; the delivery will be attempted again when its lease expires");
                failed_in_a_row += 1;
                if failed_in_a_row == GIVE_UP_AFTER {
                    break;
                }
            }
        }
    }
    tracing::info!(
        recorded,
        of = batch.len(),
        "a batch that failed was recorded result by result"
    );
}
