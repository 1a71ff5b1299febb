//! Group commit of what sources received (receipts: what came in and what it became, for a
//! person debugging a connection). Nothing waits for them: one writer task commits
//! whatever arrived within [`LINGER`] (up to 1,024) in one transaction, writing only the
//! newest 100 of each source (the rest would be forgotten at once; every one is counted).
//! Written one per payload and awaited, they cost a source's ingest twice the CPU of
//! `/v3/events` on SQLite (BENCHMARKS.md). A crash can lose the receipts of its last
//! moments; the incident states that decide the next payload go with the events, in
//! intake's transaction.

use std::{sync::Arc, time::Duration};

use tokio::sync::mpsc;

use crate::{domain::source::Receipt, store::Store};

/// Receipts per transaction at most.
const MAX_BATCH: usize = 1024;
/// How long a batch waits for more receipts to share its transaction: what a person
/// looking at a source's receipts may wait to see the last one.
const LINGER: Duration = Duration::from_millis(200);

#[derive(Clone)]
pub struct ReceiptQueue {
    receipts: mpsc::Sender<Receipt>,
}

impl ReceiptQueue {
    pub fn start(store: Arc<dyn Store>) -> ReceiptQueue {
        let (receipts, mut incoming) = mpsc::channel::<Receipt>(4 * MAX_BATCH);
        tokio::spawn(async move {
            while let Some(first) = incoming.recv().await {
                let mut batch = vec![first];
                let until = tokio::time::Instant::now() + LINGER;
                while batch.len() < MAX_BATCH {
                    match tokio::time::timeout_at(until, incoming.recv()).await {
                        Ok(Some(next)) => batch.push(next),
                        _ => break,
                    }
                }
                if let Err(e) = store.record_receipts(&batch).await {
                    tracing::warn!(error = %e, receipts = batch.len(), "sources' receipts were not stored");
                }
            }
        });
        ReceiptQueue { receipts }
    }

    /// Records `receipt` with the next batch, without waiting for it.
    pub fn record(&self, receipt: Receipt) {
        if let Err(e) = self.receipts.try_send(receipt) {
            // Only when the store is far behind: a receipt is what may be dropped then.
            tracing::warn!(error = %e, "a source's receipt was dropped: the store is behind");
        }
    }
}
