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
    Ok(SqlStore::new(
        pool.clone(),
        super::sql::writer::Writer::Pool(pool),
        Dialect::Postgres,
        sealer,
    )
    .with_changes(ChangeFeed::new(url)))
}
