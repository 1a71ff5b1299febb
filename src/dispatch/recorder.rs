//! Group commit for attempt results (and for deliveries given back parked): whatever
//! finished while the previous batch was being written goes into the next transaction, so
//! recording keeps up with sending.

use std::{sync::Arc, time::Duration};

use tokio::sync::{mpsc, oneshot};

use super::wakeup::Wakeup;
use crate::{
    domain::{delivery::AttemptResult, ids::DeliveryId, Timestamp},
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
    Park(Vec<DeliveryId>, Timestamp),
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
            let batch = gather(first, &mut rx, linger).await;
            write(store.as_ref(), &owner, &wakeup, batch).await;
        }
    });
    tx
}

/// What one transaction writes.
#[derive(Default)]
struct Batch {
    results: Vec<AttemptResult>,
    parks: Vec<DeliveryId>,
    park_until: Timestamp,
    flushes: Vec<oneshot::Sender<()>>,
}

impl Batch {
    fn take(&mut self, message: Message) {
        match message {
            Message::Result(r) => self.results.push(r),
            Message::Park(ids, until) => {
                self.parks.extend(ids);
                self.park_until = self.park_until.max(until);
            }
            Message::Flush(done) => self.flushes.push(done),
        }
    }

    fn len(&self) -> usize {
        self.results.len() + self.parks.len()
    }

    /// Whether it may wait for company. Never with parks: the engine counts on a park
    /// reaching the store at once (an attempt of that delivery already under way must then
    /// find its lease gone and not send; a park kept waiting let it send, and the park,
    /// landing first, made its result unrecordable: the delivery went again elsewhere).
    fn may_linger(&self) -> bool {
        self.flushes.is_empty() && self.parks.is_empty() && self.len() < MAX_BATCH
    }
}

/// `first` and whatever else is waiting, up to [`MAX_BATCH`], and what comes within
/// `linger` of now while the batch may wait for it.
async fn gather(
    first: Message,
    rx: &mut mpsc::UnboundedReceiver<Message>,
    linger: Duration,
) -> Batch {
    let mut batch = Batch::default();
    let mut next = Some(first);
    let linger_until = std::time::Instant::now() + linger;
    while let Some(message) = next.take() {
        batch.take(message);
        if batch.len() < MAX_BATCH {
            next = rx.try_recv().ok();
        }
        if next.is_none() && !linger.is_zero() && batch.may_linger() {
            if let Some(left) = linger_until.checked_duration_since(std::time::Instant::now()) {
                next = tokio::time::timeout(left, rx.recv()).await.ok().flatten();
            }
        }
    }
    batch
}

/// Commits a batch: the results (waking the poller for each lane's next delivery and each
/// retry's time), then the parks, then tells whoever asked for a flush.
async fn write(store: &dyn Store, owner: &str, wakeup: &Wakeup, batch: Batch) {
    let results = batch.results;
    if !results.is_empty() {
        let recorded = retrying("recording attempts", results.len(), || {
            store.record_attempts(owner, &results)
        })
        .await;
        if !recorded && results.len() > 1 {
            one_by_one(store, owner, &results).await;
        }
        for result in &results {
            match result.next_attempt_at {
                Some(at) => wakeup.at_wall(at),
                None => wakeup.now(),
            }
        }
    }
    if !batch.parks.is_empty() {
        retrying("parking deliveries", batch.parks.len(), || {
            store.park(owner, &batch.parks, batch.park_until)
        })
        .await;
    }
    for done in batch.flushes {
        let _ = done.send(());
    }
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
