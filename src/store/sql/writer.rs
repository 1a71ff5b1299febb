//! Where writes go: PostgreSQL's pool, or SQLite's one writer connection held here.
//!
//! SQLite takes one writer at a time, so its writes share one connection. A pool of one
//! would do that too, but sqlx's pool pings a connection each time it is given back: one
//! more round trip to the database thread per transaction, which at ordinary rates (a
//! transaction per event) is a third of the writer's calls (BENCHMARKS.md). Held behind a
//! mutex, the connection is simply passed on.

use std::{
    ops::{Deref, DerefMut},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use sqlx::{pool::PoolConnection, Any, AnyConnection, AnyPool, Executor, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// How SQLite's writer begins a transaction: taking the write lock at once, waiting (the
/// busy timeout) while another process (the CLI, while the server runs) holds it. A
/// deferred transaction that read first could not take it once that process had committed:
/// SQLite refuses at once ("database is locked", the busy timeout not applied), as its
/// snapshot is stale, and the intake batch or recording failed.
pub(crate) const SQLITE_BEGIN: &str = "BEGIN IMMEDIATE";

pub(crate) enum Writer {
    Pool(AnyPool),
    Held {
        conn: Arc<Mutex<AnyConnection>>,
        /// A transaction sqlx does not know of (see `chain.rs`) was left open on the
        /// connection: the next holder rolls it back first.
        open: Arc<AtomicBool>,
    },
}

impl Writer {
    /// SQLite's writer connection, taken out of its pool for good.
    pub(crate) fn held(conn: AnyConnection) -> Self {
        Writer::Held {
            conn: Arc::new(Mutex::new(conn)),
            open: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The connection to write on, for one statement or transaction.
    pub(crate) async fn acquire(&self) -> Result<WriterConn, sqlx::Error> {
        match self {
            Writer::Pool(pool) => Ok(WriterConn::Pooled(pool.acquire().await?)),
            Writer::Held { conn, open } => {
                let mut conn = conn.clone().lock_owned().await;
                if open.swap(false, Ordering::AcqRel) {
                    // Fails harmlessly if the transaction never began.
                    if let Err(e) = conn.execute("ROLLBACK").await {
                        tracing::debug!(error = %e, "rolling back an abandoned write");
                    }
                }
                Ok(WriterConn::Held {
                    conn,
                    open: open.clone(),
                })
            }
        }
    }
}

pub(crate) enum WriterConn {
    Pooled(PoolConnection<Any>),
    Held {
        conn: OwnedMutexGuard<AnyConnection>,
        open: Arc<AtomicBool>,
    },
}

impl WriterConn {
    /// A transaction sqlx manages on this connection (rolled back when dropped
    /// uncommitted); on SQLite's held writer begun as [`SQLITE_BEGIN`] says.
    pub(crate) async fn begin(&mut self) -> Result<Transaction<'_, Any>, sqlx::Error> {
        match self {
            WriterConn::Pooled(_) => sqlx::Connection::begin(&mut **self).await,
            WriterConn::Held { .. } => {
                sqlx::Connection::begin_with(&mut **self, SQLITE_BEGIN).await
            }
        }
    }

    /// A transaction begun by hand on this connection is given up (an error, a
    /// cancelled task): it must not stay open for the next writer.
    pub(crate) fn abandon(&mut self) {
        match self {
            // Closing the connection rolls it back; the pool opens a fresh one.
            WriterConn::Pooled(conn) => conn.close_on_drop(),
            WriterConn::Held { open, .. } => open.store(true, Ordering::Release),
        }
    }
}

impl Deref for WriterConn {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match self {
            WriterConn::Pooled(conn) => conn,
            WriterConn::Held { conn, .. } => conn,
        }
    }
}

impl DerefMut for WriterConn {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            WriterConn::Pooled(conn) => conn,
            WriterConn::Held { conn, .. } => conn,
        }
    }
}
