//! `Authorization: Bearer <token>` → the calling token, scoped to its organization.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

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
        let hash = hash_token(presented);
        if let Some(token) = state.tokens.get(&hash) {
            return Ok(Caller { token });
        }
        let token = state
            .store
            .token_by_hash(&hash)
            .await?
            .filter(|t| t.revoked_at.is_none())
            .ok_or_else(|| ApiError::Unauthorized("unknown or revoked token".to_owned()))?;
        state.tokens.put(hash, token.clone());
        Ok(Caller { token })
    }
}

/// How long a token read from the store is trusted: a revocation (by the CLI, another
/// process) takes effect within this time, the same window the webhook catalog allows.
const TOKEN_FRESH: Duration = Duration::from_millis(100);
/// Past this many remembered tokens the cache starts afresh; memory stays bounded.
const TOKEN_CACHE_MAX: usize = 10_000;

/// Valid tokens recently read from the store, by hash. Without it every request would pay
/// a database read before any work; unknown and revoked tokens are never remembered.
#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<String, (ApiToken, Instant)>>,
}

impl TokenCache {
    fn get(&self, hash: &str) -> Option<ApiToken> {
        let entries = self.entries.lock().expect("token cache");
        entries
            .get(hash)
            .filter(|(_, read)| read.elapsed() < TOKEN_FRESH)
            .map(|(token, _)| token.clone())
    }

    fn put(&self, hash: String, token: ApiToken) {
        let mut entries = self.entries.lock().expect("token cache");
        if entries.len() >= TOKEN_CACHE_MAX {
            entries.clear();
        }
        entries.insert(hash, (token, Instant::now()));
    }
}
