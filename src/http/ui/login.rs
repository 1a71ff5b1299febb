//! `/login` and `/logout`: a person's session, held in the `tocsin_session` cookie.

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, RawQuery, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use cookie::{time::Duration as CookieDuration, SameSite};
use minijinja::context;

use super::{base_context, form_token, render, FormBody};
use crate::{
    accounts::{self, LoginError},
    domain::session::ABSOLUTE_TIMEOUT,
    http::{
        auth::{authenticate, Caller, SESSION_COOKIE},
        extract::query_pairs,
        AppState,
    },
};

/// Only paths on this server are followed after login: `next=https://evil/` is ignored.
fn safe_next(query: Option<&str>) -> Option<String> {
    query_pairs(query)
        .into_iter()
        .find(|(k, _)| k == "next")
        .map(|(_, v)| v)
        .filter(|v| super::local_path(v).is_some())
}

fn next_query(next: Option<&str>) -> String {
    next.map(|n| {
        let encoded: String = url::form_urlencoded::byte_serialize(n.as_bytes()).collect();
        format!("?next={encoded}")
    })
    .unwrap_or_default()
}

fn login_page(
    state: &AppState,
    status: StatusCode,
    email: &str,
    error: Option<&str>,
    next: Option<&str>,
) -> Response {
    let token = form_token::new_token();
    let mut response = render(
        status,
        "login.html",
        base_context(None),
        context! {
            title => "Log in",
            email => email,
            error => error,
            next_query => next_query(next),
            login_token => &token,
        },
    );
    form_token::attach(state, &mut response, &form_token::LOGIN, &token);
    response
}

pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let next = safe_next(query.as_deref());
    if let Ok(Some(Caller::User { .. })) = authenticate(&headers, &state).await {
        return super::redirect(next.as_deref().unwrap_or("/")).into_response();
    }
    login_page(&state, StatusCode::OK, "", None, next.as_deref())
}

/// The session cookie: HttpOnly, SameSite=Lax, Secure when people reach tocsin over https,
/// kept by the browser no longer than the session's absolute lifetime.
pub fn session_cookie(state: &AppState, value: &str, max_age: CookieDuration) -> HeaderValue {
    crate::http::cookies::set(state, SESSION_COOKIE, value, "/", SameSite::Lax, max_age)
}

/// Starts a session for a person and sends them on.
pub fn signed_in(state: &AppState, secret: &str, to: &str) -> Response {
    let max_age = CookieDuration::seconds(ABSOLUTE_TIMEOUT.as_secs() as i64);
    let mut response = super::redirect(to).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(state, secret, max_age));
    response
}

pub async fn submit(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    form: FormBody,
) -> Response {
    let next = safe_next(query.as_deref());
    let email = form.get("email").trim().to_owned();
    if !form_token::matches(&headers, &form, &form_token::LOGIN) {
        return login_page(
            &state,
            StatusCode::FORBIDDEN,
            &email,
            Some("This form was stale or came from another site. Log in again here."),
            next.as_deref(),
        );
    }
    // Behind a reverse proxy every person shares its address: the proxy says whose it is.
    let client = crate::http::client_address::client_address(
        client.ip(),
        &headers,
        &state.config.http.trusted_proxies,
    );
    let result = accounts::login(
        state.store.as_ref(),
        &email,
        form.get("password"),
        Some(client),
    )
    .await;
    match result {
        Ok((secret, user)) => {
            tracing::info!(user = %user.id, "logged in");
            signed_in(&state, &secret, next.as_deref().unwrap_or("/"))
        }
        Err(e @ LoginError::Invalid) => {
            crate::http::refusals::login_failed(&state, &email, client, "wrong email or password")
                .await;
            login_page(
                &state,
                StatusCode::UNAUTHORIZED,
                &email,
                Some(&e.to_string()),
                next.as_deref(),
            )
        }
        Err(LoginError::Throttled(wait)) => {
            crate::http::refusals::login_failed(
                &state,
                &email,
                client,
                "refused without a look at the password: too many failed logins for this email",
            )
            .await;
            let text = LoginError::Throttled(wait).to_string();
            let mut response = login_page(
                &state,
                StatusCode::TOO_MANY_REQUESTS,
                &email,
                Some(&text),
                next.as_deref(),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs()));
            response
        }
        Err(e @ LoginError::Busy) => {
            let mut response = login_page(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                &email,
                Some(&e.to_string()),
                next.as_deref(),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(2u64));
            response
        }
        Err(LoginError::Store(e)) => {
            tracing::error!(error = %e, "login failed");
            login_page(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                &email,
                Some("tocsin cannot reach its database right now; try again in a moment"),
                next.as_deref(),
            )
        }
    }
}

/// Ends this session (CSRF-checked) and forgets the cookie.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap, form: FormBody) -> Response {
    let caller = authenticate(&headers, &state).await;
    if let Ok(Some(caller @ Caller::User { .. })) = &caller {
        if caller.check_csrf(Some(form.get("csrf_token"))).is_err() {
            return super::message(
                StatusCode::FORBIDDEN,
                Some(caller),
                "Not logged out",
                "The form was stale or came from another site. Reload the page and try again.",
                Some(("/", "Back")),
            );
        }
        if let Caller::User { session_secret, .. } = caller {
            let hash = crate::domain::session::hash_secret(session_secret);
            if let Err(e) = state.store.end_session(&hash).await {
                tracing::error!(error = %e, "could not end a session");
            }
        }
    }
    let mut response = super::redirect("/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(&state, "", CookieDuration::ZERO),
    );
    response
}
