//! The Sources pages as a new user goes through them in a real browser: the first-start
//! card's "Connect a source", the empty list saying what a source is, an Alertmanager
//! source added (its token shown once and the alertmanager.yml block filled with it), a
//! payload posted with that token and one with a wrong token, the list's counts and last
//! error, the receipts expanded, a generic source's mapping tried on a pasted payload,
//! editing, rotating the token, disabling and deleting. Over plain HTTP on both backends:
//! a viewer is refused, and a form without the CSRF token changes nothing.

use reqwest::Method;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::browser::Browser;
use crate::helpers::visitor::{person, Visitor, PASSWORD};
use crate::helpers::{eventually, http_client, spawn_app, Backend, TestApp};

const DISK_FULL: &str = r#"{"version":"4","groupKey":"{}:{alertname=\"DiskFull\"}","status":"firing","receiver":"tocsin","groupLabels":{"alertname":"DiskFull"},"commonLabels":{"alertname":"DiskFull","service":"db","severity":"critical"},"commonAnnotations":{"summary":"Disk full on db-1"},"externalURL":"http://am.example","alerts":[{"status":"firing","labels":{"alertname":"DiskFull","service":"db"},"annotations":{"summary":"Disk full on db-1"},"startsAt":"2026-12-07T08:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prom.example/graph","fingerprint":"abc123"}]}"#;

const MONITOR_DOWN: &str =
    include_str!("../fixtures/sources/generic/alertifypro-monitor-down.json");

async fn login(b: &Browser, email: &str) {
    b.goto("/login").await;
    b.fill("#email", email).await;
    b.fill("#password", PASSWORD).await;
    b.click("button[type=submit]").await;
    b.find("nav.nav").await;
}

/// Posts `body` to a source's URL as its tool would; the status answered.
async fn post(url: &str, token: &str, body: &str) -> u16 {
    http_client()
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("the source's URL answers")
        .status()
        .as_u16()
}

