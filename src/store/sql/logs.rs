//! The delivery logs: what was sent where, read by the pages and the API.

use async_trait::async_trait;
use sqlx::Row;

use super::{
    args::Arg,
    delivery_rows::{attempt_from_row, delivery_from_row, event_from_row, DELIVERY_COLUMNS},
    Conditions, SqlStore,
};
use crate::{
    domain::{
        delivery::{Attempt, Delivery},
        event::Event,
        ids::{DeliveryId, OrganizationId, WebhookId},
        sealing::Sealer,
    },
    store::{LogQuery, LogStore, StoreResult},
};

#[async_trait]
impl LogStore for SqlStore {
    async fn latest_incident_event(
        &self,
        organization_id: &OrganizationId,
        incident_id: &str,
    ) -> StoreResult<Option<Event>> {
        let row = sqlx::query(
            "SELECT e.id, e.producer_id, e.event_type, e.payload_event_id, e.timestamp, e.body, e.received_at \
             FROM incidents i JOIN events e ON e.id = i.event_id WHERE i.organization_id = $1 AND i.incident_id = $2",
        )
        .bind(organization_id)
        .bind(incident_id)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|row| event_from_row(organization_id, &row))
            .transpose()
    }

    async fn count_finished_matching(
        &self,
        organization_id: &OrganizationId,
        webhook_id: &WebhookId,
        q: &LogQuery,
    ) -> StoreResult<u64> {
        let conditions = finished_conditions(q, &self.sealer);
        let sql = format!(
            "SELECT COUNT(*) FROM deliveries WHERE organization_id = $1 AND webhook_id = $2{}",
            conditions.sql(3)
        );
        let n: i64 = conditions
            .bind(sqlx::query(&sql).bind(organization_id).bind(webhook_id))
            .fetch_one(&self.reader)
            .await?
            .try_get(0)?;
        Ok(n as u64)
    }

    async fn list_deliveries(
        &self,
        organization_id: &OrganizationId,
        webhook_id: &WebhookId,
        q: &LogQuery,
    ) -> StoreResult<Vec<(i64, Delivery)>> {
        let mut conditions = log_conditions(q, &self.sealer);
        if let Some(seq) = q.before_seq {
            conditions.push("seq < ?", Arg::from(seq));
        }
        if let Some(seq) = q.after_seq {
            conditions.push("seq > ?", Arg::from(seq));
        }
        let sql = format!(
            // `webhook_id DESC, seq DESC` is the (webhook_id, seq) index read backwards. With
            // `seq DESC` alone SQLite walked the whole table newest first, filtering on the
            // webhook: 86 ms for a page of one webhook among 1,000 (benches/pages.rs).
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE organization_id = $1 AND webhook_id = $2{} ORDER BY webhook_id DESC, seq DESC LIMIT {}",
            conditions.sql(3),
            q.limit
        );
        let query = conditions.bind(sqlx::query(&sql).bind(organization_id).bind(webhook_id));
        let rows = query.fetch_all(&self.reader).await?;
        rows.iter()
            .map(|row| delivery_from_row(row, &self.sealer))
            .collect()
    }

    async fn incident_deliveries(
        &self,
        organization_id: &OrganizationId,
        incident_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>> {
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE organization_id = $1 AND event_id IN \
             (SELECT id FROM events WHERE organization_id = $1 AND incident_id = $2) \
             ORDER BY seq LIMIT {limit}"
        ))
        .bind(organization_id)
        .bind(incident_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| delivery_from_row(row, &self.sealer).map(|(_, d)| d))
            .collect()
    }

    async fn deliveries_at(
        &self,
        organization_id: &OrganizationId,
        webhook_id: &WebhookId,
        seqs: &[i64],
    ) -> StoreResult<Vec<(i64, Delivery)>> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE organization_id = {} AND webhook_id = {} AND seq IN ({})",
            self.dialect.params(1, 1),
            self.dialect.params(2, 1),
            self.dialect.params(3, seqs.len())
        );
        let mut query = sqlx::query(&sql).bind(organization_id).bind(webhook_id);
        for seq in seqs {
            query = query.bind(*seq);
        }
        let rows = query.fetch_all(&self.reader).await?;
        rows.iter()
            .map(|row| delivery_from_row(row, &self.sealer))
            .collect()
    }

    async fn delivery(
        &self,
        organization_id: &OrganizationId,
        webhook_id: &WebhookId,
        delivery_id: &DeliveryId,
    ) -> StoreResult<Option<(Delivery, Vec<Attempt>)>> {
        let row = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE organization_id = $1 AND webhook_id = $2 AND id = $3"
        ))
        .bind(organization_id)
        .bind(webhook_id)
        .bind(delivery_id)
        .fetch_optional(&self.reader)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let (_, delivery) = delivery_from_row(&row, &self.sealer)?;
        let attempts = sqlx::query(
            "SELECT number, started_at, duration_ms, request_headers, response_status, response_headers, response_body, error \
             FROM attempts WHERE delivery_id = $1 ORDER BY number",
        )
        .bind(delivery_id)
        .fetch_all(&self.reader)
        .await?;
        let attempts = attempts
            .iter()
            .map(attempt_from_row)
            .collect::<StoreResult<_>>()?;
        Ok(Some((delivery, attempts)))
    }
}

/// The conditions of a log query's filters (state, event type, incident, time range).
fn log_conditions(q: &LogQuery, sealer: &Sealer) -> Conditions {
    let mut conditions = Conditions::default();
    if let Some(state) = q.state {
        conditions.push("state = ?", Arg::from(state.as_str().to_owned()));
    }
    if let Some(t) = &q.event_type {
        conditions.push("event_type = ?", Arg::from(t.clone()));
    }
    if let Some(i) = &q.incident_id {
        conditions.push("incident_id = ?", Arg::from(i.clone()));
    }
    if let Some(url) = &q.url {
        // As stored: its password sealed (deterministically, so it compares).
        conditions.push("url = ?", Arg::from(sealer.seal_url(url)));
    }
    if let Some(id) = &q.delivery_id {
        conditions.push("id = ?", Arg::from(id.clone()));
    }
    if let Some(t) = q.since {
        conditions.push("created_at >= ?", Arg::from(t.as_micros()));
    }
    if let Some(t) = q.until {
        conditions.push("created_at < ?", Arg::from(t.as_micros()));
    }
    conditions
}

/// The same, limited to finished deliveries.
pub(super) fn finished_conditions(q: &LogQuery, sealer: &Sealer) -> Conditions {
    let mut conditions = log_conditions(q, sealer);
    if q.state.is_none() {
        conditions.push_fixed("state IN ('succeeded', 'failed', 'cancelled')");
    }
    conditions
}
