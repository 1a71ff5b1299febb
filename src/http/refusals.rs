//! Refused actions written to the audit log: a signed-in caller refused for lack of an
//! ability (`access.refused`) or for a missing CSRF token (`csrf.refused`), a revoked or
//! expired token presented (`token.refused`), a failed login (`login.failed`, from the
//! login page). Each names who tried, what, and why — never what was submitted. At most
//! [`PER_MINUTE`] entries per actor and action a minute (a burst of ten), so a flood of
//! refusals cannot flood the log; the rest are only logged. Written off the answer's path.

use std::net::IpAddr;

use axum::{
    extract::{Request, State},
    http::{HeaderMap, Method, StatusCode},
    middleware::Next,
    response::Response,
};

use super::{auth, error::RefusedBecause, AppState};
use crate::domain::{
    audit::{self, Actor, AuditEntry, AuditObject},
    token::hash_token,
    Timestamp,
};

/// Entries per actor and action a minute, once the burst is spent.
pub const PER_MINUTE: f64 = 10.0;
const BURST: f64 = 10.0;

/// Records `entry` unless its actor has had too many of its kind lately.
pub fn record(state: &AppState, entry: AuditEntry) {
    let key = format!(
        "{}\n{}\n{}",
        entry.organization_id, entry.action, entry.actor.id
    );
    let allowed = state
        .rate_limits
        .refusals
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take_at_rate(&key, PER_MINUTE / 60.0, BURST, std::time::Instant::now())
        .is_ok();
    if !allowed {
        tracing::info!(action = entry.action, actor = ?entry.actor.name, "refused again; not audited (too many lately)");
        return;
    }
    let store = state.store.clone();
    tokio::spawn(async move {
        if let Err(e) = store.append_audit(&entry).await {
            tracing::warn!(error = %e, "could not audit a refused action");
        }
    });
}

/// A failed login, under the organization of the person whose email was tried (or the
/// installation's, for an email nobody has: recorded as "an unknown email", never as typed —
/// people type passwords into the email field, and anyone could write into the log), by
/// the address it came from.
pub async fn login_failed(state: &AppState, email: &str, client: IpAddr, reason: &str) {
    let email: String = email.chars().take(254).collect();
    let person = match state.store.login_candidates(&email).await {
        Ok(found) => found.into_iter().next().map(|(user, _)| user),
        Err(_) => None,
    };
    let (organization_id, object) = match person {
        Some(user) => (user.organization_id.clone(), audit::user_object(&user)),
        None => match state.store.installation_organization().await {
            Ok(Some(org)) => (
                org.id,
                AuditObject {
                    kind: "user",
                    id: String::new(),
                    name: "an unknown email".to_owned(),
                },
            ),
            _ => return,
        },
    };
    let actor = Actor::anonymous(client);
    record(
        state,
        audit::refused(&organization_id, &actor, "login.failed", object, reason),
    );
}

/// Audits what the API and the pages refused with 403, and revoked or expired tokens
/// refused with 401. The caller is read again, for refused calls only, from the two headers
/// that name it, kept aside (a cheap copy: most requests carry one of them).
pub async fn audit_refusals(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let mut headers = HeaderMap::new();
    for name in [
        axum::http::header::AUTHORIZATION,
        axum::http::header::COOKIE,
    ] {
        for value in request.headers().get_all(&name) {
            headers.append(name.clone(), value.clone());
        }
    }
    let response = next.run(request).await;
    match response.status() {
        StatusCode::FORBIDDEN => {
            let because = response.extensions().get::<RefusedBecause>().cloned();
            forbidden(&state, &method, &path, &headers, because).await;
        }
        StatusCode::UNAUTHORIZED => token_refused(&state, &method, &path, &headers).await,
        _ => {}
    }
    response
}

async fn forbidden(
    state: &AppState,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    because: Option<RefusedBecause>,
) {
    let Ok(Some(caller)) = auth::authenticate(headers, state).await else {
        return; // nobody signed in: the login page's own refusals are audited there
    };
    let because = because.unwrap_or(RefusedBecause {
        action: "access.refused",
        reason: "the page refused it (403)".to_owned(),
    });
    record(
        state,
        audit::refused(
            caller.organization_id(),
            &caller.actor(),
            because.action,
            audit::request_object(method.as_str(), path),
            &because.reason,
        ),
    );
}

async fn token_refused(state: &AppState, method: &Method, path: &str, headers: &HeaderMap) {
    let Some(presented) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(auth::bearer_token)
    else {
        return;
    };
    // An unknown token belongs to no organization: only logged.
    let Ok(Some(token)) = state.store.token_by_hash(&hash_token(presented)).await else {
        return;
    };
    let reason = if token.revoked_at.is_some() {
        "the token was revoked"
    } else if !token.usable_at(Timestamp::now()) {
        "the token expired"
    } else {
        return; // refused for another reason (a session's), not the token's
    };
    let actor = auth::Caller::Token(token.clone()).actor();
    record(
        state,
        audit::refused(
            &token.organization_id,
            &actor,
            "token.refused",
            audit::request_object(method.as_str(), path),
            reason,
        ),
    );
}
