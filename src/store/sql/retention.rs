//! Retention: what is older than the installation keeps goes, a bounded batch at a time.

use async_trait::async_trait;

use super::SqlStore;
use crate::{
    domain::Timestamp,
    store::{RetentionStore, StoreResult},
};

#[async_trait]
impl RetentionStore for SqlStore {
    async fn prune_deliveries(&self, before: Timestamp, limit: u32) -> StoreResult<u64> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin().await?;
        // Oldest first by position: old finished rows lead the table, so the scan stops
        // after about `limit` rows.
        let gone: Vec<(String, Option<String>)> = sqlx::query_as(
            "DELETE FROM deliveries WHERE seq IN (SELECT seq FROM deliveries \
               WHERE state <> 'pending' AND completed_at < $1 ORDER BY seq LIMIT $2) \
             RETURNING event_id, payload_id",
        )
        .bind(before.as_micros())
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let mut events: Vec<&str> = gone.iter().map(|(e, _)| e.as_str()).collect();
        events.sort_unstable();
        events.dedup();
        let mut payloads: Vec<&str> = gone.iter().filter_map(|(_, p)| p.as_deref()).collect();
        payloads.sort_unstable();
        payloads.dedup();
        // A payload is shared only by deliveries of its own event.
        for chunk in payloads.chunks(400) {
            let sql = format!(
                "DELETE FROM payloads WHERE id IN ({}) AND NOT EXISTS \
                   (SELECT 1 FROM deliveries d WHERE d.payload_id = payloads.id AND d.event_id IN ({}))",
                self.dialect.params(1, chunk.len()),
                self.dialect.params(chunk.len() + 1, events.len()),
            );
            let mut query = sqlx::query(&sql);
            for id in chunk.iter().chain(events.iter()) {
                query = query.bind(*id);
            }
            query.execute(&mut *tx).await?;
        }
        for chunk in events.chunks(400) {
            let sql = format!(
                "DELETE FROM events WHERE id IN ({}) \
                 AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id) \
                 AND NOT EXISTS (SELECT 1 FROM incidents i WHERE i.organization_id = events.organization_id \
                   AND i.incident_id = events.incident_id AND i.event_id = events.id)",
                self.dialect.params(1, chunk.len()),
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            query.execute(&mut *tx).await?;
        }
        // Events that never had a delivery (no webhook matched them).
        let lonely = sqlx::query(
            "DELETE FROM events WHERE id IN (SELECT e.id FROM events e WHERE e.received_at < $1 \
               AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id) \
               AND NOT EXISTS (SELECT 1 FROM incidents i WHERE i.organization_id = e.organization_id \
                 AND i.incident_id = e.incident_id AND i.event_id = e.id) \
               LIMIT $2)",
        )
        .bind(before.as_micros())
        .bind(i64::from(limit))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(gone.len() as u64 + lonely.rows_affected())
    }

    async fn prune_records(&self, before: Timestamp, limit: u32) -> StoreResult<u64> {
        let mut pruned = 0;
        for (table, key, condition) in [
            (
                "notifications",
                "id",
                "state <> 'pending' AND created_at < $1",
            ),
            ("notices", "id", "state <> 'pending' AND created_at < $1"),
            ("audit_log", "id", "at < $1"),
            ("retry_jobs", "id", "state <> 'running' AND created_at < $1"),
            // A circuit nobody has probed for that long has no work waiting behind it.
            (
                "circuits",
                "url_key",
                "probe_at < $1 AND probe_owner IS NULL",
            ),
        ] {
            let done = sqlx::query(&format!(
                "DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE {condition} LIMIT $2)"
            ))
            .bind(before.as_micros())
            .bind(i64::from(limit))
            .execute(&mut *self.writer.acquire().await?)
            .await?;
            pruned += done.rows_affected();
        }
        // What sources knew of incidents resolved that long ago, but for the counters: a row
        // forgotten would start its key's generations again, and a new incident would take
        // the ids of the first one's events, some still kept (its latest, for one). And
        // sources' old daily counts.
        for statement in [
            "UPDATE source_incidents SET incident = '{}', team = NULL WHERE status = 'resolved' AND updated_at < $1 AND incident <> '{}'",
            "DELETE FROM source_days WHERE day < $1",
        ] {
            let done = sqlx::query(statement)
                .bind(before.as_micros())
                .execute(&mut *self.writer.acquire().await?)
                .await?;
            pruned += done.rows_affected();
        }
        Ok(pruned)
    }
}
