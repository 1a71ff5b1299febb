//! The bulk retry: a webhook's finished deliveries matching a log query set pending again,
//! oldest first, one batch per transaction, in the background, taken up by another node
//! should this one stop.

use std::sync::Arc;

use serde_json::Value;

use crate::{
    domain::{
        delivery::{bulk_retry_backoff, RetryJob, RetryJobState, RETRY_JOB_SILENCE},
        ids::{new_id, OrganizationId, WebhookId},
        Timestamp,
    },
    intake::IntakeError,
    store::{LogQuery, Store, StoreError},
};

/// Deliveries re-queued per transaction by a bulk retry.
const RETRY_BATCH: u32 = 500;

/// Starts a bulk retry of a webhook's finished deliveries matching `q`: counted now, then
/// set pending again oldest first, one batch per transaction, in the background; the job
/// row tells how far it got, and lets another node finish it should this one stop.
pub async fn start_bulk_retry(
    store: &Arc<dyn Store>,
    organization_id: &OrganizationId,
    webhook_id: &WebhookId,
    filters: Value,
    q: LogQuery,
) -> Result<RetryJob, IntakeError> {
    let total = store
        .count_finished_matching(organization_id, webhook_id, &q)
        .await?;
    let job = RetryJob {
        id: new_id("rtj"),
        organization_id: organization_id.clone(),
        webhook_id: webhook_id.clone(),
        filters,
        state: RetryJobState::Running,
        total,
        done: 0,
        after_seq: 0,
        error: None,
        created_at: Timestamp::now(),
        finished_at: None,
    };
    let runner = new_id("run");
    store.create_retry_job(&job, &q, &runner).await?;
    tokio::spawn(run_bulk_retry(store.clone(), job.clone(), q, runner));
    Ok(job)
}

/// Takes up the bulk retries whose runner stopped (silent for
/// [`RETRY_JOB_SILENCE`](RETRY_JOB_SILENCE): its node died or
/// restarted), each from where it stopped. Returns how many it took.
pub async fn adopt_bulk_retries(store: &Arc<dyn Store>) -> Result<usize, StoreError> {
    let mut taken = 0;
    loop {
        let now = Timestamp::now();
        let silent_since = now.minus(RETRY_JOB_SILENCE);
        let runner = new_id("run");
        let Some((job, q)) = store.adopt_retry_job(&runner, silent_since, now).await? else {
            return Ok(taken);
        };
        tracing::info!(job = %job.id, done = job.done, "taking up a bulk retry whose runner stopped");
        tokio::spawn(run_bulk_retry(store.clone(), job, q, runner));
        taken += 1;
    }
}

/// Re-queues a job's deliveries batch by batch from its position, saving progress after
/// each (the heartbeat other nodes watch), until none is left; stops early when another
/// runner took the job over.
async fn run_bulk_retry(store: Arc<dyn Store>, mut job: RetryJob, q: LogQuery, runner: String) {
    let mut failures = 0;
    loop {
        match store
            .requeue_finished(&job, &runner, &q, RETRY_BATCH, Timestamp::now())
            .await
        {
            Ok(None) => {
                tracing::warn!(job = %job.id, "another runner took this bulk retry over; stopping");
                return;
            }
            Ok(Some(step)) => {
                failures = 0;
                // The store's count and position: right even after a lost answer.
                job.done = step.done;
                job.after_seq = step.after_seq;
                if step.requeued == 0 {
                    job.state = RetryJobState::Done;
                    break;
                }
            }
            Err(e) => {
                failures += 1;
                // A step is one transaction that starts from the position the store
                // holds, so trying it again neither skips nor repeats deliveries.
                if let Some(wait) = bulk_retry_backoff(failures) {
                    tracing::warn!(error = %e, job = %job.id, wait = ?wait, "a bulk retry step failed; trying it again");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                job.state = RetryJobState::Failed;
                job.error = Some(e.to_string());
                break;
            }
        }
    }
    job.finished_at = Some(Timestamp::now());
    if let Err(e) = store.save_retry_job(&job, &runner).await {
        tracing::warn!(error = %e, job = %job.id, "could not save the end of a bulk retry");
    }
    tracing::info!(job = %job.id, done = job.done, state = job.state.as_str(), "bulk retry finished");
}
