use sqlx::{any::AnyPoolOptions, Executor};

use super::{
    sql::{Dialect, SqlStore},
    StoreResult,
};

/// SQLite allows one writer at a time. Giving writes their own single-connection pool
/// queues them in-process instead of failing with SQLITE_BUSY when a read transaction
/// tries to upgrade; reads keep a pool of their own.
pub(super) async fn open(url: &str) -> StoreResult<SqlStore> {
    let url = with_create_mode(url);
    let setup = || {
        // No ping before each use: a SQLite connection is a file handle that cannot drop,
        // and the ping would be one more round trip to the database thread per statement.
        AnyPoolOptions::new()
            .test_before_acquire(false)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL lets readers proceed while one writer commits; NORMAL is durable
                    // across process crashes in WAL mode (only an OS crash can lose the last
                    // commits).
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    // A larger page cache (8 MiB) than the 2 MiB default: fewer reads per page.
                    conn.execute("PRAGMA cache_size = -8192").await?;
                    Ok(())
                })
            })
    };
    let writer = setup().max_connections(1).connect(&url).await?;
    sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
    let reader = setup().max_connections(8).connect(&url).await?;
    Ok(SqlStore::new(reader, writer, Dialect::Sqlite))
}

/// `sqlite://tocsin.db` must create the file when it is missing.
fn with_create_mode(url: &str) -> String {
    if url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}
