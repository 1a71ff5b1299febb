//! Group commit for attempt results: whatever finished while the previous batch was being
//! written goes into the next transaction, so recording keeps up with sending.

use std::{sync::Arc, time::Duration};

use tokio::sync::{mpsc, oneshot};

use crate::{domain::delivery::AttemptResult, store::Store};

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
    /// Answered once everything sent before it is committed.
    Flush(oneshot::Sender<()>),
}

pub(super) fn start(
    store: Arc<dyn Store>,
    owner: String,
    committed: impl Fn(&[AttemptResult]) + Send + 'static,
) -> mpsc::UnboundedSender<Message> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut batch = Vec::new();
            let mut flushes = Vec::new();
            let mut next = Some(first);
            while let Some(message) = next.take() {
                match message {
                    Message::Result(r) => batch.push(r),
                    Message::Flush(done) => flushes.push(done),
                }
                if batch.len() < MAX_BATCH {
                    next = rx.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                write(store.as_ref(), &owner, &batch).await;
                committed(&batch);
            }
            for done in flushes {
                let _ = done.send(());
            }
        }
    });
    tx
}

async fn write(store: &dyn Store, owner: &str, batch: &[AttemptResult]) {
    let mut waits = RETRY_WAITS.iter();
    loop {
        match store.record_attempts(owner, batch).await {
            Ok(()) => return,
            Err(e) => match waits.next() {
                Some(wait) => {
                    tracing::warn!(error = %e, results = batch.len(), "recording attempts failed; trying again");
                    tokio::time::sleep(*wait).await;
                }
                None => {
                    tracing::error!(error = %e, results = batch.len(), "cannot record attempts; these deliveries will be attempted again when their leases expire");
                    return;
                }
            },
        }
    }
}
