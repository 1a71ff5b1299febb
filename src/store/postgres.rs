use sqlx::any::AnyPoolOptions;

use super::{
    changes::ChangeFeed,
    sql::{Dialect, SqlStore},
    Sealer, StoreResult,
};

pub(super) async fn open(url: &str, sealer: Sealer) -> StoreResult<SqlStore> {
    let pool = AnyPoolOptions::new()
        .max_connections(16)
        // sqlx's default, kept on purpose: each connection is tested (a round trip) before
        // it is handed out. Skipping that saved a sixth of tocsin's CPU at 200 events/s,
        // but after PostgreSQL dropped every connection the next calls failed, one per dead
        // connection: refused events (BENCHMARKS.md, tenth session; a test holds this).
        .test_before_acquire(true)
        // A caller waits at most this for a connection: with PostgreSQL unreachable, senders
        // hear 503 within about a second (sqlx's default, 30 s, answered far too late).
        .acquire_timeout(ACQUIRE_WAIT)
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::Executor::execute(conn, SESSION_BOUNDS).await?;
                Ok(())
            })
        })
        .connect_lazy(url)?;
    wait_for_server(&pool).await?;
    // Migrations wait for their locks as long as it takes (another node migrating, an old
    // node's queries during an upgrade) on a connection of their own, unbounded and then
    // closed rather than given back to the pool.
    let mut migrating = pool.acquire().await?.detach();
    sqlx::Executor::execute(
        &mut migrating,
        "SET lock_timeout = 0; SET idle_in_transaction_session_timeout = 0",
    )
    .await?;
    sqlx::migrate!("./migrations/postgres")
        .run(&mut migrating)
        .await?;
    drop(migrating);
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

/// The longest wait for a pooled connection, a new one's connect included.
const ACQUIRE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
/// Every wait on another session bounded, set on each connection: a node frozen inside a
/// transaction (SIGSTOP, a VM stall, a partition) holds its locks — an intake lane's
/// advisory lock among them — until the server ends its session, and a healthy node's
/// intake waited behind it for 85 s. Now a lock is waited for at most 3 s (the batch
/// fails, its events are tried alone, and a sender hears 503 and sends again), a session
/// idle inside a transaction for 10 s is ended by the server (no tocsin transaction waits
/// on anything but the database), and the server probes a silent client's connection after
/// 10 s idle (3 probes 5 s apart), so a peer that vanished costs seconds, not hours.
const SESSION_BOUNDS: &str = "SET lock_timeout = '3s'; \
    SET idle_in_transaction_session_timeout = '10s'; \
    SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3";

/// How long a start waits for PostgreSQL to come up (started beside tocsin, restarting).
const START_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The first connection, tried again while the server cannot be reached yet (a refusal such
/// as a wrong password or a missing database ends the wait at once, with its own words).
async fn wait_for_server(pool: &sqlx::AnyPool) -> StoreResult<()> {
    let deadline = std::time::Instant::now() + START_WAIT;
    loop {
        match pool.acquire().await {
            Ok(_) => return Ok(()),
            Err(e) => {
                let e = super::StoreError::from(e);
                if !e.is_unreachable() || std::time::Instant::now() >= deadline {
                    return Err(e);
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        }
    }
}

/// Without autovacuum the dead rows the queue's updates leave are never reclaimed, and
/// nothing refreshes the planner's statistics of tables that grow from empty: plans made
/// for a few rows may stay (BENCHMARKS.md has a backlog run where intake's lookups took
/// 40 ms each, most likely so).
const AUTOVACUUM_OFF: &str = "PostgreSQL's autovacuum is off: the planner's statistics of \
    tocsin's tables are never refreshed and dead rows are not reclaimed, so queries may slow \
    down as the queue grows; set autovacuum = on in postgresql.conf (or run VACUUM ANALYZE \
    on this database regularly)";
