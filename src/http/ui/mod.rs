//! Pages for people, rendered on the server from templates compiled into the binary.
//! Every page gets the same security headers; every form that changes something carries
//! the session's CSRF token.

mod assets;
mod forms;
mod login;
mod setup;

use std::sync::OnceLock;

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
    routing::get,
    Router,
};
use minijinja::{context, Environment, Value};

use super::{auth::Caller, AppState};
use crate::domain::token::Ability;

pub use forms::FormBody;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login::show).post(login::submit))
        .route("/logout", axum::routing::post(login::logout))
        .route("/setup/{code}", get(setup::show).post(setup::submit))
        .route(assets::CSS_ROUTE, get(assets::css))
}

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("templates/layout.html")),
    ("login.html", include_str!("templates/login.html")),
    ("setup.html", include_str!("templates/setup.html")),
    ("message.html", include_str!("templates/message.html")),
    ("home.html", include_str!("templates/home.html")),
];

/// The templates, parsed once. HTML auto-escaping applies (names end in `.html`).
fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("template {name} does not parse: {e}"));
        }
        env
    })
}

/// What every page's layout needs: who is looking, the CSRF token, the stylesheet.
pub fn base_context(caller: Option<&Caller>) -> Value {
    let me = caller.and_then(Caller::user).map(|u| {
        context! { name => &u.name, email => &u.email, role => u.role.as_str() }
    });
    context! {
        me => me,
        csrf => caller.and_then(Caller::csrf_token),
        css_url => assets::css_url(),
    }
}

/// Renders a page with `status`. A template error is a bug: logged, and a plain 500.
pub fn render(status: StatusCode, name: &str, base: Value, page: Value) -> Response {
    let ctx = context! { ..base, ..page };
    match environment().get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(template = name, error = ?e, "page could not be rendered");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// A page that only says something, with an optional way on.
pub fn message(
    status: StatusCode,
    caller: Option<&Caller>,
    title: &str,
    text: &str,
    link: Option<(&str, &str)>,
) -> Response {
    let link = link.map(|(href, text)| context! { href => href, text => text });
    render(
        status,
        "message.html",
        base_context(caller),
        context! { title => title, message => text, link => link },
    )
}

/// Where a person who is not logged in goes: the login page, then back here.
pub fn to_login(path: &str) -> Response {
    let next: String = url::form_urlencoded::byte_serialize(path.as_bytes()).collect();
    Redirect::to(&format!("/login?next={next}")).into_response()
}

async fn home(state: axum::extract::State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let caller = match super::auth::authenticate(&headers, &state).await {
        Ok(Some(caller @ Caller::User { .. })) => caller,
        _ => return to_login("/"),
    };
    let user = caller.user().expect("a person");
    let abilities: Vec<&str> = [
        (
            Ability::Read,
            "See webhooks, their delivery logs, users and the audit log",
        ),
        (
            Ability::ManageWebhooks,
            "Create, change, disable and delete webhooks",
        ),
        (
            Ability::Admin,
            "Invite people, change roles, and manage API tokens",
        ),
    ]
    .into_iter()
    .filter(|(a, _)| caller.allows(*a))
    .map(|(_, text)| text)
    .collect();
    render(
        StatusCode::OK,
        "home.html",
        base_context(Some(&caller)),
        context! {
            title => "Home",
            role_description => user.role.description(),
            abilities => abilities,
        },
    )
}

/// Headers every answer carries: pages may not be framed, scripts come only from here and
/// never inline, and nothing is sniffed.
pub async fn security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name, value: &'static str| {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "same-origin");
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses_and_escapes_html() {
        let env = environment();
        for (name, _) in TEMPLATES {
            env.get_template(name).expect(name);
        }
        let page = env
            .get_template("message.html")
            .unwrap()
            .render(context! { title => "<b>x</b>", message => "a & b", css_url => "/c.css" })
            .unwrap();
        assert!(
            page.contains("&lt;b&gt;x") && !page.contains("<b>"),
            "{page}"
        );
        assert!(page.contains("a &amp; b"));
    }
}
