//! Values bound to a statement, one list per statement in parameter order: used by write
//! chains and by the optional conditions of list queries.

use sqlx::Any;

use crate::domain::ids::{DeliveryId, OrganizationId, SourceId, WebhookId};

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
id_args!(OrganizationId, WebhookId, DeliveryId, SourceId);

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
pub(crate) struct Args<'q>(pub(super) Vec<Arg<'q>>);

impl<'q> Args<'q> {
    pub(crate) fn bind(mut self, value: impl Into<Arg<'q>>) -> Self {
        self.0.push(value.into());
        self
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

pub(crate) fn bound<'q>(
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
