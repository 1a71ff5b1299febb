//! The send-now path: deliveries sent once each, at once and side by side, outside the queue
//! and the URLs' circuits (tests sent by hand, whose caller waits for the answers).

use std::{sync::Arc, time::Duration};

use super::{
    engine::Engine,
    job::{Job, SentNow},
    shared::Inner,
};
use crate::{
    domain::{
        delivery::{AttemptResult, DeliveryState},
        webhook::Webhook,
    },
    store::Lease,
};

impl Engine {
    /// Sends `jobs` of `webhook`, stored leased to `lease`, once each; their results are
    /// recorded (succeeded or failed, never retried, never e-mailed) before this returns.
    pub async fn send_now(&self, jobs: Vec<Job>, webhook: &Webhook, lease: &Lease) -> Vec<SentNow> {
        let sent = send_all(&self.inner, jobs, webhook).await;
        let counted = crate::metrics::metrics();
        for s in &sent {
            counted.attempt(
                s.attempt.response_status,
                s.attempt.error.as_deref(),
                s.attempt.duration_ms as f64 / 1000.0,
            );
            counted.deliveries_finished(if s.succeeded { "succeeded" } else { "failed" }, 1);
        }
        let results: Vec<AttemptResult> = sent.iter().map(result_of).collect();
        if let Err(e) = self
            .inner
            .store
            .record_attempts(&lease.owner, &results)
            .await
        {
            tracing::warn!(error = %e, "recording test deliveries failed; they will be attempted again when their leases expire");
        }
        sent
    }
}

/// Sends every job in its own task and waits for all of them.
async fn send_all(inner: &Arc<Inner>, jobs: Vec<Job>, webhook: &Webhook) -> Vec<SentNow> {
    let timeout = Duration::from_secs(webhook.spec.timeout_seconds as u64);
    let tasks: Vec<_> = jobs
        .into_iter()
        .map(|job| {
            let inner = inner.clone();
            let webhook = webhook.clone();
            tokio::spawn(async move {
                let outcome = inner.send(&job, &webhook, timeout, 1).await;
                SentNow {
                    delivery_id: job.delivery_id,
                    url: job.url,
                    method: job.method,
                    attempt: outcome.attempt,
                    succeeded: outcome.succeeded,
                }
            })
        })
        .collect();
    let mut sent = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(one) = task.await {
            sent.push(one);
        }
    }
    sent
}

/// A sent delivery's end: never retried, never e-mailed.
fn result_of(sent: &SentNow) -> AttemptResult {
    AttemptResult {
        delivery_id: sent.delivery_id.clone(),
        attempt: sent.attempt.clone(),
        state: if sent.succeeded {
            DeliveryState::Succeeded
        } else {
            DeliveryState::Failed
        },
        next_attempt_at: None,
        notify: false,
    }
}
