use sqlx::any::AnyPoolOptions;

use super::{
    changes::ChangeFeed,
    sql::{Dialect, SqlStore},
    Sealer, StoreResult,
};

pub(super) async fn open(url: &str, sealer: Sealer) -> StoreResult<SqlStore> {
    let pool = AnyPoolOptions::new()
        .max_connections(16)
        .connect(url)
        .await?;
    sqlx::migrate!("./migrations/postgres").run(&pool).await?;
    let autovacuum: String = sqlx::query_scalar("SELECT current_setting('autovacuum')")
        .fetch_one(&pool)
        .await?;
    if autovacuum == "off" {
        tracing::warn!("{AUTOVACUUM_OFF}");
    }
    Ok(SqlStore::new(
        pool.clone(),
        super::sql::writer::Writer::Pool(pool),
        Dialect::Postgres,
        sealer,
    )
    .with_changes(ChangeFeed::new(url)))
}

/// Without autovacuum nothing refreshes the planner's statistics, and the queue's tables
/// grow from empty: the plans made for a few rows stay. Measured with a backlog of parked
/// deliveries, intake fell from about 2,000 to 300 events/s by 50,000 (BENCHMARKS.md).
const AUTOVACUUM_OFF: &str = "PostgreSQL's autovacuum is off: the planner's statistics of \
    tocsin's tables are never refreshed, and queries slow down as the queue grows; set \
    autovacuum = on in postgresql.conf (or run ANALYZE on this database regularly)";
