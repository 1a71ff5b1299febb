//! Failure notifications.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::{any::AnyRow, Any, Row, Transaction};

use super::{optional_time, Dialect, SqlStore};
use crate::{
    domain::{
        ids::new_id,
        ids::{DeliveryId, OrganizationId, WebhookId},
        notification::{
            FailureReport, Notice, NoticeKind, NoticeRecord, Notification, NotificationOutcome,
            NotificationState,
        },
        sealing::Sealer,
        Timestamp,
    },
    store::{NotificationStore, StoreError, StoreResult},
};

/// Records that a failed delivery owes an e-mail; the notifier takes it from there.
pub(super) async fn insert_notification(
    chain: &mut super::chain::Chain<'_>,
    delivery_id: &DeliveryId,
    at: i64,
) -> StoreResult<()> {
    let args = super::chain::Args::default()
        .bind(new_id("ntf"))
        .bind(at)
        .bind(delivery_id.to_owned());
    // It reads the delivery: one added in this chain must have been sent (`send_writes`).
    chain
        .push(
            "INSERT INTO notifications (id, organization_id, webhook_id, delivery_id, state, attempts, next_attempt_at, created_at) \
             SELECT $1, organization_id, webhook_id, id, 'pending', 0, $2, $2 FROM deliveries WHERE id = $3 \
             ON CONFLICT (delivery_id) DO NOTHING",
            args,
        )
        .await?;
    Ok(())
}

const COLUMNS: &str = "n.id, n.organization_id, n.webhook_id, n.delivery_id, n.state, n.attempts, n.next_attempt_at, n.last_error, n.created_at, n.sent_at";

fn notification_from_row(row: &AnyRow) -> StoreResult<Notification> {
    let state: String = row.try_get("state")?;
    Ok(Notification {
        id: row.try_get("id")?,
        organization_id: row.try_get("organization_id")?,
        webhook_id: row.try_get("webhook_id")?,
        delivery_id: row.try_get("delivery_id")?,
        state: NotificationState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown notification state {state}")))?,
        attempts: row.try_get::<i64, _>("attempts")? as u32,
        next_attempt_at: optional_time(row, "next_attempt_at")?,
        last_error: row.try_get("last_error")?,
        created_at: Timestamp::from_micros(row.try_get("created_at")?),
        sent_at: optional_time(row, "sent_at")?,
    })
}

fn notice_from_row(row: &AnyRow) -> StoreResult<Notice> {
    let kind: String = row.try_get("kind")?;
    Ok(Notice {
        id: row.try_get("id")?,
        organization_id: row.try_get("organization_id")?,
        webhook_id: row.try_get("webhook_id")?,
        kind: NoticeKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown notice kind {kind}")))?,
        url: row.try_get("url")?,
        detail: row.try_get("detail")?,
        attempts: row.try_get::<i64, _>("attempts")? as u32,
        created_at: Timestamp::from_micros(row.try_get("created_at")?),
    })
}

fn report_from_row(row: &AnyRow, sealer: &Sealer) -> StoreResult<FailureReport> {
    let body: String = row.try_get("event_body")?;
    let message = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|b| b["incident"]["message"].as_str().map(str::to_owned))
        .unwrap_or_default();
    Ok(FailureReport {
        notification_id: row.try_get("id")?,
        delivery_id: row.try_get("delivery_id")?,
        url: super::open_url(sealer, row.try_get("url")?)?,
        method: row.try_get("method")?,
        event_type: row.try_get("event_type")?,
        incident_id: row.try_get("incident_id")?,
        incident_message: message,
        attempts: row.try_get::<i64, _>("delivery_attempts")? as u32,
        last_status: row
            .try_get::<Option<i64>, _>("last_status")?
            .map(|s| s as u16),
        last_body: row.try_get("last_body")?,
        last_error: row.try_get("last_error_of_delivery")?,
        failed_at: Timestamp::from_micros(
            row.try_get::<Option<i64>, _>("completed_at")?
                .unwrap_or_else(|| Timestamp::now().as_micros()),
        ),
    })
}

