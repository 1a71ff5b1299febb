//! Who is calling: an API token (`Authorization: Bearer …`, for machines) or a person's
//! browser session (the `tocsin_session` cookie). Either way the caller is scoped to one
//! organization and allowed what its abilities or role allow.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::{
    extract::FromRequestParts,
    http::{request::Parts, HeaderMap, Method},
};

use super::{error::ApiError, AppState};
use crate::domain::{
    audit::{Actor, ActorKind},
    session::{self, SessionCheck},
    token::{hash_token, looks_like_token, Ability, ApiToken},
    user::User,
    Timestamp,
};

pub const SESSION_COOKIE: &str = "tocsin_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The authenticated caller. Every handler that takes one is scoped to its organization.
#[derive(Debug, Clone)]
pub enum Caller {
    Token(ApiToken),
    /// A logged-in person; `session_secret` is the cookie's value, which the CSRF token is
    /// derived from.
    User {
        user: User,
        session_secret: String,
    },
}

impl Caller {
    pub fn allows(&self, ability: Ability) -> bool {
        match self {
            Caller::Token(token) => token.allows(ability),
            Caller::User { user, .. } => user.role.allows(ability),
        }
    }

    pub fn require(&self, ability: Ability) -> Result<(), ApiError> {
        if self.allows(ability) {
            return Ok(());
        }
        Err(ApiError::Forbidden(match self {
            Caller::Token(_) => format!("this token lacks the `{}` ability", ability.as_str()),
            Caller::User { user, .. } => format!(
                "your role ({}) does not allow this: it needs the `{}` ability; ask an admin",
                user.role.as_str(),
                ability.as_str()
            ),
        }))
    }

    pub fn organization_id(&self) -> &crate::domain::ids::OrganizationId {
        match self {
            Caller::Token(token) => &token.organization_id,
            Caller::User { user, .. } => &user.organization_id,
        }
    }

    /// Who the audit log says made a change.
    pub fn actor(&self) -> Actor {
        match self {
            Caller::Token(token) => Actor {
                kind: ActorKind::Token,
                id: token.id.clone(),
                name: token.name.clone(),
            },
            Caller::User { user, .. } => Actor {
                kind: ActorKind::User,
                id: user.id.clone(),
                name: user.email.clone(),
            },
        }
    }

    /// The person behind a token this caller makes: themselves, or a token's own person
    /// (so a token made by a token goes when that person does).
    pub fn token_creator(&self) -> Option<crate::domain::token::TokenCreator> {
        match self {
            Caller::Token(token) => token.created_by.clone(),
            Caller::User { user, .. } => Some(crate::domain::token::TokenCreator {
                user_id: user.id.clone(),
                email: user.email.clone(),
            }),
        }
    }

    pub fn user(&self) -> Option<&User> {
        match self {
            Caller::User { user, .. } => Some(user),
            Caller::Token(_) => None,
        }
    }

    /// The CSRF token pages carry, for a session.
    pub fn csrf_token(&self) -> Option<String> {
        match self {
            Caller::User { session_secret, .. } => Some(session::csrf_token(session_secret)),
            Caller::Token(_) => None,
        }
    }

    /// A write made with the cookie must carry its session's CSRF token (bearer tokens
    /// cannot be sent by another site, so they need none).
    pub fn check_csrf(&self, presented: Option<&str>) -> Result<(), ApiError> {
        match self {
            Caller::Token(_) => Ok(()),
            Caller::User { session_secret, .. } => presented
                .filter(|p| session::csrf_matches(session_secret, p))
                .map(|_| ())
                .ok_or(ApiError::Csrf),
        }
    }
}

/// Whether a request changes state (and so needs CSRF protection when made with a cookie).
pub fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The JSON API: bearer token or session; a session's writes need `X-CSRF-Token`.
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = authenticate(&parts.headers, state).await?.ok_or_else(|| {
            ApiError::Unauthorized(
                "missing token: send `Authorization: Bearer <token>`, or log in at /login"
                    .to_owned(),
            )
        })?;
        if is_write(&parts.method) {
            let presented = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            caller.check_csrf(presented)?;
        }
        state
            .rate_limits
            .take(&caller, parts.uri.path() == "/v3/events")
            .map_err(ApiError::TooManyRequests)?;
        Ok(caller)
    }
}

