//! The database's secret key: checking it at start, sealing what earlier versions stored in
//! clear, and sealing everything again under a new key (`tocsin rotate-key`). What is sealed
//! and how is `domain::sealing`.

use sqlx::{Any, Row, Transaction};

use super::{
    config::{sealed_webhook_from_row, spec_json, WEBHOOK_COLUMNS},
    SqlStore,
};
use crate::{
    domain::{
        sealing::{Sealer, KEY_CHECK_PLACE, KEY_CHECK_VALUE},
        Timestamp,
    },
    store::{StoreError, StoreResult},
};

impl SqlStore {
    /// Checks the key against the one the database records. A database without one (new,
    /// or written by a version that stored secrets in clear) records this key and has
    /// its clear secrets sealed, in one transaction; of several nodes starting at once on
    /// one PostgreSQL, one does this and the others then check against it.
    pub(crate) async fn unlock(&self) -> StoreResult<()> {
        let recorded: Option<(String, String)> =
            sqlx::query_as("SELECT key_id, sealed FROM key_check WHERE id = 1")
                .fetch_optional(&self.reader)
                .await?;
        if let Some((key_id, sealed)) = recorded {
            return match self.sealer.open(KEY_CHECK_PLACE, &sealed) {
                Ok(value) if value == KEY_CHECK_VALUE => Ok(()),
                _ => Err(StoreError::WrongKey(format!(
                    "the secret key (id {}) is not the one this database's secrets are sealed with (id {key_id}): \
                     set secret_key / TOCSIN_SECRET_KEY to that key, or put its tocsin.key back",
                    self.sealer.key_id()
                ))),
            };
        }
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin().await?;
        let recorded = record_key(&mut tx, &self.sealer, "ON CONFLICT (id) DO NOTHING").await?;
        if !recorded {
            tx.rollback().await?;
            return Box::pin(self.unlock()).await;
        }
        let sealed = reseal(&mut tx, &self.sealer, &self.sealer).await?;
        tx.commit().await?;
        if sealed > 0 {
            tracing::info!(
                values = sealed,
                key = self.sealer.key_id(),
                "sealed the secrets earlier versions stored in clear"
            );
        }
        Ok(())
    }

    pub(super) async fn rotate(&self, new: &Sealer) -> StoreResult<u64> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin().await?;
        let sealed = reseal(&mut tx, &self.sealer, new).await?;
        sqlx::query("DELETE FROM key_check WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        record_key(&mut tx, new, "").await?;
        tx.commit().await?;
        Ok(sealed)
    }
}

/// Records `sealer`'s key as the database's; false when `on_conflict` skipped it.
async fn record_key(
    tx: &mut Transaction<'_, Any>,
    sealer: &Sealer,
    on_conflict: &str,
) -> StoreResult<bool> {
    let done = sqlx::query(&format!(
        "INSERT INTO key_check (id, key_id, sealed, created_at) VALUES (1, $1, $2, $3) {on_conflict}"
    ))
    .bind(sealer.key_id())
    .bind(sealer.seal(KEY_CHECK_PLACE, KEY_CHECK_VALUE))
    .bind(Timestamp::now().as_micros())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Opens every sealed value with `from` (values in clear are taken as they are) and seals it
/// with `to`: webhook secrets, credential headers and URL passwords, and the URLs of
/// deliveries. Returns how many rows changed.
async fn reseal(tx: &mut Transaction<'_, Any>, from: &Sealer, to: &Sealer) -> StoreResult<u64> {
    let mut changed = 0;
    let rows = sqlx::query(&format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks"))
        .fetch_all(&mut **tx)
        .await?;
    for row in &rows {
        let stored = sealed_webhook_from_row(row)?;
        let id = stored.id.clone();
        let webhook = from
            .open_webhook(stored)
            .map_err(|e| StoreError::Corrupt(format!("webhook {id}: {e}")))?;
        let sealed = to.seal_webhook(&webhook);
        sqlx::query(
            "UPDATE webhooks SET spec = $1, secret = $2, previous_secret = $3 WHERE id = $4",
        )
        .bind(spec_json(&sealed.spec))
        .bind(&sealed.secret)
        .bind(sealed.previous_secret.map(|p| p.secret))
        .bind(&id)
        .execute(&mut **tx)
        .await?;
        changed += 1;
    }
    // Sources' signing secrets, sealed inside their settings.
    let rows = sqlx::query("SELECT id, settings FROM sources")
        .fetch_all(&mut **tx)
        .await?;
    for row in &rows {
        let id: String = row.try_get("id")?;
        let text: String = row.try_get("settings")?;
        let mut settings: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt(format!("source {id}: settings: {e}")))?;
        let Some(sealed) = settings.get("signing_secret").and_then(|v| v.as_str()) else {
            continue;
        };
        let place = super::source::secret_place(&crate::domain::ids::SourceId::from(id.clone()));
        let secret = if Sealer::is_sealed(sealed) {
            from.open(&place, sealed)
                .map_err(|e| StoreError::Corrupt(format!("source {id}: signing secret: {e}")))?
        } else {
            sealed.to_owned()
        };
        settings["signing_secret"] = serde_json::Value::String(to.seal(&place, &secret));
        sqlx::query("UPDATE sources SET settings = $1 WHERE id = $2")
            .bind(settings.to_string())
            .bind(&id)
            .execute(&mut **tx)
            .await?;
        changed += 1;
    }
    // Bulk retries filtered by a URL keep it as deliveries do, its password sealed.
    let rows = sqlx::query("SELECT id, query FROM retry_jobs WHERE query LIKE '%@%'")
        .fetch_all(&mut **tx)
        .await?;
    for row in &rows {
        let id: String = row.try_get("id")?;
        let text: String = row.try_get("query")?;
        let mut query: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt(format!("retry job {id}: query: {e}")))?;
        let Some(stored) = query.get("url").and_then(|v| v.as_str()) else {
            continue;
        };
        let url = from
            .open_url(stored)
            .map_err(|e| StoreError::Corrupt(format!("retry job {id}: URL: {e}")))?;
        query["url"] = serde_json::Value::String(to.seal_url(&url));
        sqlx::query("UPDATE retry_jobs SET query = $1 WHERE id = $2")
            .bind(query.to_string())
            .bind(&id)
            .execute(&mut **tx)
            .await?;
        changed += 1;
    }
    // Only a URL with user information can hold a password.
    let urls: Vec<String> = sqlx::query("SELECT DISTINCT url FROM deliveries WHERE url LIKE '%@%'")
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|row| row.try_get("url"))
        .collect::<Result<_, _>>()?;
    for stored in urls {
        let url = from
            .open_url(&stored)
            .map_err(|e| StoreError::Corrupt(format!("a delivery URL: {e}")))?;
        let sealed = to.seal_url(&url);
        if sealed != stored {
            let done = sqlx::query("UPDATE deliveries SET url = $1 WHERE url = $2")
                .bind(sealed)
                .bind(&stored)
                .execute(&mut **tx)
                .await?;
            changed += done.rows_affected();
        }
    }
    Ok(changed)
}
