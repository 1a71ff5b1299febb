//! Event sources: their rows (a PagerDuty signing secret sealed inside the settings), the
//! incidents' states, the receipts and the daily counts.

use std::collections::HashMap;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::{any::AnyRow, Row};

use super::{audit::insert_audit, SqlStore};
use crate::{
    domain::{
        audit::AuditEntry,
        ids::{OrganizationId, SourceId},
        source::{
            DayCounts, IncidentState, IncidentStatus, Receipt, ReceiptOutcome, Source, SourceKind,
            SourceSettings, SourceSpec, RECEIPTS_KEPT,
        },
        Timestamp,
    },
    store::{SourceActivity, SourceStore, StoreError, StoreResult},
};

const COLUMNS: &str = "id, organization_id, name, kind, description, enabled, team, settings, token_hash, created_at, updated_at";
const DAY_MICROS: i64 = 86_400_000_000;

/// Where a source's signing secret is sealed (its associated data).
pub(super) fn secret_place(id: &SourceId) -> String {
    format!("source:{id}:signing_secret")
}

impl SqlStore {
    fn settings_text(&self, source: &Source) -> String {
        let mut stored = source.spec.settings.to_stored_json();
        if let Some(secret) = source.spec.settings.signing_secret() {
            stored["signing_secret"] =
                Value::String(self.sealer.seal(&secret_place(&source.id), secret));
        }
        stored.to_string()
    }

    fn source_from_row(&self, row: &AnyRow) -> StoreResult<Source> {
        let id = SourceId::from(row.try_get::<String, _>("id")?);
        let corrupt = |what: String| StoreError::Corrupt(format!("source {id}: {what}"));
        let kind_text: String = row.try_get("kind")?;
        let kind =
            SourceKind::parse(&kind_text).ok_or_else(|| corrupt(format!("kind {kind_text}")))?;
        let team: Option<String> = row.try_get("team")?;
        let team = team
            .map(|t| serde_json::from_str::<Value>(&t))
            .transpose()
            .map_err(|e| corrupt(format!("team: {e}")))?;
        let settings_text: String = row.try_get("settings")?;
        let mut settings: Value =
            serde_json::from_str(&settings_text).map_err(|e| corrupt(format!("settings: {e}")))?;
        let secret = settings
            .get("signing_secret")
            .and_then(Value::as_str)
            .map(|sealed| self.sealer.open(&secret_place(&id), sealed))
            .transpose()
            .map_err(|e| corrupt(format!("signing secret: {e}")))?;
        if let Some(obj) = settings.as_object_mut() {
            obj.remove("signing_secret");
        }
        let settings = SourceSettings::parse(kind, Some(&settings), None)
            .map_err(|e| corrupt(format!("settings: {e:?}")))?
            .with_signing_secret(secret);
        let enabled: i64 = row.try_get("enabled")?;
        Ok(Source {
            organization_id: OrganizationId::from(row.try_get::<String, _>("organization_id")?),
            spec: SourceSpec {
                name: row.try_get("name")?,
                kind,
                description: row.try_get("description")?,
                enabled: enabled != 0,
                team,
                settings,
            },
            token_hash: row.try_get("token_hash")?,
            created_at: Timestamp::from_micros(row.try_get("created_at")?),
            updated_at: Timestamp::from_micros(row.try_get("updated_at")?),
            id,
        })
    }
}

fn state_from_row(row: &AnyRow) -> StoreResult<IncidentState> {
    let status: String = row.try_get("status")?;
    let incident: String = row.try_get("incident")?;
    let generation: i64 = row.try_get("generation")?;
    let events: i64 = row.try_get("events")?;
    Ok(IncidentState {
        key: row.try_get("incident_key")?,
        incident_id: row.try_get("incident_id")?,
        status: IncidentStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("incident state {status}")))?,
        generation: u32::try_from(generation).unwrap_or(u32::MAX),
        events: u32::try_from(events).unwrap_or(u32::MAX),
        last_event_id: row.try_get("last_event_id")?,
        incident: serde_json::from_str(&incident)
            .map_err(|e| StoreError::Corrupt(format!("incident state: {e}")))?,
        team: row
            .try_get::<Option<String>, _>("team")?
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("incident state team: {e}")))?,
        updated_at: Timestamp::from_micros(row.try_get("updated_at")?),
    })
}

fn receipt_from_row(row: &AnyRow) -> StoreResult<Receipt> {
    let outcome: String = row.try_get("outcome")?;
    let list = |name: &str| -> StoreResult<Vec<String>> {
        let text: String = row.try_get(name)?;
        serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("receipt {name}: {e}")))
    };
    let status: i64 = row.try_get("status")?;
    let truncated: i64 = row.try_get("truncated")?;
    Ok(Receipt {
        id: row.try_get("id")?,
        source_id: SourceId::from(row.try_get::<String, _>("source_id")?),
        received_at: Timestamp::from_micros(row.try_get("received_at")?),
        outcome: ReceiptOutcome::parse(&outcome)
            .ok_or_else(|| StoreError::Corrupt(format!("receipt outcome {outcome}")))?,
        status: u16::try_from(status).unwrap_or(0),
        results: list("results")?,
        event_ids: list("event_ids")?,
        body: row.try_get("body")?,
        truncated: truncated != 0,
    })
}

