//! API tokens as rows: their columns, and reading one with whether its person is still
//! there (used by the token statements of `config.rs` and the revocations of `accounts.rs`).

use sqlx::{any::AnyRow, Row};

use crate::{
    domain::{
        token::{Ability, ApiToken, TokenCreator},
        Timestamp,
    },
    store::{StoreError, StoreResult},
};

pub(super) const TOKEN_COLUMNS: &str =
    "id, organization_id, name, abilities, created_at, revoked_at, expires_at, last_used_at, created_by, created_by_email";

/// Tokens matching `condition` (on `t`), each with whether its person is disabled or gone.
pub(super) fn select_tokens(condition: &str) -> String {
    let columns: Vec<String> = TOKEN_COLUMNS
        .split(", ")
        .map(|c| format!("t.{c}"))
        .collect();
    format!(
        "SELECT {}, CAST(CASE WHEN t.created_by IS NOT NULL AND (u.id IS NULL OR u.disabled <> 0) THEN 1 ELSE 0 END AS BIGINT) AS orphaned \
         FROM api_tokens t LEFT JOIN users u ON u.id = t.created_by WHERE {condition}",
        columns.join(", ")
    )
}

/// A token read by [`select_tokens`]: one whose person is disabled or gone counts as
/// revoked, whatever raced with their disabling (a token made by their token in the same
/// moment, say).
pub(super) fn token_with_person(row: &AnyRow) -> StoreResult<ApiToken> {
    let mut token = token_from_row(row)?;
    let orphaned: i64 = row.try_get("orphaned")?;
    if orphaned != 0 && token.revoked_at.is_none() {
        token.revoked_at = Some(token.created_at);
    }
    Ok(token)
}

pub(super) fn token_from_row(row: &AnyRow) -> StoreResult<ApiToken> {
    let abilities: String = row.try_get("abilities")?;
    let created_by = match (
        row.try_get::<Option<String>, _>("created_by")?,
        row.try_get::<Option<String>, _>("created_by_email")?,
    ) {
        (Some(user_id), email) => Some(TokenCreator {
            user_id,
            email: email.unwrap_or_default(),
        }),
        (None, _) => None,
    };
    Ok(ApiToken {
        id: row.try_get("id")?,
        organization_id: row.try_get("organization_id")?,
        name: row.try_get("name")?,
        abilities: Ability::parse_list(&abilities).map_err(StoreError::Corrupt)?,
        created_at: Timestamp::from_micros(row.try_get("created_at")?),
        revoked_at: super::optional_time(row, "revoked_at")?,
        expires_at: super::optional_time(row, "expires_at")?,
        last_used_at: super::optional_time(row, "last_used_at")?,
        created_by,
    })
}
