//! The one SQL implementation of the store traits. Every statement is valid on SQLite and
//! PostgreSQL alike (`$n` placeholders, or [`Dialect::params`] where a statement has many;
//! BIGINT and TEXT columns) unless [`Dialect`] says otherwise.

mod accounts;
mod activity;
mod args;
mod audit;
mod chain;
mod circuit;
mod config;
mod delivery_rows;
mod intake;
mod logs;
mod node;
mod notification;
mod queue;
mod retention;
mod retry_jobs;
mod sealing;
mod source;
mod stored_webhook;
mod token_rows;
pub(crate) mod writer;

use crate::domain::ids::{OrganizationId, WebhookId};
use sqlx::AnyPool;

use super::changes::ChangeFeed;
use crate::domain::sealing::Sealer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// `count` parameters numbered from `$first`, comma-separated; for SQLite as many `?`.
    /// SQLite finds each numbered parameter by a linear search of the statement's names, so
    /// binding a multi-row statement's hundreds of them costs the square of their number;
    /// anonymous ones bind by position. A statement that uses these must use them
    /// throughout, in the order its arguments are bound.
    pub(crate) fn params(self, first: usize, count: usize) -> String {
        let each: Vec<String> = (first..first + count)
            .map(|n| match self {
                Dialect::Sqlite => "?".to_owned(),
                Dialect::Postgres => format!("${n}"),
            })
            .collect();
        each.join(", ")
    }

    /// The smaller of two values (`LEAST` on PostgreSQL, `MIN` with two arguments on SQLite).
    pub(crate) fn least(self) -> &'static str {
        match self {
            Dialect::Sqlite => "MIN",
            Dialect::Postgres => "LEAST",
        }
    }

    /// `INSERT INTO table (a, b, …) VALUES (…), (…)` for `rows` rows, numbered from `$1`;
    /// the parameters per row are the columns named, so no count is kept by hand. Bind
    /// each row's values in the columns' order.
    pub(crate) fn insert(self, table: &str, columns: &[&str], rows: usize) -> String {
        format!(
            "INSERT INTO {table} ({}) VALUES {}",
            columns.join(", "),
            self.rows(1, rows, columns.len())
        )
    }

    /// `(…), (…)`: `rows` rows of `columns` parameters from `$first` (see [`Self::params`]).
    pub(crate) fn rows(self, first: usize, rows: usize, columns: usize) -> String {
        let each: Vec<String> = (0..rows)
            .map(|r| format!("({})", self.params(first + r * columns, columns)))
            .collect();
        each.join(", ")
    }
}

pub(crate) struct SqlStore {
    reader: AnyPool,
    /// For SQLite a single connection (see `sqlite.rs`); for PostgreSQL the same pool.
    writer: writer::Writer,
    dialect: Dialect,
    /// Seals secrets on their way in and opens them on their way out (`sealing.rs`).
    sealer: Sealer,
    /// Other nodes' changes, where the database can tell (PostgreSQL).
    changes: Option<ChangeFeed>,
}

impl SqlStore {
    pub(crate) fn new(
        reader: AnyPool,
        writer: writer::Writer,
        dialect: Dialect,
        sealer: Sealer,
    ) -> Self {
        Self {
            reader,
            writer,
            dialect,
            sealer,
            changes: None,
        }
    }

    /// Hears other nodes' changes through `feed` (see `changes.rs`).
    pub(crate) fn with_changes(mut self, feed: ChangeFeed) -> Self {
        self.changes = Some(feed);
        self
    }
}

/// The start of the hour (micros) a time falls in.
pub(crate) fn hour_of(micros: i64) -> i64 {
    micros.div_euclid(3_600_000_000) * 3_600_000_000
}

/// Adds finished deliveries to their webhook's hourly counts (`delivery_hours`), in the
/// transaction that finished them: `(organization, webhook, hour) → (succeeded, failed)`.
pub(crate) async fn count_finished(
    chain: &mut chain::Chain<'_>,
    counts: &std::collections::HashMap<(OrganizationId, WebhookId, i64), (i64, i64)>,
) -> Result<(), sqlx::Error> {
    let entries: Vec<_> = counts.iter().collect();
    for chunk in entries.chunks(100) {
        let sql = format!(
            "{} ON CONFLICT (organization_id, webhook_id, hour) DO UPDATE SET \
             succeeded = delivery_hours.succeeded + excluded.succeeded, failed = delivery_hours.failed + excluded.failed",
            chain.dialect().insert(
                "delivery_hours",
                &["organization_id", "webhook_id", "hour", "succeeded", "failed"],
                chunk.len()
            )
        );
        let mut args = chain::Args::default();
        for ((org, webhook, hour), (succeeded, failed)) in chunk {
            args = args
                .bind(org.clone())
                .bind(webhook.clone())
                .bind(*hour)
                .bind(*succeeded)
                .bind(*failed);
        }
        chain.push(&sql, args).await?;
    }
    Ok(())
}

/// The optional conditions of a list query, added only when given so the planner sees
/// just the ones that apply. Each clause marks its one parameter with `?` (it may appear
/// more than once: `(actor_id = ? OR actor_name = ?)`).
#[derive(Default)]
pub(crate) struct Conditions {
    items: Vec<(&'static str, args::Arg<'static>)>,
    /// Clauses without a parameter.
    fixed: Vec<&'static str>,
}

impl Conditions {
    pub(crate) fn push(&mut self, clause: &'static str, value: impl Into<args::Arg<'static>>) {
        self.items.push((clause, value.into()));
    }

    pub(crate) fn push_fixed(&mut self, clause: &'static str) {
        self.fixed.push(clause);
    }

    /// ` AND clause $n …`, parameters numbered from `$first`.
    pub(crate) fn sql(&self, first: usize) -> String {
        let numbered = self.items.iter().enumerate().map(|(i, (clause, _))| {
            format!(" AND {}", clause.replace('?', &format!("${}", first + i)))
        });
        numbered
            .chain(self.fixed.iter().map(|clause| format!(" AND {clause}")))
            .collect()
    }

    /// Binds the values in order, after whatever `query` has bound already.
    pub(crate) fn bind<'q>(
        self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        args::bound(query, self.values())
    }

    fn values<'q>(self) -> Vec<args::Arg<'q>> {
        self.items.into_iter().map(|(_, value)| value).collect()
    }
}

/// A delivery's URL as stored (its password sealed, see `domain::sealing`), opened.
pub(crate) fn open_url(sealer: &Sealer, stored: String) -> crate::store::StoreResult<String> {
    if !stored.contains('@') {
        return Ok(stored);
    }
    sealer
        .open_url(&stored)
        .map_err(|e| crate::store::StoreError::Corrupt(format!("a delivery URL: {e}")))
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

#[cfg(test)]
mod tests {
    use super::Dialect;

    #[test]
    fn parameters_are_numbered_rows_then_columns_or_anonymous() {
        assert_eq!(
            Dialect::Postgres.rows(1, 2, 3),
            "($1, $2, $3), ($4, $5, $6)"
        );
        assert_eq!(Dialect::Postgres.params(2, 2), "$2, $3");
        assert_eq!(Dialect::Sqlite.rows(5, 2, 2), "(?, ?), (?, ?)");
        assert_eq!(
            Dialect::Postgres.insert("t", &["a", "b"], 2),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"
        );
        assert_eq!(Dialect::Sqlite.params(3, 1), "?");
    }
}
