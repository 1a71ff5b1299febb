//! Pages for people, rendered on the server from templates compiled into the binary.
//! Every page gets the same security headers; every form that changes something carries
//! the session's CSRF token.

mod assets;
mod audit;
mod directory;
mod form_token;
mod forms;
mod incidents;
mod log_retry;
mod login;
mod logs;
mod once;
mod overview;
mod page_error;
mod settings;
mod setup;
mod source_form;
mod source_preview;
mod source_setup;
mod sources;
mod tokens;
mod users;
mod webhook_body;
mod webhook_form;
mod webhooks;

use crate::domain::ids::WebhookId;
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
pub use page_error::{OrPage, PageError, PageResult};

pub use forms::FormBody;

pub fn routes() -> Router<AppState> {
    use axum::routing::post;
    Router::new()
        .route("/", get(overview::show))
        .route("/login", get(login::show).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/setup/{code}", get(setup::show).post(setup::submit))
        .route("/webhooks", get(webhooks::list))
        .route(
            "/webhooks/new",
            get(webhook_form::new).post(webhook_form::create),
        )
        .route("/webhooks/preview", post(webhook_form::preview))
        .route("/webhooks/{id}", get(webhooks::open))
        .route("/webhooks/{id}/enabled", post(webhooks::set_enabled))
        .route(
            "/webhooks/{id}/filters/test",
            post(webhook_form::test_filter),
        )
        // Configure, Filters, Payload; the other tabs have routes of their own, which
        // take precedence over this one.
        .route(
            "/webhooks/{id}/{tab}",
            get(webhook_form::show).post(webhook_form::save),
        )
        .route("/webhooks/{id}/logs", get(logs::show))
        .route("/webhooks/{id}/logs/rows", get(logs::rows))
        .route("/webhooks/{id}/logs/retry", post(log_retry::retry))
        .route("/webhooks/{id}/logs/{delivery_id}", get(logs::detail))
        .route(
            "/webhooks/{id}/logs/{delivery_id}/resend",
            post(logs::resend),
        )
        .route("/webhooks/{id}/test", post(logs::send_test))
        .route(
            "/webhooks/{id}/settings",
            get(settings::show).post(settings::save),
        )
        .route("/webhooks/{id}/secret", post(settings::reveal_secret))
        .route("/webhooks/{id}/rotate-secret", post(settings::rotate))
        .route("/webhooks/{id}/delete", post(settings::delete))
        .route("/sources", get(sources::list))
        .route(
            "/sources/new",
            get(source_form::new).post(source_form::create),
        )
        .route("/sources/preview", post(source_preview::preview))
        .route(
            "/sources/{id}",
            get(source_form::show).post(source_form::save),
        )
        .route("/sources/{id}/enabled", post(sources::set_enabled))
        .route("/sources/{id}/rotate-token", post(source_form::rotate))
        .route("/sources/{id}/delete", post(source_form::delete))
        .route("/sources/{id}/receipts", get(sources::receipts))
        .route("/sources/{id}/receipts/{receipt_id}", get(sources::receipt))
        .route("/directory", post(directory::declare))
        .route("/incidents", get(incidents::list))
        .route("/incidents/{incident_id}", get(incidents::show))
        .route("/incidents/{incident_id}/send", post(incidents::send))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}/revoke", post(tokens::revoke))
        .route("/users", get(users::list).post(users::invite))
        .route("/users/{id}/role", post(users::set_role))
        .route("/users/{id}/disabled", post(users::set_disabled))
        .route("/users/{id}/reset-password", post(users::reset_password))
        .route("/users/{id}/unlock", post(users::unlock))
        .route("/users/{id}/delete", post(users::delete))
        .route("/audit", get(audit::show))
        .route(assets::ROUTE, get(assets::serve))
        .route("/favicon.ico", get(assets::favicon))
}

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("templates/layout.html")),
    ("login.html", include_str!("templates/login.html")),
    ("setup.html", include_str!("templates/setup.html")),
    ("message.html", include_str!("templates/message.html")),
    (
        "confirm_off.html",
        include_str!("templates/confirm_off.html"),
    ),
    ("overview.html", include_str!("templates/overview.html")),
    ("webhooks.html", include_str!("templates/webhooks.html")),
    (
        "webhook_tabs.html",
        include_str!("templates/webhook_tabs.html"),
    ),
    (
        "webhook_form.html",
        include_str!("templates/webhook_form.html"),
    ),
    (
        "filter_rows.html",
        include_str!("templates/filter_rows.html"),
    ),
    ("preview.html", include_str!("templates/preview.html")),
    (
        "filter_test.html",
        include_str!("templates/filter_test.html"),
    ),
    ("logs.html", include_str!("templates/logs.html")),
    ("log_rows.html", include_str!("templates/log_rows.html")),
    ("log_macros.html", include_str!("templates/log_macros.html")),
    ("log_detail.html", include_str!("templates/log_detail.html")),
    (
        "test_result.html",
        include_str!("templates/test_result.html"),
    ),
    ("settings.html", include_str!("templates/settings.html")),
    ("secret.html", include_str!("templates/secret.html")),
    ("incidents.html", include_str!("templates/incidents.html")),
    ("incident.html", include_str!("templates/incident.html")),
    (
        "directory_added.html",
        include_str!("templates/directory_added.html"),
    ),
    ("tokens.html", include_str!("templates/tokens.html")),
    ("users.html", include_str!("templates/users.html")),
    ("audit.html", include_str!("templates/audit.html")),
    ("sources.html", include_str!("templates/sources.html")),
    (
        "source_kinds.html",
        include_str!("templates/source_kinds.html"),
    ),
    (
        "source_form.html",
        include_str!("templates/source_form.html"),
    ),
    (
        "source_tabs.html",
        include_str!("templates/source_tabs.html"),
    ),
    (
        "source_setup.html",
        include_str!("templates/source_setup.html"),
    ),
    (
        "source_preview.html",
        include_str!("templates/source_preview.html"),
    ),
    (
        "source_receipts.html",
        include_str!("templates/source_receipts.html"),
    ),
    (
        "source_receipt.html",
        include_str!("templates/source_receipt.html"),
    ),
];

