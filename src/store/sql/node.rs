//! The database itself and the nodes sharing it: ping, the change feed, key rotation,
//! heartbeats, checkpoints.

use async_trait::async_trait;
use sqlx::Row;

use super::{Dialect, SqlStore};
use crate::domain::{
    sealing::{Sealer, SecretKey},
    Timestamp,
};
use crate::store::{Change, NodeStore, StoreResult};

#[async_trait]
impl NodeStore for SqlStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        self.changes.as_ref().map(|feed| feed.subscribe())
    }

    async fn rotate_key(&self, new: &SecretKey) -> StoreResult<u64> {
        self.rotate(&Sealer::new(new)).await
    }

    async fn checkpoint(&self) -> StoreResult<()> {
        if self.dialect == Dialect::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&self.reader)
                .await?;
        }
        Ok(())
    }

    async fn node_beat(&self, id: &str, started_at: Timestamp, at: Timestamp) -> StoreResult<()> {
        let mut writer = self.writer.acquire().await?;
        sqlx::query(
            "INSERT INTO nodes (id, started_at, seen_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
        )
        .bind(id)
        .bind(started_at.as_micros())
        .bind(at.as_micros())
        .execute(&mut *writer)
        .await?;
        Ok(())
    }

    async fn node_stopped(&self, id: &str) -> StoreResult<()> {
        let mut writer = self.writer.acquire().await?;
        sqlx::query("DELETE FROM nodes WHERE id = $1")
            .bind(id)
            .execute(&mut *writer)
            .await?;
        Ok(())
    }

    async fn live_nodes(&self, since: Timestamp) -> StoreResult<Vec<(String, Timestamp)>> {
        let rows = sqlx::query("SELECT id, seen_at FROM nodes WHERE seen_at >= $1 ORDER BY id")
            .bind(since.as_micros())
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("id")?,
                    Timestamp::from_micros(row.try_get("seen_at")?),
                ))
            })
            .collect()
    }
}
