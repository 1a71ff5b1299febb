//! Bulk retries: their jobs, and their deliveries set pending again a batch at a time.

use async_trait::async_trait;
use sqlx::Row;

use super::{
    args::Arg,
    delivery_rows::{query_from_text, query_text, retry_job_from_row, RETRY_JOB_COLUMNS},
    logs::finished_conditions,
    SqlStore,
};
use crate::{
    domain::{
        delivery::RetryJob,
        ids::{OrganizationId, WebhookId},
        Timestamp,
    },
    store::{LogQuery, RetryJobStore, RetryStep, StoreResult},
};

#[async_trait]
impl RetryJobStore for SqlStore {
    async fn requeue_finished(
        &self,
        job: &RetryJob,
        runner: &str,
        q: &LogQuery,
        limit: u32,
        now: Timestamp,
    ) -> StoreResult<Option<RetryStep>> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin().await?;
        // First the job's row: on PostgreSQL this locks it, so a node adopting the job
        // meanwhile waits for this step and then finds it heard of.
        let Some(row) = sqlx::query(
            "UPDATE retry_jobs SET updated_at = $1 WHERE id = $2 AND runner = $3 AND state = 'running' \
             RETURNING done, after_seq",
        )
        .bind(now.as_micros())
        .bind(&job.id)
        .bind(runner)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(None);
        };
        let (done, after_seq): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        let mut conditions = finished_conditions(q, &self.sealer);
        // From the position the row holds, not the runner's copy: a step whose commit
        // went through but whose answer was lost must not be taken again.
        conditions.push("seq > ?", Arg::from(after_seq));
        let sql = format!(
            "UPDATE deliveries SET state = 'pending', next_attempt_at = {now}, completed_at = NULL, \
               updated_at = {now}, leased_until = NULL, lease_owner = NULL, parked = 0 \
             WHERE seq IN (SELECT seq FROM deliveries WHERE organization_id = $1 AND webhook_id = $2{} \
               ORDER BY webhook_id, seq LIMIT {limit}) \
             RETURNING seq",
            conditions.sql(3),
            now = now.as_micros(),
        );
        let seqs = conditions
            .bind(
                sqlx::query(&sql)
                    .bind(&job.organization_id)
                    .bind(&job.webhook_id),
            )
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| row.try_get::<i64, _>(0))
            .collect::<Result<Vec<_>, _>>()?;
        let mut step = RetryStep {
            requeued: seqs.len() as u64,
            done: done as u64,
            after_seq,
        };
        if let Some(last) = seqs.iter().copied().max() {
            step.done += step.requeued;
            step.after_seq = last;
            sqlx::query("UPDATE retry_jobs SET done = $1, after_seq = $2 WHERE id = $3")
                .bind(step.done as i64)
                .bind(last)
                .bind(&job.id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Some(step))
    }

    async fn create_retry_job(
        &self,
        job: &RetryJob,
        q: &LogQuery,
        runner: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO retry_jobs (id, organization_id, webhook_id, filters, state, total, done, error, created_at, finished_at, updated_at, query, after_seq, runner) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&job.id)
        .bind(&job.organization_id)
        .bind(&job.webhook_id)
        .bind(job.filters.to_string())
        .bind(job.state.as_str())
        .bind(job.total as i64)
        .bind(job.done as i64)
        .bind(job.error.as_deref())
        .bind(job.created_at.as_micros())
        .bind(job.finished_at.map(Timestamp::as_micros))
        .bind(job.created_at.as_micros())
        .bind(query_text(q, &self.sealer))
        .bind(job.after_seq)
        .bind(runner)
        .execute(&mut *self.writer.acquire().await?)
        .await?;
        Ok(())
    }

    async fn save_retry_job(&self, job: &RetryJob, runner: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE retry_jobs SET state = $1, done = $2, after_seq = $3, error = $4, finished_at = $5, updated_at = $6 \
             WHERE id = $7 AND runner = $8",
        )
        .bind(job.state.as_str())
        .bind(job.done as i64)
        .bind(job.after_seq)
        .bind(job.error.as_deref())
        .bind(job.finished_at.map(Timestamp::as_micros))
        .bind(Timestamp::now().as_micros())
        .bind(&job.id)
        .bind(runner)
        .execute(&mut *self.writer.acquire().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn adopt_retry_job(
        &self,
        runner: &str,
        silent_since: Timestamp,
        now: Timestamp,
    ) -> StoreResult<Option<(RetryJob, LogQuery)>> {
        // The silence is checked again by the update itself: of two nodes that picked the
        // same job, the second finds it heard of and takes nothing.
        let row = sqlx::query(&format!(
            "UPDATE retry_jobs SET runner = $1, updated_at = $2 \
             WHERE id = (SELECT id FROM retry_jobs WHERE state = 'running' AND updated_at < $3 AND query IS NOT NULL \
                         ORDER BY created_at LIMIT 1) \
               AND state = 'running' AND updated_at < $3 \
             RETURNING {RETRY_JOB_COLUMNS}"
        ))
        .bind(runner)
        .bind(now.as_micros())
        .bind(silent_since.as_micros())
        .fetch_optional(&mut *self.writer.acquire().await?)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut job = retry_job_from_row(&row, now)?;
        let text: String = row.try_get("query")?;
        match query_from_text(&text, &self.sealer) {
            Ok(query) => Ok(Some((job, query))),
            Err(e) => {
                // Taken up again every minute it would fail the same way: it ends, saying why.
                job.state = crate::domain::delivery::RetryJobState::Failed;
                job.error = Some(format!("its filters could not be read again: {e}"));
                job.finished_at = Some(now);
                self.save_retry_job(&job, runner).await?;
                Ok(None)
            }
        }
    }

    async fn retry_job(
        &self,
        organization_id: &OrganizationId,
        webhook_id: &WebhookId,
        id: &str,
    ) -> StoreResult<Option<RetryJob>> {
        let row = sqlx::query(&format!(
            "SELECT {RETRY_JOB_COLUMNS} FROM retry_jobs WHERE organization_id = $1 AND webhook_id = $2 AND id = $3"
        ))
        .bind(organization_id)
        .bind(webhook_id)
        .bind(id)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|row| retry_job_from_row(&row, Timestamp::now()))
            .transpose()
    }
}
