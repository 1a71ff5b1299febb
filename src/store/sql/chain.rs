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
//!   it committed (an error, a cancelled task) has it rolled back before the connection
//!   writes again (see `writer.rs`). It begins `IMMEDIATE` (see `writer::SQLITE_BEGIN`).
//!
//! So a transaction that reads once and then writes is two calls instead of four or more.
//! PostgreSQL's protocol takes one statement per call when it has parameters, so there a
//! chain begins at once and sends its writes as one statement: every write but the last
//! becomes a data-modifying `WITH` part of the last (their parameters renumbered after the
//! ones before), each a round trip to the server saved. Those parts share one snapshot, so
//! a write that reads rows an earlier write of the chain made is added after
//! [`Chain::send_writes`].

use sqlx::{AnyConnection, Executor};

pub(crate) use super::args::Args;
use super::{
    args::{bound, Arg},
    writer::{Writer, WriterConn, SQLITE_BEGIN},
    Dialect,
};

pub(crate) struct Chain<'q> {
    conn: WriterConn,
    dialect: Dialect,
    /// `BEGIN` was sent.
    begun: bool,
    /// `COMMIT` was sent and answered.
    committed: bool,
    /// SQLite: the writes not sent yet, anonymized, with their values.
    sql: String,
    args: Vec<Arg<'q>>,
    /// PostgreSQL: the writes not sent yet, each with its values.
    writes: Vec<(String, Vec<Arg<'q>>)>,
}

/// Values per statement at most when PostgreSQL's writes are joined (its limit is 65,535).
const MAX_JOINED_VALUES: usize = 30_000;

impl<'q> Chain<'q> {
    /// Starts a write transaction (on SQLite nothing is sent yet).
    pub(crate) async fn begin(writer: &Writer, dialect: Dialect) -> Result<Self, sqlx::Error> {
        let mut chain = Self {
            conn: writer.acquire().await?,
            dialect,
            begun: false,
            committed: false,
            sql: String::new(),
            args: Vec::new(),
            writes: Vec::new(),
        };
        if dialect == Dialect::Postgres {
            chain.begun = true;
            chain.conn.execute("BEGIN").await?;
        }
        Ok(chain)
    }

    pub(crate) fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// A statement whose results are read, as it must be sent now, and the connection to
    /// send it on: on SQLite the transaction's first call carries its `BEGIN`. The writes
    /// added so far are not sent before it: a read must not depend on them.
    pub(crate) fn read(&mut self, sql: &str) -> (String, &mut AnyConnection) {
        let sql = if self.begun {
            sql.to_owned()
        } else {
            // Counted as sent from here: should the call fail, the transaction is
            // abandoned (see `Drop`), whatever state it left.
            self.begun = true;
            format!("{SQLITE_BEGIN};\n{sql}")
        };
        (sql, &mut *self.conn)
    }

    /// Adds a write, sent with the rest at [`Self::commit`] (or [`Self::send_writes`]).
    /// Its parameters are anonymous (`?`, from [`Dialect::params`]) or numbered `$n` from
    /// `$1` within the statement, not both.
    pub(crate) async fn push(&mut self, sql: &str, args: Args<'q>) -> Result<(), sqlx::Error> {
        match self.dialect {
            Dialect::Postgres => {
                let waiting: usize = self.writes.iter().map(|(_, a)| a.len()).sum();
                if waiting + args.len() > MAX_JOINED_VALUES {
                    self.send_writes().await?;
                }
                self.writes.push((sql.to_owned(), args.0));
            }
            Dialect::Sqlite => {
                anonymize(sql, args.0, &mut self.sql, &mut self.args);
                self.sql.push_str(";\n");
            }
        }
        Ok(())
    }

