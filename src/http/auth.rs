//! `Authorization: Bearer <token>` → the calling token, scoped to its organization.

use axum::{extract::FromRequestParts, http::request::Parts};

use super::{error::ApiError, AppState};
use crate::domain::token::{hash_token, looks_like_token, Ability, ApiToken};

/// The authenticated caller. Every handler that takes one is scoped to
/// `caller.token.organization_id`.
pub struct Caller {
    pub token: ApiToken,
}

impl Caller {
    pub fn require(&self, ability: Ability) -> Result<(), ApiError> {
        if self.token.allows(ability) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(ability.as_str()))
        }
    }

    pub fn organization_id(&self) -> &str {
        &self.token.organization_id
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "missing token: send `Authorization: Bearer <token>`".to_owned(),
                )
            })?;
        let presented = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| looks_like_token(t))
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "malformed token: expected `Authorization: Bearer tocsin_…`".to_owned(),
                )
            })?;
        let token = state
            .store
            .token_by_hash(&hash_token(presented))
            .await?
            .filter(|t| t.revoked_at.is_none())
            .ok_or_else(|| ApiError::Unauthorized("unknown or revoked token".to_owned()))?;
        Ok(Caller { token })
    }
}
