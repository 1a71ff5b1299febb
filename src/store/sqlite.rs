use sqlx::{any::AnyPoolOptions, Executor};

use super::{
    sql::{writer::Writer, Dialect, SqlStore},
    Sealer, StoreResult,
};

/// SQLite allows one writer at a time. Giving writes their own single connection queues
/// them in-process instead of failing with SQLITE_BUSY when a read transaction tries to
/// upgrade; reads keep a pool of their own. The writer's connection is made by a pool of
/// one (same settings as the readers') and then held outside it (see `sql/writer.rs`).
pub(super) async fn open(url: &str, sealer: Sealer) -> StoreResult<SqlStore> {
    create_private(url);
    let url = with_create_mode(url);
    let setup = |cache_kib: i64, autocheckpoint_pages: i64| {
        // No ping before each use: a SQLite connection is a file handle that cannot drop,
        // and the ping would be one more round trip to the database thread per statement.
        AnyPoolOptions::new()
            .test_before_acquire(false)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    // WAL lets readers proceed while one writer commits; NORMAL is durable
                    // across process crashes in WAL mode (only an OS crash can lose the last
                    // commits).
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    // A larger page cache than the 2 MiB default: fewer reads per page.
                    conn.execute(format!("PRAGMA cache_size = -{cache_kib}").as_str())
                        .await?;
                    // The server checkpoints from a reader every 200 ms (`Store::checkpoint`),
                    // so the writer's commits do not stall copying the log. But the log
                    // starts over from its beginning only when a write begins with every
                    // frame copied, and under steady writes some commit always lands while
                    // the reader's checkpoint runs: the file grew until the writer's own
                    // checkpoint (then past ~400 MiB), by 16 MiB/s at 200 events/s, each new
                    // block allocated and zeroed. The writer checkpoints itself past ~64 MiB
                    // (the reader has copied nearly all of it by then), and the log starts
                    // over: bounded there, its blocks reused (BENCHMARKS.md, tenth session).
                    conn.execute(
                        format!("PRAGMA wal_autocheckpoint = {autocheckpoint_pages}").as_str(),
                    )
                    .await?;
                    // Statement journals and temporary b-trees in memory: a multi-row
                    // statement in a transaction journals the pages it changes, and past
                    // 64 KiB SQLite spilled that to a temporary file, hundreds of
                    // megabytes of writes in a run.
                    conn.execute("PRAGMA temp_store = MEMORY").await?;
                    Ok(())
                })
            })
    };
    // 8 MiB of page cache per connection (32 MiB for the writer measured no better); the
    // writer checkpoints past 16,000 pages (~64 MiB) of log.
    let writer = setup(8 * 1024, 16_000)
        .max_connections(1)
        .connect(&url)
        .await?;
    sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
    let writer = Writer::held(writer.acquire().await?.detach());
    let reader = setup(8 * 1024, 1000)
        .max_connections(8)
        .connect(&url)
        .await?;
    Ok(SqlStore::new(reader, writer, Dialect::Sqlite, sealer))
}

/// The database holds signing secrets and credentials: a new file is created readable by
/// its owner only (0600), and SQLite gives its `-wal` and `-shm` files the same mode. An
/// existing file others can read is reported, not changed.
fn create_private(url: &str) {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or("");
    if path.is_empty() || path == ":memory:" {
        return;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        match std::fs::metadata(path) {
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => tracing::warn!(
                path,
                mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "the database file can be read by other users; it holds secrets: chmod 600 it"
            ),
            Ok(_) => {}
            Err(_) => {
                let _ = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path);
            }
        }
    }
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