async fn source(app: &TestApp, id: &str) -> Value {
    let reply = app
        .owner(Method::GET, &format!("/v3/sources/{id}"), None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["data"].clone()
}

/// The source id in its URL, `…/v3/sources/{id}/events`.
fn id_of(url: &str) -> String {
    url.trim_end_matches("/events")
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_user_connects_sources_in_the_browser() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let Some(b) = Browser::start(&app.address, "a_new_user_connects_sources_in_the_browser").await
    else {
        return;
    };
    person(&app, "mia@example.com", "member").await;
    login(&b, "mia@example.com").await;

    // The first-start card offers both ways in.
    b.wait_text("Connect a source").await;
    b.wait_text("Add your first webhook").await;
    assert_eq!(b.count(".start a[href='/sources/new']").await, 1);
    b.screenshot("20-overview-start-card").await;

    // The empty list says what a source is.
    b.click("nav.nav a[href='/sources']").await;
    b.wait_text("No sources yet.").await;
    b.wait_text("A source is a URL that Prometheus Alertmanager")
        .await;
    b.screenshot("21-sources-empty").await;

    // Choose the tool, then name the source.
    b.click(".empty a[href='/sources/new']").await;
    b.wait_text("Which tool will post to tocsin?").await;
    b.screenshot("22-source-kinds").await;
    b.click("a[href='/sources/new?kind=alertmanager']").await;
    b.wait_text("Connect Prometheus Alertmanager").await;
    b.fill("#name", "Prometheus production").await;
    b.fill("#team-id", "team-sre").await;
    b.fill("#team-name", "SRE").await;
    b.click(".actions button[type=submit]").await;

    // The token, once, and the alertmanager.yml block filled with it and the real URL.
    b.wait_text("it is shown only this once").await;
    let token = b.text("#new-token").await;
    let url = b.text("#source-url").await;
    assert!(token.starts_with("tsrc_"), "{token}");
    assert!(
        url.starts_with(&format!("{}/v3/sources/", app.address)) && url.ends_with("/events"),
        "{url}"
    );
    let snippet = b.text("#setup-code").await;
    assert!(snippet.contains(&format!("- url: {url}")), "{snippet}");
    assert!(
        snippet.contains(&format!("credentials: {token}")),
        "{snippet}"
    );
    assert!(snippet.contains("send_resolved: true"), "{snippet}");
    b.wait_text("basic_auth").await;
    b.screenshot("23-alertmanager-added").await;
    let id = id_of(&url);
    let stored = source(&app, &id).await;
    assert_eq!(stored["kind"], "alertmanager");
    assert_eq!(stored["team"], json!({"id": "team-sre", "name": "SRE"}));

    // Alertmanager posts a firing group; something else tries a wrong token.
    assert_eq!(post(&url, &token, DISK_FULL).await, 202);
    assert_eq!(post(&url, "tsrc_wrong", DISK_FULL).await, 401);
    // Receipts are written a moment after the answer (nothing waits for them).
    eventually(
        "both receipts are kept",
        || source(&app, &id),
        |s| s["counts_today"] == json!({"accepted": 1, "ignored": 0, "refused": 1}),
    )
    .await;

    b.goto("/sources").await;
    b.wait_text("Prometheus production").await;
    b.wait_text("1 accepted").await;
    b.wait_text("1 refused").await;
    b.wait_text("a wrong token (was it rotated?)").await;
    assert_eq!(
        b.text(&format!("#url-{id}")).await,
        url,
        "the list shows the URL to copy"
    );
    assert!(b.count(&format!("button[data-copy='url-{id}']")).await == 1);
    b.screenshot("24-sources-list").await;

    // The receipts: the accepted one became an event; the refused one kept no body.
    b.click(&format!("a[href='/sources/{id}/receipts']")).await;
    b.wait_text("incident.triggered").await;
    assert_eq!(b.count(".receipt-row").await, 2);
    b.click("li[data-outcome=refused] summary").await;
    b.wait_text("Not kept").await;
    b.click("li[data-outcome=accepted] summary").await;
    let body = b.text("li[data-outcome=accepted] pre.payload").await;
    let received: Value = serde_json::from_str(&body).expect("the body, as JSON");
    assert_eq!(
        received["commonAnnotations"]["summary"],
        "Disk full on db-1"
    );
    b.wait_text("Stored as 1 event").await;
    b.screenshot("25-receipts-expanded").await;

    // A generic source: the mapping tried on a pasted payload before saving.
    b.goto("/sources/new?kind=generic").await;
    b.fill("#name", "Uptime monitor").await;
    b.fill("#settings-incident_id", "payload.data.alert.id")
        .await;
    b.fill(
        "#settings-status",
        r#"{"monitor.down": "triggered", "monitor.recovered": "resolved"}[payload.event]"#,
    )
    .await;
    b.fill("#settings-message", "payload.data.monitor.name")
        .await;
    b.fill("#settings-description", "payload.data.alert.reason")
        .await;
    b.fill("#preview_payload", MONITOR_DOWN).await;
    b.click("button[hx-post='/sources/preview']").await;
    b.wait_text("It becomes 1 event").await;
    b.wait_text("incident.triggered · incident alt_def456 — Production API")
        .await;
    b.wait_text("\"HTTP 503 Service Unavailable\"").await;
    b.screenshot("26-generic-preview").await;
    // A mistake shows in the preview, not after saving.
    b.fill("#settings-message", "payload.data.nothing").await;
    b.click("button[hx-post='/sources/preview']").await;
    b.wait_text("gave nothing for this payload").await;
    b.fill("#settings-message", "payload.data.monitor.name")
        .await;
    b.click(".actions button[type=submit]").await;
    b.wait_text("it is shown only this once").await;
    let generic_token = b.text("#new-token").await;
    let generic_url = b.text("#source-url").await;
    let curl = b.text("#setup-code").await;
    assert!(
        curl.contains(&format!("curl -X POST {generic_url}"))
            && curl.contains(&format!("Authorization: Bearer {generic_token}")),
        "{curl}"
    );
    let generic_id = id_of(&generic_url);
    assert_eq!(post(&generic_url, &generic_token, MONITOR_DOWN).await, 202);

    // PagerDuty: steps to follow there, each value ready to copy.
    b.goto("/sources/new?kind=pagerduty").await;
    b.fill("#name", "PagerDuty").await;
    b.click(".actions button[type=submit]").await;
    b.wait_text("Integrations → Generic Webhooks (v3) → New Webhook")
        .await;
    let pd_token = b.text("#new-token").await;
    let values: Vec<String> = {
        let mut out = Vec::new();
        for el in b
            .client
            .find_all(fantoccini::Locator::Css(".setup-steps code"))
            .await
            .unwrap()
        {
            out.push(el.text().await.unwrap());
        }
        out
    };
    let pd_url = b.text("#source-url").await;
    assert_eq!(
        values,
        [
            pd_url,
            "Authorization".to_owned(),
            format!("Bearer {pd_token}")
        ]
    );
    b.screenshot("26b-pagerduty-steps").await;

    // Edit: the snippet no longer shows the token; a mistake comes back by its field.
    b.goto(&format!("/sources/{id}")).await;
    let snippet = b.text("#setup-code").await;
    assert!(
        snippet.contains("credentials: <token>") && !snippet.contains(&token),
        "{snippet}"
    );
    b.fill("#name", "").await;
    b.click(".actions button[type=submit]").await;
    b.wait_text("Nothing was saved").await;
    assert_eq!(b.count("#name-error").await, 1);
    b.fill("#name", "Prometheus (prod)").await;
    b.select("#settings-incident_per", "alert").await;
    b.fill("#settings-service_label", "app").await;
    b.click(".actions button[type=submit]").await;
    b.wait_text("Saved.").await;
    b.screenshot("27-source-edited").await;
    let stored = source(&app, &id).await;
    assert_eq!(stored["name"], "Prometheus (prod)");
    assert_eq!(stored["settings"]["incident_per"], "alert");
    assert_eq!(stored["settings"]["service_label"], "app");
    assert_eq!(stored["team"]["id"], "team-sre", "the rest is kept");

    // Rotate the token: shown once, in the snippet too; the old one is refused from now.
    b.click("form[action$='/rotate-token'] input[name=confirm]")
        .await;
    b.click("form[action$='/rotate-token'] button[type=submit]")
        .await;
    b.wait_text("Token rotated").await;
    let rotated = b.text("#new-token").await;
    assert_ne!(rotated, token);
    assert!(b.text("#setup-code").await.contains(&rotated));
    b.screenshot("28-token-rotated").await;
    assert_eq!(post(&url, &token, DISK_FULL).await, 401);
    assert_eq!(post(&url, &rotated, DISK_FULL).await, 202);

    // Disable from the list: the tool is refused.
    b.goto("/sources").await;
    b.click(&format!(
        "form[action='/sources/{generic_id}/enabled'] button"
    ))
    .await;
    b.wait_text("Uptime monitor").await;
    assert_eq!(source(&app, &generic_id).await["enabled"], false);
    assert_eq!(post(&generic_url, &generic_token, MONITOR_DOWN).await, 401);

    // Delete, after typing its name.
    b.goto(&format!("/sources/{generic_id}")).await;
    b.wait_text("This source is off").await;
    let delete = "form[action$='/delete'] button[type=submit]";
    assert_eq!(
        b.find(delete)
            .await
            .prop("disabled")
            .await
            .unwrap()
            .as_deref(),
        Some("true"),
        "the button waits for the name"
    );
    b.fill("#confirm_name", "Uptime monitor").await;
    b.click(delete).await;
    b.wait_text("Source deleted").await;
    assert_eq!(b.count(&format!("#url-{generic_id}")).await, 0);
    b.wait_text("Prometheus (prod)").await;
    b.screenshot("29-sources-after-delete").await;
    let gone = app
        .owner(Method::GET, &format!("/v3/sources/{generic_id}"), None)
        .await;
    assert_eq!(gone.status, 404);

    b.client.set_window_size(360, 800).await.unwrap();
    b.goto("/sources").await;
    b.screenshot("30-sources-360px").await;
    b.goto(&format!("/sources/{id}")).await;
    b.screenshot("31-source-setup-360px").await;
    b.close().await;
}

fn new_source_form<'a>(csrf: &'a str, name: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf_token", csrf),
        ("kind", "grafana"),
        ("name", name),
        ("team.id", ""),
        ("team.name", ""),
        ("settings.incident_per", "group"),
        ("settings.service_label", ""),
        ("settings.team_label", ""),
    ]
}