#[async_trait]
impl NotificationStore for SqlStore {
    async fn claim_notifications(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<(Notification, FailureReport)>> {
        let lock = match self.dialect {
            Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let claimed: Vec<String> = sqlx::query_scalar(&format!(
            "UPDATE notifications SET next_attempt_at = $1 WHERE id IN ( \
               SELECT id FROM notifications WHERE state = 'pending' AND next_attempt_at <= $2 \
               ORDER BY next_attempt_at LIMIT $3 {lock}) \
             RETURNING id"
        ))
        .bind(lease_until.as_micros())
        .bind(now.as_micros())
        .bind(limit as i64)
        .fetch_all(&mut *self.writer.acquire().await?)
        .await?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let params: Vec<String> = (1..=claimed.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {COLUMNS}, d.url, d.method, d.event_type, d.incident_id, d.attempts AS delivery_attempts, \
                    d.last_status, d.last_error AS last_error_of_delivery, d.completed_at, e.body AS event_body, \
                    (SELECT a.response_body FROM attempts a WHERE a.delivery_id = d.id ORDER BY a.number DESC LIMIT 1) AS last_body \
             FROM notifications n JOIN deliveries d ON d.id = n.delivery_id JOIN events e ON e.id = d.event_id \
             WHERE n.id IN ({}) ORDER BY n.created_at",
            params.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for id in &claimed {
            query = query.bind(id);
        }
        let rows = query.fetch_all(&self.reader).await?;
        rows.iter()
            .map(|row| {
                Ok((
                    notification_from_row(row)?,
                    report_from_row(row, &self.sealer)?,
                ))
            })
            .collect()
    }

    async fn last_email_at(&self, webhook_id: &WebhookId) -> StoreResult<Option<Timestamp>> {
        let at: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(at) FROM ( \
           SELECT MAX(sent_at) AS at FROM notifications WHERE webhook_id = $1 AND state = 'sent' \
           UNION ALL SELECT MAX(sent_at) FROM notices WHERE webhook_id = $1 AND state = 'sent') AS sent",
        )
        .bind(webhook_id)
        .fetch_one(&self.reader)
        .await?;
        Ok(at.map(Timestamp::from_micros))
    }

    async fn finish_notifications(
        &self,
        ids: &[String],
        outcome: &NotificationOutcome,
    ) -> StoreResult<()> {
        self.finish("notifications", ids, outcome).await
    }

    async fn insert_notice(&self, notice: &Notice) -> StoreResult<()> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin().await?;
        insert_notice(&mut tx, notice).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim_notices(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<Notice>> {
        let lock = match self.dialect {
            Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let rows = sqlx::query(&format!(
            "UPDATE notices SET next_attempt_at = $1 WHERE id IN ( \
               SELECT id FROM notices WHERE state = 'pending' AND next_attempt_at <= $2 \
               ORDER BY next_attempt_at LIMIT $3 {lock}) \
             RETURNING id, organization_id, webhook_id, kind, url, detail, attempts, created_at"
        ))
        .bind(lease_until.as_micros())
        .bind(now.as_micros())
        .bind(limit as i64)
        .fetch_all(&mut *self.writer.acquire().await?)
        .await?;
        let mut notices = rows
            .iter()
            .map(notice_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        notices.sort_by_key(|n| n.created_at);
        Ok(notices)
    }

    async fn finish_notices(
        &self,
        ids: &[String],
        outcome: &NotificationOutcome,
    ) -> StoreResult<()> {
        self.finish("notices", ids, outcome).await
    }

    async fn pending_count(&self, webhook_id: &WebhookId) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM deliveries WHERE webhook_id = $1 AND state = 'pending'",
        )
        .bind(webhook_id)
        .fetch_one(&self.reader)
        .await?;
        Ok(n as u64)
    }

    async fn list_notifications(
        &self,
        organization_id: &OrganizationId,
        webhook_id: &WebhookId,
        limit: u32,
    ) -> StoreResult<Vec<Notification>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM notifications n WHERE n.organization_id = $1 AND n.webhook_id = $2 \
             ORDER BY n.created_at DESC, n.id DESC LIMIT $3"
        ))
        .bind(organization_id)
        .bind(webhook_id)
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(notification_from_row).collect()
    }