/// The templates, parsed once. HTML auto-escaping applies (names end in `.html`).
fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // A path segment, percent-encoded (ids from events may contain anything).
        env.add_filter("urlencode_path", |text: String| -> String {
            text.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect()
        });
        // An attempt's duration, whole milliseconds: "0 ms" would read as not timed at all.
        env.add_filter("millis", |ms: u64| -> String {
            match ms {
                0 => "under 1 ms".to_owned(),
                ms => format!("{ms} ms"),
            }
        });
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("template {name} does not parse: {e}"));
        }
        env
    })
}

/// What every page's layout needs: who is looking (and what they may do), the CSRF
/// token, the assets.
pub fn base_context(caller: Option<&Caller>) -> Value {
    let me = caller.and_then(Caller::user).map(|u| {
        context! {
            name => &u.name,
            email => &u.email,
            role => u.role.as_str(),
            admin => u.role.allows(Ability::Admin),
            manage => u.role.allows(Ability::ManageWebhooks),
        }
    });
    context! {
        me => me,
        csrf => caller.and_then(Caller::csrf_token),
        assets => context! {
            css => assets::url("tocsin", "css"),
            js => assets::url("tocsin", "js"),
            htmx => assets::url("htmx", "js"),
            icon => assets::url("icon", "svg"),
        },
    }
}

/// A logged-in person looking at a page. Anyone else is sent to the login page (and back
/// afterwards); pages are for people, not API tokens.
pub struct Person(pub Caller);

