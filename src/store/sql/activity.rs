//! Read models for the pages. Period queries start from a `seq` found by bisecting the
//! primary key instead of filtering on `created_at` (which has no index: one more index
//! entry per delivery would cost every intake), so they read only the period's rows.

use std::collections::HashMap;

use async_trait::async_trait;

use sqlx::Row;

use super::{delivery::event_from_row, Dialect, SqlStore};
use crate::domain::{delivery::DeliveryState, event::Event, Timestamp};
use crate::store::{Activity, ActivityStore, StoreError, StoreResult};

fn state(text: &str) -> StoreResult<DeliveryState> {
    DeliveryState::parse(text).ok_or_else(|| StoreError::Corrupt(format!("delivery state {text}")))
}

#[async_trait]
impl ActivityStore for SqlStore {
    async fn first_seq_since(&self, at: Timestamp) -> StoreResult<Option<i64>> {
        let bounds: (Option<i64>, Option<i64>) =
            sqlx::query_as("SELECT MIN(seq), MAX(seq) FROM deliveries")
                .fetch_one(&self.reader)
                .await?;
        let (Some(mut low), Some(mut high)) = bounds else {
            return Ok(None);
        };
        // created_at of the first delivery at or after `seq` (ids may have gaps).
        let created = |seq: i64| {
            sqlx::query_scalar::<_, i64>(
                "SELECT created_at FROM deliveries WHERE seq >= $1 ORDER BY seq LIMIT 1",
            )
            .bind(seq)
            .fetch_optional(&self.reader)
        };
        if created(high).await?.is_none_or(|t| t < at.as_micros()) {
            return Ok(None);
        }
        while low < high {
            let mid = low + (high - low) / 2;
            match created(mid).await? {
                Some(t) if t >= at.as_micros() => high = mid,
                _ => low = mid + 1,
            }
        }
        Ok(Some(low))
    }

    async fn webhook_activity(
        &self,
        organization_id: &str,
        webhook_ids: &[String],
        from_seq: Option<i64>,
    ) -> StoreResult<HashMap<String, Activity>> {
        let mut out = HashMap::new();
        for id in webhook_ids {
            let mut activity = Activity::default();
            if let Some(from) = from_seq {
                // The (webhook_id, seq) index: only this webhook's rows of the period.
                let rows = sqlx::query(
                    "SELECT state, COUNT(*) AS n FROM deliveries WHERE webhook_id = $1 AND seq >= $2 AND organization_id = $3 GROUP BY state",
                )
                .bind(id)
                .bind(from)
                .bind(organization_id)
                .fetch_all(&self.reader)
                .await?;
                for row in rows {
                    let n = row.try_get::<i64, _>("n")? as u64;
                    match state(&row.try_get::<String, _>("state")?)? {
                        DeliveryState::Succeeded => activity.succeeded = n,
                        DeliveryState::Failed => activity.failed = n,
                        DeliveryState::Pending => activity.pending = n,
                        DeliveryState::Cancelled => activity.cancelled = n,
                    }
                }
            }
            let last = sqlx::query(
                "SELECT state, updated_at, last_error FROM deliveries WHERE webhook_id = $1 AND organization_id = $2 ORDER BY seq DESC LIMIT 1",
            )
            .bind(id)
            .bind(organization_id)
            .fetch_optional(&self.reader)
            .await?;
            if let Some(row) = last {
                activity.last = Some((
                    state(&row.try_get::<String, _>("state")?)?,
                    Timestamp::from_micros(row.try_get("updated_at")?),
                    row.try_get("last_error")?,
                ));
            }
            out.insert(id.clone(), activity);
        }
        Ok(out)
    }

    async fn hourly_deliveries(
        &self,
        organization_id: &str,
        from_seq: i64,
    ) -> StoreResult<Vec<(i64, DeliveryState, u64)>> {
        let rows = sqlx::query(
            "SELECT (created_at / 3600000000) AS hour, state, COUNT(*) AS n FROM deliveries \
             WHERE seq >= $1 AND organization_id = $2 GROUP BY (created_at / 3600000000), state",
        )
        .bind(from_seq)
        .bind(organization_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get::<i64, _>("hour")? * 3_600_000_000,
                    state(&row.try_get::<String, _>("state")?)?,
                    row.try_get::<i64, _>("n")? as u64,
                ))
            })
            .collect()
    }

    async fn recent_incidents(&self, organization_id: &str, limit: u32) -> StoreResult<Vec<Event>> {
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
        organization_id: &str,
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
        // One style of parameter throughout (see `Dialect::params`).
        let params = self.dialect.params(1, event_ids.len() + 1);
        let (org, ids) = params.split_once(", ").expect("at least two parameters");
        let sql = format!(
            "SELECT id, {message} AS message FROM events WHERE organization_id = {org} AND id IN ({ids})"
        );
        let mut query = sqlx::query(&sql).bind(organization_id);
        for id in event_ids {
            query = query.bind(id);
        }
        let rows = query.fetch_all(&self.reader).await?;
        rows.iter()
            .map(|row| {
                let message: Option<String> = row.try_get("message")?;
                Ok((row.try_get("id")?, message.unwrap_or_default()))
            })
            .collect::<StoreResult<HashMap<_, _>>>()
            .map(|mut m| {
                m.retain(|_, v: &mut String| !v.is_empty());
                m
            })
    }
}
