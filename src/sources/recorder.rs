//! Group commit of what sources received (receipts: what came in and what it became, for a
//! person debugging a connection). Nothing waits for them: one writer task commits
//! whatever arrived within [`LINGER`] (up to 1,024) in one transaction, writing only the
//! newest 100 of each source (the rest would be forgotten at once; every one is counted).
//! Written one per payload and awaited, they cost a source's ingest twice the CPU of
//! `/v3/events` on SQLite (BENCHMARKS.md). A stopping node writes what waits (`flush`); a
//! crash can lose the receipts of its last moments. The incident states that decide the
//! next payload go with the events, in intake's transaction.

use std::{sync::Arc, time::Duration};

use tokio::sync::{mpsc, oneshot};

use crate::{domain::source::Receipt, store::Store};

/// Receipts per transaction at most.
const MAX_BATCH: usize = 1024;
/// How long a batch waits for more receipts to share its transaction: what a person
/// looking at a source's receipts may wait to see the last one.
const LINGER: Duration = Duration::from_millis(200);

#[derive(Clone)]
pub struct ReceiptQueue {
    messages: mpsc::Sender<Message>,
}

enum Message {
    Receipt(Receipt),
    /// Write what waits now, and say when it is written (a node stopping).
    Flush(oneshot::Sender<()>),
}

impl ReceiptQueue {
    pub fn start(store: Arc<dyn Store>) -> ReceiptQueue {
        let (messages, mut incoming) = mpsc::channel::<Message>(4 * MAX_BATCH);
        tokio::spawn(async move {
            while let Some(first) = incoming.recv().await {
                let mut batch = Vec::new();
                let mut flushed = None;
                match first {
                    Message::Receipt(r) => batch.push(r),
                    Message::Flush(done) => flushed = Some(done),
                }
                let until = tokio::time::Instant::now() + LINGER;
                while flushed.is_none() && batch.len() < MAX_BATCH {
                    match tokio::time::timeout_at(until, incoming.recv()).await {
                        Ok(Some(Message::Receipt(r))) => batch.push(r),
                        Ok(Some(Message::Flush(done))) => flushed = Some(done),
                        _ => break,
                    }
                }
                if !batch.is_empty() {
                    if let Err(e) = store.record_receipts(&batch).await {
                        tracing::warn!(error = %e, receipts = batch.len(), "sources' receipts were not stored");
                    }
                }
                if let Some(done) = flushed {
                    let _ = done.send(());
                }
            }
        });
        ReceiptQueue { messages }
    }

    /// Records `receipt` with the next batch, without waiting for it.
    pub fn record(&self, receipt: Receipt) {
        if let Err(e) = self.messages.try_send(Message::Receipt(receipt)) {
            // Only when the store is far behind: a receipt is what may be dropped then.
            tracing::warn!(error = %e, "a source's receipt was dropped: the store is behind");
        }
    }

    /// Writes every receipt recorded so far without waiting for company, and returns once
    /// they are written: a node stopping does not lose its last moments' receipts.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.messages.send(Message::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}
