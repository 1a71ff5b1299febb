//! The CSRF defence of the forms posted before anyone is logged in (login, setup links):
//! there is no session to hold a token, so the page puts a random token both in the form
//! and in a cookie only that form's path sees (SameSite=Strict). A form posted by another
//! site has no matching pair, so nobody is logged into someone else's account unseen.

use axum::{
    http::{header, HeaderMap},
    response::Response,
};
use cookie::{time::Duration as CookieDuration, SameSite};

use super::FormBody;
use crate::http::{cookies, AppState};

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
    let cookie = cookies::set(
        state,
        pair.cookie,
        token,
        pair.path,
        SameSite::Strict,
        CookieDuration::hours(1),
    );
    response.headers_mut().append(header::SET_COOKIE, cookie);
}

/// Whether the form's token matches the pair's cookie (compared in constant time).
pub fn matches(headers: &HeaderMap, form: &FormBody, pair: &FormPair) -> bool {
    let sent = form.get(FIELD);
    match cookies::value(headers, pair.cookie) {
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