impl axum::extract::FromRequestParts<AppState> for Person {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Response> {
        match super::auth::authenticate(&parts.headers, state).await {
            Ok(Some(caller @ Caller::User { .. })) => {
                match state.rate_limits.take(&caller, false) {
                    Ok(()) => Ok(Person(caller)),
                    // Pages spend the same budgets as the API: the person's, their organization's.
                    Err(wait) => {
                        let mut page = message(
                        StatusCode::TOO_MANY_REQUESTS,
                        Some(&caller),
                        "Too many requests",
                        &format!("You, or your organization, sent more requests than tocsin takes at once. Wait {wait} s and try again."),
                        None,
                    );
                        page.headers_mut()
                            .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(wait));
                        Err(page)
                    }
                }
            }
            _ => {
                let path = parts
                    .uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_owned();
                // Background requests (htmx) cannot follow a redirect to a form.
                if parts.headers.contains_key("hx-request") {
                    let mut r = StatusCode::UNAUTHORIZED.into_response();
                    r.headers_mut()
                        .insert("hx-redirect", HeaderValue::from_static("/login"));
                    return Err(r);
                }
                Err(to_login(&path))
            }
        }
    }
}

impl Person {
    pub fn caller(&self) -> &Caller {
        &self.0
    }

    /// A form that changes something must carry this session's CSRF token, as the
    /// `csrf_token` field or (htmx) the `X-CSRF-Token` header.
    pub fn verify(
        &self,
        headers: &axum::http::HeaderMap,
        form: &FormBody,
    ) -> Result<(), PageError> {
        let presented = headers
            .get(super::auth::CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .or(Some(form.get("csrf_token")).filter(|t| !t.is_empty()));
        self.0.check_csrf(presented).map_err(|_| {
            let mut page = message(
                StatusCode::FORBIDDEN,
                Some(&self.0),
                "Nothing was changed",
                "The form was stale or came from another site (its security token did not match). Reload the page and try again.",
                Some(("/", "Overview")),
            );
            page.extensions_mut()
                .insert(super::error::RefusedBecause {
                    action: "csrf.refused",
                    reason: "a form posted without its page's CSRF token".to_owned(),
                });
            PageError::from(page)
        })
    }

    /// A write: the CSRF token is checked, then that the role allows `ability` (else the
    /// page says `what` is not allowed).
    pub fn permit(
        &self,
        headers: &axum::http::HeaderMap,
        form: &FormBody,
        ability: Ability,
        what: &str,
    ) -> Result<(), PageError> {
        self.verify(headers, form)?;
        if self.0.allows(ability) {
            Ok(())
        } else {
            Err(self.refuse(what).into())
        }
    }

    /// The person's organization's webhook `id`, or the page that says it is not there.
    pub async fn webhook(
        &self,
        state: &AppState,
        id: &WebhookId,
    ) -> Result<crate::domain::webhook::Webhook, PageError> {
        state.webhook(&self.0, id).await.or_page(&self.0)
    }

    /// Saves webhook `id` from its API body as this person: refused as the API refuses (an
    /// invalid field, a role without `manage-webhooks`), which the forms show in place.
    pub async fn update_webhook(
        &self,
        state: &AppState,
        id: &WebhookId,
        body: &serde_json::Value,
    ) -> Result<crate::domain::webhook::Webhook, super::error::ApiError> {
        Ok(state.webhook_editor(&self.0)?.update(id, body).await?)
    }

    /// A write to webhook `id`: the CSRF token checked, then the webhook looked up.
    pub async fn webhook_to_change(
        &self,
        state: &AppState,
        headers: &axum::http::HeaderMap,
        form: &FormBody,
        id: &WebhookId,
    ) -> Result<crate::domain::webhook::Webhook, PageError> {
        self.verify(headers, form)?;
        self.webhook(state, id).await
    }

    /// The page that says the person's role does not allow an action.
    pub fn refuse(&self, what: &str) -> Response {
        let role = self.0.user().map_or("", |u| u.role.as_str());
        let mut page = message(
            StatusCode::FORBIDDEN,
            Some(&self.0),
            "Not allowed",
            &format!("Your role ({role}) does not allow {what}. Ask an admin."),
            Some(("/", "Overview")),
        );
        page.extensions_mut().insert(super::error::RefusedBecause {
            action: "access.refused",
            reason: format!("the role {role} does not allow {what}"),
        });
        page
    }
}

/// An API error shown as a page.
pub fn error_page(caller: &Caller, e: super::error::ApiError) -> Response {
    let status = e.status();
    let because = match &e {
        super::error::ApiError::Forbidden(reason) => Some(reason.clone()),
        _ => None,
    };
    let title = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::INTERNAL_SERVER_ERROR => "Something went wrong",
        _ => "That did not work",
    };
    let mut page = message(
        status,
        Some(caller),
        title,
        &e.to_string(),
        Some(("/webhooks", "Webhooks")),
    );
    if let Some(reason) = because {
        page.extensions_mut().insert(super::error::RefusedBecause {
            action: "access.refused",
            reason,
        });
    }
    page
}

