use sqlx::any::AnyPoolOptions;

use super::{
    sql::{Dialect, SqlStore},
    StoreResult,
};

pub(super) async fn open(url: &str) -> StoreResult<SqlStore> {
    let pool = AnyPoolOptions::new()
        .max_connections(16)
        .connect(url)
        .await?;
    sqlx::migrate!("./migrations/postgres").run(&pool).await?;
    Ok(SqlStore::new(pool.clone(), pool, Dialect::Postgres))
}
