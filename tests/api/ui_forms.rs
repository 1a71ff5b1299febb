//! The pages over plain HTTP, on both backends: CSRF on every form, errors next to their
//! fields, what a role may not do refused, masked credentials kept, send again, the
//! enabled switch, typed delete confirmation, assets and the services directory.

use reqwest::Method;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::receiver::{Receiver, Reply};
use crate::helpers::visitor::{person, Visitor};
use crate::helpers::{
    eventually, minimal_webhook, patched, spawn_app, spawn_app_with, Backend, TestApp,
};

const HOOKS: &str = "/v3/extensions/event-webhooks";

fn new_webhook_form<'a>(csrf: &'a str, name: &'a str, url: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf_token", csrf),
        ("name", name),
        ("version", "v2"),
        ("trigger_type", "automatic"),
        ("triggers", "incident.triggered"),
        ("urls[0].url", url),
        ("urls[0].method", "POST"),
        ("header[0].key", "Authorization"),
        ("header[0].value", "Bearer very-secret-value-9876"),
        ("filters.op", "and"),
        ("payload_kind", "standard"),
    ]
}

async fn event(app: &TestApp, incident: &str) {
    let body = json!({"type": "incident.triggered", "team": {"id": "t", "name": "Team T"},
        "incident": {"id": incident, "message": "m", "status": "triggered",
                     "service": {"id": "svc-1", "name": "Payments"}, "alert_source": {"id": "as-1", "type": "Grafana"}}});
    assert_eq!(
        app.owner(Method::POST, "/v3/events", Some(&body))
            .await
            .status,
        202
    );
}

