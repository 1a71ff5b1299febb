//! The CSRF defence of the forms posted before anyone is logged in (login, setup links):
//! there is no session to hold a token, so the page puts a random token both in the form
//! and in a cookie only that form's path sees (SameSite=Strict). A form posted by another
//! site has no matching pair, so nobody is logged into someone else's account unseen.

use axum::{
    http::{header, HeaderMap, HeaderValue},
    response::Response,
};
use cookie::{time::Duration as CookieDuration, Cookie, SameSite};

use super::FormBody;
use crate::http::AppState;

/// Which form a pair belongs to: its cookie's name and the path the cookie is sent to.
pub struct FormPair {
    cookie: &'static str,
    path: &'static str,
}

pub const LOGIN: FormPair = FormPair {
    cookie: "tocsin_login",
    path: "/login",
};
pub const SETUP: FormPair = FormPair {
    cookie: "tocsin_setup",
    path: "/setup",
};

/// The hidden field that carries the token in both forms.
pub const FIELD: &str = "login_token";

/// A new token for a form page (put it in the page, then [`attach`] it).
pub fn new_token() -> String {
    crate::domain::session::new_secret()
}

/// Sets the pair's cookie holding `token` on the page's response.
pub fn attach(state: &AppState, response: &mut Response, pair: &FormPair, token: &str) {
    let cookie = Cookie::build((pair.cookie, token.to_owned()))
        .path(pair.path)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.config.public_url().starts_with("https://"))
        .max_age(CookieDuration::hours(1))
        .build();
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie.to_string()).expect("cookie text is a valid header"),
    );
}

/// Whether the form's token matches the pair's cookie (compared in constant time).
pub fn matches(headers: &HeaderMap, form: &FormBody, pair: &FormPair) -> bool {
    let sent = form.get(FIELD);
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| Cookie::parse(c.trim().to_owned()).ok())
        .find(|c| c.name() == pair.cookie)
        .map(|c| c.value().to_owned());
    match cookie {
        Some(expected) if !sent.is_empty() && expected.len() == sent.len() => {
            expected
                .bytes()
                .zip(sent.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
        }
        _ => false,
    }
}
