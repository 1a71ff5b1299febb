//! The web UI in a real browser, as a Squadcast user goes through it: log in, add a
//! webhook through the form (two URLs, a header, two triggers, a nested filter chosen from
//! the drop-downs), see it listed, watch a delivery arrive in the Logs tab and read its
//! payload, change the settings; a viewer is offered no edit controls.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::browser::Browser;
use crate::helpers::receiver::{Receiver, Reply};
use crate::helpers::visitor::{person, PASSWORD};
use crate::helpers::{spawn_app, Backend, TestApp};

async fn login(b: &Browser, email: &str) {
    b.goto("/login").await;
    b.fill("#email", email).await;
    b.fill("#password", PASSWORD).await;
    b.click("button[type=submit]").await;
    b.find("nav.nav").await;
}

async fn post_event(app: &TestApp, id: &str, service: &str, source: &str) {
    let event = json!({"type": "incident.triggered", "team": {"id": "team-sre", "name": "SRE"},
        "incident": {"id": id, "message": format!("Disk full on {id}"), "status": "triggered",
                     "service": {"id": service, "name": "API"},
                     "alert_source": {"id": source, "type": "Prometheus"}}});
    let reply = app.owner(Method::POST, "/v3/events", Some(&event)).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_from_form_to_logs_in_the_browser() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let Some(b) = Browser::start(&app.address, "a_webhook_from_form_to_logs_in_the_browser").await
    else {
        return;
    };
    let receiver = Receiver::start().await;
    person(&app, "maya@example.com", "member").await;
    let vic = person(&app, "vic@example.com", "viewer").await;
    person(&app, "olga@example.com", "owner").await;
    // tocsin learns services and alert sources from events; declare two more by API.
    for (path, body) in [
        ("/v3/services/svc-db", json!({"name": "Database"})),
        ("/v3/alert-sources/as-dd", json!({"name": "Datadog"})),
    ] {
        assert_eq!(app.owner(Method::PUT, path, Some(&body)).await.status, 200);
    }
    post_event(&app, "warmup", "svc-api", "as-prom").await;
    crate::helpers::eventually(
        "services learnt from the event",
        || async { app.owner(Method::GET, "/v3/services", None).await.body["data"].clone() },
        |d: &Value| {
            d.as_array()
                .is_some_and(|a| a.iter().any(|s| s["id"] == "svc-api"))
        },
    )
    .await;

    b.goto("/login").await;
    b.screenshot("01-login").await;
    login(&b, "maya@example.com").await;
    b.wait_text("Add your first webhook").await;
    b.screenshot("02-overview-empty").await;

    // Add a webhook in the steps.
    b.goto("/webhooks").await;
    b.click("a[href='/webhooks/new']").await;
    b.find("#name").await;
    b.fill("#name", "Ops bridge").await;
    b.fill("#description", "Pages the on-call bridge").await;
    b.click("input[name=triggers][value='incident.resolved']")
        .await;
    b.fill("#urls-0-url", &receiver.url("/first")).await;
    b.click("button[data-add-row=tpl-url]").await;
    b.fill(
        "#url-rows .row:last-child input[type=url]",
        &receiver.url("/second"),
    )
    .await;
    b.select("#url-rows .row:last-child select", "PUT").await;
    b.click("button[data-add-row=tpl-header]").await;
    b.fill("#header-rows .row:last-child input[name$='.key']", "X-Team")
        .await;
    b.fill("#header-rows .row:last-child input[name$='.value']", "sre")
        .await;
    // Filters: Service is API, and (a nested group) Alert source is Prometheus or Datadog.
    b.click(".fgroup[data-path=filters] > .factions [data-add-condition]")
        .await;
    let first = ".fgroup[data-path=filters] > .fconds > .fcond:nth-child(1)";
    b.select(&format!("{first} .f-lhs"), "service").await;
    // Its value left at "Choose…" for now: saving says so next to the filter.
    b.click(".fgroup[data-path=filters] > .factions [data-add-group]")
        .await;
    let nested = ".fgroup[data-path='filters.conditions[1]']";
    b.select(&format!("{nested} > legend select"), "or").await;
    let inner = format!("{nested} > .fconds > .fcond:nth-child(1)");
    b.select(&format!("{inner} .f-lhs"), "alert_source").await;
    b.select(&format!("{inner} .f-pick"), "as-prom").await;
    b.click(&format!("{nested} > .factions [data-add-condition]"))
        .await;
    let second = format!("{nested} > .fconds > .fcond:nth-child(2)");
    b.select(&format!("{second} .f-lhs"), "alert_source").await;
    b.select(&format!("{second} .f-pick"), "as-dd").await;
    // The live preview of a preset, rendered by the server.
    b.click("input[name=payload_kind][value=slack]").await;
    b.click("button[hx-post='/webhooks/preview']").await;
    b.wait_text("attachments").await;
    b.click("input[name=payload_kind][value=standard]").await;
    b.click(".actions button[type=submit]").await;
    b.wait_text("must not be empty").await;
    b.screenshot("03a-filter-without-a-value").await;
    assert_eq!(app.webhook_count().await, 0, "nothing saved");
    b.select(&format!("{first} .f-pick"), "svc-api").await;
    b.screenshot("03-add-webhook").await;
    b.click(".actions button[type=submit]").await;
    b.wait_text("Webhook created").await;
    let path = b.path().await;
    assert!(path.ends_with("/settings?done=created"), "{path}");
    let id = path.split('/').nth(2).unwrap().to_owned();

    // Exactly what the API holds.
    let hook = app
        .owner(
            Method::GET,
            &format!("/v3/extensions/event-webhooks/{id}"),
            None,
        )
        .await
        .body["data"]
        .clone();
    assert_eq!(hook["name"], "Ops bridge");
    assert_eq!(
        hook["urls"],
        json!([{"url": receiver.url("/first"), "method": "POST"}, {"url": receiver.url("/second"), "method": "PUT"}])
    );
    assert_eq!(hook["header"], json!({"X-Team": "sre"}));
    assert_eq!(
        hook["triggers"],
        json!([{"event_class": "incident", "event_type": "triggered"}, {"event_class": "incident", "event_type": "resolved"}])
    );
    assert_eq!(
        hook["filters"],
        json!({"op": "and", "conditions": [
        {"op": "is", "lhs": "service", "rhs": "svc-api"},
        {"op": "or", "conditions": [
            {"op": "is", "lhs": "alert_source", "rhs": "as-prom"},
            {"op": "is", "lhs": "alert_source", "rhs": "as-dd"}]}]})
    );
    assert_eq!(hook["author"]["name"], "maya@example.com");

    // The filters tab draws the stored filter back with names from the drop-downs.
    b.goto(&format!("/webhooks/{id}/filters")).await;
    let chosen = b
        .find(&format!("{first} .f-pick"))
        .await
        .prop("value")
        .await
        .unwrap();
    assert_eq!(chosen.as_deref(), Some("svc-api"));
    // "Test against an incident" (htmx, with the CSRF header htmx takes from the page).
    b.fill("#test_incident", "warmup").await;
    b.click("button[hx-post$='/filters/test']").await;
    b.wait_text("Matches incident warmup").await;
    b.screenshot("04-filters-tab").await;
    // A service no event has named yet: added by name from the builder, it joins the value
    // lists at once; an id no list holds is typed after "Another id…". (Not saved.)
    b.click("details.declare summary").await;
    b.select("#dir-kind", "service").await;
    b.fill("#dir-id", "svc-pay").await;
    b.fill("#dir-name", "Payments").await;
    b.click("details.declare button").await;
    b.wait_text("Added Payments (svc-pay)").await;
    b.click(".fgroup[data-path=filters] > .factions [data-add-condition]")
        .await;
    let added = ".fgroup[data-path=filters] > .fconds > .fcond:last-child";
    b.select(&format!("{added} .f-lhs"), "service").await;
    b.select(&format!("{added} .f-pick"), "svc-pay").await;
    let text_hidden = |row: String| {
        let b = &b;
        async move {
            b.client
                .execute(
                    &format!("return document.querySelector(\"{row} .f-text\").hidden;"),
                    vec![],
                )
                .await
                .unwrap()
        }
    };
    assert_eq!(
        text_hidden(added.to_owned()).await,
        json!(true),
        "a picked id needs no typing"
    );
    b.select(&format!("{added} .f-pick"), "__typed__").await;
    assert_eq!(
        text_hidden(added.to_owned()).await,
        json!(false),
        "typing it"
    );
    b.fill(&format!("{added} .f-text"), "svc-new").await;
    b.screenshot("04b-builder-adds-names").await;

    // Listed.
    b.goto("/webhooks").await;
    b.wait_text("Ops bridge").await;
    b.screenshot("05-webhooks-list").await;

    // An event reaches both URLs; the Logs tab shows them without a reload.
    b.goto(&format!("/webhooks/{id}/logs")).await;
    b.wait_text("No deliveries yet").await;
    post_event(&app, "inc-42", "svc-api", "as-prom").await;
    receiver.wait_for("/first", 1).await;
    receiver.wait_for("/second", 1).await;
    let deadline = std::time::Instant::now() + crate::helpers::DEADLINE;
    while b.count(".log-row").await < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "new deliveries never appeared in the Logs tab"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    b.wait_text("Disk full on inc-42").await;
    b.click(".log-row summary").await;
    let payload = b.text(".log-row pre.payload").await;
    let sent: Value = serde_json::from_str(&payload).expect("the payload, pretty-printed JSON");
    assert_eq!(sent["data"]["resource_data"]["id"], "inc-42");
    assert_eq!(sent["event"]["type"], "incident.triggered");
    b.wait_text("HTTP 200").await;
    b.screenshot("06-logs-expanded").await;

    // Send a test: each URL's answer in place, the deliveries logged as tests.
    b.click("details.test-card summary").await;
    b.click("details.test-card button[type=submit]").await;
    b.wait_text("Sent incident.triggered to every URL").await;
    assert_eq!(b.count(".test-results li").await, 2);
    receiver.wait_for("/first", 2).await;
    b.screenshot("06b-send-a-test").await;
    let deadline = std::time::Instant::now() + crate::helpers::DEADLINE;
    while b.count(".log-row").await < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "the test deliveries never appeared in the Logs tab"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // A row follows its delivery without a reload: a slow answer shows it pending with no
    // attempt, then (expanded meanwhile, and staying so) succeeded with one.
    receiver.script(
        "/first",
        vec![Reply {
            // Longer than the page's 2 s poll, so the row is seen pending first.
            delay: Some(std::time::Duration::from_secs(5)),
            ..Reply::status(200)
        }],
    );
    post_event(&app, "inc-slow", "svc-api", "as-prom").await;
    let logs = crate::helpers::eventually(
        "the slow delivery logged",
        || async {
            app.owner(
                Method::GET,
                &format!("/v3/extensions/event-webhooks/{id}/logs?incident_id=inc-slow"),
                None,
            )
            .await
            .body["data"]["result"]
                .clone()
        },
        |rows: &Value| rows.as_array().is_some_and(|r| r.len() == 2),
    )
    .await;
    let slow = logs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["url"].as_str().unwrap().ends_with("/first"))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let row = format!(".log-row[data-delivery='{slow}']");
    b.find(&format!("{row} .chip.state-pending")).await;
    b.click(&format!("{row} summary")).await;
    b.find(&format!("{row} .chip.state-succeeded")).await;
    assert!(
        b.text(&format!("{row} .attempts"))
            .await
            .starts_with("1 attempt · 200"),
        "the attempts follow too"
    );
    let open = b
        .find(&format!("{row} details"))
        .await
        .prop("open")
        .await
        .unwrap();
    assert_eq!(open.as_deref(), Some("true"), "the expanded row stays open");
    // And what it shows agrees: the attempt, fetched again in place.
    b.find(&format!("{row} .detail .chip.state-succeeded"))
        .await;
    b.screenshot("06c-row-followed-live").await;

    // Settings: change name, e-mails and retries.
    b.goto(&format!("/webhooks/{id}/settings")).await;
    b.fill("#name", "Ops bridge (prod)").await;
    b.fill("#mail_ids", "oncall@example.com\nlead@example.com")
        .await;
    b.fill("#max_retry", "5").await;
    b.click("form[action$='/settings'] button[type=submit]")
        .await;
    b.wait_text("Saved.").await;
    b.screenshot("07-settings").await;
    let hook = app
        .owner(
            Method::GET,
            &format!("/v3/extensions/event-webhooks/{id}"),
            None,
        )
        .await
        .body["data"]
        .clone();
    assert_eq!(hook["name"], "Ops bridge (prod)");
    assert_eq!(
        hook["mail_ids"],
        json!(["oncall@example.com", "lead@example.com"])
    );
    assert_eq!(hook["max_retry"], 5);
    assert_eq!(
        hook["filters"]["conditions"].as_array().unwrap().len(),
        2,
        "the rest is kept"
    );

    // A bad value comes back next to its field, with what was typed kept.
    b.fill("#max_retry", "99").await;
    b.click("form[action$='/settings'] button[type=submit]")
        .await;
    b.wait_text("Nothing was saved").await;
    b.wait_text("must be from 0 to 10, got 99").await;
    let kept = b.find("#max_retry").await.prop("value").await.unwrap();
    assert_eq!(kept.as_deref(), Some("99"));
    assert!(
        b.count("#max_retry-error").await == 1,
        "the message sits next to the field"
    );

    b.goto("/").await;
    b.wait_text("Deliveries per hour").await;
    b.screenshot("08-overview").await;
    // A refused address keeps the person's navigation, as every page does.
    b.goto("/webhooks/whk%00x/logs").await;
    b.wait_text("This address cannot be read").await;
    b.wait_text("Log out").await;
    b.screenshot("08b-address-refused").await;
    b.goto("/incidents").await;
    b.wait_text("inc-42").await;
    b.screenshot("09-incidents").await;
    // One incident's deliveries, across webhooks, each opening to what was sent.
    b.click("a[href='/incidents/inc-42']").await;
    b.wait_text("Every delivery of this incident").await;
    b.click(".log-row summary").await;
    b.find(".log-row pre.payload").await;
    b.screenshot("09b-incident").await;
    b.goto("/audit").await;
    b.wait_text("webhook.updated").await;
    b.screenshot("10-audit").await;

    // A viewer sees no edit controls, and is refused if they try.
    b.click("form[action='/logout'] button").await;
    b.find("#email").await;
    login(&b, "vic@example.com").await;
    b.goto("/webhooks").await;
    b.wait_text("Ops bridge (prod)").await;
    assert_eq!(b.count("a[href='/webhooks/new']").await, 0);
    assert_eq!(b.count("button.switch").await, 0);
    b.goto(&format!("/webhooks/{id}/settings")).await;
    assert_eq!(
        b.count("form[action$='/settings'] button[type=submit]")
            .await,
        0
    );
    assert_eq!(b.count("form[action$='/delete']").await, 0);
    assert_eq!(b.count("button[hx-post$='/secret']").await, 0);
    b.goto(&format!("/webhooks/{id}/logs")).await;
    b.click(".log-row summary").await;
    b.find(".log-row pre.payload").await;
    assert_eq!(b.count("form[action$='/resend']").await, 0);
    b.goto("/webhooks/new").await;
    b.wait_text("Not allowed").await;
    b.screenshot("11-viewer-refused").await;

    // An owner sees who failed logins lock out, and unlocks them. (The failures are
    // written to the store directly: from this browser's address they would lock it too.)
    let now = tocsin::domain::Timestamp::now();
    for i in 0..10 {
        let at = now.minus(std::time::Duration::from_secs(60 - i));
        app.store
            .login_attempt(
                &[tocsin::domain::login_throttle::email_key("vic@example.com").as_str()],
                at,
                tocsin::domain::Timestamp::from_micros(0),
            )
            .await
            .unwrap();
    }
    b.click("form[action='/logout'] button").await;
    b.find("#email").await;
    login(&b, "olga@example.com").await;
    b.goto("/users").await;
    b.wait_text("locked · 14 min").await;
    b.screenshot("13-users-locked").await;
    b.click(&format!("form[action='/users/{}/unlock'] button", vic.id))
        .await;
    b.wait_text("they may log in again now").await;
    assert_eq!(b.count("form[action$='/unlock']").await, 0);
    b.screenshot("13b-users-unlocked").await;

    // Small screens: every page fits 360 px without scrolling sideways (tables scroll
    // inside their own box).
    b.client.set_window_size(360, 800).await.unwrap();
    b.goto("/webhooks").await;
    b.screenshot("12-webhooks-360px").await;
    let mut too_wide = Vec::new();
    for path in [
        "/".to_owned(),
        "/webhooks".to_owned(),
        "/webhooks/new".to_owned(),
        format!("/webhooks/{id}/logs"),
        format!("/webhooks/{id}/settings"),
        format!("/webhooks/{id}/filters"),
        "/sources".to_owned(),
        "/incidents".to_owned(),
        "/incidents/inc-42".to_owned(),
        "/users".to_owned(),
        "/tokens".to_owned(),
        "/audit".to_owned(),
    ] {
        b.goto(&path).await;
        b.find("main").await;
        let width = b
            .client
            .execute("return document.documentElement.scrollWidth;", vec![])
            .await
            .unwrap();
        let viewport = b
            .client
            .execute("return document.documentElement.clientWidth;", vec![])
            .await
            .unwrap();
        if width.as_i64() > viewport.as_i64() {
            too_wide.push(format!("{path}: {width} > {viewport}"));
        }
    }
    let logs_path = format!("/webhooks/{id}/logs");
    let filters_path = format!("/webhooks/{id}/filters");
    let settings_path = format!("/webhooks/{id}/settings");
    for (path, name) in [
        ("/users", "14-users-360px"),
        ("/tokens", "15-tokens-360px"),
        ("/audit", "16-audit-360px"),
        ("/incidents/inc-42", "17-incident-360px"),
        (logs_path.as_str(), "18-logs-360px"),
        (filters_path.as_str(), "19-filters-360px"),
        (settings_path.as_str(), "20-settings-360px"),
    ] {
        b.goto(path).await;
        b.find("main").await;
        b.screenshot(name).await;
    }
    assert!(
        too_wide.is_empty(),
        "pages wider than the screen: {too_wide:?}"
    );
    b.close().await;
}
