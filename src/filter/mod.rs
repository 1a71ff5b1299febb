//! Webhook filters: Squadcast's nested `{op, conditions}` groups, parsed once into a typed
//! tree and evaluated in memory against an incident. No I/O.

mod eval;
pub mod guard;
mod parse;
mod regexes;

pub use eval::{
    explain, matches, resolve, with_regex_budget, Explanation, REGEX_SCAN, SHOWN_VALUE,
};
pub use parse::{json_schema, parse, parse_stored, FilterError};

use regex::Regex;

/// A parsed filter: a group of conditions, each a condition or a nested group.
#[derive(Debug, Clone)]
pub enum Filter {
    Group { all: bool, conditions: Vec<Filter> },
    Condition { field: Field, test: Test },
}

impl Filter {
    /// Whether any condition is a regular expression (the costly kind).
    pub fn has_regex(&self) -> bool {
        match self {
            Filter::Group { conditions, .. } => conditions.iter().any(Filter::has_regex),
            Filter::Condition { test, .. } => matches!(test, Test::Matches(_)),
        }
    }
}

/// At most this many bytes of regex scanning for one event, across all its webhooks.
pub const EVENT_REGEX_BUDGET: usize = 16 * 1024 * 1024;

/// What a condition looks at.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// The event's team id.
    Team,
    /// A path into the incident (`service` and `alert_source` mean their `id`, and
    /// `tags.<key>` that tag's `value`).
    Incident(Vec<String>),
    /// `resource.<path>`: a path into what the event is about (a note, task, …); missing
    /// for incident events.
    Resource(Vec<String>),
}

#[derive(Debug, Clone)]
pub enum Test {
    Is(String),
    IsNot(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Contains(String),
    NotContains(String),
    StartsWith(String),
    /// Shared by every filter with the same pattern (`regexes`).
    Matches(std::sync::Arc<Regex>),
    Exists,
    NotExists,
}

/// What a filter is evaluated against.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub incident: &'a serde_json::Map<String, serde_json::Value>,
    pub team_id: &'a str,
    /// The event's own resource (a note, task, …), if it has one.
    pub resource: Option<&'a serde_json::Map<String, serde_json::Value>>,
}
