//! Open circuits shared by the nodes (`circuits`): who opened a URL's circuit first, who
//! probes it now, when the next probe may go. Each statement decides in one step, so two
//! nodes asking at the same moment get one "yes" between them.

use async_trait::async_trait;

use super::SqlStore;
use crate::{
    domain::Timestamp,
    store::{CircuitStore, ProbeClaim, StoreResult},
};

#[async_trait]
impl CircuitStore for SqlStore {
    async fn open_circuit(
        &self,
        url_key: &str,
        probe_at: Timestamp,
        cooldown: std::time::Duration,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let opened = sqlx::query(
            "INSERT INTO circuits (url_key, opened_at, probe_at, cooldown_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (url_key) DO NOTHING",
        )
        .bind(url_key)
        .bind(now.as_micros())
        .bind(probe_at.as_micros())
        .bind(cooldown.as_millis() as i64)
        .execute(&mut *self.writer.acquire().await?)
        .await?;
        Ok(opened.rows_affected() == 1)
    }

    async fn open_circuits(&self) -> StoreResult<Vec<(String, Timestamp)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT url_key, probe_at FROM circuits")
            .fetch_all(&self.reader)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(key, at)| (key, Timestamp::from_micros(at)))
            .collect())
    }

    async fn claim_probe(
        &self,
        url_key: &str,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<ProbeClaim> {
        // A probe time or a claim further ahead than twice what any claim reaches (`until`
        // is now + the lease; cool-downs are shorter) was written before a wall clock
        // stepped back: it is due, not a wait of the step's length. (Twice: nodes' clocks
        // a little apart must not take each other's live claims.)
        let won = sqlx::query(
            "UPDATE circuits SET probe_owner = $2, probe_until = $4 \
             WHERE url_key = $1 AND (probe_at <= $3 OR probe_at > 2 * $4 - $3) \
             AND (probe_owner IS NULL OR probe_until < $3 OR probe_until > 2 * $4 - $3)",
        )
        .bind(url_key)
        .bind(owner)
        .bind(now.as_micros())
        .bind(until.as_micros())
        .execute(&mut *self.writer.acquire().await?)
        .await?;
        if won.rows_affected() == 1 {
            return Ok(ProbeClaim::Won);
        }
        let row: Option<(i64, Option<i64>)> =
            sqlx::query_as("SELECT probe_at, probe_until FROM circuits WHERE url_key = $1")
                .bind(url_key)
                .fetch_optional(&mut *self.writer.acquire().await?)
                .await?;
        Ok(match row {
            None => ProbeClaim::Closed,
            Some((probe_at, probe_until)) => ProbeClaim::Wait(Timestamp::from_micros(
                probe_at.max(probe_until.unwrap_or(i64::MIN)),
            )),
        })
    }

    async fn close_circuit(&self, url_key: &str) -> StoreResult<bool> {
        let closed = sqlx::query("DELETE FROM circuits WHERE url_key = $1")
            .bind(url_key)
            .execute(&mut *self.writer.acquire().await?)
            .await?;
        Ok(closed.rows_affected() == 1)
    }

    async fn probe_failed(
        &self,
        url_key: &str,
        now: Timestamp,
        max_cooldown: std::time::Duration,
    ) -> StoreResult<Option<Timestamp>> {
        let doubled = format!("{}(cooldown_ms * 2, $3)", self.dialect.least());
        let at: Option<i64> = sqlx::query_scalar(&format!(
            "UPDATE circuits SET cooldown_ms = {doubled}, probe_at = $2 + {doubled} * 1000, \
             probe_owner = NULL, probe_until = NULL WHERE url_key = $1 RETURNING probe_at"
        ))
        .bind(url_key)
        .bind(now.as_micros())
        .bind(max_cooldown.as_millis() as i64)
        .fetch_optional(&mut *self.writer.acquire().await?)
        .await?;
        Ok(at.map(Timestamp::from_micros))
    }
}

/// Gives back the claims on circuits' probes that `owner` holds (all of them with `None`:
/// a start on SQLite, whose one process is gone), so the next probe goes when due instead
/// of when the claim would have run out. With the deliveries' leases, in their transaction.
pub(super) async fn release_probe_claims(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    owner: Option<&str>,
) -> StoreResult<()> {
    let query = match owner {
        Some(owner) => sqlx::query(
            "UPDATE circuits SET probe_owner = NULL, probe_until = NULL WHERE probe_owner = $1",
        )
        .bind(owner),
        None => sqlx::query(
            "UPDATE circuits SET probe_owner = NULL, probe_until = NULL WHERE probe_owner IS NOT NULL",
        ),
    };
    query.execute(&mut **tx).await?;
    Ok(())
}
