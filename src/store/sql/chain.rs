//! A write transaction that sends its writes together, and on SQLite its BEGIN and COMMIT
//! with them.
//!
//! On SQLite every call is a round trip between an async worker and sqlx's database
//! thread: two thread wake-ups, which at ordinary rates (a batch of one event) cost more
//! than the statement itself. So a chain:
//! - keeps the writes whose results nobody reads and sends them as one multi-statement
//!   call, which sqlx's SQLite driver runs in order, each statement binding as many values
//!   of the call's one list as it has anonymous parameters, from where the one before
//!   stopped. A statement's parameters are made anonymous as it is added (`$n` becomes `?`,
//!   its value repeated where it appears twice; numbered parameters would be looked up in
//!   the whole list, and the driver stops binding at gaps in their numbers);
//! - opens the transaction with its first call (`BEGIN` ahead of the first statement sent,
//!   a read or the writes) and ends it with its last (`COMMIT` after the writes), instead
//!   of one call each. sqlx does not know of such a transaction, so a chain dropped before
//!   it committed (an error, a cancelled task) closes its connection, which rolls it back;
//!   the pool opens a new one.
//!
//! So a transaction that reads once and then writes is two calls instead of four or more.
//! PostgreSQL's protocol takes one statement per call when it has parameters, so there a
//! chain is an ordinary transaction and each statement runs as it is added.

use sqlx::{pool::PoolConnection, Any, AnyConnection, AnyPool, Transaction};

pub(crate) use super::args::Args;
use super::{
    args::{bound, Arg},
    Dialect,
};

pub(crate) struct Chain<'q> {
    conn: Conn,
    /// SQLite: the writes not sent yet, anonymized, with their values.
    sql: String,
    args: Vec<Arg<'q>>,
}

enum Conn {
    Postgres(Transaction<'static, Any>),
    /// Committed (PostgreSQL's transaction is consumed by its commit).
    Done,
    Sqlite {
        conn: PoolConnection<Any>,
        /// `BEGIN` was sent.
        begun: bool,
        /// `COMMIT` was sent and answered.
        committed: bool,
    },
}

impl<'q> Chain<'q> {
    /// Starts a write transaction on `pool` (on SQLite nothing is sent yet).
    pub(crate) async fn begin(pool: &AnyPool, dialect: Dialect) -> Result<Self, sqlx::Error> {
        let conn = match dialect {
            Dialect::Postgres => Conn::Postgres(pool.begin().await?),
            Dialect::Sqlite => Conn::Sqlite {
                conn: pool.acquire().await?,
                begun: false,
                committed: false,
            },
        };
        Ok(Self {
            conn,
            sql: String::new(),
            args: Vec::new(),
        })
    }

    pub(crate) fn dialect(&self) -> Dialect {
        match self.conn {
            Conn::Postgres(_) | Conn::Done => Dialect::Postgres,
            Conn::Sqlite { .. } => Dialect::Sqlite,
        }
    }

    /// A statement whose results are read, as it must be sent now, and the connection to
    /// send it on: on SQLite the transaction's first call carries its `BEGIN`. The writes
    /// added so far are not sent before it: a read must not depend on them.
    pub(crate) fn read(&mut self, sql: &str) -> (String, &mut AnyConnection) {
        match &mut self.conn {
            Conn::Postgres(tx) => (sql.to_owned(), &mut **tx),
            Conn::Done => unreachable!("a chain is consumed by its commit"),
            Conn::Sqlite { conn, begun, .. } => {
                let sql = if *begun {
                    sql.to_owned()
                } else {
                    // Counted as sent from here: should the call fail, the connection is
                    // closed (see `Drop`), whatever state it left.
                    *begun = true;
                    format!("BEGIN;\n{sql}")
                };
                (sql, &mut **conn)
            }
        }
    }

    /// Adds a write: on PostgreSQL it runs now, on SQLite with the rest at
    /// [`Self::commit`]. Its parameters are anonymous (`?`, from [`Dialect::params`]) or
    /// numbered `$n` from `$1` within the statement, not both.
    pub(crate) async fn push(&mut self, sql: &str, args: Args<'q>) -> Result<(), sqlx::Error> {
        match &mut self.conn {
            Conn::Postgres(tx) => {
                bound(sqlx::query(sql), args.0).execute(&mut **tx).await?;
            }
            Conn::Done => unreachable!("a chain is consumed by its commit"),
            Conn::Sqlite { .. } => {
                anonymize(sql, args.0, &mut self.sql, &mut self.args);
                self.sql.push_str(";\n");
            }
        }
        Ok(())
    }

