//! The one SQL implementation of the store traits. Every statement is valid on SQLite and
//! PostgreSQL alike (`$n` placeholders, BIGINT and TEXT columns) unless [`Dialect`] says
//! otherwise.

mod config;
mod delivery;
mod intake;
mod notification;

use sqlx::AnyPool;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

pub(crate) struct SqlStore {
    reader: AnyPool,
    /// For SQLite a single connection (see `sqlite.rs`); for PostgreSQL the same pool.
    writer: AnyPool,
    dialect: Dialect,
}

impl SqlStore {
    pub(crate) fn new(reader: AnyPool, writer: AnyPool, dialect: Dialect) -> Self {
        Self {
            reader,
            writer,
            dialect,
        }
    }
}

/// A nullable microsecond column as a timestamp.
pub(crate) fn optional_time(
    row: &sqlx::any::AnyRow,
    column: &str,
) -> Result<Option<crate::domain::Timestamp>, sqlx::Error> {
    use sqlx::Row;
    Ok(row
        .try_get::<Option<i64>, _>(column)?
        .map(crate::domain::Timestamp::from_micros))
}