/// A time as pages show it: `2026-11-27 08:00` (UTC).
/// Which of `urls` have their circuit open anywhere in the cluster (the store's rows, by
/// the hash of each URL): a page served by a node that never called a dead URL still says so.
pub async fn open_urls(
    state: &AppState,
    urls: &[&str],
) -> Result<std::collections::BTreeSet<String>, crate::store::StoreError> {
    let open: std::collections::HashSet<String> = state
        .store
        .open_circuits()
        .await?
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    if open.is_empty() {
        return Ok(Default::default());
    }
    Ok(urls
        .iter()
        .filter(|url| open.contains(&crate::domain::delivery::url_key(url)))
        .map(|url| (*url).to_owned())
        .collect())
}

pub fn short_time(t: Option<crate::domain::Timestamp>) -> Option<String> {
    t.map(|t| t.to_rfc3339()[..16].replace('T', " "))
}

/// Messages shown once after a change, chosen by `?done=` (never free text from the URL).
pub fn flash(query: Option<&str>) -> Option<&'static str> {
    let done = super::extract::query_pairs(query)
        .into_iter()
        .find(|(k, _)| k == "done")?
        .1;
    Some(match done.as_str() {
        "created" => "Webhook created. Its signing secret is on the Settings tab.",
        "saved" => "Saved.",
        "deleted" => "Webhook deleted.",
        "rotated" => "Signing secret rotated: receivers must use the new one.",
        "resent" => "Sent again as a new delivery.",
        "tested" => "Test sent: its deliveries are at the top of the list, marked test.",
        "sent" => "Sent to the webhook.",
        "revoked" => "Token revoked.",
        "updated" => "User updated.",
        "unlocked" => "Unlocked: they may log in again now.",
        "source-deleted" => "Source deleted: its URL takes nothing any more.",
        "user-deleted" => "User deleted: their sessions ended and the API tokens they made are revoked.",
        "retrying" => "Retrying: the finished deliveries these filters match are pending again and go out oldest first; the rows follow live.",
        "turned-on" => "Turned on. Its cancelled deliveries are below — turning it off cancelled what was pending: “Retry these” sends them again.",
        _ => return None,
    })
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

/// A path on this server that is safe to send a browser to: it starts with one `/` (not
/// `//` or `/\`, which browsers read as another host) and holds no control characters,
/// white space or backslashes (`/\t/host/` is `//host/` once a browser drops the tab, and CR
/// or LF cannot be in a `Location` header at all).
pub fn local_path(text: &str) -> Option<&str> {
    let mut chars = text.chars();
    let starts_well = chars.next() == Some('/') && !matches!(chars.next(), Some('/' | '\\'));
    let clean = !text
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\');
    (starts_well && clean).then_some(text)
}

/// A redirect to `to` when it is a [`local_path`], else to the overview: a target built from
/// an address (an id with CR or LF in it) never becomes a 500.
pub fn redirect(to: &str) -> Redirect {
    Redirect::to(local_path(to).unwrap_or("/"))
}

