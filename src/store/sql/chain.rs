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

use crate::domain::ids::{DeliveryId, OrganizationId, WebhookId};
use sqlx::{Any, Transaction};

use super::Dialect;

/// One value to bind. Borrowed where the caller holds the text (payload bodies can be
/// large), owned where it is made for the statement.
#[derive(Clone)]
pub(crate) enum Arg<'q> {
    Text(Option<&'q str>),
    Owned(Option<String>),
    Int(Option<i64>),
}

impl<'q> From<&'q str> for Arg<'q> {
    fn from(v: &'q str) -> Self {
        Arg::Text(Some(v))
    }
}
impl<'q> From<&'q String> for Arg<'q> {
    fn from(v: &'q String) -> Self {
        Arg::Text(Some(v))
    }
}
impl<'q> From<Option<&'q str>> for Arg<'q> {
    fn from(v: Option<&'q str>) -> Self {
        Arg::Text(v)
    }
}
/// Ids bind as their text.
macro_rules! id_args {
    ($($id:ty),*) => {$(
        impl<'q> From<&'q $id> for Arg<'q> {
            fn from(v: &'q $id) -> Self {
                Arg::Text(Some(v.as_str()))
            }
        }
        impl From<$id> for Arg<'_> {
            fn from(v: $id) -> Self {
                Arg::Owned(Some(v.into()))
            }
        }
    )*};
}
id_args!(OrganizationId, WebhookId, DeliveryId);

impl From<String> for Arg<'_> {
    fn from(v: String) -> Self {
        Arg::Owned(Some(v))
    }
}
impl From<Option<String>> for Arg<'_> {
    fn from(v: Option<String>) -> Self {
        Arg::Owned(v)
    }
}
impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}

/// The values of one statement, in the order of its parameters.
#[derive(Default)]
pub(crate) struct Args<'q>(Vec<Arg<'q>>);

impl<'q> Args<'q> {
    pub(crate) fn bind(mut self, value: impl Into<Arg<'q>>) -> Self {
        self.0.push(value.into());
        self
    }
}

fn bound<'q>(
    mut query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    args: Vec<Arg<'q>>,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    for arg in args {
        query = match arg {
            Arg::Text(v) => query.bind(v),
            Arg::Owned(v) => query.bind(v),
            Arg::Int(v) => query.bind(v),
        };
    }
    query
}

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