    /// Sends the writes added so far, for a write to come that reads rows they made: on
    /// PostgreSQL as one statement; on SQLite nothing (its statements run in order).
    pub(crate) async fn send_writes(&mut self) -> Result<(), sqlx::Error> {
        if self.writes.is_empty() {
            return Ok(());
        }
        let (sql, args) = joined(std::mem::take(&mut self.writes));
        bound(sqlx::query(&sql), args)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    /// Sends the writes not sent yet and commits: on SQLite one call, with the `BEGIN`
    /// too if nothing was read; on PostgreSQL the writes as one statement, then `COMMIT`.
    pub(crate) async fn commit(mut self) -> Result<(), sqlx::Error> {
        if self.dialect == Dialect::Postgres {
            self.send_writes().await?;
            self.conn.execute("COMMIT").await?;
            self.committed = true;
            return Ok(());
        }
        let sql = std::mem::take(&mut self.sql);
        let args = std::mem::take(&mut self.args);
        let begin = if self.begun {
            String::new()
        } else {
            format!("{SQLITE_BEGIN};\n")
        };
        self.begun = true;
        bound(sqlx::query(&format!("{begin}{sql}COMMIT")), args)
            .execute(&mut *self.conn)
            .await?;
        self.committed = true;
        Ok(())
    }
}

/// PostgreSQL: writes as one statement, every one but the last a `WITH` part of the last,
/// their `$n` parameters renumbered after the values of the ones before.
fn joined<'q>(writes: Vec<(String, Vec<Arg<'q>>)>) -> (String, Vec<Arg<'q>>) {
    let last = writes.len() - 1;
    let mut sql = String::new();
    let mut values = Vec::new();
    for (i, (statement, args)) in writes.into_iter().enumerate() {
        let offset = values.len();
        let renumbered = renumber(&statement, offset);
        match i {
            0 if last == 0 => sql.push_str(&renumbered),
            0 => sql.push_str(&format!("WITH w0 AS ({renumbered})")),
            _ if i == last => sql.push_str(&format!(" {renumbered}")),
            _ => sql.push_str(&format!(", w{i} AS ({renumbered})")),
        }
        values.extend(args);
    }
    (sql, values)
}

/// `sql` with each `$n` parameter made `$n+offset`.
fn renumber(sql: &str, offset: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    each_parameter(sql, &mut out, |out, parameter| match parameter {
        Parameter::Numbered(n) => {
            out.push_str(&format!("${}", n + offset));
            true
        }
        Parameter::Anonymous => false,
    });
    out
}

impl Drop for Chain<'_> {
    fn drop(&mut self) {
        if self.begun && !self.committed {
            // sqlx does not know of this transaction: it must not stay open for the next
            // writer on this connection.
            self.conn.abandon();
        }
    }
}

/// Appends `sql` to `out` with every parameter anonymous, and `args` to `values` in the
/// order of the parameters' appearance: `?` takes the next value, `$n` the n-th (again,
/// where a statement uses one twice).
fn anonymize<'q>(sql: &str, args: Vec<Arg<'q>>, out: &mut String, values: &mut Vec<Arg<'q>>) {
    // Each value moves to its first use; only a repeat copies it (from where it went).
    let mut args: Vec<Option<Arg<'q>>> = args.into_iter().map(Some).collect();
    let mut placed: Vec<usize> = vec![0; args.len()];
    let mut next = 0;
    each_parameter(sql, out, |out, parameter| {
        let index = match parameter {
            Parameter::Numbered(n) => n - 1,
            Parameter::Anonymous => {
                next += 1;
                next - 1
            }
        };
        out.push('?');
        let value = match args[index].take() {
            Some(value) => value,
            None => values[placed[index]].clone(),
        };
        placed[index] = values.len();
        values.push(value);
        true
    });
}

enum Parameter {
    /// `?`
    Anonymous,
    /// `$n`, from 1
    Numbered(usize),
}

/// Copies `sql` to `out`, letting `write` put each parameter (`?` or `$n`) in its place;
/// where `write` answers false the parameter is copied as it is. Text in single quotes is
/// copied as it is, and so is anything else that starts with `?` or `$`.
fn each_parameter(
    sql: &str,
    out: &mut String,
    mut write: impl FnMut(&mut String, Parameter) -> bool,
) {
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
        let parameter = match (c, digits.parse::<usize>()) {
            ('$', Ok(n)) if n >= 1 => Some(Parameter::Numbered(n)),
            ('?', Err(_)) => Some(Parameter::Anonymous),
            _ => None,
        };
        if !parameter.is_some_and(|p| write(out, p)) {
            out.push(c);
            out.push_str(&digits);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{anonymize, joined, Arg};

    #[test]
    fn postgres_writes_join_as_with_parts_with_their_parameters_renumbered() {
        let one = |sql: &str, n: i64| (sql.to_owned(), vec![Arg::Int(Some(n)); 2]);
        let (sql, values) = joined(vec![
            one("INSERT INTO a VALUES ($1, $2)", 1),
            one("INSERT INTO b VALUES ($1, '$1', $2)", 2),
            one("UPDATE c SET x = $2 WHERE y = $1", 3),
        ]);
        assert_eq!(
            sql,
            "WITH w0 AS (INSERT INTO a VALUES ($1, $2)), \
             w1 AS (INSERT INTO b VALUES ($3, '$1', $4)) \
             UPDATE c SET x = $6 WHERE y = $5"
        );
        assert_eq!(values.len(), 6);
        let (alone, _) = joined(vec![one("DELETE FROM d WHERE id = $1", 1)]);
        assert_eq!(alone, "DELETE FROM d WHERE id = $1");
    }

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
