//! Query parameters shared by the lists that page with a cursor (logs, audit log).

use crate::{domain::Timestamp, http::error::ApiError};

pub fn bad(name: &str, rule: &str, got: &str) -> ApiError {
    ApiError::BadRequest(format!("query parameter {name} {rule}, got \"{got}\""))
}

pub fn limit(name: &str, value: &str, max: u32) -> Result<u32, ApiError> {
    value
        .parse()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| {
            bad(
                name,
                &format!("must be a whole number from 1 to {max}"),
                value,
            )
        })
}

pub fn cursor(name: &str, value: &str) -> Result<i64, ApiError> {
    value
        .parse()
        .ok()
        .filter(|n: &i64| *n > 0)
        .ok_or_else(|| bad(name, "must be the next_cursor of a previous page", value))
}

pub fn time(name: &str, value: &str) -> Result<Timestamp, ApiError> {
    Timestamp::parse_rfc3339(value).ok_or_else(|| {
        bad(
            name,
            "must be an RFC 3339 time like 2026-11-27T08:00:00Z",
            value,
        )
    })
}

/// Rows were fetched with one more than `limit`: drop it and return the cursor of the next
/// page, if there is one.
pub fn next_cursor<T>(rows: &mut Vec<(i64, T)>, limit: usize) -> Option<String> {
    if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|(seq, _)| seq.to_string())
    } else {
        None
    }
}
