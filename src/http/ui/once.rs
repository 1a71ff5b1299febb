//! A value shown once after the POST that made it — a new token, a setup link, a rotated
//! secret. The POST seals it (with the installation's key, so any node can open it) into a
//! short-lived cookie and redirects (303); the page it lands on shows it and clears the
//! cookie. A reload then neither repeats the POST (a second token, a second rotation) nor
//! shows the value again.

use axum::{
    http::{header, HeaderMap, HeaderValue},
    response::{IntoResponse, Response},
};
use cookie::{time::Duration as CookieDuration, SameSite};
use serde_json::{json, Value};

use crate::{
    domain::Timestamp,
    http::{auth::Caller, cookies, AppState},
};

const COOKIE: &str = "tocsin_once";
/// Where its seal says it belongs (a sealed value opens only in its own place).
const PLACE: &str = "ui.once";
/// Long enough for the redirect to be followed, short enough to be gone soon after.
const LIFETIME: CookieDuration = CookieDuration::seconds(120);

/// Redirects `caller` to `to` carrying `value` (of `kind`) for that page to show once. The
/// seal names the person and the time: a copied cookie opens for no one else, and not later.
pub fn redirect(state: &AppState, caller: &Caller, to: &str, kind: &str, value: Value) -> Response {
    let sealed = state.sealer.seal(
        PLACE,
        &json!({
            "kind": kind,
            "value": value,
            "user": person_of(caller),
            "at": Timestamp::now().as_micros(),
        })
        .to_string(),
    );
    let mut response = super::redirect(to).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, cookie(state, &sealed, LIFETIME));
    response
}

/// The value of `kind` this browser was sent here with, if it is `caller`'s and fresh; pass
/// the page that shows it through [`finish`].
pub fn take(state: &AppState, headers: &HeaderMap, caller: &Caller, kind: &str) -> Option<Value> {
    let sealed = cookies::value(headers, COOKIE)?;
    let opened: Value = serde_json::from_str(&state.sealer.open(PLACE, &sealed).ok()?).ok()?;
    let age = Timestamp::now().as_micros() - opened["at"].as_i64()?;
    let fresh = (0..=LIFETIME.whole_microseconds() as i64).contains(&age);
    (opened["kind"] == kind && opened["user"] == person_of(caller) && fresh)
        .then(|| opened["value"].clone())
}

/// Whose a value is: the person's id (pages are for people).
fn person_of(caller: &Caller) -> String {
    caller.user().map(|u| u.id.clone()).unwrap_or_default()
}

/// Ends the cookie on `response` (the value has been shown).
/// The page `response`, ending the cookie when it showed the value (`shown`).
pub fn finish(state: &AppState, mut response: Response, shown: bool) -> Response {
    if shown {
        response
            .headers_mut()
            .append(header::SET_COOKIE, cookie(state, "", CookieDuration::ZERO));
    }
    response
}

fn cookie(state: &AppState, value: &str, max_age: CookieDuration) -> HeaderValue {
    cookies::set(state, COOKIE, value, "/", SameSite::Strict, max_age)
}