    /// Sends the writes not sent yet and commits: on SQLite one call, with the `BEGIN`
    /// too if nothing was read.
    pub(crate) async fn commit(mut self) -> Result<(), sqlx::Error> {
        let sql = std::mem::take(&mut self.sql);
        let args = std::mem::take(&mut self.args);
        match &mut self.conn {
            Conn::Postgres(_) => {
                let Conn::Postgres(tx) = std::mem::replace(&mut self.conn, Conn::Done) else {
                    unreachable!()
                };
                tx.commit().await
            }
            Conn::Sqlite {
                conn,
                begun,
                committed,
            } => {
                let begin = if *begun { "" } else { "BEGIN;\n" };
                *begun = true;
                bound(sqlx::query(&format!("{begin}{sql}COMMIT")), args)
                    .execute(&mut **conn)
                    .await?;
                *committed = true;
                Ok(())
            }
            Conn::Done => Ok(()),
        }
    }
}

impl Drop for Chain<'_> {
    fn drop(&mut self) {
        if let Conn::Sqlite {
            conn,
            begun: true,
            committed: false,
        } = &mut self.conn
        {
            // A transaction sqlx does not know of may still be open on this connection:
            // closing it rolls that back, and the pool opens a fresh one.
            conn.close_on_drop();
        }
    }
}

/// Appends `sql` to `out` with every parameter anonymous, and `args` to `values` in the
/// order of the parameters' appearance: `?` takes the next value, `$n` the n-th (again,
/// where a statement uses one twice). Text in single quotes is copied as it is.
fn anonymize<'q>(sql: &str, args: Vec<Arg<'q>>, out: &mut String, values: &mut Vec<Arg<'q>>) {
    // Each value moves to its first use; only a repeat copies it (from where it went).
    let mut args: Vec<Option<Arg<'q>>> = args.into_iter().map(Some).collect();
    let mut placed: Vec<usize> = vec![0; args.len()];
    let mut next = 0;
    let mut chars = sql.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if quoted || (c != '?' && c != '$') {
            out.push(c);
            continue;
        }
        let mut digits = String::new();
        while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
            digits.push(d);
            chars.next();
        }
        let index = match (c, digits.parse::<usize>()) {
            ('$', Ok(n)) if n >= 1 => n - 1,
            ('?', Err(_)) => {
                next += 1;
                next - 1
            }
            _ => {
                // Not a parameter of the two forms used here: copy it unchanged.
                out.push(c);
                out.push_str(&digits);
                continue;
            }
        };
        out.push('?');
        let value = match args[index].take() {
            Some(value) => value,
            None => values[placed[index]].clone(),
        };
        placed[index] = values.len();
        values.push(value);
    }
}

#[cfg(test)]
mod tests {
    use super::{anonymize, Arg};

    fn anonymized(sql: &str, args: Vec<Arg<'static>>) -> (String, Vec<String>) {
        let mut out = String::new();
        let mut values = vec![Arg::Int(Some(0))];
        anonymize(sql, args, &mut out, &mut values);
        let shown = values
            .iter()
            .map(|v| match v {
                Arg::Text(t) => format!("{t:?}"),
                Arg::Owned(t) => format!("{t:?}"),
                Arg::Int(n) => format!("{n:?}"),
            })
            .collect();
        (out, shown)
    }

    #[test]
    fn anonymous_parameters_keep_their_values_in_order() {
        let (sql, values) = anonymized(
            "INSERT INTO t (a, b) VALUES (?, ?)",
            vec![Arg::Int(Some(1)), Arg::Text(Some("x"))],
        );
        assert_eq!(sql, "INSERT INTO t (a, b) VALUES (?, ?)");
        assert_eq!(values, ["Some(0)", "Some(1)", "Some(\"x\")"]);
    }

    #[test]
    fn numbered_parameters_take_their_value_each_time_they_appear() {
        let (sql, values) = anonymized(
            "SELECT $1, x FROM t WHERE a = $2 AND b = $2 AND c = $3",
            vec![
                Arg::Owned(Some("id".into())),
                Arg::Int(Some(7)),
                Arg::Int(None),
            ],
        );
        assert_eq!(sql, "SELECT ?, x FROM t WHERE a = ? AND b = ? AND c = ?");
        assert_eq!(
            values,
            ["Some(0)", "Some(\"id\")", "Some(7)", "Some(7)", "None"]
        );
    }

    #[test]
    fn quoted_text_is_left_alone() {
        let (sql, values) = anonymized(
            "SELECT '$1 ?', $1 WHERE s = 'it''s'",
            vec![Arg::Int(Some(5))],
        );
        assert_eq!(sql, "SELECT '$1 ?', ? WHERE s = 'it''s'");
        assert_eq!(values, ["Some(0)", "Some(5)"]);
    }
}
