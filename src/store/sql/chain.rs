//! Write statements of one transaction whose results nobody reads, sent together.
//!
//! On SQLite every statement is a round trip between an async worker and sqlx's database
//! thread: two thread wake-ups, which at ordinary rates (a batch of one event) cost more
//! than the statement itself. A chain sends its statements as one multi-statement call,
//! which sqlx's SQLite driver runs in order, each statement binding as many values of the
//! call's one list as it has anonymous parameters, from where the one before stopped. So
//! a statement's parameters are made anonymous as it is added (`$n` becomes `?`, its value
//! repeated where it appears twice; numbered parameters would be looked up in the whole
//! list, and the driver stops binding at gaps in their numbers). PostgreSQL's protocol
//! takes one statement per call when it has parameters, so there each statement runs as
//! it is added.

use sqlx::{Any, Transaction};

pub(crate) use super::args::Args;
use super::{
    args::{bound, Arg},
    Dialect,
};

pub(crate) struct Chain<'q> {
    dialect: Dialect,
    sql: String,
    args: Vec<Arg<'q>>,
}

impl<'q> Chain<'q> {
    pub(crate) fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            sql: String::new(),
            args: Vec::new(),
        }
    }

    pub(crate) fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Adds a statement: on PostgreSQL it runs now, on SQLite with the rest at [`Self::run`].
    /// Its parameters are anonymous (`?`, from [`Dialect::params`]) or numbered `$n` from
    /// `$1` within the statement, not both.
    pub(crate) async fn push(
        &mut self,
        tx: &mut Transaction<'static, Any>,
        sql: &str,
        args: Args<'q>,
    ) -> Result<(), sqlx::Error> {
        match self.dialect {
            Dialect::Postgres => {
                bound(sqlx::query(sql), args.0).execute(&mut **tx).await?;
            }
            Dialect::Sqlite => {
                anonymize(sql, args.0, &mut self.sql, &mut self.args);
                self.sql.push_str(";\n");
            }
        }
        Ok(())
    }

    /// Runs what is left to run, in the order it was added.
    pub(crate) async fn run(self, tx: &mut Transaction<'static, Any>) -> Result<(), sqlx::Error> {
        if !self.sql.is_empty() {
            bound(sqlx::query(&self.sql), self.args)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
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
