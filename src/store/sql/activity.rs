//! Read models for the pages. Period figures come from `delivery_hours`, counted in the
//! transaction that finishes each delivery, so a day of a million deliveries is read as a
//! few rows per webhook and hour, never counted again.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::Row;

use super::{delivery_rows::event_from_row, hour_of, Dialect, SqlStore};
use crate::domain::ids::{OrganizationId, WebhookId};
use crate::domain::{delivery::DeliveryState, event::Event, Timestamp};
use crate::store::{ActivityStore, LastDelivery, StoreError, StoreResult};

fn state(text: &str) -> StoreResult<DeliveryState> {
    DeliveryState::parse(text).ok_or_else(|| StoreError::Corrupt(format!("delivery state {text}")))
}

#[async_trait]
impl ActivityStore for SqlStore {
    async fn webhook_counts(
        &self,
        organization_id: &OrganizationId,
        since: Timestamp,
    ) -> StoreResult<HashMap<WebhookId, (u64, u64)>> {
        let rows = sqlx::query(
            "SELECT webhook_id, CAST(SUM(succeeded) AS BIGINT) AS ok, CAST(SUM(failed) AS BIGINT) AS failed FROM delivery_hours \
             WHERE organization_id = $1 AND hour >= $2 GROUP BY webhook_id",
        )
        .bind(organization_id)
        .bind(hour_of(since.as_micros()))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("webhook_id")?,
                    (
                        row.try_get::<i64, _>("ok")? as u64,
                        row.try_get::<i64, _>("failed")? as u64,
                    ),
                ))
            })
            .collect()
    }

    async fn last_deliveries(
        &self,
        organization_id: &OrganizationId,
        webhook_ids: &[WebhookId],
    ) -> StoreResult<HashMap<WebhookId, LastDelivery>> {
        let mut out = HashMap::new();
        for id in webhook_ids {
            // `ORDER BY webhook_id DESC, seq DESC` is the (webhook_id, seq) index read
            // backwards: one row, whatever the planner guesses of the table.
            let last = sqlx::query(
                "SELECT state, updated_at, last_error FROM deliveries WHERE webhook_id = $1 AND organization_id = $2 \
                 ORDER BY webhook_id DESC, seq DESC LIMIT 1",
            )
            .bind(id)
            .bind(organization_id)
            .fetch_optional(&self.reader)
            .await?;
            if let Some(row) = last {
                out.insert(
                    id.clone(),
                    (
                        state(&row.try_get::<String, _>("state")?)?,
                        Timestamp::from_micros(row.try_get("updated_at")?),
                        row.try_get("last_error")?,
                    ),
                );
            }
        }
        Ok(out)
    }

    async fn hourly_deliveries(
        &self,
        organization_id: &OrganizationId,
        since: Timestamp,
    ) -> StoreResult<Vec<(i64, u64, u64)>> {
        let rows = sqlx::query(
            "SELECT hour, CAST(SUM(succeeded) AS BIGINT) AS ok, CAST(SUM(failed) AS BIGINT) AS failed FROM delivery_hours \
             WHERE organization_id = $1 AND hour >= $2 GROUP BY hour ORDER BY hour",
        )
        .bind(organization_id)
        .bind(hour_of(since.as_micros()))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get::<i64, _>("hour")?,
                    row.try_get::<i64, _>("ok")? as u64,
                    row.try_get::<i64, _>("failed")? as u64,
                ))
            })
            .collect()
    }

    async fn prune_hourly(&self, before: Timestamp) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM delivery_hours WHERE hour < $1")
            .bind(before.as_micros())
            .execute(&mut *self.writer.acquire().await?)
            .await?;
        Ok(done.rows_affected())
    }

    async fn recent_incidents(
        &self,
        organization_id: &OrganizationId,
        limit: u32,
    ) -> StoreResult<Vec<Event>> {
        let rows = sqlx::query(
            "SELECT e.id, e.producer_id, e.event_type, e.payload_event_id, e.timestamp, e.body, e.received_at \
             FROM incidents i JOIN events e ON e.id = i.event_id WHERE i.organization_id = $1 \
             ORDER BY i.updated_at DESC LIMIT $2",
        )
        .bind(organization_id)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| event_from_row(organization_id, row))
            .collect()
    }

    async fn event_messages(
        &self,
        organization_id: &OrganizationId,
        event_ids: &[String],
    ) -> StoreResult<HashMap<String, String>> {
        if event_ids.is_empty() {
            return Ok(HashMap::new());
        }
        // Only the message leaves the database, however large the stored incident.
        let message = match self.dialect {
            Dialect::Sqlite => "json_extract(body, '$.incident.message')",
            Dialect::Postgres => "(body::json -> 'incident' ->> 'message')",
        };
        // By id alone (the primary key), the organization checked on each row: with
        // `organization_id = ?` in the statement SQLite chose the (organization,
        // producer id) index and read every event of the organization (39 ms for 100,000).
        let sql = format!(
            "SELECT id, organization_id, {message} AS message FROM events WHERE id IN ({})",
            self.dialect.params(1, event_ids.len())
        );
        let mut query = sqlx::query(&sql);
        for id in event_ids {
            query = query.bind(id);
        }
        let rows = query.fetch_all(&self.reader).await?;
        let mut out = HashMap::new();
        for row in rows {
            let org: String = row.try_get("organization_id")?;
            let message: Option<String> = row.try_get("message")?;
            if let (true, Some(message)) = (org == organization_id.as_str(), message) {
                out.insert(row.try_get("id")?, message);
            }
        }
        Ok(out)
    }
}