async fn page_forms_need_csrf_and_show_errors_in_place(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    person(&app, "mo@example.com", "member").await;
    let mut v = Visitor::new(&app);
    let csrf = v.login_ok("mo@example.com").await;

    let mut no_token = new_webhook_form("", "x", "https://example.com/h");
    no_token.retain(|(k, _)| *k != "csrf_token");
    let refused = v.post_form("/webhooks/new", &no_token).await;
    assert_eq!(refused.status, 403);
    assert!(
        refused.text.contains("Nothing was changed"),
        "{}",
        refused.text
    );
    let wrong = v
        .post_form(
            "/webhooks/new",
            &new_webhook_form("AAAA", "x", "https://example.com/h"),
        )
        .await;
    assert_eq!(wrong.status, 403);
    assert_eq!(app.webhook_count().await, 0);

    // Errors come back next to their fields, with what was typed kept.
    let bad = v
        .post_form(
            "/webhooks/new",
            &new_webhook_form(&csrf, "", "ftp://files.example/x"),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert!(bad.text.contains("Nothing was saved"));
    assert!(
        bad.text.contains(r#"id="name-error""#),
        "the name's message sits by the name"
    );
    assert!(
        bad.text.contains(r#"id="urls[0].url-error""#),
        "{}",
        bad.text
    );
    assert!(
        bad.text.contains(r#"value="ftp://files.example/x""#),
        "the URL typed is kept"
    );
    assert_eq!(app.webhook_count().await, 0);

    // PostgreSQL's text cannot hold NUL: refused at the door on either backend.
    let nul = v
        .post_form(
            "/webhooks/new",
            &new_webhook_form(&csrf, "Pa\0ger", "https://example.com/h"),
        )
        .await;
    assert_eq!(nul.status, 400, "{}", nul.text);
    assert!(
        nul.text.contains("Nothing was saved")
            && nul
                .text
                .contains("The field &quot;name&quot; holds a NUL character"),
        "a page that names the field: {}",
        nul.text
    );
    assert!(
        nul.text.contains("Log out"),
        "the person's navigation, as on every page: {}",
        nul.text
    );
    assert_eq!(app.webhook_count().await, 0);
    // An address holding NUL: the same, on a page of its own.
    let address = v.get("/webhooks/whk%00x/logs").await;
    assert_eq!(address.status, 400, "{}", address.text);
    assert!(
        address.text.contains("cannot be read") && address.text.contains("Log out"),
        "{}",
        address.text
    );

    let ok = v
        .post_form(
            "/webhooks/new",
            &new_webhook_form(&csrf, "Pager", "https://example.com/h"),
        )
        .await;
    assert_eq!(ok.status, 303, "{}", ok.text);
    assert!(ok.location().ends_with("/settings?done=created"));
    assert_eq!(app.webhook_count().await, 1);

    // One rule for secrets: whoever may manage webhooks sees them on create and rotate, and
    // so on reveal too; each reveal leaves an audit entry.
    let id = ok.location().split('/').nth(2).unwrap().to_owned();
    let settings = v.get(&format!("/webhooks/{id}/settings")).await;
    assert!(settings.text.contains("Reveal secret"), "{}", settings.text);
    let secret = v
        .send(
            Method::POST,
            &format!("/webhooks/{id}/secret"),
            None,
            Some(&csrf),
        )
        .await;
    assert_eq!(secret.status, 200, "{}", secret.text);
    assert!(secret.text.contains("whsec_"));
    let audit = app
        .owner(
            Method::GET,
            "/v3/audit-logs?action=webhook.secret_revealed",
            None,
        )
        .await;
    assert_eq!(audit.status, 200, "{}", audit.body);
    let entries = audit.body["data"]["result"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{}", audit.body);
    assert_eq!(entries[0]["actor"]["name"], "mo@example.com");
    assert_eq!(entries[0]["object"]["id"], id.as_str());

    // A rotation redirects (a reload does not rotate again) to the page that shows the new
    // secret this once.
    let rotated = v
        .post_form(
            &format!("/webhooks/{id}/rotate-secret"),
            &[("csrf_token", &csrf), ("confirm", "yes"), ("grace", "3600")],
        )
        .await;
    assert_eq!(rotated.status, 303, "{}", rotated.text);
    let shown = v.follow(&rotated).await;
    assert!(
        shown
            .text
            .contains("The new secret. Give it to your receivers now")
            && shown.text.contains("whsec_"),
        "{}",
        shown.text
    );
    // And until when the old secret signs too.
    assert!(
        shown
            .text
            .contains("The previous secret still signs too, until"),
        "{}",
        shown.text
    );
    let again = v.get(&format!("/webhooks/{id}/settings")).await;
    assert!(!again.text.contains("The new secret"), "only once");
}

async fn viewers_are_refused_and_pages_need_a_login(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let hook = app.create_webhook(&minimal_webhook("existing")).await;
    let id = hook["id"].as_str().unwrap();
    person(&app, "val@example.com", "viewer").await;
    let mut v = Visitor::new(&app);
    let csrf = v.login_ok("val@example.com").await;
    let page = v.get("/webhooks").await;
    assert!(page.text.contains("existing") && !page.text.contains("/webhooks/new"));
    assert_eq!(v.get("/webhooks/new").await.status, 403);
    let tried = v
        .post_form(
            "/webhooks/new",
            &new_webhook_form(&csrf, "sneaky", "https://example.com/h"),
        )
        .await;
    assert_eq!(tried.status, 403, "{}", tried.text);
    let toggle = v
        .post_form(
            &format!("/webhooks/{id}/enabled"),
            &[("csrf_token", &csrf), ("enabled", "false")],
        )
        .await;
    assert_eq!(toggle.status, 403);
    let delete = v
        .post_form(
            &format!("/webhooks/{id}/delete"),
            &[("csrf_token", &csrf), ("confirm_name", "existing")],
        )
        .await;
    assert_eq!(delete.status, 403);
    let secret = v
        .send(
            Method::POST,
            &format!("/webhooks/{id}/secret"),
            None,
            Some(&csrf),
        )
        .await;
    assert_eq!(secret.status, 403, "{}", secret.text);
    assert!(!secret.text.contains("whsec_"));
    let settings = v.get(&format!("/webhooks/{id}/settings")).await;
    assert!(
        settings
            .text
            .contains("people who may manage webhooks can reveal or rotate it"),
        "a viewer is told who may: {}",
        settings.text
    );
    assert_eq!(v.get("/tokens").await.status, 403);
    let invite = v
        .post_form(
            "/users",
            &[
                ("csrf_token", &csrf),
                ("email", "x@example.com"),
                ("name", "X"),
                ("role", "admin"),
            ],
        )
        .await;
    assert_eq!(invite.status, 403);
    assert_eq!(app.webhook_count().await, 1);
    assert_eq!(
        app.owner(Method::GET, &format!("{HOOKS}/{id}"), None)
            .await
            .body["data"]["enabled"],
        true
    );

    // Without a session every page sends to the login page; an API token is no login.
    let anonymous = Visitor::new(&app)
        .get(&format!("/webhooks/{id}/logs"))
        .await;
    assert_eq!(anonymous.status, 303);
    assert!(
        anonymous
            .location()
            .starts_with("/login?next=%2Fwebhooks%2F"),
        "{}",
        anonymous.location()
    );
    let with_token = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/users", app.address))
        .bearer_auth(&app.owner_token)
        .send()
        .await
        .unwrap();
    assert_eq!(with_token.status().as_u16(), 303, "pages are for people");
}

async fn configure_keeps_masked_credentials_and_switches_work(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    person(&app, "kai@example.com", "admin").await;
    let mut v = Visitor::new(&app);
    let csrf = v.login_ok("kai@example.com").await;
    let url = receiver.url("/hook");
    let created = v
        .post_form("/webhooks/new", &new_webhook_form(&csrf, "Creds", &url))
        .await;
    let id = created.location().split('/').nth(2).unwrap().to_owned();

    // The Configure tab shows the credential masked; saving it unchanged keeps the secret.
    let form = v.get(&format!("/webhooks/{id}/configure")).await;
    assert!(
        form.text.contains("****9876") && !form.text.contains("very-secret"),
        "masked in the page"
    );
    let save = v
        .post_form(
            &format!("/webhooks/{id}/configure"),
            &[
                ("csrf_token", &csrf),
                ("name", "Creds renamed"),
                ("version", "v2"),
                ("trigger_type", "automatic"),
                ("triggers", "incident.triggered"),
                ("urls[0].url", &url),
                ("urls[0].method", "POST"),
                ("header[0].key", "Authorization"),
                ("header[0].value", "****9876"),
            ],
        )
        .await;
    assert_eq!(save.status, 303, "{}", save.text);
    event(&app, "inc-1").await;
    let got = receiver.wait_for("/hook", 1).await;
    assert_eq!(
        got[0].header("authorization"),
        "Bearer very-secret-value-9876"
    );

    // Send again: a new delivery with the same payload and a new webhook-id.
    let logs = app
        .owner(Method::GET, &format!("{HOOKS}/{id}/logs"), None)
        .await;
    let delivery = logs.body["data"]["result"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let again = v
        .post_form(
            &format!("/webhooks/{id}/logs/{delivery}/resend"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(again.status, 303);
    let got = receiver.wait_for("/hook", 2).await;
    assert_eq!(got[0].body, got[1].body, "the same payload bytes");
    assert_ne!(got[0].header("webhook-id"), got[1].header("webhook-id"));

    // The detail shows the payload and attempts; the secret is revealed on request.
    let detail = v.get(&format!("/webhooks/{id}/logs/{delivery}")).await;
    assert!(
        detail.text.contains("inc-1") && detail.text.contains("HTTP 200"),
        "{}",
        detail.text
    );
    let secret = v
        .send(
            Method::POST,
            &format!("/webhooks/{id}/secret"),
            None,
            Some(&csrf),
        )
        .await;
    assert_eq!(secret.status, 200);
    assert!(secret.text.contains("whsec_"));

    // The enabled switch goes through the API's update (confirmed: the resent delivery may
    // still count as pending).
    let off = v
        .post_form(
            &format!("/webhooks/{id}/enabled"),
            &[
                ("csrf_token", &csrf),
                ("enabled", "false"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(off.status, 303);
    let shown = app
        .owner(Method::GET, &format!("{HOOKS}/{id}"), None)
        .await
        .body["data"]
        .clone();
    assert_eq!(shown["enabled"], false);
    assert_eq!(shown["name"], "Creds renamed");
    // Its Logs tab says what still goes out.
    let logs = v.get(&format!("/webhooks/{id}/logs")).await;
    assert!(
        logs.text.contains("This webhook is off:") && logs.text.contains("still send once, now"),
        "{}",
        logs.text
    );

    // Delete needs the name typed.
    let wrong = v
        .post_form(
            &format!("/webhooks/{id}/delete"),
            &[("csrf_token", &csrf), ("confirm_name", "Creds")],
        )
        .await;
    assert_eq!(wrong.status, 422);
    assert!(wrong.text.contains("Type the webhook"), "{}", wrong.text);
    let gone = v
        .post_form(
            &format!("/webhooks/{id}/delete"),
            &[("csrf_token", &csrf), ("confirm_name", "Creds renamed")],
        )
        .await;
    assert_eq!(
        (gone.status, gone.location()),
        (303, "/webhooks?done=deleted")
    );
    assert_eq!(app.webhook_count().await, 0);
}

async fn services_are_learnt_from_events_and_declared(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    event(&app, "inc-9").await;
    let learnt = crate::helpers::eventually(
        "the event's service recorded",
        || async { app.owner(Method::GET, "/v3/services", None).await.body["data"].clone() },
        |d: &Value| d.as_array().is_some_and(|a| !a.is_empty()),
    )
    .await;
    assert_eq!(learnt[0]["id"], "svc-1");
    assert_eq!(learnt[0]["name"], "Payments");
    assert!(learnt[0]["last_seen"].is_string());
    let teams = crate::helpers::eventually(
        "teams and alert sources too",
        || async {
            (
                app.owner(Method::GET, "/v3/teams", None).await.body["data"].clone(),
                app.owner(Method::GET, "/v3/alert-sources", None).await.body["data"].clone(),
            )
        },
        |(t, a): &(Value, Value)| {
            t.as_array().is_some_and(|x| !x.is_empty())
                && a.as_array().is_some_and(|x| !x.is_empty())
        },
    )
    .await;
    assert_eq!(teams.0[0]["name"], "Team T");
    assert_eq!(teams.1[0]["name"], "Grafana");

    // A nameless mention never replaces a known name: not through this node (which knows
    // the name), nor written by another (whose cache is cold, as the store call here).
    let nameless = json!({"type": "incident.triggered", "team": {"id": "t"},
        "incident": {"id": "inc-nameless", "message": "m", "status": "triggered",
                     "service": {"id": "svc-1"}, "alert_source": {"id": "as-1"}}});
    assert_eq!(
        app.owner(Method::POST, "/v3/events", Some(&nameless))
            .await
            .status,
        202
    );
    let org = app.organization().await;
    app.store
        .observe_directory(
            &org.id,
            &[tocsin::domain::directory::Entry {
                kind: tocsin::domain::directory::Kind::Service,
                id: "svc-1".into(),
                name: "svc-1".into(),
                named: false,
                last_seen: Some(tocsin::domain::Timestamp::now()),
            }],
        )
        .await
        .unwrap();
    let services = app.owner(Method::GET, "/v3/services", None).await.body["data"].clone();
    let svc1 = services
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "svc-1")
        .unwrap();
    assert_eq!(svc1["name"], "Payments", "{services}");

    let declared = app
        .owner(
            Method::PUT,
            "/v3/services/svc-0",
            Some(&json!({"name": "Auth"})),
        )
        .await;
    assert_eq!(declared.status, 200);
    let list = app.owner(Method::GET, "/v3/services", None).await.body["data"].clone();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Auth", "Payments"], "by name");
    let bad = app
        .owner(
            Method::PUT,
            "/v3/services/svc-0",
            Some(&json!({"name": "", "colour": 1})),
        )
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.message().contains("colour"));

    // The filter builder offers them by name.
    person(&app, "fi@example.com", "member").await;
    let mut v = Visitor::new(&app);
    v.login_ok("fi@example.com").await;
    let form = v.get("/webhooks/new").await;
    assert!(
        form.text
            .contains(r#"<option value="svc-1">Payments</option>"#),
        "{}",
        form.text
    );
}

async fn assets_are_hashed_and_pages_are_locked_down(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut v = Visitor::new(&app);
    // Browsers ask for /favicon.ico before any page: there is one (no 404 on a first visit).
    let icon = v.get("/favicon.ico").await;
    assert_eq!(icon.status, 200);
    assert_eq!(icon.headers["content-type"], "image/svg+xml");
    assert!(icon.text.starts_with("<svg"), "{}", icon.text);
    let login = v.get("/login").await;
    assert!(
        login
            .text
            .contains(r#"rel="icon" type="image/svg+xml" href="/assets/icon."#),
        "{}",
        login.text
    );
    let css = login
        .text
        .split("href=\"/assets/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let js = login
        .text
        .split("src=\"/assets/htmx.")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let asset = v.get(&format!("/assets/{css}")).await;
    assert_eq!(asset.status, 200);
    assert_eq!(
        asset.headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(asset.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    let htmx = v.get(&format!("/assets/htmx.{js}")).await;
    assert_eq!(htmx.status, 200);
    assert!(htmx.text.contains("htmx"));
    assert_eq!(
        v.get("/assets/tocsin.0000000000000000.css").await.status,
        404
    );
    let csp = login.headers["content-security-policy"].to_str().unwrap();
    assert!(
        !csp.contains("unsafe-inline") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!login.text.contains("<script>"), "no inline script");
}

async fn preview_and_filter_test_use_received_incidents(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let hook = app.create_webhook(&minimal_webhook("preview")).await;
    let id = hook["id"].as_str().unwrap();
    event(&app, "inc-77").await;
    person(&app, "pia@example.com", "member").await;
    let mut v = Visitor::new(&app);
    let csrf = v.login_ok("pia@example.com").await;
    let template = r#"{"text": {{ "[" ~ incident.status ~ "] " ~ incident.id }}}"#;
    let shown = v
        .post_form(
            "/webhooks/preview",
            &[
                ("csrf_token", &csrf),
                ("payload_kind", "custom"),
                ("custom_payload", template),
                ("preview_incident", "inc-77"),
            ],
        )
        .await;
    assert_eq!(shown.status, 200);
    assert!(shown.text.contains("[triggered] inc-77"), "{}", shown.text);
    let sample = v
        .post_form(
            "/webhooks/preview",
            &[("csrf_token", &csrf), ("payload_kind", "slack")],
        )
        .await;
    assert!(
        sample.text.contains("sample incident") && sample.text.contains("attachments"),
        "{}",
        sample.text
    );
    let broken = v
        .post_form(
            "/webhooks/preview",
            &[
                ("csrf_token", &csrf),
                ("payload_kind", "custom"),
                ("custom_payload", "{{ nope("),
            ],
        )
        .await;
    assert!(
        broken.text.contains("Cannot be rendered"),
        "{}",
        broken.text
    );
    let unknown = v
        .post_form(
            "/webhooks/preview",
            &[
                ("csrf_token", &csrf),
                ("payload_kind", "standard"),
                ("preview_incident", "inc-none"),
            ],
        )
        .await;
    assert!(
        unknown.text.contains("no event for incident"),
        "{}",
        unknown.text
    );

    // The filter test: the service drop-down's value against the incident received.
    let test = |svc: &'static str| {
        let cookie = v.cookie.clone();
        let csrf = csrf.clone();
        let app = &app;
        async move {
            let mut v2 = Visitor::new(app);
            v2.cookie = cookie;
            v2.post_form(
                &format!("/webhooks/{id}/filters/test"),
                &[
                    ("csrf_token", &csrf),
                    ("filters.op", "and"),
                    ("filters.conditions[0].lhs", "service"),
                    ("filters.conditions[0].op", "is"),
                    ("filters.conditions[0].rhs_pick", svc),
                    ("filters.conditions[0].rhs", ""),
                    ("test_incident", "inc-77"),
                ],
            )
            .await
        }
    };
    let held = test("svc-1").await;
    assert!(
        held.text.contains("Matches") && held.text.contains("✓ held"),
        "{}",
        held.text
    );
    let not = test("svc-2").await;
    assert!(
        not.text.contains("Does not match") && not.text.contains("Payments (svc-1)"),
        "shows the incident's value, by the name it was learnt with: {}",
        not.text
    );
}

/// The overview and the list count deliveries as they finish (hourly counts written with
/// each result), name the webhook that is failing, and show each one's success rate.
async fn pages_count_deliveries_as_they_finish(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    receiver.respond("/down", |_, _| crate::helpers::receiver::Reply::status(500));
    let mut good = minimal_webhook("Healthy");
    good["urls"] = json!([{"url": receiver.url("/up")}]);
    let mut bad = minimal_webhook("Broken");
    bad["urls"] = json!([{"url": receiver.url("/down")}]);
    bad["max_retry"] = json!(0);
    let good = app.create_webhook(&good).await;
    let bad = app.create_webhook(&bad).await;
    for i in 0..2 {
        event(&app, &format!("inc-{i}")).await;
    }
    for (hook, state) in [(&good, "succeeded"), (&bad, "failed")] {
        let path = format!(
            "{HOOKS}/{}/logs?state={state}",
            hook["id"].as_str().unwrap()
        );
        crate::helpers::eventually(
            "deliveries finished",
            || async {
                app.owner(Method::GET, &path, None).await.body["data"]["result"]
                    .as_array()
                    .map_or(0, Vec::len)
            },
            |n| *n == 2,
        )
        .await;
    }
    let since = tocsin::domain::Timestamp::from_micros(
        tocsin::domain::Timestamp::now().as_micros() - 3_600_000_000,
    );
    let org = good["organization_id"].as_str().unwrap().into();
    let hours = app.store.hourly_deliveries(&org, since).await.unwrap();
    let totals = hours
        .iter()
        .fold((0, 0), |(a, b), (_, ok, failed)| (a + ok, b + failed));
    assert_eq!(totals, (2, 2), "{hours:?}");

    person(&app, "ora@example.com", "viewer").await;
    let mut v = Visitor::new(&app);
    v.login_ok("ora@example.com").await;
    let overview = v.get("/").await;
    assert_eq!(overview.status, 200, "{}", overview.text);
    let figures: Vec<&str> = overview
        .text
        .split(r#"<span class="big">"#)
        .skip(1)
        .map(|s| s.split('<').next().unwrap())
        .collect();
    assert_eq!(figures, ["2", "2", "2"], "succeeded, failed, webhooks");
    let failing = overview
        .text
        .split("Webhooks failing now")
        .nth(1)
        .unwrap()
        .split("URLs not answering")
        .next()
        .unwrap();
    assert!(
        failing.contains("Broken") && !failing.contains("Healthy"),
        "{failing}"
    );
    let list = v.get("/webhooks").await;
    assert!(list.text.contains("100% · 2 ok"), "{}", list.text);
    assert!(list.text.contains("0% · 0 ok, 2 failed"), "{}", list.text);
}

async fn tokens_users_and_audit_pages(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    person(&app, "ada@example.com", "admin").await;
    let mut v = Visitor::new(&app);
    let csrf = v.login_ok("ada@example.com").await;
    // Each ability is explained where it is chosen.
    let form = v.get("/tokens").await;
    assert!(
        form.text.contains("post events to /v3/events")
            && form.text.contains("everything, people and tokens included"),
        "{}",
        form.text
    );

    let made = v
        .post_form(
            "/tokens",
            &[
                ("csrf_token", &csrf),
                ("name", "pager-bridge"),
                ("abilities", "ingest"),
                ("expires_at", "2099-12-31"),
            ],
        )
        .await;
    // Redirected (303) so that a reload makes no second token, to the list that shows the
    // value this once.
    assert_eq!(made.status, 303, "{}", made.text);
    let made = v.follow(&made).await;
    assert_eq!(made.status, 200, "{}", made.text);
    let value = made
        .text
        .split(r#"<code id="new-token">"#)
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned();
    assert!(tocsin::domain::token::looks_like_token(&value), "{value}");
    let event = json!({"type": "incident.triggered", "team": {"id": "t"},
        "incident": {"id": "i", "message": "m", "status": "triggered", "service": {"id": "s"}, "alert_source": {"id": "a"}}});
    assert_eq!(
        app.call(
            Method::POST,
            "/v3/events",
            Some(&value),
            Some(event.to_string())
        )
        .await
        .status,
        202
    );
    let list = v.get("/tokens").await;
    assert!(
        list.text.contains("pager-bridge") && !list.text.contains(&value),
        "shown only once"
    );
    assert!(
        list.text.contains("2099-12-31 23:59"),
        "expires at the end of the day"
    );
    let bad = v
        .post_form("/tokens", &[("csrf_token", &csrf), ("name", "kept name")])
        .await;
    assert_eq!(bad.status, 422);
    assert!(
        bad.text.contains("abilities") && bad.text.contains(r#"value="kept name""#),
        "{}",
        bad.text
    );

    let invited = v
        .post_form(
            "/users",
            &[
                ("csrf_token", &csrf),
                ("email", "new@example.com"),
                ("name", "New"),
                ("role", "viewer"),
            ],
        )
        .await;
    assert_eq!(invited.status, 303, "{}", invited.text);
    let invited = v.follow(&invited).await;
    assert!(invited.text.contains("/setup/"), "the setup link is shown");
    let reload = v.get("/users").await;
    assert!(!reload.text.contains("/setup/"), "and only once");
    let user = app
        .store
        .user_by_email(&app.organization().await.id, "new@example.com")
        .await
        .unwrap()
        .unwrap();
    let owner = v
        .post_form(
            &format!("/users/{}/role", user.id),
            &[("csrf_token", &csrf), ("role", "owner")],
        )
        .await;
    assert_eq!(owner.status, 409);
    assert!(
        owner.text.contains("only an owner"),
        "an admin may not make owners: {}",
        owner.text
    );
    let member = v
        .post_form(
            &format!("/users/{}/role", user.id),
            &[("csrf_token", &csrf), ("role", "member")],
        )
        .await;
    assert_eq!(member.status, 303);
    // A password reset shows its new link the same way: once, after a redirect.
    let reset = v
        .post_form(
            &format!("/users/{}/reset-password", user.id),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(reset.status, 303, "{}", reset.text);
    let shown = v.follow(&reset).await;
    assert!(shown.text.contains("/setup/"), "{}", shown.text);

    let audit = v.get("/audit?actor=ada%40example.com&action=").await;
    assert!(
        audit.text.contains("token.created") && audit.text.contains("user.updated"),
        "{}",
        audit.text
    );
    assert!(!audit.text.contains(&value), "never the token value");
    let revoked = v
        .post_form(
            &format!(
                "/tokens/{}/revoke",
                app.store
                    .list_tokens(None)
                    .await
                    .unwrap()
                    .iter()
                    .find(|t| t.name == "pager-bridge")
                    .unwrap()
                    .id
            ),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(
        (revoked.status, revoked.location()),
        (303, "/tokens?done=revoked")
    );
}

/// A delivery whose payload could not be rendered was never sent: "Send again" says so
/// instead of sending an empty body.
async fn a_delivery_that_never_rendered_is_not_sent_again(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let mut body = minimal_webhook("fragile");
    body["urls"] = json!([{"url": receiver.url("/in")}]);
    body["mail_ids"] = json!(["oncall@example.com"]);
    body["payload_type"] = json!("custom");
    // JSON for the sample incident (checked at save), not for a message "boom".
    body["custom_payload"] =
        json!(r#"{% if incident.message == "boom" %}not json{% else %}{"ok": 1}{% endif %}"#);
    let hook = app.create_webhook(&body).await;
    let id = hook["id"].as_str().unwrap();
    let event = json!({"type": "incident.triggered", "team": {"id": "t"},
        "incident": {"id": "i", "message": "boom", "status": "triggered", "service": {"id": "s"}, "alert_source": {"id": "a"}}});
    assert_eq!(
        app.owner(Method::POST, "/v3/events", Some(&event))
            .await
            .status,
        202
    );
    let logs = app
        .owner(Method::GET, &format!("{HOOKS}/{id}/logs"), None)
        .await;
    let delivery = logs.body["data"]["result"][0].clone();
    assert_eq!(delivery["state"], "failed");
    // Failed at intake, it owes its e-mail like any failure: the notification is written
    // in intake's transaction, reading the delivery written just before it.
    let owed = app
        .owner(Method::GET, &format!("{HOOKS}/{id}/notifications"), None)
        .await;
    let owed = owed.body["data"]["result"].as_array().unwrap().clone();
    assert_eq!(owed.len(), 1, "{owed:?}");
    assert_eq!(owed[0]["delivery_id"], delivery["id"], "{owed:?}");
    person(&app, "rex@example.com", "member").await;
    let mut v = Visitor::new(&app);
    let csrf = v.login_ok("rex@example.com").await;
    let again = v
        .post_form(
            &format!(
                "/webhooks/{id}/logs/{}/resend",
                delivery["id"].as_str().unwrap()
            ),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(again.status, 422, "{}", again.text);
    assert!(again.text.contains("was never sent"), "{}", again.text);
    let logs = app
        .owner(Method::GET, &format!("{HOOKS}/{id}/logs"), None)
        .await;
    assert_eq!(
        logs.body["data"]["result"].as_array().unwrap().len(),
        1,
        "no new delivery"
    );
    assert!(receiver.received("/in").is_empty());
}

/// Failure e-mails do not look set up when they are not: with no SMTP server, the Settings
/// tab says e-mail is off where the addresses are entered, and its Failure notifications
/// card no longer says "no delivery has finally failed" when one has (failures without an
/// address are not recorded for e-mail; the card says why and points to the Logs).
async fn settings_say_when_e_mail_is_off(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    receiver.respond("/down", |_, _| Reply::status(422));
    let hook = app
        .create_webhook(&patched(
            minimal_webhook("mailless"),
            json!({"urls": [{"url": receiver.url("/down")}], "max_retry": 0}),
        ))
        .await;
    let id = hook["id"].as_str().unwrap().to_owned();
    event(&app, "inc-failing").await;
    app.settled_logs(&id, 1).await;
    person(&app, "sam@example.com", "member").await;
    let mut v = Visitor::new(&app);
    v.login_ok("sam@example.com").await;
    let page = v.get(&format!("/webhooks/{id}/settings")).await;
    assert!(page.text.contains("E-mail is off"), "{}", page.text);
    assert!(
        !page.text.contains("has finally failed")
            && page.text.contains("once an address is set above")
            && page
                .text
                .contains(&format!("/webhooks/{id}/logs?state=failed")),
        "{}",
        page.text
    );

    // With addresses while e-mail is off: the API's answer says so, and the notice that the
    // URL stopped answering is shown with its e-mail skipped, not hidden.
    let body = patched(
        minimal_webhook("told"),
        json!({"urls": [{"url": receiver.url("/dead")}], "mail_ids": ["oncall@example.com"]}),
    );
    receiver.respond("/dead", |_, _| Reply::status(503));
    let told = app.owner(Method::POST, HOOKS, Some(&body)).await;
    assert_eq!(told.status, 201, "{:?}", told.body);
    assert_eq!(
        told.body["warnings"][0]["field"], "mail_ids",
        "{:?}",
        told.body
    );
    assert!(told.body["warnings"][0]["message"]
        .as_str()
        .unwrap()
        .contains("e-mail is off"));
    let told_id = told.body["data"]["id"].as_str().unwrap().to_owned();
    for i in 0..6 {
        event(&app, &format!("inc-dead-{i}")).await;
    }
    let path = format!("/webhooks/{told_id}/settings");
    let deadline = std::time::Instant::now() + crate::helpers::DEADLINE;
    let shown = loop {
        let text = v.get(&path).await.text;
        if text.contains("stopped answering") && text.contains(">skipped<") {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no skipped outage notice shown: {text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(shown.contains("SMTP is not configured"), "{shown}");
}

/// The list's switch cancels what is pending when it turns a webhook off: it asks first,
/// saying how many deliveries that cancels, and only the confirmation turns it off.
async fn turning_off_asks_first_when_deliveries_are_pending(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    receiver.script(
        "/slow",
        vec![Reply {
            delay: Some(std::time::Duration::from_secs(600)),
            ..Reply::status(200)
        }],
    );
    let hook = app
        .create_webhook(&patched(
            minimal_webhook("busy"),
            json!({"urls": [{"url": receiver.url("/slow")}]}),
        ))
        .await;
    let id = hook["id"].as_str().unwrap().to_owned();
    event(&app, "inc-pending").await;
    receiver.wait_for("/slow", 1).await;
    person(&app, "pat@example.com", "member").await;
    let mut v = Visitor::new(&app);
    let csrf = v.login_ok("pat@example.com").await;
    let path = format!("/webhooks/{id}/enabled");
    let asked = v
        .post_form(&path, &[("csrf_token", &csrf), ("enabled", "false")])
        .await;
    assert_eq!(asked.status, 200, "{}", asked.text);
    assert!(
        asked.text.contains("1 delivery is still waiting")
            && asked.text.contains("Turn off and cancel 1"),
        "{}",
        asked.text
    );
    let still = app.owner(Method::GET, &format!("{HOOKS}/{id}"), None).await;
    assert_eq!(still.body["data"]["enabled"], true, "nothing changed yet");
    let done = v
        .post_form(
            &path,
            &[
                ("csrf_token", &csrf),
                ("enabled", "false"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.text);
    let off = app.owner(Method::GET, &format!("{HOOKS}/{id}"), None).await;
    assert_eq!(off.body["data"]["enabled"], false);

    // Off, nothing is retried; turned back on, the cancelled delivery is offered for a
    // retry, and "Retry these" sends it again.
    let logs = format!("/webhooks/{id}/logs");
    let retry_cancelled = [("csrf_token", csrf.as_str()), ("state", "cancelled")];
    let refused = v
        .post_form(&format!("{logs}/retry"), &retry_cancelled)
        .await;
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert!(refused.text.contains("turn it on"), "{}", refused.text);
    let on = v
        .post_form(&path, &[("csrf_token", &csrf), ("enabled", "true")])
        .await;
    assert_eq!(on.status, 303, "{}", on.text);
    assert_eq!(
        on.location(),
        format!("{logs}?state=cancelled&done=turned-on")
    );
    let offered = v.get(on.location()).await;
    assert!(
        offered.text.contains("Its cancelled deliveries are below")
            && offered.text.contains("Retry these")
            && offered.text.contains(r#"name="state" value="cancelled""#),
        "{}",
        offered.text
    );
    // A bulk write takes exactly the filters it names: none, or one that no longer reads,
    // retries nothing (it would otherwise send succeeded deliveries again too).
    for filters in [vec![], vec![("state", "cancelled"), ("url", "gone")]] {
        let mut form = vec![("csrf_token", csrf.as_str())];
        form.extend(filters);
        let refused = v.post_form(&format!("{logs}/retry"), &form).await;
        assert_eq!(refused.status, 422, "{form:?}: {}", refused.text);
        assert!(
            refused.text.contains("Nothing was retried"),
            "{}",
            refused.text
        );
    }
    assert!(
        offered.text.contains("Send 1 cancelled delivery again"),
        "the confirmation counts: {}",
        offered.text
    );
    let retried = v
        .post_form(&format!("{logs}/retry"), &retry_cancelled)
        .await;
    assert_eq!(retried.status, 303, "{}", retried.text);
    assert_eq!(
        retried.location(),
        format!("{logs}?state=cancelled&done=retrying")
    );
    receiver.wait_for("/slow", 2).await;
    let mut viewer = Visitor::new(&app);
    person(&app, "vic@example.com", "viewer").await;
    let viewer_csrf = viewer.login_ok("vic@example.com").await;
    let not_allowed = viewer
        .post_form(
            &format!("{logs}/retry"),
            &[("csrf_token", viewer_csrf.as_str()), ("state", "failed")],
        )
        .await;
    assert_eq!(not_allowed.status, 403);
}

/// An incident's page lists every delivery of its events across webhooks, oldest first,
/// each naming its webhook; another incident's deliveries are not among them.
async fn an_incident_shows_its_deliveries_across_webhooks_in_order(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    for (name, path) in [("Pager bridge", "/pager"), ("Chat room", "/chat")] {
        app.create_webhook(&patched(
            minimal_webhook(name),
            json!({"urls": [{"url": receiver.url(path)}],
                   "triggers": [{"event_class": "incident", "event_type": "triggered"},
                                {"event_class": "incident", "event_type": "resolved"}]}),
        ))
        .await;
    }
    event(&app, "inc-7").await;
    event(&app, "inc-other").await;
    let resolved = json!({"type": "incident.resolved", "team": {"id": "t"},
        "incident": {"id": "inc-7", "message": "m", "status": "resolved",
                     "service": {"id": "svc-1"}, "alert_source": {"id": "as-1"}}});
    assert_eq!(
        app.owner(Method::POST, "/v3/events", Some(&resolved))
            .await
            .status,
        202
    );
    person(&app, "vi@example.com", "viewer").await;
    let mut v = Visitor::new(&app);
    v.login_ok("vi@example.com").await;
    let list = v.get("/incidents").await;
    assert!(
        list.text.contains("href=\"/incidents/inc-7\""),
        "{}",
        list.text
    );
    let page = v.get("/incidents/inc-7").await;
    assert_eq!(page.status, 200, "{}", page.text);
    let rows: Vec<&str> = page.text.split("class=\"log-row\"").skip(1).collect();
    assert_eq!(rows.len(), 4, "two events to two webhooks: {}", page.text);
    let order: Vec<(bool, bool)> = rows
        .iter()
        .map(|r| (r.contains("incident.triggered"), r.contains("Pager bridge")))
        .collect();
    assert!(
        order[..2].iter().all(|(triggered, _)| *triggered)
            && order[2..].iter().all(|(triggered, _)| !*triggered),
        "triggered before resolved: {order:?}"
    );
    assert_eq!(
        order.iter().filter(|(_, pager)| *pager).count(),
        2,
        "each webhook's deliveries, named: {order:?}"
    );
    assert!(!page.text.contains("inc-other"));
    assert_eq!(v.get("/incidents/inc-nowhere").await.status, 404);
}

/// The Logs list tells rows apart (each URL's end, its method, the last status and when the
/// next retry goes) and filters by URL, delivery id and time.
async fn logs_tell_rows_apart_and_filter_by_url_delivery_and_time(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| {
        c.delivery.retry_schedule = vec![std::time::Duration::from_secs(3600)];
    })
    .await
    else {
        return;
    };
    let receiver = Receiver::start().await;
    receiver.respond("/fail", |_, _| Reply::status(500));
    let hook = app
        .create_webhook(&patched(
            minimal_webhook("two urls"),
            // The second URL holds a password: stored sealed, filtered on all the same.
            json!({"urls": [{"url": receiver.url("/ok")},
                            {"url": receiver.url("/fail").replace("http://", "http://u:secret-pw@"), "method": "PUT"}]}),
        ))
        .await;
    let id = hook["id"].as_str().unwrap().to_owned();
    event(&app, "inc-1").await;
    let api_logs = format!("{HOOKS}/{id}/logs");
    let logs = eventually(
        "one delivered, one waiting for its retry",
        || app.owner(Method::GET, &api_logs, None),
        |r| {
            let rows = r.body["data"]["result"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            rows.len() == 2 && rows.iter().all(|d| d["attempts"] == 1)
        },
    )
    .await;
    let rows = logs.body["data"]["result"].as_array().unwrap().clone();
    let ok_id = rows.iter().find(|d| d["state"] == "succeeded").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    person(&app, "vi@example.com", "viewer").await;
    let mut v = Visitor::new(&app);
    v.login_ok("vi@example.com").await;
    let path = format!("/webhooks/{id}/logs");
    let rows_of = |text: &str| text.matches("class=\"log-row\"").count();
    let page = v.get(&path).await;
    assert_eq!(rows_of(&page.text), 2, "{}", page.text);
    assert!(
        page.text.contains("</span> /ok</span>") && page.text.contains("</span> /fail</span>"),
        "the URLs' ends: {}",
        page.text
    );
    assert!(page.text.contains("1 attempt · 500"), "{}", page.text);
    assert!(
        page.text.contains(">next <time"),
        "the next retry: {}",
        page.text
    );
    // The URL filter names each URL by a key that shows nothing of its password.
    let key_of = |end: &str| {
        let option = page
            .text
            .split("<option value=\"")
            .find(|o| o.contains(&format!(">{end}</option>")))
            .unwrap_or_else(|| panic!("an option for {end}: {}", page.text));
        option.split('"').next().unwrap().to_owned()
    };
    let (ok_key, fail_key) = (key_of("/ok"), key_of("/fail"));
    for (query, expected) in [
        (format!("url={fail_key}"), 1),
        (format!("url={ok_key}"), 1),
        (format!("delivery_id={ok_id}"), 1),
        ("since=2099-01-01T00:00".to_owned(), 0),
        ("until=2099-01-01T00:00".to_owned(), 2),
        ("until=2001-01-01T00:00".to_owned(), 0),
    ] {
        let filtered = v.get(&format!("{path}?{query}")).await;
        assert_eq!(
            rows_of(&filtered.text),
            expected,
            "{query}: {}",
            filtered.text
        );
    }
    let by_url = v.get(&format!("{path}?url={fail_key}")).await;
    assert!(by_url.text.contains("/fail") && !by_url.text.contains("</span> /ok</span>"));
    assert!(!by_url.text.contains("secret-pw"), "{}", by_url.text);
}

/// On a fresh install the builder says where its names come from, a person adds a service
/// by name from it, types an id no list holds, and picks teams by name.
async fn the_builder_adds_names_takes_typed_ids_and_picks_teams(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    person(&app, "mo@example.com", "member").await;
    person(&app, "vi@example.com", "viewer").await;
    let mut v = Visitor::new(&app);
    let csrf = v.login_ok("mo@example.com").await;
    let new = v.get("/webhooks/new").await;
    assert!(
        new.text
            .contains("listed by the names the events tocsin received gave them")
            && new.text.contains("No team is known yet"),
        "{}",
        new.text
    );

    // Added by name, from the builder.
    let added = v
        .post_form(
            "/directory",
            &[
                ("csrf_token", &csrf),
                ("dir_kind", "service"),
                ("dir_id", "svc-9"),
                ("dir_name", "Billing"),
            ],
        )
        .await;
    assert_eq!(added.status, 200, "{}", added.text);
    assert!(
        added.text.contains(r#"data-added-id="svc-9""#),
        "{}",
        added.text
    );
    let services = app.owner(Method::GET, "/v3/services", None).await;
    assert_eq!(
        services.body["data"][0]["name"], "Billing",
        "{:?}",
        services.body
    );
    let blank = v
        .post_form(
            "/directory",
            &[
                ("csrf_token", &csrf),
                ("dir_kind", "team"),
                ("dir_id", " "),
                ("dir_name", "SRE"),
            ],
        )
        .await;
    assert!(blank.text.contains("Give its id"), "{}", blank.text);
    let mut viewer = Visitor::new(&app);
    let viewer_csrf = viewer.login_ok("vi@example.com").await;
    let refused = viewer
        .post_form(
            "/directory",
            &[
                ("csrf_token", &viewer_csrf),
                ("dir_kind", "team"),
                ("dir_id", "t9"),
                ("dir_name", "x"),
            ],
        )
        .await;
    assert_eq!(refused.status, 403);

    // A typed id no list holds is saved as typed; known teams are picked by name.
    event(&app, "inc-1").await;
    crate::helpers::eventually(
        "the event's team is known",
        || async { app.owner(Method::GET, "/v3/teams", None).await.body["data"].clone() },
        |d: &Value| d.as_array().is_some_and(|a| !a.is_empty()),
    )
    .await;
    let mut form = new_webhook_form(&csrf, "typed", "https://example.com/h");
    form.extend([
        ("filters.conditions[0].lhs", "service"),
        ("filters.conditions[0].op", "is"),
        ("filters.conditions[0].rhs_pick", "__typed__"),
        ("filters.conditions[0].rhs", "svc-new"),
        ("team_ids", "t"),
        ("teams", "ops-2"),
    ]);
    let saved = v.post_form("/webhooks/new", &form).await;
    assert_eq!(saved.status, 303, "{}", saved.text);
    let list = app.owner(Method::GET, HOOKS, None).await;
    let hook = &list.body["data"]["result"][0];
    assert_eq!(
        hook["filters"]["conditions"][0],
        json!({"op": "is", "lhs": "service", "rhs": "svc-new"})
    );
    assert_eq!(hook["teams"], json!(["t", "ops-2"]));
    assert_eq!(hook["is_all_teams_configured"], false);
    let configure = v
        .get(&format!(
            "/webhooks/{}/configure",
            hook["id"].as_str().unwrap()
        ))
        .await;
    assert!(
        configure
            .text
            .contains(r#"name="team_ids" value="t" checked"#)
            && configure.text.contains("Team T")
            && configure.text.contains(r#"value="ops-2""#),
        "{}",
        configure.text
    );
}

both_backends!(
    the_builder_adds_names_takes_typed_ids_and_picks_teams,
    logs_tell_rows_apart_and_filter_by_url_delivery_and_time,
    an_incident_shows_its_deliveries_across_webhooks_in_order,
    turning_off_asks_first_when_deliveries_are_pending,
    settings_say_when_e_mail_is_off,
    a_delivery_that_never_rendered_is_not_sent_again,
    tokens_users_and_audit_pages,
    pages_count_deliveries_as_they_finish,
    preview_and_filter_test_use_received_incidents,
    page_forms_need_csrf_and_show_errors_in_place,
    viewers_are_refused_and_pages_need_a_login,
    configure_keeps_masked_credentials_and_switches_work,
    services_are_learnt_from_events_and_declared,
    assets_are_hashed_and_pages_are_locked_down,
);
