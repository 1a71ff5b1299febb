//! Group commit of what sources received: every payload's receipt and new incident states
//! go through one writer task that commits whatever arrived meanwhile in one transaction,
//! answering each after the commit. One transaction per payload cost a source's ingest
//! three and a half times the CPU of `/v3/events` on SQLite (BENCHMARKS.md).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::{
    domain::source::{IncidentState, Receipt},
    store::{ReceiptRecord, Store},
};

/// Receipts per transaction at most.
const MAX_BATCH: usize = 256;

#[derive(Clone)]
pub struct ReceiptQueue {
    requests: mpsc::Sender<(ReceiptRecord, oneshot::Sender<Result<(), String>>)>,
}

impl ReceiptQueue {
    pub fn start(store: Arc<dyn Store>) -> ReceiptQueue {
        let (requests, mut incoming) =
            mpsc::channel::<(ReceiptRecord, oneshot::Sender<Result<(), String>>)>(4 * MAX_BATCH);
        tokio::spawn(async move {
            while let Some(first) = incoming.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match incoming.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                commit(&store, batch).await;
            }
        });
        ReceiptQueue { requests }
    }

    /// Records `receipt` and `states`; answers once they are committed.
    pub async fn record(&self, states: Vec<IncidentState>, receipt: Receipt) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send((ReceiptRecord { states, receipt }, reply))
            .await
            .map_err(|_| "tocsin is shutting down".to_owned())?;
        answer
            .await
            .map_err(|_| "tocsin is shutting down".to_owned())?
    }
}

/// Commits a batch; when it fails, each record alone, so one the store refuses fails alone.
async fn commit(
    store: &Arc<dyn Store>,
    batch: Vec<(ReceiptRecord, oneshot::Sender<Result<(), String>>)>,
) {
    let (records, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
    match store.record_receipts(&records).await {
        Ok(()) => {
            for reply in replies {
                let _ = reply.send(Ok(()));
            }
        }
        Err(e) if records.len() == 1 => {
            for reply in replies {
                let _ = reply.send(Err(e.to_string()));
            }
        }
        Err(_) => {
            for (record, reply) in records.into_iter().zip(replies) {
                let result = store
                    .record_receipts(std::slice::from_ref(&record))
                    .await
                    .map_err(|e| e.to_string());
                let _ = reply.send(result);
            }
        }
    }
}