    async fn list_notices(
        &self,
        organization_id: &OrganizationId,
        webhook_id: &WebhookId,
        limit: u32,
    ) -> StoreResult<Vec<NoticeRecord>> {
        let rows = sqlx::query(
            "SELECT id, organization_id, webhook_id, kind, url, detail, attempts, created_at, \
             state, last_error, sent_at FROM notices WHERE organization_id = $1 AND webhook_id = $2 \
             ORDER BY created_at DESC, id DESC LIMIT $3",
        )
        .bind(organization_id)
        .bind(webhook_id)
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                let state: String = row.try_get("state")?;
                Ok(NoticeRecord {
                    notice: notice_from_row(row)?,
                    state: NotificationState::parse(&state).ok_or_else(|| {
                        StoreError::Corrupt(format!("unknown notice state {state}"))
                    })?,
                    last_error: row.try_get("last_error")?,
                    sent_at: optional_time(row, "sent_at")?,
                })
            })
            .collect()
    }

    async fn any_webhook_with_mail_ids(&self) -> StoreResult<bool> {
        let specs: Vec<String> = sqlx::query_scalar("SELECT spec FROM webhooks")
            .fetch_all(&self.reader)
            .await?;
        Ok(specs.iter().any(|spec| {
            serde_json::from_str::<Value>(spec)
                .ok()
                .and_then(|s| s["mail_ids"].as_array().map(|m| !m.is_empty()))
                .unwrap_or(false)
        }))
    }

    async fn reserve_mail(
        &self,
        webhook_id: &WebhookId,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<Result<(), Timestamp>> {
        let taken = sqlx::query(
            "INSERT INTO mail_reservations (webhook_id, owner, until) VALUES ($1, $2, $4) \
             ON CONFLICT (webhook_id) DO UPDATE SET owner = $2, until = $4 \
             WHERE mail_reservations.until <= $3 OR mail_reservations.owner = $2",
        )
        .bind(webhook_id)
        .bind(owner)
        .bind(now.as_micros())
        .bind(until.as_micros())
        .execute(&mut *self.writer.acquire().await?)
        .await?;
        if taken.rows_affected() == 1 {
            return Ok(Ok(()));
        }
        let held: Option<i64> =
            sqlx::query_scalar("SELECT until FROM mail_reservations WHERE webhook_id = $1")
                .bind(webhook_id)
                .fetch_optional(&mut *self.writer.acquire().await?)
                .await?;
        // Given back meanwhile: free now, the next pass takes it.
        Ok(Err(held.map_or(now, Timestamp::from_micros)))
    }

    async fn release_mail(&self, webhook_id: &WebhookId, owner: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM mail_reservations WHERE webhook_id = $1 AND owner = $2")
            .bind(webhook_id)
            .bind(owner)
            .execute(&mut *self.writer.acquire().await?)
            .await?;
        Ok(())
    }
}

impl SqlStore {
    /// Ends a batch of `table` rows (`notifications` or `notices`, same columns) the way
    /// the e-mail went.
    async fn finish(
        &self,
        table: &'static str,
        ids: &[String],
        outcome: &NotificationOutcome,
    ) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        // (state, sent_at, last_error — kept when None, next_attempt_at, attempts added)
        let (state, sent_at, error, next, tried) = match outcome {
            NotificationOutcome::Sent(at) => ("sent", Some(at.as_micros()), None, None, 0i64),
            NotificationOutcome::Skipped(reason) => {
                ("skipped", None, Some(reason.as_str()), None, 0)
            }
            NotificationOutcome::Failed { error, retry_at } => (
                "pending",
                None,
                Some(error.as_str()),
                Some(retry_at.as_micros()),
                1,
            ),
            NotificationOutcome::Deferred(until) => {
                ("pending", None, None, Some(until.as_micros()), 0)
            }
        };
        let params: Vec<String> = (6..6 + ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "UPDATE {table} SET state = $1, sent_at = $2, last_error = COALESCE($3, last_error), \
             next_attempt_at = $4, attempts = attempts + $5 WHERE state = 'pending' AND id IN ({})",
            params.join(", ")
        );
        let mut query = sqlx::query(&sql)
            .bind(state)
            .bind(sent_at)
            .bind(error)
            .bind(next)
            .bind(tried);
        for id in ids {
            query = query.bind(id);
        }
        query.execute(&mut *self.writer.acquire().await?).await?;
        Ok(())
    }
}

/// Records a notice in `tx`, due at once.
pub(super) async fn insert_notice(
    tx: &mut Transaction<'_, Any>,
    notice: &Notice,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO notices (id, organization_id, webhook_id, kind, url, detail, state, attempts, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7)",
    )
    .bind(&notice.id)
    .bind(&notice.organization_id)
    .bind(&notice.webhook_id)
    .bind(notice.kind.as_str())
    .bind(&notice.url)
    .bind(&notice.detail)
    .bind(notice.created_at.as_micros())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
