//! The cookies tocsin sets and reads (the session, the login and setup forms' pairs, the
//! show-once value), made one way: HttpOnly, Secure when people reach tocsin over https.

use axum::http::{header, HeaderMap, HeaderValue};
use cookie::{time::Duration, Cookie, SameSite};

use super::AppState;

/// The value of the cookie `name` the request carries.
pub fn value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// A `Set-Cookie` value: `name=value` for `path`, kept `max_age` (zero ends it).
pub fn set(
    state: &AppState,
    name: &'static str,
    value: &str,
    path: &'static str,
    same_site: SameSite,
    max_age: Duration,
) -> HeaderValue {
    let cookie = Cookie::build((name, value.to_owned()))
        .path(path)
        .http_only(true)
        .same_site(same_site)
        .secure(state.config.public_url().starts_with("https://"))
        .max_age(max_age)
        .build();
    HeaderValue::from_str(&cookie.to_string()).expect("cookie text is a valid header")
}