#[async_trait]
impl SourceStore for SqlStore {
    async fn insert_source(&self, source: &Source, audit: &AuditEntry) -> StoreResult<()> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO sources ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(&source.id)
        .bind(&source.organization_id)
        .bind(&source.spec.name)
        .bind(source.spec.kind.as_str())
        .bind(&source.spec.description)
        .bind(i64::from(source.spec.enabled))
        .bind(source.spec.team.as_ref().map(Value::to_string))
        .bind(self.settings_text(source))
        .bind(&source.token_hash)
        .bind(source.created_at.as_micros())
        .bind(source.updated_at.as_micros())
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn source(
        &self,
        organization_id: &OrganizationId,
        id: &SourceId,
    ) -> StoreResult<Option<Source>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sources WHERE organization_id = $1 AND id = $2"
        ))
        .bind(organization_id)
        .bind(id)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(|r| self.source_from_row(r)).transpose()
    }

    async fn source_by_id(&self, id: &SourceId) -> StoreResult<Option<Source>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM sources WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(|r| self.source_from_row(r)).transpose()
    }

    async fn list_sources(&self, organization_id: &OrganizationId) -> StoreResult<Vec<Source>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sources WHERE organization_id = $1 ORDER BY created_at, id"
        ))
        .bind(organization_id)
        .fetch_all(&self.reader)
        .await?;
        // One that cannot be read (its secret sealed under another key) costs itself, not
        // the list.
        Ok(rows
            .iter()
            .filter_map(|r| match self.source_from_row(r) {
                Ok(source) => Some(source),
                Err(e) => {
                    tracing::error!(error = %e, "a source cannot be read and is left out until it is fixed or deleted");
                    None
                }
            })
            .collect())
    }

    async fn update_source(&self, source: &Source, audit: &AuditEntry) -> StoreResult<bool> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin().await?;
        let done = sqlx::query(
            "UPDATE sources SET name = $1, description = $2, enabled = $3, team = $4, settings = $5, token_hash = $6, updated_at = $7 WHERE organization_id = $8 AND id = $9",
        )
        .bind(&source.spec.name)
        .bind(&source.spec.description)
        .bind(i64::from(source.spec.enabled))
        .bind(source.spec.team.as_ref().map(Value::to_string))
        .bind(self.settings_text(source))
        .bind(&source.token_hash)
        .bind(source.updated_at.as_micros())
        .bind(&source.organization_id)
        .bind(&source.id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_source(
        &self,
        organization_id: &OrganizationId,
        id: &SourceId,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin().await?;
        // States, receipts and counts go with it (ON DELETE CASCADE, also on SQLite, whose
        // connections turn foreign keys on).
        let done = sqlx::query("DELETE FROM sources WHERE organization_id = $1 AND id = $2")
            .bind(organization_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn source_incidents(
        &self,
        source_id: &SourceId,
        keys: &[String],
    ) -> StoreResult<HashMap<String, IncidentState>> {
        let mut out = HashMap::with_capacity(keys.len());
        // Concurrent payloads' keys come together (`sources::state_reads`), one statement
        // for them all, on a reader: through the writer's connection (as before they came
        // together) each look-up waited for intake's commit and held the next.
        let mut reader = self.reader.acquire().await?;
        for chunk in keys.chunks(400) {
            let sql = format!(
                "SELECT incident_key, incident_id, status, generation, events, last_event_id, incident, team, updated_at FROM source_incidents WHERE source_id = {} AND incident_key IN ({})",
                self.dialect.params(1, 1),
                self.dialect.params(2, chunk.len())
            );
            let mut query = sqlx::query(&sql).bind(source_id);
            for key in chunk {
                query = query.bind(key);
            }
            for row in query.fetch_all(&mut *reader).await? {
                let state = state_from_row(&row)?;
                out.insert(state.key.clone(), state);
            }
        }
        Ok(out)
    }

    async fn record_receipts(&self, receipts: &[Receipt]) -> StoreResult<()> {
        if receipts.is_empty() {
            return Ok(());
        }
        let mut days: HashMap<(&SourceId, i64), DayCounts> = HashMap::new();
        for r in receipts {
            let day = r.received_at.as_micros().div_euclid(DAY_MICROS) * DAY_MICROS;
            let counts = days.entry((&r.source_id, day)).or_default();
            match r.outcome {
                ReceiptOutcome::Accepted => counts.accepted += 1,
                ReceiptOutcome::Ignored => counts.ignored += 1,
                ReceiptOutcome::Refused => counts.refused += 1,
            }
        }
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin().await?;
        const RECEIPT: [&str; 9] = [
            "id",
            "source_id",
            "received_at",
            "outcome",
            "status",
            "results",
            "event_ids",
            "body",
            "truncated",
        ];
        for chunk in crate::domain::source::worth_writing(receipts).chunks(100) {
            let sql = self
                .dialect
                .insert("source_receipts", &RECEIPT, chunk.len());
            let mut query = sqlx::query(&sql);
            for r in chunk {
                query = query
                    .bind(&r.id)
                    .bind(&r.source_id)
                    .bind(r.received_at.as_micros())
                    .bind(r.outcome.as_str())
                    .bind(i64::from(r.status))
                    .bind(serde_json::to_string(&r.results).expect("strings serialize"))
                    .bind(serde_json::to_string(&r.event_ids).expect("strings serialize"))
                    .bind(&r.body)
                    .bind(i64::from(r.truncated));
            }
            query.execute(&mut *tx).await?;
        }
        let mut sources: Vec<&SourceId> = receipts.iter().map(|r| &r.source_id).collect();
        sources.sort();
        sources.dedup();
        for source in sources {
            sqlx::query(
                "DELETE FROM source_receipts WHERE source_id = $1 AND seq <= (SELECT seq FROM source_receipts WHERE source_id = $1 ORDER BY seq DESC LIMIT 1 OFFSET $2)",
            )
            .bind(source)
            .bind(RECEIPTS_KEPT as i64)
            .execute(&mut *tx)
            .await?;
        }
        for ((source, day), counts) in days {
            sqlx::query(
                "INSERT INTO source_days (source_id, day, accepted, ignored, refused) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (source_id, day) DO UPDATE SET accepted = source_days.accepted + excluded.accepted, ignored = source_days.ignored + excluded.ignored, refused = source_days.refused + excluded.refused",
            )
            .bind(source)
            .bind(day)
            .bind(counts.accepted as i64)
            .bind(counts.ignored as i64)
            .bind(counts.refused as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn receipts(&self, source_id: &SourceId, limit: u32) -> StoreResult<Vec<Receipt>> {
        let rows = sqlx::query(
            "SELECT id, source_id, received_at, outcome, status, results, event_ids, body, truncated FROM source_receipts WHERE source_id = $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(source_id)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(receipt_from_row).collect()
    }

    async fn source_activity(
        &self,
        organization_id: &OrganizationId,
        day: Timestamp,
    ) -> StoreResult<HashMap<SourceId, SourceActivity>> {
        let day = day.as_micros().div_euclid(DAY_MICROS) * DAY_MICROS;
        let mut out: HashMap<SourceId, SourceActivity> = HashMap::new();
        let rows = sqlx::query(
            "SELECT s.id, d.accepted, d.ignored, d.refused FROM sources s JOIN source_days d ON d.source_id = s.id AND d.day = $2 WHERE s.organization_id = $1",
        )
        .bind(organization_id)
        .bind(day)
        .fetch_all(&self.reader)
        .await?;
        for row in &rows {
            let count = |name: &str| -> StoreResult<u64> {
                Ok(u64::try_from(row.try_get::<i64, _>(name)?).unwrap_or(0))
            };
            let id = SourceId::from(row.try_get::<String, _>("id")?);
            out.entry(id).or_default().today = DayCounts {
                accepted: count("accepted")?,
                ignored: count("ignored")?,
                refused: count("refused")?,
            };
        }
        // The newest receipt, and the newest refusal, of each source: through the
        // (source_id, seq) index, a few rows per source.
        let rows = sqlx::query(
            "SELECT s.id, \
               (SELECT r.received_at FROM source_receipts r WHERE r.source_id = s.id ORDER BY r.seq DESC LIMIT 1) AS last_at, \
               (SELECT r.seq FROM source_receipts r WHERE r.source_id = s.id AND r.outcome = 'refused' ORDER BY r.seq DESC LIMIT 1) AS refused_seq \
             FROM sources s WHERE s.organization_id = $1",
        )
        .bind(organization_id)
        .fetch_all(&self.reader)
        .await?;
        for row in &rows {
            let id = SourceId::from(row.try_get::<String, _>("id")?);
            let last_at: Option<i64> = row.try_get("last_at")?;
            let refused_seq: Option<i64> = row.try_get("refused_seq")?;
            let entry = out.entry(id).or_default();
            entry.last_received_at = last_at.map(Timestamp::from_micros);
            if let Some(seq) = refused_seq {
                let row =
                    sqlx::query("SELECT received_at, results FROM source_receipts WHERE seq = $1")
                        .bind(seq)
                        .fetch_optional(&self.reader)
                        .await?;
                if let Some(row) = row {
                    let results: String = row.try_get("results")?;
                    let results: Vec<String> = serde_json::from_str(&results).unwrap_or_default();
                    entry.last_error = Some((
                        Timestamp::from_micros(row.try_get("received_at")?),
                        results.into_iter().next().unwrap_or_default(),
                    ));
                }
            }
        }
        Ok(out)
    }
}
