//! The poller's wake-ups: the engine and the recorder (which wakes it once results are
//! durable) tell it when there is work sooner than its interval, in process time.

use std::{
    sync::atomic::{AtomicI64, Ordering},
    time::Duration,
};

use tokio::sync::Notify;

use crate::domain::{clock::Clock, Timestamp};

/// Wakes the poller before its interval: a lane moved on, or a retry or probe has a time.
/// Shared by the engine and the recorder (which wakes it once results are durable).
pub(super) struct Wakeup {
    notify: Notify,
    /// The earliest known due time (micros, process time); `i64::MAX` for none.
    next_due: AtomicI64,
    clock: Clock,
}

impl Wakeup {
    pub(super) fn new(clock: Clock) -> Self {
        Self {
            notify: Notify::new(),
            next_due: AtomicI64::new(i64::MAX),
            clock,
        }
    }

    /// A wake-up at a wall time the store keeps (a retry's due time).
    pub(super) fn at_wall(&self, at: Timestamp) {
        self.at(self.clock.from_wall(at));
    }

    pub(super) fn now(&self) {
        self.notify.notify_one();
    }

    pub(super) fn at(&self, at: Timestamp) {
        self.note_due(at);
        self.notify.notify_one();
    }

    pub(super) fn note_due(&self, at: Timestamp) {
        self.next_due.fetch_min(at.as_micros(), Ordering::SeqCst);
    }

    /// Waits for a wake-up, the earliest due time, or `max`, whichever comes first.
    pub(super) async fn wait(&self, max: Duration) {
        let until_due = self
            .next_due
            .load(Ordering::SeqCst)
            .saturating_sub(self.clock.now().as_micros())
            .max(0) as u64;
        let sleep = max.min(Duration::from_micros(until_due));
        if !sleep.is_zero() {
            let _ = tokio::time::timeout(sleep, self.notify.notified()).await;
        }
    }
}

impl Wakeup {
    /// Forgets the due times noted so far (the poller is about to look for itself).
    pub(super) fn forget_due(&self) {
        self.next_due.store(i64::MAX, Ordering::SeqCst);
    }
}