/// The caller the headers identify: `None` when they carry neither a token nor a session
/// cookie; an error for a bad token, and for a session that is unknown, expired or whose
/// user is disabled.
pub async fn authenticate(
    headers: &HeaderMap,
    state: &AppState,
) -> Result<Option<Caller>, ApiError> {
    if let Some(header) = headers.get(axum::http::header::AUTHORIZATION) {
        return token_caller(header, state).await.map(Some);
    }
    match session_cookie(headers) {
        Some(secret) => session_caller(secret, state).await.map(Some),
        None => Ok(None),
    }
}

/// The value of the session cookie, if the request has one.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    super::cookies::value(headers, SESSION_COOKIE)
}

/// The token in `Authorization: Bearer tocsin_…`, if the header has that shape (the
/// scheme is case-insensitive, RFC 9110 §11.1).
pub fn bearer_token(header: &axum::http::HeaderValue) -> Option<&str> {
    header
        .to_str()
        .ok()
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| looks_like_token(t))
}

async fn token_caller(
    header: &axum::http::HeaderValue,
    state: &AppState,
) -> Result<Caller, ApiError> {
    let presented = bearer_token(header).ok_or_else(|| {
        ApiError::Unauthorized(
            "malformed token: expected `Authorization: Bearer tocsin_…`".to_owned(),
        )
    })?;
    let hash = hash_token(presented);
    let now = Timestamp::now();
    let token = match state.tokens.get(&hash) {
        Some(token) => token,
        None => {
            let token = state
                .store
                .token_by_hash(&hash)
                .await?
                .filter(|t| t.revoked_at.is_none())
                .ok_or_else(|| ApiError::Unauthorized("unknown or revoked token".to_owned()))?;
            if token.due_for_use_record(now) {
                // Off the request's path: a lost update only makes last use look older.
                let store = state.store.clone();
                let id = token.id.clone();
                tokio::spawn(async move {
                    if let Err(e) = store.touch_token(&id, now).await {
                        tracing::warn!(error = %e, "could not record a token's last use");
                    }
                });
            }
            state.tokens.put(hash, token.clone());
            token
        }
    };
    if !token.usable_at(now) {
        return Err(ApiError::Unauthorized(format!(
            "token expired at {}: create a new one",
            token.expires_at.unwrap_or_default().to_rfc3339()
        )));
    }
    Ok(Caller::Token(token))
}

async fn session_caller(secret: String, state: &AppState) -> Result<Caller, ApiError> {
    let ended =
        || ApiError::Unauthorized("your session has ended: log in again at /login".to_owned());
    if !session::looks_like_secret(&secret) {
        return Err(ended());
    }
    let id_hash = session::hash_secret(&secret);
    let (session, user) = state.store.session(&id_hash).await?.ok_or_else(ended)?;
    let now = Timestamp::now();
    match session.check(now) {
        SessionCheck::Expired => {
            state.store.end_session(&id_hash).await?;
            return Err(ended());
        }
        SessionCheck::Valid { touch: true } => state.store.touch_session(&id_hash, now).await?,
        SessionCheck::Valid { touch: false } => {}
    }
    if user.disabled {
        return Err(ended());
    }
    Ok(Caller::User {
        user,
        session_secret: secret,
    })
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
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(hash)
            .filter(|(_, read)| read.elapsed() < TOKEN_FRESH)
            .map(|(token, _)| token.clone())
    }

    /// Forgets every token (one was revoked or changed somewhere): the next use reads again.
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn put(&self, hash: String, token: ApiToken) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= TOKEN_CACHE_MAX {
            entries.clear();
        }
        entries.insert(hash, (token, Instant::now()));
    }
}