async fn source_count(app: &TestApp) -> usize {
    app.owner(Method::GET, "/v3/sources", None).await.body["data"]
        .as_array()
        .map_or(0, Vec::len)
}

async fn viewers_read_sources_and_forms_need_csrf(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    person(&app, "val@example.com", "viewer").await;
    person(&app, "mo@example.com", "member").await;

    // A member without the form's token changes nothing; with it, the source is added and
    // its token shown on the page answering.
    let mut member = Visitor::new(&app);
    let csrf = member.login_ok("mo@example.com").await;
    let mut no_token = new_source_form("", "Grafana");
    no_token.retain(|(k, _)| *k != "csrf_token");
    let refused = member.post_form("/sources/new", &no_token).await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert!(
        refused.text.contains("Nothing was changed"),
        "{}",
        refused.text
    );
    let wrong = member
        .post_form("/sources/new", &new_source_form("AAAA", "Grafana"))
        .await;
    assert_eq!(wrong.status, 403);
    assert_eq!(source_count(&app).await, 0);
    let bad = member
        .post_form("/sources/new", &new_source_form(&csrf, " "))
        .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert!(bad.text.contains(r#"id="name-error""#), "{}", bad.text);
    assert_eq!(source_count(&app).await, 0);
    let posted = member
        .post_form("/sources/new", &new_source_form(&csrf, "Grafana"))
        .await;
    // Redirected (a reload adds no second source), to the page that shows the token once.
    assert_eq!(posted.status, 303, "{}", posted.text);
    let added = member.follow(&posted).await;
    assert!(added.text.contains("tsrc_"), "the token, shown once");
    assert!(added.text.contains("Authorization Header - Credentials:"));
    assert_eq!(source_count(&app).await, 1);
    let list = app.owner(Method::GET, "/v3/sources", None).await;
    let id = list.body["data"][0]["id"].as_str().unwrap().to_owned();
    // The page afterwards shows a placeholder, never the token.
    let again = member.get(&format!("/sources/{id}")).await;
    assert!(
        again.text.contains("&lt;token&gt;") && !again.text.contains("tsrc_"),
        "{}",
        again.text
    );
    let rotate = member
        .post_form(
            &format!("/sources/{id}/rotate-token"),
            &[("confirm", "yes")],
        )
        .await;
    assert_eq!(rotate.status, 403, "no CSRF token, no rotation");

    // A viewer reads, is offered no change, and is refused one.
    let mut viewer = Visitor::new(&app);
    let csrf = viewer.login_ok("val@example.com").await;
    let list = viewer.get("/sources").await;
    assert_eq!(list.status, 200);
    assert!(list.text.contains("Grafana") && !list.text.contains("/sources/new"));
    assert!(!list.text.contains("/enabled"), "no switch");
    let page = viewer.get(&format!("/sources/{id}")).await;
    assert_eq!(page.status, 200);
    assert!(!page.text.contains("/rotate-token") && !page.text.contains("/delete"));
    assert!(page
        .text
        .contains("Your role can read this source but not change it"));
    assert_eq!(
        viewer.get(&format!("/sources/{id}/receipts")).await.status,
        200
    );
    assert_eq!(viewer.get("/sources/new?kind=grafana").await.status, 403);
    let tried = viewer
        .post_form("/sources/new", &new_source_form(&csrf, "sneaky"))
        .await;
    assert_eq!(tried.status, 403, "{}", tried.text);
    assert!(tried.text.contains("Not allowed"), "{}", tried.text);
    for (path, fields) in [
        (
            format!("/sources/{id}/delete"),
            vec![("csrf_token", csrf.as_str()), ("confirm_name", "Grafana")],
        ),
        (
            format!("/sources/{id}/rotate-token"),
            vec![("csrf_token", csrf.as_str()), ("confirm", "yes")],
        ),
        (
            format!("/sources/{id}/enabled"),
            vec![("csrf_token", csrf.as_str()), ("enabled", "false")],
        ),
        (format!("/sources/{id}"), new_source_form(&csrf, "renamed")),
    ] {
        let r = viewer.post_form(&path, &fields).await;
        assert_eq!(r.status, 403, "{path}: {}", r.text);
    }
    let kept = source(&app, &id).await;
    assert_eq!(
        (kept["name"].as_str(), kept["enabled"].as_bool()),
        (Some("Grafana"), Some(true))
    );
    assert_eq!(source_count(&app).await, 1);
}

/// Every kind has its form and, once added, its tool's steps with the URL and the token;
/// PagerDuty's signing secret is masked after saving and kept when the mask comes back.
async fn every_kind_has_a_form_and_its_steps(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    person(&app, "mo@example.com", "member").await;
    let mut v = Visitor::new(&app);
    let csrf = v.login_ok("mo@example.com").await;
    let generic = [
        ("settings.incident_id", "payload.id"),
        ("settings.status", "payload.state"),
        ("settings.message", "payload.title"),
    ];
    for (kind, settings, steps) in [
        ("alertmanager", &[][..], "alertmanager.yml"),
        ("grafana", &[][..], "Authorization Header - Credentials:"),
        (
            "pagerduty",
            &[("settings.signing_secret", "")][..],
            "Generic Webhooks (v3)",
        ),
        (
            "opsgenie",
            &[][..],
            "Settings → Integrations → Add integration → Webhook",
        ),
        ("squadcast", &[][..], "add an outgoing webhook"),
        ("generic", &generic[..], "curl -X POST"),
    ] {
        let form = v.get(&format!("/sources/new?kind={kind}")).await;
        assert_eq!(form.status, 200, "{kind}: {}", form.text);
        assert!(
            form.text
                .contains(&format!(r#"name="kind" value="{kind}""#)),
            "{kind}"
        );
        let mut fields = vec![
            ("csrf_token", csrf.as_str()),
            ("kind", kind),
            ("name", kind),
        ];
        fields.extend_from_slice(settings);
        let posted = v.post_form("/sources/new", &fields).await;
        assert_eq!(posted.status, 303, "{kind}: {}", posted.text);
        let added = v.follow(&posted).await;
        assert_eq!(added.status, 200, "{kind}: {}", added.text);
        assert!(added.text.contains(steps), "{kind}: {}", added.text);
        let url_and_token = added.text.contains("/v3/sources/src_") && added.text.contains("tsrc_");
        assert!(url_and_token, "{kind}: {}", added.text);
    }
    assert_eq!(source_count(&app).await, 6);

    let list = app.owner(Method::GET, "/v3/sources", None).await;
    let pd = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "pagerduty")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let save = |secret: &'static str| {
        vec![
            ("csrf_token", csrf.clone()),
            ("name", "PagerDuty".to_owned()),
            ("enabled", "true".to_owned()),
            ("settings.signing_secret", secret.to_owned()),
        ]
    };
    let path = format!("/sources/{pd}");
    for (sent, stored) in [
        ("whsec-from-pagerduty", json!("********")),
        ("********", json!("********")),
        ("", Value::Null),
    ] {
        let fields = save(sent);
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let saved = v.post_form(&path, &fields).await;
        assert_eq!(saved.status, 303, "{sent}: {}", saved.text);
        assert_eq!(
            source(&app, &pd).await["settings"]["signing_secret"],
            stored,
            "{sent}"
        );
        if sent == "whsec-from-pagerduty" {
            let page = v.get(&path).await;
            assert!(
                page.text.contains(r#"value="********""#) && !page.text.contains(sent),
                "masked on the page"
            );
        }
    }
}

both_backends!(
    viewers_read_sources_and_forms_need_csrf,
    every_kind_has_a_form_and_its_steps
);