/// Where a person who is not logged in goes: the login page, then back here.
pub fn to_login(path: &str) -> Response {
    let next: String = url::form_urlencoded::byte_serialize(path.as_bytes()).collect();
    redirect(&format!("/login?next={next}")).into_response()
}

/// Refuses an address whose path or query holds an encoded NUL (`%00`), the only way one
/// can appear in a URI, with a 400 that says so. Path parameters and filters are looked up
/// in the store, and PostgreSQL refuses NUL in text: without this, `…/whk%00x` was a 500 on
/// PostgreSQL (a misleading 404 on SQLite). API addresses (`/v…`) get the JSON error, pages
/// a page.
pub async fn refuse_nul_in_address(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use super::extract::HOLDS_NUL;
    let Some(address) = request.uri().path_and_query() else {
        return next.run(request).await;
    };
    if !address.as_str().contains("%00") {
        return next.run(request).await;
    }
    if request.uri().path().starts_with("/v") {
        return super::error::ApiError::BadRequest(format!("the address {HOLDS_NUL}"))
            .into_response();
    }
    // The person's navigation, as on every page.
    let caller = super::auth::authenticate(request.headers(), &state)
        .await
        .ok()
        .flatten();
    message(
        axum::http::StatusCode::BAD_REQUEST,
        caller.as_ref(),
        "This address cannot be read",
        &format!("The address {HOLDS_NUL}."),
        Some(("/", "Overview")),
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
    // Pages and answers can show a new token, a setup link or a secret: never kept by a
    // browser or a proxy. Assets set their own (immutable) caching first.
    set(headers, header::CACHE_CONTROL, "no-store");
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_local_paths_are_redirected_to() {
        for good in [
            "/",
            "/webhooks",
            "/webhooks/wh_1/logs?state=failed",
            "/a/%09/b",
        ] {
            assert_eq!(local_path(good), Some(good), "{good:?}");
        }
        for bad in [
            "",
            "webhooks",
            "//evil.example/",
            "/\\evil.example",
            "/\t/evil.example/",
            "/\r\nSet-Cookie: x=1",
            "/a b",
            "https://evil.example/",
            "/a\\b",
            "/\u{0}",
        ] {
            assert_eq!(local_path(bad), None, "{bad:?}");
        }
        let to = |r: Redirect| {
            r.into_response().headers()[header::LOCATION]
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(to(redirect("/webhooks/a\r\nb/logs")), "/");
        assert_eq!(to(redirect("/webhooks")), "/webhooks");
    }

    #[test]
    fn every_template_parses_and_escapes_html() {
        let env = environment();
        for (name, _) in TEMPLATES {
            env.get_template(name).expect(name);
        }
        let page = env
            .get_template("message.html")
            .unwrap()
            .render(context! { title => "<b>x</b>", message => "a & b", ..base_context(None) })
            .unwrap();
        assert!(
            page.contains("&lt;b&gt;x") && !page.contains("<b>"),
            "{page}"
        );
        assert!(page.contains("a &amp; b"));
    }

    #[test]
    fn durations_under_a_millisecond_say_so() {
        let env = environment();
        let render = |ms: u64| {
            env.render_str("{{ ms | millis }}", context! { ms => ms })
                .unwrap()
        };
        assert_eq!(render(0), "under 1 ms");
        assert_eq!(render(1), "1 ms");
        assert_eq!(render(1250), "1250 ms");
        let panel = env
            .get_template("test_result.html")
            .unwrap()
            .render(context! {
                event_type => "incident.triggered",
                results => vec![context! { succeeded => true, method => "POST",
                    url => "https://r.example/h", status => 200, duration_ms => 0 }],
            })
            .unwrap();
        assert!(
            panel.contains("under 1 ms") && !panel.contains(">0 ms"),
            "{panel}"
        );
    }
}
